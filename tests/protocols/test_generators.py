"""The generators' schedule with no sockets: first runs within the first interval (at
most 10 s), then every interval within its jitter; nothing runs unbound; streams pace."""
from __future__ import annotations

import random

from pytest_iotemu.protocols.device import DeviceCore
from pytest_iotemu.protocols.generators import Apps
from pytest_iotemu.profiles.model import DhcpFingerprint


class Bound(DeviceCore):
    @property
    def address(self):  # a bound device, as far as the generators can tell
        return bytes([10, 0, 0, 10])


def device() -> Bound:
    core = Bound(bytes.fromhex("020000000001"), DhcpFingerprint(param_request_list=(1, 3, 6)))
    core.dhcp.lease = {"ip": "10.0.0.10", "mask": "255.255.255.0", "router": ["10.0.0.1"],
                       "dns": ["10.0.0.1"], "options": {}}
    return core


def run(apps: Apps, until: float, step: float = 0.05) -> list:
    runs = []
    real = apps._run
    apps._run = lambda habit, now: runs.append((habit.name, now))
    now = 0.0
    while now < until:
        apps.on_timer(now)
        now += step
    apps._run = real
    return runs


def test_intervals_and_jitter() -> None:
    core = device()
    apps = Apps(core, [{"name": "mqtt", "interval": 4.0, "jitter": 0.25},
                       {"name": "ntp", "interval": 600.0}], [], {}, random.Random(1))
    apps.start(0.0)
    runs = run(apps, 60.0)
    mqtt = [t for name, t in runs if name == "mqtt"]
    ntp = [t for name, t in runs if name == "ntp"]
    assert mqtt[0] <= 4.05 and len(ntp) == 1 and ntp[0] <= 10.05  # first runs
    gaps = [b - a for a, b in zip(mqtt, mqtt[1:])]
    assert all(3.0 - 0.06 <= g <= 5.0 + 0.06 for g in gaps), gaps  # 4 s ± 25%
    assert max(gaps) - min(gaps) > 0.3  # and jittered, not fixed


def test_nothing_runs_unbound_and_stop_ends_everything() -> None:
    core = DeviceCore(bytes.fromhex("020000000002"), DhcpFingerprint(param_request_list=(1,)))
    apps = Apps(core, [{"name": "dns", "interval": 1.0}], ["beacon"], {}, random.Random(2))
    apps.start(0.0)
    assert run(apps, 5.0) == []  # not bound: the timers only move on
    assert apps.next_timer() is not None and apps.next_timer() > 4.0
    apps.stop()
    assert apps.next_timer() is None


def test_beacons_keep_a_fixed_interval() -> None:
    apps = Apps(device(), [], ["beacon"], {}, random.Random(3))
    apps.start(0.0)
    beats = [t for name, t in run(apps, 200.0) if name == "beacon"]
    gaps = {round(b - a, 1) for a, b in zip(beats, beats[1:])}
    assert gaps == {30.0}  # a beacon is regular: that is what gives it away


def test_udp_with_a_rate_streams_at_it() -> None:
    core = device()
    core.arp_cache._entries[bytes([10, 0, 0, 1])] = type(
        "E", (), {"mac": bytes.fromhex("02000000ffff"), "learned": 0.0})()
    apps = Apps(core, [{"name": "udp", "rate": 80_000, "size": 100, "to": "10.9.9.9"}], [],
                {}, random.Random(4))
    apps.start(0.0)
    now = 0.0
    while now < 3.0:
        apps.on_timer(now)
        now += 0.01
    frames = [f for f in core.out.take_frames() if f[23] == 17]
    # 80 kbit/s of 100-byte datagrams: 100 a second, from a start within the first second
    assert 190 <= len(frames) <= 301 and all(len(f) == 42 + 100 for f in frames)


def test_rtp_stream_patches_sequence_timestamp_and_a_right_checksum() -> None:
    from pytest_iotemu.protocols.frames import parse_ipv4, parse_udp
    core = device()
    core.arp_cache._entries[bytes([10, 0, 0, 1])] = type(
        "E", (), {"mac": bytes.fromhex("02000000ffff"), "learned": 0.0})()
    apps = Apps(core, [{"name": "rtp", "rate": 96_000, "size": 1200, "to": "10.9.9.9",
                        "dscp": 46}], [], {}, random.Random(5))
    apps.start(0.0)
    now = 0.0
    while now < 2.0:
        apps.on_timer(now)
        now += 0.01
    datagrams = [parse_udp(parse_ipv4(f)) for f in core.out.take_frames() if f[23] == 17]
    assert len(datagrams) >= 10  # parse_udp checks every UDP checksum
    seqs = [int.from_bytes(d.data[2:4], "big") for d in datagrams]
    stamps = [int.from_bytes(d.data[4:8], "big") for d in datagrams]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:]))
    assert all(b - a == 9000 for a, b in zip(stamps, stamps[1:]))  # 0.1 s at 90 kHz
    assert all(d.ip.payload is not None for d in datagrams)
    assert datagrams[0].data[1] == 96 and datagrams[0].sport != 5004
