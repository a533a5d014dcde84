"""The engine process for real, in the lab: whole fleets bound on both servers, the
protocol, lease cycles, failures. Root only; skipped with the reason elsewhere."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest

from pytest_iotemu import load_spec
from pytest_iotemu.engine import EngineClient, EngineError
from pytest_iotemu.lab import Lab
from pytest_iotemu.spec.schema import parse_spec

from ..lab.raw import raw_socket

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "pytest_iotemu" / "engine" / "protocol.schema.json").read_text())


def with_server(site, server: str):
    return replace(site, lab=replace(site.lab, dhcp_server=server))


def dhcp_devices(site):
    return [d for d in site.devices if d.enabled and d.static_ip is None]


@pytest.mark.parametrize("server", ["dnsmasq", "kea"])
@pytest.mark.parametrize("scenario", ["branch.yaml", "scale-1k.yaml"])
def test_whole_fleet_bound_none_lost_and_every_line_valid(scenario: str, server: str) -> None:
    site = with_server(load_spec(ROOT / "scenarios" / scenario).sites[0], server)
    devices = dhcp_devices(site)
    with Lab(site) as lab:
        ns, port = lab.engine_interfaces()[0]
        client = EngineClient(port, netns=ns)
        client.transcript = []
        with client:
            client.add_devices(devices)
            client.call("start")
            stats = client.wait_bound(timeout=90)
            assert stats["bound"] == len(devices)
            listed = client.call("devices")["devices"]
            assert all(d["state"] == "BOUND" for d in listed)
            # every device in the pool the classification chose, per the server itself
            leases = {lease.mac: lease.ip for lease in lab.leases()}
            by_name = {d.name: d for d in devices}
            for entry in listed:
                device = by_name[entry["name"]]
                assert leases[device.mac] == entry["ip"]
                pool = lab.site.lab.pool(device.pool)
                import ipaddress
                assert ipaddress.IPv4Address(entry["ip"]) in pool.range
        assert client.process.returncode == 0
    validator = jsonschema.Draft202012Validator(SCHEMA)
    assert client.transcript
    for message in client.transcript:
        errors = list(validator.iter_errors(message))
        assert not errors, (message, errors[0].message)
    seqs = [m["seq"] for m in client.transcript if "seq" in m]
    assert seqs == list(range(1, len(seqs) + 1))
    kinds = [m.get("type") for m in client.transcript]
    assert kinds[0] == "engine.ready" and kinds[-1] == "engine.stopped"
    assert kinds.count("device.dhcp.bound") >= len(devices)
    assert kinds.count("device.dhcp.released") == len(devices)


def test_lease_cycles_on_kea_with_short_leases() -> None:
    spec = parse_spec("""
fleet: cycles
lab: {lan: 10.31.0.0/24, dhcp_server: kea, lease_time: 10s}
devices: [{profile: ecobee-thermostat, count: 3}]
""", "cycles.yaml", env={})
    site = spec.sites[0]
    with Lab(site) as lab:
        ns, port = lab.engine_interfaces()[0]
        with EngineClient(port, netns=ns) as client:
            client.add_devices(site.devices)
            client.call("start")
            client.wait_bound(timeout=20)
            mark = len(client.events)
            renewed = client.wait_for(lambda e: e["type"] == "device.dhcp.renewed", 10, mark)
            assert renewed["lease"] == 10
            # the server goes away: renewals fail, REBINDING at T2, expiry, DISCOVER again
            lab.daemons["dhcp"].stop()
            mark = len(client.events)
            client.wait_for(lambda e: e["type"] == "device.dhcp.rebinding", 15, mark)
            expired = client.wait_for(lambda e: e["type"] == "device.dhcp.expired", 15, mark)
            assert expired["device"].startswith("ecobee-thermostat-")
            states = client.call("stats")["states"]
            assert set(states) <= {"SELECTING", "REBINDING", "RENEWING", "BOUND"}
            assert states.get("SELECTING", 0) >= 1


def test_reboot_asks_for_the_same_address_on_kea() -> None:
    spec = parse_spec("""
