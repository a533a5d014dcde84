"""Which pool a device belongs to: one function for the validator, `iotemu show`, both
DHCP servers' configurations and the nftables zones.

The first pool, in file order, whose ``match`` holds wins; the catch-all pool (the one
without ``match``) takes every device no other pool matched.
"""
from __future__ import annotations

from typing import Iterable, Protocol

from .model import Match, Pool


class Classifiable(Protocol):
    cls: str
    profile: str
    group: str
    mac: str

    @property
    def vendor_class(self) -> str | None: ...


def matches(match: Match, device: Classifiable) -> bool:
    """True when every key of ``match`` holds for ``device`` (a key holds when any of
    its values does)."""
    if match.classes and device.cls not in match.classes:
        return False
    if match.profiles and device.profile not in match.profiles:
        return False
    if match.groups and device.group not in match.groups:
        return False
    if match.ouis:
        digits = device.mac.replace(":", "").lower()
        if not any(digits.startswith(prefix) for prefix in match.ouis):
            return False
    if match.vendor_classes:
        vendor_class = device.vendor_class or ""
        if not any(vendor_class.startswith(prefix) for prefix in match.vendor_classes):
            return False
    return True


def classify(device: Classifiable, pools: Iterable[Pool]) -> str | None:
    """The name of the pool ``device`` belongs to, or None when no pool takes it."""
    catch_all = None
    for pool in pools:
        if pool.match is None:
            catch_all = catch_all or pool.name
        elif matches(pool.match, device):
            return pool.name
    return catch_all
