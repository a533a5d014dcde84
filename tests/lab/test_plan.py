"""The lab plan and the daemons' configurations: pure, no root."""
from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from pytest_iotemu import load_spec
from pytest_iotemu.lab import PlanError, plan_lab
from pytest_iotemu.lab.configs import (dnsmasq_dhcp_args, dnsmasq_dns_args, dnsmasq_hosts,
                                       kea_config)
from pytest_iotemu.lab.plan import devices_by_pool

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))


def branch_site():
    return load_spec(ROOT / "scenarios" / "branch.yaml").sites[0]


def test_names_addresses_and_routes() -> None:
    plan = plan_lab(branch_site(), "abcd1234", engine_ports=3)
    assert plan.namespaces == {"lan": "iotemu-abcd1234-lan", "gw": "iotemu-abcd1234-gw",
                               "cloud": "iotemu-abcd1234-cloud"}
    assert [w.gw_if for w in plan.wans] == ["wan-mpls", "wan-internet"]
    for wan in plan.wans:
        assert len(wan.gw_if) <= 15 and len(wan.cloud_if) <= 15
        assert wan.network.subnet_of(ipaddress.IPv4Network("100.64.0.0/10"))
    assert not plan.wans[0].network.overlaps(plan.wans[1].network)
    assert [plan.engine_interface(i) for i in range(3)] == ["e0", "e1", "e2"]
    assert {(r.target, r.proto, r.port) for r in plan.responders} == {
        ("corp-files", "tcp", 445), ("camera-cloud", "tcp", 443),
        ("camera-cloud", "udp", 554), ("sip-core", "udp", 5060)}
    records = dict(plan.dns_records)
    assert records["cloud.axis.example"] == ipaddress.IPv4Address("198.51.100.10")
    assert records["corp-files.branch.lab"] == ipaddress.IPv4Address("10.50.0.10")


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_every_lab_site_plans(path: Path) -> None:
    for site in load_spec(path).sites:
        if site.is_lab:
            plan = plan_lab(site, "00000000")
            assert sum(len(p.macs) for p in plan.pools) == sum(
                1 for d in site.devices if d.static_ip is None)


def test_host_route_clash_is_refused_but_not_the_default_route() -> None:
    site = branch_site()
    plan_lab(site, "r", host_routes=[ipaddress.IPv4Network("0.0.0.0/0"),
                                     ipaddress.IPv4Network("192.0.2.0/24")])
    with pytest.raises(PlanError, match="lab.lan 10.20.0.0/22 overlaps the host's route "
                                        "10.20.0.0/16"):
        plan_lab(site, "r", host_routes=[ipaddress.IPv4Network("10.20.0.0/16")])
    with pytest.raises(PlanError, match="target corp-files .10.50.0.10. is inside the host's"):
        plan_lab(site, "r", host_routes=[ipaddress.IPv4Network("10.50.0.0/24")])


def test_transfer_networks_avoid_the_lan_and_targets() -> None:
    from pytest_iotemu.spec.schema import parse_spec
    spec = parse_spec("fleet: f\nlab:\n  lan: 100.64.0.0/29\n  wan: [a, b]\ntargets:\n"
                      "  t: {address: 100.64.0.9}\ndevices: [{profile: axis-camera}]\n", env={})
    plan = plan_lab(spec.sites[0], "r")
    for wan in plan.wans:
        assert not wan.network.overlaps(ipaddress.IPv4Network("100.64.0.0/29"))
        assert ipaddress.IPv4Address("100.64.0.9") not in wan.network


def test_both_servers_get_the_same_classification() -> None:
    site = branch_site()
    plan = plan_lab(site, "r")
    run_dir = Path("/run/iotemu/iotemu-r")
    tags = {p.tag: p.name for p in plan.pools}
    dnsmasq_pool = {}
    for line in dnsmasq_hosts(plan).splitlines():
        mac, tag = line.split(",set:")
        dnsmasq_pool[mac] = tags[tag]
    kea = kea_config(plan, run_dir)["Dhcp4"]
    kea_pool = {r["hw-address"]: tags[r["client-classes"][0]]
                for r in kea["subnet4"][0]["reservations"]}
    expected = {d.mac: d.pool for d in site.devices}
    assert dnsmasq_pool == kea_pool == expected == devices_by_pool(plan)
    ranges = [a for a in dnsmasq_dhcp_args(plan, run_dir) if a.startswith("--dhcp-range")]
    assert ranges == [f"--dhcp-range=tag:{p.tag},{p.first},{p.last},255.255.252.0,600s"
                      for p in plan.pools]
    assert [p["client-class"] for p in kea["subnet4"][0]["pools"]] == [p.tag for p in plan.pools]