fleet: reboot
lab: {lan: 10.32.0.0/24, dhcp_server: kea, lease_time: 5m}
devices: [{profile: windows-10, count: 2, name: pcs}]
""", "reboot.yaml", env={})
    site = spec.sites[0]
    with Lab(site) as lab:
        ns, port = lab.engine_interfaces()[0]
        with EngineClient(port, netns=ns) as client:
            client.add_devices(site.devices)
            client.call("start")
            client.wait_bound(timeout=20)
            before = {d["name"]: d["ip"] for d in client.call("devices")["devices"]}
            mark = len(client.events)
            client.call("reboot", group="pcs")
            for _ in range(2):
                event = client.wait_for(lambda e: e["type"] == "device.dhcp.bound"
                                        and e["rebooted"], 10, mark)
                mark = client.events.index(event) + 1
                assert event["ip"] == before[event["device"]]


def test_a_killed_engine_is_reported_with_its_stderr_and_last_events() -> None:
    site = load_spec(ROOT / "scenarios" / "branch.yaml").sites[0]
    with Lab(site) as lab:
        ns, port = lab.engine_interfaces()[0]
        client = EngineClient(port, netns=ns).start()
        client.add_devices(dhcp_devices(site))
        client.call("start")
        client.wait_bound(timeout=30)
        os.kill(client.process.pid, signal.SIGKILL)
        client.process.wait()
        with pytest.raises(EngineError) as info:
            client.call("stats")
        text = str(info.value)
        assert "exited with status -9" in text
        assert "--- engine stderr" in text and "--- last events" in text
        assert "engine.stats" in text or "device.dhcp.bound" in text
        client.close()


def test_an_interface_with_the_default_route_or_an_address_is_refused() -> None:
    routes = json.loads(subprocess.run(["ip", "-j", "route", "show", "default"],
                                       capture_output=True, text=True).stdout or "[]")
    if routes:
        dev = routes[0]["dev"]
        result = subprocess.run([sys.executable, "-m", "pytest_iotemu.engine", "--iface", dev],
                                capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                timeout=30)
        assert result.returncode == 3
        assert f"refusing {dev}: {dev} holds the default route" in result.stderr
        assert "--allow-live" in result.stderr
    site = load_spec(ROOT / "scenarios" / "branch.yaml").sites[0]
    with Lab(site) as lab:  # the gateway's LAN port has an address: refused too
        client = EngineClient("lan0", netns=lab.namespace("gw"))
        with pytest.raises(EngineError) as info:
            client.start(timeout=10)
        assert "refusing lan0: lan0 has the address 10.20.0.1/22" in str(info.value)


def test_malformed_lines_and_random_frames_never_kill_the_engine() -> None:
    site = load_spec(ROOT / "scenarios" / "branch.yaml").sites[0]
    with Lab(site, engine_ports=2) as lab:
        (ns, port), (_, other) = lab.engine_interfaces()
        with EngineClient(port, netns=ns) as client:
            client.add_devices(dhcp_devices(site))
            stdin = client.process.stdin
            for line in (b"not json\n", b"[1,2]\n", b'{"cmd": "stats"}\n',
                         b'{"id": "junk-5", "cmd": 7}\n', b'{"id": "junk-6", "cmd": "start", "args": 3}\n',
                         b'{"id": "junk-7", "cmd": "nope"}\n', b"\xff\xfe\n"):
                stdin.write(line)
            stdin.flush()
            # random frames from another port of the bridge (inside the lab only)
            sock = raw_socket(ns, other)
            rng = random.Random(7)
            for i in range(3000):
                size = rng.randint(14, 600)
                frame = bytearray(rng.getrandbits(8) for _ in range(size))
                frame[12:14] = (b"\x08\x00", b"\x08\x06")[i % 3 == 0]  # past the BPF
                frame[6] = 0x02  # a unicast source: bridges drop multicast sources
                if i % 2:
                    frame[0:6] = b"\xff" * 6
                if i % 5 == 0 and size > 60:  # an IPv4/UDP header to the DHCP client port
                    frame[14] = 0x45
                    frame[23] = 17
                    frame[36:38] = b"\x00\x44"
                frame = bytes(frame)
                try:
                    sock.send(frame)
                except OSError:
                    pass
                if i % 100 == 99:
                    time.sleep(0.01)  # the veth backlog holds 1,000 frames
            sock.close()
            time.sleep(0.5)
            client.call("start")
            stats = client.wait_bound(timeout=30)
            assert stats["bound"] == len(dhcp_devices(site))
            # the bridge does not pass all of them on (random destinations), but hundreds of
            # random ARP and IPv4 frames got past the kernel filter into the engine
            assert stats["counters"]["frames_in"] > 500
        assert client.process.returncode == 0


@pytest.mark.parametrize("how", ["stdin EOF", "SIGTERM"])
def test_the_engine_releases_and_stops_on_eof_and_sigterm(how: str) -> None:
    site = load_spec(ROOT / "scenarios" / "branch.yaml").sites[0]
    with Lab(site) as lab:
        ns, port = lab.engine_interfaces()[0]
        client = EngineClient(port, netns=ns).start()
        client.add_devices(dhcp_devices(site))
        client.call("start")
        client.wait_bound(timeout=30)
        if how == "stdin EOF":
            client.process.stdin.close()
        else:
            client.process.send_signal(signal.SIGTERM)
        assert client.process.wait(15) == 0
        time.sleep(0.2)
        stopped = client.events[-1]
        assert stopped["type"] == "engine.stopped"
        assert stopped["reason"] == ("stdin closed" if how == "stdin EOF" else "SIGTERM")
        assert stopped["released"] == len(dhcp_devices(site))
        assert client.events[-2]["type"] == "engine.stats"
        time.sleep(0.5)
        assert lab.leases() == []  # the server saw every RELEASE


def test_a_sharded_site_binds_through_several_engines() -> None:
    from pytest_iotemu.engine.group import EngineGroup
    site = load_spec(ROOT / "scenarios" / "scale-1k.yaml").sites[0]
    with Lab(site, engine_ports=3) as lab:
        group = EngineGroup([EngineClient(port, netns=ns, seed=i)
                             for i, (ns, port) in enumerate(lab.engine_interfaces())])
        group.start()
        try:
            devices = dhcp_devices(site)
            group.add_devices(devices)
            shares = [c.call("stats")["devices"] for c in group.clients]
            assert sorted(shares) == [333, 333, 334]
            group.call("start")
            stats = group.wait_bound(timeout=60)
            assert stats["engines"] == 3 and stats["bound"] == 1000
            assert stats["latency"]["count"] == 1000
            listed = group.call("devices", devices=[d.name for d in devices[:10]])["devices"]
            assert {d["name"] for d in listed} == {d.name for d in devices[:10]}
            assert group.call("renew", devices=[devices[0].name])["renew"] == 1
            assert len(group.call("devices")["devices"]) == 1000
            assert {lease.mac for lease in lab.leases()} == {d.mac for d in devices}
        finally:
            group.close()
