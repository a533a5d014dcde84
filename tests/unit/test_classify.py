"""The one classification function: first matching pool in file order, else catch-all."""
from __future__ import annotations

from dataclasses import dataclass

from pytest_iotemu.spec.classify import classify, matches
from pytest_iotemu.spec.model import Match, Pool
from pytest_iotemu.spec.units import parse_range

from .conftest import spec_of


@dataclass
class Dev:
    cls: str = "camera"
    profile: str = "axis-camera"
    group: str = "cams"
    mac: str = "00:40:8c:01:02:03"
    vendor_class: str | None = None


def pool(name: str, match: Match | None) -> Pool:
    return Pool(name, parse_range("10.0.0.10-10.0.0.20"), match)


def test_every_key_must_hold_and_any_value_of_a_key() -> None:
    m = Match(classes=("camera", "nvr"), ouis=("00408c",))
    assert matches(m, Dev())
    assert matches(m, Dev(cls="nvr"))
    assert not matches(m, Dev(mac="ac:cc:8e:01:02:03"))
    assert not matches(m, Dev(cls="printer"))
    assert matches(Match(vendor_classes=("Cisco Systems",)),
                   Dev(vendor_class="Cisco Systems, Inc. IP Phone CP-7960G"))
    assert not matches(Match(vendor_classes=("Cisco",)), Dev(vendor_class=None))
    assert matches(Match(groups=("cams",), profiles=("axis-camera",)), Dev())
    assert matches(Match(ouis=("00408c0",)), Dev())  # a prefix longer than the OUI


def test_first_match_in_file_order_wins_and_catch_all_takes_the_rest() -> None:
    pools = [pool("all-rest", None), pool("a", Match(classes=("camera",))),
             pool("b", Match(profiles=("axis-camera",)))]
    assert classify(Dev(), pools) == "a"
    assert classify(Dev(cls="printer", profile="hp"), pools) == "all-rest"
    assert classify(Dev(cls="printer"), pools) == "b"
    assert classify(Dev(cls="printer", profile="hp"), pools[1:]) is None


def test_spec_expansion_uses_the_same_function() -> None:
    spec = spec_of("""
        fleet: f
        lab:
          lan: 10.1.0.0/24
          pools:
            axis-oui: {range: 10.1.0.10-10.1.0.20, match: {oui: "00:40:8C"}}
            cams: {range: 10.1.0.30-10.1.0.49, match: {class: [camera, nvr]}}
            printers: {range: 10.1.0.50-10.1.0.60, match: {group: office-printers}}
            default: {range: 10.1.0.100-10.1.0.200}
        devices:
          - {profile: axis-camera, count: 20}
          - {profile: hp-printer, name: office-printers, count: 2}
          - {profile: hp-printer, count: 2}
    """)
    site = spec.sites[0]
    for device in site.devices:
        assert device.pool == classify(device, site.lab.pools)
    assert {d.pool for d in site.devices_of("office-printers")} == {"printers"}
    assert {d.pool for d in site.devices_of("hp-printer")} == {"default"}
    cams = {d.pool for d in site.devices_of("axis-camera")}
    assert cams <= {"axis-oui", "cams"} and "axis-oui" in cams