def test_every_daemon_names_its_run() -> None:
    plan = plan_lab(branch_site(), "feedbeef")
    run_dir = Path("/run/iotemu/iotemu-feedbeef")
    assert "--no-ping" in dnsmasq_dhcp_args(plan, run_dir)
    assert ["-C", "/dev/null"] == dnsmasq_dhcp_args(plan, run_dir)[2:4]
    for args in (dnsmasq_dhcp_args(plan, run_dir), dnsmasq_dns_args(plan, run_dir)):
        assert any("iotemu-feedbeef" in a for a in args)
    assert "iotemu-feedbeef" in json.dumps(kea_config(plan, run_dir))
    dns = dnsmasq_dns_args(plan, run_dir)
    assert "--local=/#/" in dns and "--no-resolv" in dns
    assert "--host-record=cloud.axis.example,198.51.100.10" in dns


def test_static_devices_are_reserved() -> None:
    spec = load_spec(ROOT / "scenarios" / "hospital-floor.yaml")
    plan = plan_lab(spec.sites[0], "r")
    assert [(r.address.exploded) for r in plan.reservations] == ["172.20.8.200", "172.20.8.201"]
    kea = kea_config(plan, Path("/tmp/x"))["Dhcp4"]["subnet4"][0]["reservations"]
    assert {"172.20.8.200", "172.20.8.201"} <= {r.get("ip-address") for r in kea}


def test_a_single_catch_all_pool_serves_everyone() -> None:
    from pytest_iotemu.spec.schema import parse_spec
    spec = parse_spec("fleet: f\nlab: {lan: 10.5.0.0/24}\ndevices: [{profile: axis-camera}]\n",
                      "f.yaml", env={})
    plan = plan_lab(spec.sites[0], "r")
    run_dir = Path("/tmp/x")
    assert [a for a in dnsmasq_dhcp_args(plan, run_dir) if a.startswith("--dhcp-range")] == [
        "--dhcp-range=10.5.0.2,10.5.0.254,255.255.255.0,3600s"]
    assert kea_config(plan, run_dir)["Dhcp4"]["subnet4"][0]["pools"] == [
        {"pool": "10.5.0.2 - 10.5.0.254"}]


def test_policy_ruleset_judges_forwarded_lan_traffic_in_order() -> None:
    from pytest_iotemu.lab.policy import counter_names, ruleset
    from pytest_iotemu.spec.schema import parse_spec
    spec = parse_spec("""
fleet: p
lab:
  lan: 10.5.0.0/24
  pools:
    cams: {range: 10.5.0.10-10.5.0.50, match: {class: camera}}
    rest: {range: 10.5.0.100-10.5.0.200}
  policy:
    default: block
    rules:
      - {from: {pool: cams}, to: files, service: 445/tcp, action: reject}
      - {from: {group: printers}, to: any, action: allow}
      - {to: files, action: reject}
targets:
  files: {address: 192.0.2.10, services: [445/tcp]}
devices:
  - {profile: axis-camera, count: 2}
  - {profile: hp-printer, count: 2, name: printers}
""", "p.yaml", env={})
    site = spec.sites[0]
    text = ruleset(site)
    lines = [line.split("  #")[0].strip() for line in text.splitlines()]
    assert "set pool_cams { type ipv4_addr; flags interval; elements = { 10.5.0.10-10.5.0.50 } }" \
        in lines
    macs = ", ".join(d.mac for d in site.devices_of("printers"))
    assert f"set group_printers {{ type ether_addr; elements = {{ {macs} }}; }}" in lines
    chain = lines[lines.index("ct state established,related accept") + 1:]
    assert chain[:5] == [
        'iifname "lan0" ip saddr @pool_cams ip daddr 192.0.2.10 tcp dport 445 counter name '
        '"rule_0" reject with tcp reset',
        'iifname "lan0" ether saddr @group_printers counter name "rule_1" accept',
        'iifname "lan0" ip daddr 192.0.2.10 counter name "rule_2" meta l4proto tcp reject with '
        'tcp reset',
        'iifname "lan0" ip daddr 192.0.2.10 counter name "rule_2" reject with icmp type '
        'admin-prohibited',
        'iifname "lan0" counter name "default" drop',
    ]
    assert "type filter hook forward priority 0; policy accept;" in lines  # input untouched
    assert counter_names(site)["rule_1"] == "group printers -> any: allow"
