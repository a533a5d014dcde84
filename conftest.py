"""Project-wide test settings: pytester for the plugin's own tests, and the gate for
tests marked ``root`` (network namespaces, raw sockets, real DHCP servers)."""
from __future__ import annotations

import os
import shutil

import pytest

pytest_plugins = ["pytester"]

NEEDED = ("dnsmasq", "kea-dhcp4", "ethtool", "dhclient")


def _missing() -> list[str]:
    return [b for b in NEEDED
            if shutil.which(b) is None and not os.path.exists(f"/usr/sbin/{b}")]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    missing = None
    for item in items:
        if item.get_closest_marker("root") is None:
            continue
        if os.geteuid() != 0:
            item.add_marker(pytest.mark.skip(reason="needs root (network namespaces); "
                                             "run the suite as root, as CI does"))
            continue
        missing = _missing() if missing is None else missing
        if missing:
            item.add_marker(pytest.mark.skip(reason="missing " + ", ".join(missing)
                                             + ": run `make deps` as root"))
