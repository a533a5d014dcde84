"""Valid specs: the contract file as written, defaults, sites and the shorthand."""
from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from pytest_iotemu.spec.model import (DhcpExpect, PathExpect, PolicyExpect, ResourcesExpect,
                                      ThroughputExpect)
from pytest_iotemu.spec.schema import load_spec

from .conftest import spec_of

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT.parent / "shared" / "contract-branch.yaml"
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))


def test_scenario_branch_is_the_contract_file() -> None:
    if not CONTRACT.exists():
        pytest.skip("shared/contract-branch.yaml is not beside this checkout")
    assert (ROOT / "scenarios" / "branch.yaml").read_text() == CONTRACT.read_text()


def test_contract_file_validates_exactly_as_written() -> None:
    spec = load_spec(ROOT / "scenarios" / "branch.yaml", env={})
    assert spec.name == "branch-paris-01" and spec.seed == 42
    (site,) = spec.sites
    assert site.name == "branch-paris-01" and site.is_lab
    lab = site.lab
    assert lab.dhcp_server == "dnsmasq" and lab.lease_time == 600
    assert lab.gateway == ipaddress.IPv4Address("10.20.0.1") and lab.domain == "branch.lab"
    assert [p.name for p in lab.pools] == ["cameras", "voice", "default"]
    assert [(w.name, w.rate) for w in lab.wans] == [("mpls", 50e6), ("internet", 200e6)]
    assert [r.action for r in lab.policy.rules] == ["block", "allow", "allow"]
    assert lab.policy.rules[2].via == "mpls" and lab.policy.rules[2].from_pool == "voice"
    assert [g.name for g in site.groups] == ["axis-camera", "philips-hue-bridge", "hp-printer",
                                             "ecobee-thermostat", "cisco-ip-phone", "laptops"]
    assert len(site.devices) == 36
    by_pool = {}
    for device in site.devices:
        by_pool.setdefault(device.pool, set()).add(device.group)
    assert by_pool == {"cameras": {"axis-camera"}, "voice": {"cisco-ip-phone"},
                       "default": {"philips-hue-bridge", "hp-printer", "ecobee-thermostat",
                                   "laptops"}}
    assert [d.hostname for d in site.devices_of("hp-printer")] == ["prn-01", "prn-02", "prn-03"]
    assert site.group("laptops").threats == ("port_scan",)
    assert [e.id for e in site.expectations] == [
        "dhcp[all]",
        "dhcp[axis-camera]",
        "policy[axis-camera->corp-files:445/tcp=block]",
        "policy[axis-camera->camera-cloud:443/tcp=allow]",
        "path[cisco-ip-phone->sip-core:5060/udp@mpls,failover:mpls<=3s]",
        "throughput[axis-camera->camera-cloud:554/udp@2mbps]",
        "resources",
    ]
    kinds = [type(e.expect) for e in site.expectations]
    assert kinds == [DhcpExpect, DhcpExpect, PolicyExpect, PolicyExpect, PathExpect,
                     ThroughputExpect, ResourcesExpect]
    dhcp_all, dhcp_cams = site.expectations[0].expect, site.expectations[1].expect
    assert dhcp_all.within == 5 and dhcp_all.bound.required(36) == 36
    assert dhcp_cams.pool == "cameras" and dhcp_cams.options == (("router", ("10.20.0.1",)),)
    assert dhcp_cams.within == 10  # the default
    thr = site.expectations[5].expect
    assert (thr.rate, thr.min, thr.max_loss, thr.duration) == (2e6, 1.8e6, 0.01, 10.0)
    res = site.expectations[6].expect
    assert (res.engine_rss, res.engine_cpu, res.server_rss) == (150_000_000, 80.0, None)
    assert site.expectations[2].fragment == {"policy": {
        "from": "axis-camera", "to": "corp-files", "service": "445/tcp", "verdict": "block"}}
    assert site.expectations[0].line == 35


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_every_scenario_validates(path: Path) -> None:
    spec = load_spec(path, env={})
    assert spec.devices


def test_lab_defaults_when_only_lan_is_given() -> None:
    spec = spec_of("""
        fleet: tiny
        lab: {lan: 192.168.50.0/24}
        devices: [{profile: ecobee-thermostat, count: 3}]
    """)
    (site,) = spec.sites
    lab = site.lab
    assert site.name == "tiny" and site.interface == "lab"
    assert str(lab.gateway) == "192.168.50.1"
    assert lab.dhcp_server == "dnsmasq" and lab.lease_time == 3600
    assert [(p.name, str(p.range), p.match) for p in lab.pools] == [
        ("default", "192.168.50.2-192.168.50.254", None)]
    assert [w.name for w in lab.wans] == ["internet"]
    assert lab.policy.default == "allow" and lab.policy.rules == ()
    assert spec.seed == 0
    assert [d.name for d in site.devices] == ["ecobee-thermostat-1", "ecobee-thermostat-2",
                                              "ecobee-thermostat-3"]


def test_default_pool_avoids_a_gateway_in_the_middle() -> None:
    spec = spec_of("""
        fleet: mid
        lab: {lan: 10.1.0.0/24, gateway: 10.1.0.100}
        devices: [{profile: axis-camera}]
    """)
    assert str(spec.sites[0].lab.pools[0].range) == "10.1.0.101-10.1.0.254"


