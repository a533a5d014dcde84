"""The virtual branch for real: namespaces, dnsmasq and Kea, DNS, responders, lifecycle.
Root only (CI runs as root); skipped with the reason elsewhere."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_iotemu import load_spec
from pytest_iotemu.lab import Lab, LabError
from pytest_iotemu.lab.state import existing_namespaces, load_all
from pytest_iotemu.spec.schema import parse_spec

from .raw import bind_all, pools_of

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]


def branch_site(server: str = "dnsmasq"):
    site = load_spec(ROOT / "scenarios" / "branch.yaml").sites[0]
    return replace(site, lab=replace(site.lab, dhcp_server=server))


def our_namespaces() -> set[str]:
    return {n for n in existing_namespaces() if n.startswith("iotemu-")}


def daemon_pids(marker: str) -> list[int]:
    """Processes whose command line names ``marker`` (a run id)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmdline:
                out.append(int(entry.name))
    return out


def host_snapshot() -> dict:
    def run(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True).stdout

    sysctls = run("sysctl", "-a", "--pattern", r"^net\.(ipv4\.(ip_forward|conf\.all)|ipv6\.conf\.all)")
    return {
        "addr": run("ip", "-j", "addr"), "route4": run("ip", "-4", "route", "show", "table", "all"),
        "route6": run("ip", "-6", "route", "show", "table", "all"),
        "rule": run("ip", "rule"), "nft": run("nft", "list", "ruleset"), "sysctl": sysctls,
        "resolv": Path("/etc/resolv.conf").read_text(),
        "links": run("ip", "-o", "link", "show"),
    }


def test_build_and_teardown_20_times_leaks_nothing() -> None:
    site = branch_site()
    before_ns = our_namespaces()
    before_fds = len(os.listdir("/proc/self/fd"))
    runs = []
    for _ in range(20):
        with Lab(site) as lab:
            runs.append(lab.run)
            assert lab.plan.namespaces["gw"] in existing_namespaces()
    assert our_namespaces() == before_ns
    assert len(os.listdir("/proc/self/fd")) == before_fds
    for run in runs:
        assert daemon_pids(f"iotemu-{run}") == []
        assert not (Path("/run/iotemu") / f"iotemu-{run}").exists()


def test_the_host_is_never_touched() -> None:
    before = host_snapshot()
    with Lab(branch_site("kea")) as lab:
        host = lab.add_host("snap")
        assert host in existing_namespaces()
        during = host_snapshot()
    after = host_snapshot()
    assert after == before
    assert during == before  # not even while the lab is up


