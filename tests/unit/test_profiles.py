"""The built-in profile library: complete, well-formed, OUIs true to the IEEE registry."""
from __future__ import annotations

import re

import netaddr
import pytest

from pytest_iotemu.profiles import DEVICE_CLASSES, builtin_profiles
from pytest_iotemu.spec.naming import hostname_problem, render

from .conftest import spec_of

LIBRARY = builtin_profiles()
NAMES = list(LIBRARY)

# Option 55 (in order) and option 60 from ../shared/reference/dhcp-fingerprints.md.
REFERENCE = {
    "windows-10": ((1, 3, 6, 15, 31, 33, 43, 44, 46, 47, 119, 121, 249, 252), "MSFT 5.0"),
    "android": ((1, 3, 6, 15, 26, 28, 51, 58, 59, 43, 114, 108), "android-dhcp-13"),
    "ios": ((1, 121, 3, 6, 15, 119, 252), None),
    "macos": ((1, 121, 3, 6, 15, 119, 252, 95, 44, 46), None),
    "raspberry-pi": ((1, 121, 33, 3, 6, 12, 15, 26, 28, 42, 51, 54, 58, 59, 119),
                     "dhcpcd-6.11.5:Linux-4.9.59-v7+:armv7l:BCM2835"),
    "hp-printer": ((6, 3, 1, 15, 66, 67, 13, 44, 12, 81), None),
    "cisco-ip-phone": ((1, 66, 6, 3, 15, 150, 35, 151), "Cisco Systems, Inc. IP Phone CP-7960G"),
    "polycom-phone": ((128, 66, 160, 43, 7, 54, 42, 15, 6, 4, 3, 2, 1), "Polycom VVX 310"),
    "yealink-phone": ((1, 2, 3, 4, 6, 7, 12, 15, 28, 42, 66, 67, 43, 120), "yealink"),
    "axis-camera": ((1, 3, 6, 15, 42, 44, 46, 47, 69), None),
    "ecobee-thermostat": ((1, 3, 6, 28), None),
}

REQUIRED_KINDS = [
    "axis-camera", "hikvision-camera", "dahua-camera", "hikvision-nvr", "philips-hue-bridge",
    "lifx-bulb", "tplink-kasa-plug", "sonoff-switch", "nest-thermostat", "ecobee-thermostat",
    "amazon-echo", "google-home", "hp-printer", "cisco-ip-phone", "polycom-phone",
    "yealink-phone", "hid-badge-reader", "siemens-plc", "infusion-pump", "verifone-pos",
    "samsung-tv", "raspberry-pi", "windows-10", "android", "ios", "macos",
]

_NOISE = {"inc", "ltd", "co", "corp", "corporation", "company", "the", "gmbh", "ag", "bv",
          "sas", "pty", "llc", "limited", "technology", "technologies", "network",
          "digital", "trading", "management"}


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _NOISE and len(w) > 1}


def test_library_has_every_kind_the_brief_lists() -> None:
    assert len(LIBRARY) >= 24
    assert set(REQUIRED_KINDS) <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_profile_is_well_formed(name: str) -> None:
    profile = LIBRARY[name]
    assert profile.cls in DEVICE_CLASSES
    assert profile.source == "unverified" or len(profile.source) > 20
    prl = profile.dhcp.param_request_list
    assert prl and len(set(prl)) == len(prl) and all(1 <= c <= 254 for c in prl)
    if profile.dhcp.vendor_class is not None:
        assert profile.dhcp.vendor_class.isascii() and len(profile.dhcp.vendor_class) <= 255
    assert profile.dhcp.client_id in ("none", "mac", "duid")
    if profile.dhcp.hostname is not None:
        for mac in ("00:00:00:00:00:01", "ff:ff:fe:ff:ff:ff"):
            host = render(profile.dhcp.hostname, n=999, group=name, mac=mac)
            assert hostname_problem(host) is None, host
    assert profile.protocols, "every profile says what traffic it makes"


@pytest.mark.parametrize("name", [n for n in NAMES if LIBRARY[n].ouis])
def test_ouis_are_registered_to_the_vendor(name: str) -> None:
    """Each OUI's IEEE registration (as netaddr ships it) names the profile's vendor."""
    profile = LIBRARY[name]
    owner = profile.oui_owner or profile.vendor
    for oui in profile.ouis:
        org = netaddr.EUI(oui.replace(":", "-") + "-00-00-00").oui.registration().org
        assert _words(org) & _words(owner), f"{oui} is registered to {org!r}, not {owner!r}"


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_sourced_fingerprints_match_the_reference(name: str) -> None:
    prl, vendor_class = REFERENCE[name]
    profile = LIBRARY[name]
    assert profile.dhcp.param_request_list == prl
    assert profile.dhcp.vendor_class == vendor_class
    assert profile.source != "unverified"


def test_every_profile_expands_and_validates() -> None:
    groups = "\n".join(f"  - {{profile: {name}, count: 3}}" for name in NAMES)
    spec = spec_of(f"fleet: all-profiles\nlab: {{lan: 10.30.0.0/22}}\ndevices:\n{groups}\n")
    assert len(spec.devices) == 3 * len(NAMES)
    for device in spec.devices:
        profile = LIBRARY[device.profile]
        if profile.ouis:
            assert device.mac[:8] in profile.ouis
        assert device.pool == "default"


def test_docs_list_every_profile_with_its_source() -> None:
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[2] / "docs" / "profiles.md").read_text()
    for name in NAMES:
        row = next((line for line in doc.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row is not None, f"docs/profiles.md does not list {name}"
        assert LIBRARY[name].source in row
