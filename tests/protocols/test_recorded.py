"""Our client against replies recorded from real dnsmasq and Kea
(scripts/record_dhcp_replies.py wrote them; the bytes are as the servers sent them)."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from pytest_iotemu.profiles import builtin_profiles
from pytest_iotemu.protocols import DeviceCore, State
from pytest_iotemu.protocols.dhcp_wire import parse_reply
from pytest_iotemu.protocols.frames import mac_bytes

DATA = Path(__file__).resolve().parents[1] / "data" / "dhcp-replies"


def load(server: str) -> dict:
    return json.loads((DATA / f"{server}.json").read_text())


@pytest.mark.parametrize("server", ["dnsmasq", "kea"])
def test_replay_of_a_real_server(server: str) -> None:
    record = load(server)
    replies = [bytes.fromhex(r["frame"]) for r in record["replies"]]
    fp = builtin_profiles()[record["profile"]].dhcp.merged({"arp_probe": False})
    device = DeviceCore(mac_bytes(record["mac"]), fp, hostname=record["hostname"],
                        rng=random.Random(record["seed"]))
    client = device.dhcp
    now = 0.0

    def feed(frame: bytes, expect: State) -> None:
        nonlocal now
        now += 0.01
        assert parse_reply(frame).xid == client.xid
        device.receive(frame, now)
        assert client.state is expect, client.last_seen

    client.start(now)
    offer, ack, renew_ack, nak, offer2, ack2 = replies
    feed(offer, State.REQUESTING)
    feed(ack, State.BOUND)
    lease = dict(client.lease)
    assert lease["lease"] == 600 and lease["router"] == ["10.77.0.1"]
    assert lease["mask"] == "255.255.255.0" and lease["domain"] == "branch.lab"
    assert lease["server"] == "10.77.0.1"
    client.renew(now)
    feed(renew_ack, State.BOUND)
    client.address = bytes([10, 77, 0, 200])
    client.reboot(now)
    feed(nak, State.SELECTING)  # NAK: start over at once
    feed(offer2, State.REQUESTING)
    feed(ack2, State.BOUND)
    assert device.counters["accepted"] == 6 and device.counters.ignored_total() == 0
    events = [e.type for e in device.out.take_events()]
    assert events.count("dhcp.bound") == 2 and events.count("dhcp.renewed") == 1
    assert events.count("dhcp.nak") == 1


def test_both_servers_were_recorded_with_their_versions() -> None:
    assert "Dnsmasq version" in load("dnsmasq")["version"]
    assert load("kea")["version"].startswith("kea-dhcp4")
