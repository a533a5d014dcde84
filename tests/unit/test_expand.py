"""Expansion: names, hostnames and MACs, deterministic for a seed."""
from __future__ import annotations

import subprocess
import sys

import pytest

from pytest_iotemu.spec.naming import (PatternError, derive_mac, device_name, pattern_fields,
                                       render)

from .conftest import spec_of

FLEET = """
fleet: det
seed: {seed}
lab: {{lan: 10.8.0.0/16}}
devices:
  - {{profile: axis-camera, count: 120}}
  - {{profile: windows-10, count: 30, name: pcs}}
  - {{profile: hp-printer, count: 9, hostname: "prn-{{n:02}}-{{group}}"}}
"""


def macs(seed: int) -> list[tuple[str, str, str | None]]:
    spec = spec_of(FLEET.format(seed=seed))
    return [(d.name, d.mac, d.hostname) for d in spec.devices]


def test_same_seed_same_fleet() -> None:
    assert macs(42) == macs(42)


def test_different_seeds_differ() -> None:
    a, b = macs(1), macs(2)
    assert [n for n, _, _ in a] == [n for n, _, _ in b]
    assert sum(x[1] != y[1] for x, y in zip(a, b)) == len(a)


def test_macs_are_stable_across_processes() -> None:
    """No dependence on Python's salted hash(): another interpreter agrees."""
    code = ("from pytest_iotemu.spec.naming import derive_mac;"
            "print(derive_mac(42, 's', 'g', 3, ['00:40:8c'], set()))")
    env_outputs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  env={"PYTHONHASHSEED": str(h)}, check=True).stdout.strip()
                   for h in (1, 2, 3)}
    assert env_outputs == {derive_mac(42, "s", "g", 3, ["00:40:8c"], set())}


def test_macs_use_the_profile_ouis_or_local_bit() -> None:
    spec = spec_of(FLEET.format(seed=5))
    site = spec.sites[0]
    axis = {"00:40:8c", "ac:cc:8e", "b8:a4:4f", "e8:27:25"}
    assert {d.mac[:8] for d in site.devices_of("axis-camera")} <= axis
    for d in site.devices_of("pcs"):
        first = int(d.mac[:2], 16)
        assert first & 0x02 and not first & 0x01  # locally administered unicast
    all_macs = [d.mac for d in spec.devices]
    assert len(set(all_macs)) == len(all_macs)


def test_collisions_rehash_deterministically() -> None:
    taken: set[str] = set()
    first = derive_mac(1, "s", "g", 1, ["00:40:8c"], taken)
    again = derive_mac(1, "s", "g", 1, ["00:40:8c"], taken)  # same inputs, already taken
    assert again != first and again.startswith("00:40:8c")
    assert again == derive_mac(1, "s", "g", 1, ["00:40:8c"], {first})


def test_explicit_mac_is_never_derived_again() -> None:
    # find the MAC the first camera would get, then give it to another group explicitly
    spec = spec_of("fleet: f\nlab: {lan: 10.8.0.0/24}\ndevices: [{profile: axis-camera}]\n")
    wanted = spec.devices[0].mac
    spec2 = spec_of(f"""
        fleet: f
        lab: {{lan: 10.8.0.0/24}}
        devices:
          - {{profile: axis-camera}}
          - {{profile: axis-camera, name: fixed, mac: "{wanted}"}}
    """)
    cams = {d.group: d.mac for d in spec2.devices}
    assert cams["fixed"] == wanted and cams["axis-camera"] != wanted


def test_names_are_zero_padded_to_the_group_width() -> None:
    assert device_name("axis-camera", 1, 12) == "axis-camera-01"
    assert device_name("axis-camera", 12, 12) == "axis-camera-12"
    assert device_name("pcs", 7, 9) == "pcs-7"
    assert device_name("big", 5, 1000) == "big-0005"
    names = [n for n, _, h in macs(3)]
    assert names[0] == "axis-camera-001" and names[120] == "pcs-01"


def test_hostname_patterns() -> None:
    hosts = [h for n, _, h in macs(3) if n.startswith("hp-printer")]
    assert hosts[0] == "prn-01-hp-printer" and hosts[8] == "prn-09-hp-printer"
    mac = "00:1b:54:0a:0b:0c"
    assert render("SEP{MAC}", n=1, group="g", mac=mac) == "SEP001B540A0B0C"
    assert render("HP{MAC6}", n=1, group="g", mac=mac) == "HP0A0B0C"
    assert render("axis-{mac}", n=1, group="g", mac=mac) == "axis-001b540a0b0c"
    assert render("{{x}}-{n}", n=2, group="g", mac=mac) == "{x}-2"


@pytest.mark.parametrize("pattern", ["{n.real}", "{n[0]}", "{n!r}", "{n:{x}}", "{0}", "{}",
                                     "{n:zz}", "{oops"])
def test_hostname_patterns_refuse_anything_but_plain_fields(pattern: str) -> None:
    with pytest.raises(PatternError):
        pattern_fields(pattern)