def test_sites_form_and_site_options() -> None:
    spec = spec_of("""
        fleet: chain
        seed: 7
        sites:
          - name: paris
            lab: {lan: 10.1.0.0/24, dhcp_server: kea, lease_time: 30s}
            devices: [{profile: axis-camera, count: 2}]
            expect: [{dhcp: {bound: 1}}]
          - name: lyon
            interface: ens4
            allow_live: true
            devices: [{profile: axis-camera, count: 2}]
    """)
    assert [s.name for s in spec.sites] == ["paris", "lyon"]
    paris, lyon = spec.sites
    assert paris.lab.dhcp_server == "kea" and paris.lab.lease_time == 30
    assert paris.expectations[0].expect.bound.required(2) == 1
    assert lyon.interface == "ens4" and lyon.lab is None and lyon.allow_live
    assert not lyon.is_lab
    # the same group in two sites gets different MACs (the site is in the hash)
    assert {d.mac for d in paris.devices}.isdisjoint({d.mac for d in lyon.devices})


def test_interface_override_applies_to_sites() -> None:
    text = """
        fleet: f
        lab: {lan: 10.1.0.0/24}
        devices: [{profile: axis-camera}]
        expect: [{resources: {engine_cpu: 50%}}]
    """
    from pytest_iotemu.spec.schema import parse_spec
    import textwrap
    spec = parse_spec(textwrap.dedent(text), "s.yaml", env={}, interfaces={"*": "ens5"})
    assert spec.sites[0].interface == "ens5"


def test_static_disabled_and_explicit_mac_groups() -> None:
    spec = spec_of("""
        fleet: f
        lab:
          lan: 10.1.0.0/24
          pools: {default: {range: 10.1.0.100-10.1.0.200}}
        devices:
          - {profile: hp-printer, count: 2, static_ip: 10.1.0.20, name: printers}
          - {profile: axis-camera, enabled: false, count: 3}
          - {profile: axis-camera, name: lobby-cam, mac: "00:40:8C:AA:BB:CC"}
          - {profile: windows-10, name: kiosk, hostname: null, dhcp: {vendor_class: null}}
        expect:
          - dhcp: {group: all}
    """)
    site = spec.sites[0]
    printers = site.devices_of("printers")
    assert [str(d.static_ip) for d in printers] == ["10.1.0.20", "10.1.0.21"]
    assert all(d.pool is None for d in printers)
    assert all(not d.enabled for d in site.devices_of("axis-camera"))
    (lobby,) = site.devices_of("lobby-cam")
    assert lobby.mac == "00:40:8c:aa:bb:cc" and lobby.name == "lobby-cam-1"
    (kiosk,) = site.devices_of("kiosk")
    assert kiosk.hostname is None and kiosk.vendor_class is None
    assert kiosk.dhcp.param_request_list[:3] == (1, 3, 6)
    # `all` is every enabled DHCP device: lobby-cam and kiosk
    assert [d.name for d in site.devices_of("all")] == ["lobby-cam-1", "kiosk-1"]


def test_group_fingerprint_override_and_vendor_class_pool() -> None:
    spec = spec_of("""
        fleet: f
        lab:
          lan: 10.1.0.0/24
          pools:
            voice: {range: 10.1.0.10-10.1.0.20, match: {vendor_class: "Cisco Systems"}}
            rest: {range: 10.1.0.30-10.1.0.90}
        devices:
          - {profile: cisco-ip-phone, count: 2}
          - {profile: axis-camera, name: fake-phone, dhcp: {vendor_class: "Cisco Systems X"}}
          - {profile: axis-camera}
    """)
    pools = {d.name: d.pool for d in spec.sites[0].devices}
    assert pools == {"cisco-ip-phone-1": "voice", "cisco-ip-phone-2": "voice",
                     "fake-phone-1": "voice", "axis-camera-1": "rest"}


def test_profiles_key_loads_files_relative_to_the_spec(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "mine.yaml").write_text(
        "name: lab-sensor\nvendor: Example Ltd\nclass: plug\n"
        "dhcp: {param_request_list: [1, 3, 6], hostname: 'sensor-{n}'}\nsource: unverified\n")
    spec_file = tmp_path / "fleet.yaml"
    spec_file.write_text("fleet: f\nprofiles: [profiles/mine.yaml]\nlab: {lan: 10.1.0.0/24}\n"
                         "devices: [{profile: lab-sensor, count: 2}]\n")
    spec = load_spec(spec_file, env={})
    assert [d.hostname for d in spec.devices] == ["sensor-1", "sensor-2"]
    assert spec.profile_files == (str(tmp_path / "profiles" / "mine.yaml"),)


def test_profiles_key_errors(tmp_path: Path) -> None:
    from pytest_iotemu.spec.errors import SpecError
    (tmp_path / "bad.yaml").write_text("name: Bad Name\nvendor: X\nclass: plug\n"
                                       "dhcp: {param_request_list: [1]}\nsource: unverified\n")
    spec_file = tmp_path / "fleet.yaml"
    spec_file.write_text("fleet: f\nprofiles: [bad.yaml, nowhere.yaml]\nlab: {lan: 10.1.0.0/24}\n"
                         "devices: [{profile: axis-camera}]\n")
    with pytest.raises(SpecError) as info:
        load_spec(spec_file, env={})
    assert [str(i) for i in info.value.issues] == sorted([
        f"{tmp_path / 'bad.yaml'}:1:7: name: expected a profile name of lower-case letters, "
        "digits and '-' (e.g. axis-camera), got 'Bad Name'",
        f"{spec_file}:2:22: profiles[1]: profile file 'nowhere.yaml' not found (looked at "
        f"{tmp_path / 'nowhere.yaml'})",
    ])
