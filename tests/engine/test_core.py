"""The engine's logic without sockets: commands, pacing, demultiplexing, events."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_iotemu.engine.client import device_entry
from pytest_iotemu.engine.core import CommandError, Engine, percentiles

from ..protocols.fake_server import FakeServer, arp_from

SPEC = """
fleet: e
lab: {lan: 10.0.0.0/24}
devices:
  - {profile: ecobee-thermostat, count: 30}
  - {profile: cisco-ip-phone, count: 5, name: phones}
"""


def fleet():
    from pytest_iotemu.spec.schema import parse_spec
    return parse_spec(SPEC, "e.yaml", env={}).sites[0].devices


class Wire:
    """An engine and a fake server joined in memory."""

    def __init__(self, server: FakeServer | None = None, **engine):
        self.engine = Engine(iface="test", **engine)
        self.server = server or FakeServer(pool=[f"10.0.0.{i}" for i in range(10, 250)])
        self.now = 0.0

    def run(self, until: float, step: float = 0.05) -> None:
        while self.now < until:
            for frame in self.engine.take_frames():
                for reply in self.server.handle(frame):
                    self.engine.on_frame(reply, False, self.now)
            self.engine.on_timers(self.now)
            self.now += step


def test_fleet_binds_through_the_pacer_and_reports() -> None:
    wire = Wire()
    devices = fleet()
    wire.engine.pacer.window = 4
    assert wire.engine.command("add_devices", {"devices": [device_entry(d) for d in devices]},
                               0)["added"] == 35
    assert wire.engine.command("start", {}, 0) == {"starting": 35}
    assert len(wire.engine.outstanding) == 4 and len(wire.engine.waiting) == 31
    wire.run(3.0)
    stats = wire.engine.command("stats", {}, wire.now)
    assert stats["bound"] == 35 and stats["states"] == {"BOUND": 35}
    assert stats["groups"]["phones"] == {"BOUND": 5}
    assert stats["window"] > 4  # it grew as replies came back
    assert stats["latency"]["count"] == 35
    events = wire.engine.take_events()
    assert sum(e["type"] == "device.dhcp.bound" for e in events) == 35
    assert not any(e["type"] == "device.dhcp.discover" for e in events)  # verbosity 0
    names = [e["device"] for e in events if e["type"] == "device.dhcp.bound"]
    assert set(names) == {d.name for d in devices}


def test_verbosity_reports_every_phase() -> None:
    wire = Wire()
    wire.engine.command("hello", {"verbosity": 1}, 0)
    wire.engine.command("add_devices", {"devices": [device_entry(fleet()[0])]}, 0)
    wire.engine.command("start", {}, 0)
    wire.run(1.0)
    kinds = [e["type"] for e in wire.engine.take_events()]
    assert kinds == ["device.dhcp.discover", "device.dhcp.offer", "device.dhcp.request",
                     "device.dhcp.ack", "device.dhcp.bound"]


def test_timeouts_shrink_the_window_and_answers_grow_it() -> None:
    wire = Wire(FakeServer(silent=True))
    wire.engine.pacer.window = 16
    wire.engine.command("add_devices", {"devices": [device_entry(d) for d in fleet()]}, 0)
    wire.engine.command("start", {}, 0)
    wire.run(6.0)
    assert wire.engine.pacer.window == wire.engine.pacer.minimum
    assert wire.engine.counters["retransmits"] >= 16


def test_rate_cap_limits_starts() -> None:
    wire = Wire(FakeServer(silent=True))
    wire.engine.command("hello", {"rate": 10, "window": 1000}, 0)
    wire.engine.command("add_devices", {"devices": [device_entry(d) for d in fleet()]}, 0)
    wire.engine.command("start", {}, 0)
    wire.run(1.0)
    assert 9 <= len(wire.engine.outstanding) <= 12


def test_commands_on_selections_and_errors() -> None:
    wire = Wire()
    engine = wire.engine
    engine.command("add_devices", {"devices": [device_entry(d) for d in fleet()]}, 0)
    engine.command("start", {"group": "phones"}, 0)
    wire.run(1.0)
    assert engine.command("stats", {}, 1)["bound"] == 5
    described = engine.command("devices", {"devices": ["phones-1"]}, 1)["devices"][0]
    assert described["state"] == "BOUND" and described["ip"].startswith("10.0.0.")
    assert engine.command("renew", {"group": "phones"}, 1)["renew"] == 5
    wire.run(2.0)
    assert engine.command("release", {"devices": ["phones-1"]}, 2)["release"] == 1
    with pytest.raises(CommandError) as info:
        engine.command("release", {"devices": ["phones-1"]}, 2)
    assert info.value.code == "bad_state"
    for cmd, args, code in [
        ("start", {"group": "nope"}, "unknown_group"),
        ("stop", {"devices": ["ghost"]}, "unknown_device"),
        ("frobnicate", {}, "unknown_command"),
        ("add_devices", {"devices": []}, "bad_argument"),
        ("add_devices", {"devices": [device_entry(fleet()[0])]}, "duplicate"),
        ("add_devices", {"devices": [{"name": "x", "mac": "zz"}]}, "bad_argument"),
        ("add_devices", {"devices": [{"name": "x", "mac": "02:00:00:00:00:01",
                                      "dhcp": {"param_request_list": [0]}}]}, "bad_argument"),
        ("hello", {"time_scale": -1}, "bad_argument"),
        ("ping", {"device": "phones-2", "target": "nope"}, "bad_argument"),
    ]:
        with pytest.raises(CommandError) as info:
            engine.command(cmd, args, 3)
        assert info.value.code == code, (cmd, args)
    assert engine.command("remove", {"devices": ["phones-5"]}, 3)["devices"] == 34


def test_arp_requests_reach_the_bound_device() -> None:
    wire = Wire()
    wire.engine.command("add_devices", {"devices": [device_entry(fleet()[0])]}, 0)
    wire.engine.command("start", {}, 0)
    wire.run(1.0)
    wire.engine.take_frames()
    ip = wire.engine.command("devices", {}, 1)["devices"][0]["ip"]
    wire.engine.on_frame(arp_from("02:00:00:00:00:fe", "10.0.0.1", ip), False, 1.0)
    (reply,) = wire.engine.take_frames()
    assert reply[0:6] == bytes.fromhex("0200000000fe") and reply[20:22] == b"\x00\x02"


def test_shutdown_releases_everyone() -> None:
    wire = Wire()
    wire.engine.command("add_devices", {"devices": [device_entry(d) for d in fleet()]}, 0)
    wire.engine.command("start", {}, 0)
    wire.run(2.0)
    reply = wire.engine.command("shutdown", {}, 2)
    assert reply == {"released": 35} and wire.engine.stopping
    assert len(wire.engine.take_frames()) == 35


def test_percentiles() -> None:
    empty = percentiles([])
    assert empty["count"] == 0 and empty["p95"] is None and sum(empty["histogram"]["counts"]) == 0
    got = percentiles([float(i) for i in range(1, 101)])
    assert got["p50"] == 51.0 and got["p95"] == 96.0 and got["max"] == 100.0
    hist = percentiles([0.005, 0.3, 0.3, 70.0])["histogram"]
    assert hist["counts"][0] == 1 and hist["counts"][5] == 2 and hist["counts"][-1] == 1
    assert sum(hist["counts"]) == 4


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600), st.booleans())
def test_random_frames_never_break_the_engine(data: bytes, broadcast: bool) -> None:
    engine = Engine(iface="test")
    engine.command("add_devices", {"devices": [device_entry(fleet()[0])]}, 0)
    engine.command("start", {}, 0)
    frame = (b"\xff" * 6 + data) if broadcast else data
    engine.on_frame(frame, False, 0.1)
    engine.on_timers(0.2)
    assert engine.command("stats", {}, 0.3)["devices"] == 1


def test_stagger_spaces_the_starts() -> None:
    wire = Wire(FakeServer(silent=True))
    wire.engine.command("hello", {"stagger": 0.1, "window": 1000}, 0)
    wire.engine.command("add_devices", {"devices": [device_entry(d) for d in fleet()]}, 0)
    wire.engine.command("start", {}, 0)
    assert len(wire.engine.outstanding) == 1
    assert wire.engine.next_deadline() == pytest.approx(0.1)
    wire.run(1.0, step=0.01)
    assert 9 <= len(wire.engine.outstanding) <= 11


def test_spec_pacing_reaches_the_engine() -> None:
    from pytest_iotemu.spec.schema import parse_spec
    site = parse_spec(SPEC + "pacing: {window: 8, rate: 50, stagger: 20ms}\n", "e.yaml",
                      env={}).sites[0]
    engine = Engine(iface="test")
    reply = engine.command("hello", site.pacing.hello(), 0)
    assert (reply["window"], reply["rate"], reply["stagger"]) == (8, 50.0, 0.02)


def test_pacer_slow_start_then_congestion_avoidance() -> None:
    from pytest_iotemu.engine.core import Pacer
    pacer = Pacer(window=32)
    for _ in range(32):
        pacer.grow()
    assert pacer.window == 64  # slow start: one per answer, up to the threshold
    for _ in range(64):
        pacer.grow()
    assert 64.9 < pacer.window < 65.1  # then about one per window's worth of answers
    pacer.shrink()
    assert pacer.window == pacer.ssthresh == pytest.approx(32.5, abs=0.01)