def dhclient(lab: Lab, host: str) -> dict:
    """A real client (isc-dhcp-client) in ``host``; its script only sets the address."""
    script = lab.dir / "dhclient-script"
    script.write_text(textwrap.dedent("""\
        #!/bin/sh
        # harmless: configures the interface only, never resolv.conf
        case "$reason" in BOUND|RENEW|REBIND|REBOOT)
          ip addr add "$new_ip_address/$new_subnet_mask" dev "$interface" 2>/dev/null
          for r in $new_routers; do ip route replace default via "$r" dev "$interface"; break; done
        esac
        exit 0
        """))
    script.chmod(0o755)
    result = subprocess.run(
        ["ip", "netns", "exec", host, "dhclient", "-1", "-v", "-sf", str(script),
         "-lf", str(lab.dir / f"{host}.leases"), "-pf", str(lab.dir / f"{host}.pid"), "eth0"],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    addr = subprocess.run(["ip", "-n", host, "-j", "-4", "addr", "show", "eth0"],
                          capture_output=True, text=True).stdout
    info = json.loads(addr)[0]["addr_info"]
    subprocess.run(["ip", "netns", "exec", host, "dhclient", "-x", "-pf",
                    str(lab.dir / f"{host}.pid")], capture_output=True)
    return {"ip": info[0]["local"] if info else None}


def probe(lab: Lab, host: str, *args: str) -> dict:
    result = subprocess.run(["ip", "netns", "exec", host, sys.executable, "-m",
                             "tests.lab.probe", *args], capture_output=True, text=True,
                            cwd=ROOT, timeout=30)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("server", ["dnsmasq", "kea"])
def test_a_real_client_gets_a_lease_in_its_pool_and_reaches_a_target_by_name(server) -> None:
    site = branch_site(server)
    camera = site.devices_of("axis-camera")[0]
    phone = site.devices_of("cisco-ip-phone")[0]
    with Lab(site) as lab:
        cam_host = lab.add_host("cam", mac=camera.mac)
        got = dhclient(lab, cam_host)
        assert got["ip"] is not None
        pool = lab.plan.pools[0]
        assert pool.name == "cameras" and pool.first <= __import__("ipaddress").IPv4Address(
            got["ip"]) <= pool.last
        leases = {l.mac: l for l in lab.leases()}
        assert leases[camera.mac].ip == got["ip"]
        log = lab.server_log()
        assert ("DHCPACK" in log) if server == "dnsmasq" else ("DHCP4_LEASE_ALLOC" in log)
        # DNS: the target's name, the lab domain; the security-test domains to the
        # sinkhole, every other name to the cloud's services host
        answer = probe(lab, cam_host, "resolve", "10.20.0.1", "cloud.axis.example")
        assert answer == {"id_ok": True, "rcode": 0, "answers": ["198.51.100.10"]}
        assert probe(lab, cam_host, "resolve", "10.20.0.1",
                     "corp-files.branch.lab")["answers"] == ["10.50.0.10"]
        plan = lab.plan
        assert probe(lab, cam_host, "resolve", "10.20.0.1", "example.com")["answers"] == \
            [str(plan.services)]
        assert probe(lab, cam_host, "resolve", "10.20.0.1",
                     "test-c2.testpanw.com")["answers"] == [str(plan.sinkhole)]
        # routed without NAT: the target sees the client's own address
        reply = probe(lab, cam_host, "tcp", "198.51.100.10", "443")
        assert reply == {"echo": "hello lab", "local": got["ip"]}
        assert probe(lab, cam_host, "udp", "10.60.0.5", "5060")["echo"] == "hello udp"
        counters = lab.service_counters("camera-cloud")
        assert counters["443/tcp"][got["ip"]]["bytes"] == len("hello lab")
        assert counters["443/tcp"][got["ip"]]["connections"] == 1
        assert lab.service_counters("sip-core")["5060/udp"][got["ip"]]["packets"] == 1
        # a phone's MAC lands in the voice pool
        phone_host = lab.add_host("phone", mac=phone.mac)
        phone_ip = dhclient(lab, phone_host)["ip"]
        assert phone_ip.startswith("10.20.2.")


CLASSIFICATIONS = {
    "by class": """
        pools:
          cams: {range: 10.9.0.10-10.9.0.60, match: {class: [camera, nvr]}}
          rest: {range: 10.9.0.100-10.9.0.200}""",
    "by oui and vendor class": """
        pools:
          axis: {range: 10.9.0.10-10.9.0.40, match: {oui: "00:40:8C"}}
          phones: {range: 10.9.0.50-10.9.0.90, match: {vendor_class: Cisco}}
          rest: {range: 10.9.0.100-10.9.0.200}""",
    "by group and profile": """
        pools:
          lobby: {range: 10.9.0.10-10.9.0.20, match: {group: lobby}}
          hue: {range: 10.9.0.30-10.9.0.40, match: {profile: philips-hue-bridge}}
          everything-else: {range: 10.9.0.100-10.9.0.200}""",
}
DEVICES = """
devices:
  - {profile: axis-camera, count: 6}
  - {profile: axis-camera, name: lobby, count: 2}
  - {profile: hikvision-camera, count: 3}
  - {profile: cisco-ip-phone, count: 4}
  - {profile: philips-hue-bridge, count: 2}
  - {profile: windows-10, count: 3, name: pcs}
"""


@pytest.mark.parametrize("rules", list(CLASSIFICATIONS))
def test_dnsmasq_and_kea_put_the_same_devices_in_the_same_pools(rules: str) -> None:
    text = "fleet: eq\nlab:\n  lan: 10.9.0.0/24" + textwrap.indent(
        textwrap.dedent(CLASSIFICATIONS[rules]), "  ") + DEVICES
    spec = parse_spec(text, "eq.yaml", env={})
    results = {}
    for server in ("dnsmasq", "kea"):
        site = spec.sites[0]
        site = replace(site, lab=replace(site.lab, dhcp_server=server))
        with Lab(site) as lab:
            ns, port = lab.engine_interfaces()[0]
            cores = bind_all(ns, port, site.devices, timeout=20)
            results[server] = pools_of(cores, lab)
            assert len(lab.leases()) == len(site.devices)
    expected = {d.mac: d.pool for d in spec.sites[0].devices}
    assert results["dnsmasq"] == results["kea"] == expected


OWNER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from pytest_iotemu import load_spec
    from pytest_iotemu.lab import Lab
    site = load_spec({spec!r}).sites[0]
    lab = Lab(site, detached={detached}).build()
    print(lab.run, flush=True)
    time.sleep(600)
""")


def start_owner(detached: bool = False) -> tuple[subprocess.Popen, str]:
    code = OWNER.format(root=str(ROOT), spec=str(ROOT / "scenarios" / "branch.yaml"),
                        detached=detached)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    run = proc.stdout.readline().strip()
    assert run, "the owner did not build its lab"
    return proc, run


def test_a_killed_owner_is_reaped_and_live_or_detached_labs_survive() -> None:
    dead, dead_run = start_owner()
    live, live_run = start_owner()
    detached, detached_run = start_owner(detached=True)
    try:
        dead.send_signal(signal.SIGKILL)
        dead.wait()
        detached.send_signal(signal.SIGKILL)  # a detached lab outlives its CLI on purpose
        detached.wait()
        assert f"iotemu-{dead_run}-gw" in existing_namespaces()  # left behind by kill -9
        assert daemon_pids(f"iotemu-{dead_run}")
        with Lab(branch_site()):  # building a lab sweeps
            pass
        assert not {n for n in existing_namespaces() if dead_run in n}
        assert daemon_pids(f"iotemu-{dead_run}") == []
        assert f"iotemu-{live_run}-gw" in existing_namespaces()
        assert f"iotemu-{detached_run}-gw" in existing_namespaces()
        assert {s.run for s in load_all()} >= {live_run, detached_run}
    finally:
        live.send_signal(signal.SIGTERM)  # unwinds like Ctrl-C: its teardown runs
        live.wait(30)
        subprocess.run([sys.executable, "-m", "pytest_iotemu.cli", "lab", "down",
                        detached_run], capture_output=True, cwd=ROOT)
    assert not {n for n in existing_namespaces() if live_run in n or detached_run in n}
    assert daemon_pids(f"iotemu-{live_run}") == [] == daemon_pids(f"iotemu-{detached_run}")


def test_a_daemon_that_cannot_start_reports_its_own_error_and_nothing_is_left(
        monkeypatch) -> None:
    from pytest_iotemu.lab import configs
    real = configs.dnsmasq_dhcp_args
    monkeypatch.setattr(configs, "dnsmasq_dhcp_args",
                        lambda plan, run_dir: real(plan, run_dir) + ["--no-such-option"])
    before = our_namespaces()
    lab = Lab(branch_site())
    with pytest.raises(LabError) as info:
        lab.build()
    message = str(info.value)
    assert "dhcp exited at start" in message
    assert "bad command line options" in message or "unrecognized option" in message
    assert our_namespaces() == before
    assert not lab.dir.exists() and daemon_pids(f"iotemu-{lab.run}") == []


def test_engine_ports_have_no_address() -> None:
    with Lab(branch_site(), engine_ports=2) as lab:
        ports = lab.engine_interfaces()
        assert [p for _, p in ports] == ["e0", "e1"]
        for ns, port in ports:
            out = subprocess.run(["ip", "-n", ns, "-j", "addr", "show", port],
                                 capture_output=True, text=True).stdout
            assert json.loads(out)[0]["addr_info"] == []
        with pytest.raises(LabError, match="engine_ports=3"):
            lab.engine_interfaces(3)


POLICY = """
fleet: policy
lab:
  lan: 10.33.0.0/24
  dhcp_server: {server}
  domain: pol.lab
  pools:
    cams: {{range: 10.33.0.10-10.33.0.50, match: {{class: camera}}}}
    rest: {{range: 10.33.0.100-10.33.0.200}}
  policy:
    default: block
    rules:
      - {{from: {{pool: cams}}, to: web, action: {web}}}
      - {{from: {{group: printers}}, to: files, action: allow}}
      - {{from: {{pool: cams}}, to: files, action: reject}}
      - {{from: {{pool: cams}}, to: sip, action: {sip}}}
targets:
  files: {{address: 10.90.0.10, name: files.corp.example, services: [445/tcp]}}
  web: {{address: 10.90.0.20, services: [443/tcp]}}
  sip: {{address: 10.90.0.30, services: [5060/udp]}}
devices:
  - {{profile: axis-camera, count: 1}}
  - {{profile: hp-printer, count: 1, name: printers}}
"""


@pytest.mark.parametrize("server", ["dnsmasq", "kea"])
def test_policy_allows_blocks_and_rejects_with_counters(server: str) -> None:
    spec = parse_spec(POLICY.format(server=server, web="allow", sip="allow"), "policy.yaml",
                      env={})
    site = spec.sites[0]
    camera, printer = site.devices_of("axis-camera")[0], site.devices_of("printers")[0]
    with Lab(site) as lab:
        cam = lab.add_host("cam", mac=camera.mac)
        prn = lab.add_host("prn", mac=printer.mac)
        # DHCP and DNS keep working under `default: block` (the gateway's own services)
        cam_ip, prn_ip = dhclient(lab, cam)["ip"], dhclient(lab, prn)["ip"]
        assert cam_ip.startswith("10.33.0.") and prn_ip.startswith("10.33.0.1")
        assert probe(lab, cam, "resolve", "10.33.0.1", "files.corp.example")["answers"] == [
            "10.90.0.10"]
        assert probe(lab, cam, "tcpstatus", "10.90.0.20", "443") == {"result": "connected"}
        assert probe(lab, cam, "tcpstatus", "10.90.0.10", "445") == {"result": "refused"}
        assert probe(lab, prn, "tcpstatus", "10.90.0.10", "445") == {"result": "connected"}
        assert probe(lab, prn, "tcpstatus", "10.90.0.20", "443") == {"result": "timeout"}
        counters = lab.policy_counters()
        assert counters["rule_0"]["rule"] == "pool cams -> web: allow"
        assert counters["rule_0"]["packets"] >= 1  # the camera's SYN to web
        assert counters["rule_1"]["packets"] >= 1  # the printer's SYN to files (by MAC)
        assert counters["rule_2"]["packets"] >= 1  # the camera's SYN to files, rejected
        assert counters["default"]["packets"] >= 1  # the printer's SYNs to web, dropped
        # the blocked and rejected flows never reached the targets
        assert cam_ip not in lab.service_counters("files").get("445/tcp", {})
        assert prn_ip not in lab.service_counters("web").get("443/tcp", {})
        assert lab.service_counters("web")["443/tcp"][cam_ip]["connections"] == 1
        # UDP: the cameras' rule allows sip; the printers fall to `default: block`
        assert probe(lab, cam, "udpstatus", "10.90.0.30", "5060") == {"result": "answered"}
        assert probe(lab, prn, "udpstatus", "10.90.0.30", "5060") == {"result": "timeout"}
        assert lab.service_counters("sip")["5060/udp"][cam_ip]["packets"] == 1
        assert prn_ip not in lab.service_counters("sip")["5060/udp"]


def test_the_same_fleet_with_the_rules_flipped_gets_the_opposite() -> None:
    spec = parse_spec(POLICY.format(server="dnsmasq", web="block", sip="block"),
                      "flipped.yaml", env={})
    site = spec.sites[0]
    with Lab(site) as lab:
        cam = lab.add_host("cam", mac=site.devices_of("axis-camera")[0].mac)
        cam_ip = dhclient(lab, cam)["ip"]
        assert probe(lab, cam, "tcpstatus", "10.90.0.20", "443") == {"result": "timeout"}
        assert probe(lab, cam, "udpstatus", "10.90.0.30", "5060") == {"result": "timeout"}
        counters = lab.policy_counters()
        assert counters["rule_0"]["rule"] == "pool cams -> web: block"
        assert counters["rule_0"]["packets"] >= 1 and counters["rule_3"]["packets"] >= 1
        assert cam_ip not in lab.service_counters("web").get("443/tcp", {})
        assert cam_ip not in lab.service_counters("sip").get("5060/udp", {})


PATHS = """
fleet: paths
lab:
  lan: 10.34.0.0/24
  pools:
    cams: {range: 10.34.0.10-10.34.0.50, match: {class: camera}}
    rest: {range: 10.34.0.100-10.34.0.200}
  wan: [{name: mpls, rate: 2mbit}, {name: internet}]
  policy:
    rules:
      - {from: {pool: cams}, to: web, action: allow, via: internet}
targets:
  web: {address: 10.91.0.20, services: [443/tcp]}
  sip: {address: 10.91.0.30, services: [5060/udp]}
devices: [{profile: axis-camera, count: 1}, {profile: hp-printer, count: 1}]
"""


def _tx_packets(lab: Lab, dev: str) -> int:
    out = subprocess.run(["ip", "-n", lab.namespace("gw"), "-s", "-j", "link", "show", dev],
                         capture_output=True, text=True).stdout
    return json.loads(out)[0]["stats64"]["tx"]["packets"]


def _route_dev(lab: Lab, address: str) -> str:
    out = subprocess.run(["ip", "-n", lab.namespace("gw"), "-j", "route", "get", address],
                         capture_output=True, text=True).stdout
    return json.loads(out)[0]["dev"]


def _wait(predicate, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_via_failover_rates_and_loss() -> None:
    site = parse_spec(PATHS, "paths.yaml", env={}).sites[0]
    camera = site.devices_of("axis-camera")[0]
    printer = site.devices_of("hp-printer")[0]
    with Lab(site) as lab:
        cam = lab.add_host("cam", mac=camera.mac)
        prn = lab.add_host("prn", mac=printer.mac)
        dhclient(lab, cam)
        prn_ip = dhclient(lab, prn)["ip"]
        assert lab.path_status()["primary"] == "mpls"
        assert _route_dev(lab, "10.91.0.20") == "wan-mpls"  # the default path: first WAN
        # via: the cameras' web traffic takes the internet WAN
        before = _tx_packets(lab, "wan-internet")
        assert probe(lab, cam, "tcpstatus", "10.91.0.20", "443") == {"result": "connected"}
        assert _tx_packets(lab, "wan-internet") > before
        before = _tx_packets(lab, "wan-mpls")
        assert probe(lab, prn, "tcpstatus", "10.91.0.20", "443") == {"result": "connected"}
        assert _tx_packets(lab, "wan-mpls") > before
        # rate: 2mbit on mpls (tbf counts whole frames: 1,042 bytes carry 1,000 of payload);
        # 8 Mbit/s offered for 3 s gets through at 2 Mbit/s within 10%
        probe(lab, prn, "blast", "10.91.0.30", "5060", "8000000", "3")
        time.sleep(0.5)
        got = lab.service_counters("sip")["5060/udp"][prn_ip]["bytes"]
        expected = 2e6 * 1000 / 1042 * 3 / 8
        assert abs(got - expected) / expected < 0.10, (got, expected)
        # loss: half the packets dropped at random on mpls (the monitor's probes spared,
        # or it would soon call mpls down and move the flow to internet)
        lab.impair("mpls", loss=0.5, rate=100e6, spare_monitor=True)
        time.sleep(0.5)  # nothing of the rate test still in flight
        before = lab.service_counters("sip")["5060/udp"][prn_ip]["packets"]
        # 1,000 datagrams: a binomial half within 0.35-0.65 by a wide margin
        sent = probe(lab, prn, "blast", "10.91.0.30", "5060", "8000000", "1")["sent"]
        time.sleep(0.5)
        arrived = lab.service_counters("sip")["5060/udp"][prn_ip]["packets"] - before
        assert 0.35 * sent < arrived < 0.65 * sent, (arrived, sent)
        lab.impair("mpls", loss=0)
        # failover: the far side of mpls is black-holed mid-flow; the monitor (probes every
        # 0.2 s, 3 misses) moves the paths; the outage is the flow's largest gap
        lab.impair("mpls", rate=100e6)
        flow = subprocess.Popen(["ip", "netns", "exec", prn, sys.executable, "-m",
                                 "tests.lab.probe", "flow", "10.91.0.30", "5060", "50", "4"],
                                stdout=subprocess.PIPE, text=True, cwd=ROOT)
        time.sleep(1.0)
        lab.fail_wan("mpls")
        took = _wait(lambda: lab.path_status().get("primary") == "internet", 5)
        out, _ = flow.communicate(timeout=30)
        result = json.loads(out)
        assert took < 2.0
        assert 0.3 < result["largest_gap"] < 2.0, result  # the outage, within the bound
        assert result["last_back"] > 3.5  # and the flow carried on over internet
        assert _route_dev(lab, "10.91.0.20") == "wan-internet"
        assert probe(lab, prn, "tcpstatus", "10.91.0.20", "443") == {"result": "connected"}
        assert lab.path_status()["wans"]["mpls"]["up"] is False
        lab.heal_wan("mpls")
        _wait(lambda: lab.path_status().get("primary") == "mpls", 5)
        assert _route_dev(lab, "10.91.0.20") == "wan-mpls"
