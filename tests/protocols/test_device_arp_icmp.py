"""ARP and ICMP of a device, and the device core that dispatches frames."""
from __future__ import annotations

import random

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import ARP, Ether

from pytest_iotemu.profiles.model import DhcpFingerprint
from pytest_iotemu.protocols import ArpCache, DeviceCore, LocalProtocolError, State
from pytest_iotemu.protocols.frames import mac_bytes, parse_arp

from .fake_server import FakeServer, arp_from

MAC = "00:40:8c:01:02:03"
PEER = "02:aa:bb:cc:dd:ee"


def bound_device(**kwargs) -> tuple[DeviceCore, FakeServer]:
    device = DeviceCore(mac_bytes(MAC), DhcpFingerprint(param_request_list=(1, 3)),
                        rng=random.Random(5), **kwargs)
    server = FakeServer()
    device.dhcp.start(0.0)
    for _ in range(3):
        for frame in device.out.take_frames():
            for reply in server.handle(frame):
                device.receive(reply, 0.1)
    assert device.dhcp.state is State.BOUND
    device.out.take_frames()
    device.out.take_events()
    return device, server


def test_answers_arp_for_its_address_only_when_bound() -> None:
    device = DeviceCore(mac_bytes(MAC), DhcpFingerprint(param_request_list=(1,)))
    device.receive(arp_from(PEER, "10.0.0.1", "10.0.0.10"), 0.0)
    assert device.out.take_frames() == []
    assert device.counters["ignored.arp_not_bound"] == 1
    device, _ = bound_device()
    device.receive(arp_from(PEER, "10.0.0.1", "10.0.0.10"), 1.0)
    (reply,) = device.out.take_frames()
    arp = Ether(reply)
    assert arp[Ether].dst == PEER and arp[ARP].op == 2
    assert arp[ARP].hwsrc == MAC and arp[ARP].psrc == "10.0.0.10"
    assert arp[ARP].pdst == "10.0.0.1" and arp[ARP].hwdst == PEER
    device.receive(arp_from(PEER, "10.0.0.1", "10.0.0.11"), 1.0)  # someone else's address
    device.receive(arp_from(PEER, "0.0.0.0", "10.0.0.10"), 1.0)  # a probe is not answered
    assert device.out.take_frames() == []


def test_answers_pings_with_a_valid_reply() -> None:
    device, _ = bound_device()
    request = Ether(src=PEER, dst=MAC) / IP(src="10.0.0.1", dst="10.0.0.10") / \
        ICMP(type=8, id=0x1234, seq=7) / b"payload-bytes"
    device.receive(bytes(request), 1.0)
    (frame,) = device.out.take_frames()
    reply = Ether(frame)
    assert reply[Ether].dst == PEER and reply[IP].src == "10.0.0.10"
    assert reply[IP].dst == "10.0.0.1" and reply[ICMP].type == 0
    assert (reply[ICMP].id, reply[ICMP].seq) == (0x1234, 7)
    assert bytes(reply[ICMP].payload) == b"payload-bytes"
    fresh = Ether(bytes(reply))
    del fresh[ICMP].chksum, fresh[IP].chksum
    assert Ether(bytes(fresh))[ICMP].chksum == reply[ICMP].chksum
    assert Ether(bytes(fresh))[IP].chksum == reply[IP].chksum


def test_pings_with_rtt_and_timeout() -> None:
    device, _ = bound_device()
    with pytest.raises(LocalProtocolError):
        DeviceCore(mac_bytes(MAC), DhcpFingerprint(param_request_list=(1,))).pinger.ping(
            None, b"\x0a\x00\x00\x01", mac_bytes(PEER), 0.0)
    seq = device.pinger.ping(device.address, bytes([10, 0, 0, 1]), mac_bytes(PEER), 2.0)
    (frame,) = device.out.take_frames()
    req = Ether(frame)
    assert req[ICMP].type == 8 and req[IP].src == "10.0.0.10" and req[ICMP].seq == seq
    answer = Ether(src=PEER, dst=MAC) / IP(src="10.0.0.1", dst="10.0.0.10") / \
        ICMP(type=0, id=req[ICMP].id, seq=seq) / bytes(req[ICMP].payload)
    device.receive(bytes(answer), 2.25)
    (event,) = [e for e in device.out.take_events() if e.type == "icmp.reply"]
    assert event.data["rtt"] == pytest.approx(0.25) and event.data["src"] == "10.0.0.1"
    device.receive(bytes(answer), 2.3)  # a duplicate is not matched twice
    assert device.counters["ignored.unknown_echo_reply"] == 1
    device.pinger.ping(device.address, bytes([10, 0, 0, 1]), mac_bytes(PEER), 3.0)
    assert device.pinger.next_timer() == pytest.approx(4.0)
    device.on_timer(4.0)
    assert [e.type for e in device.out.take_events()] == ["icmp.timeout"]


def test_arp_cache_is_shared_and_learns() -> None:
    cache = ArpCache(ttl=10)
    a = DeviceCore(mac_bytes(MAC), DhcpFingerprint(param_request_list=(1,)), arp_cache=cache)
    b = DeviceCore(mac_bytes("00:40:8c:01:02:04"), DhcpFingerprint(param_request_list=(1,)),
                   arp_cache=cache)
    gw = bytes([10, 0, 0, 1])
    assert cache.needs_request(gw, 0.0) is True
    assert cache.needs_request(gw, 0.5) is False  # one request on behalf of everybody
    a.receive(arp_from(PEER, "10.0.0.1", "10.0.0.10", op=2), 0.6)
    assert cache.lookup(gw, 0.7) == mac_bytes(PEER)
    assert b.arp_cache.lookup(gw, 0.7) == mac_bytes(PEER)
    assert cache.lookup(gw, 11.0) is None  # expired
    assert cache.needs_request(gw, 11.0) is True


def test_device_counters_add_up_over_mixed_traffic() -> None:
    device, _ = bound_device()
    frames = [
        arp_from(PEER, "10.0.0.1", "10.0.0.10"),
        arp_from(PEER, "10.0.0.1", "10.0.0.99"),
        b"\x01\x02",
        bytes(Ether(src=PEER, dst=MAC, type=0x86DD) / (b"\x00" * 40)),
        bytes(Ether(src=PEER, dst=MAC) / IP(src="10.0.0.1", dst="10.0.0.10", proto=47) / b"x"),  # GRE
    ]
    device.counters.clear()
    for frame in frames:
        device.receive(frame, 1.0)
    c = device.counters
    assert c["received"] == 5 and c["accepted"] == 1
    assert c["received"] == c["accepted"] + c.ignored_total()
    assert c["ignored.unknown_ethertype"] == 1 and c["ignored.protocol_not_handled"] == 1


def test_arp_frames_parse_back() -> None:
    packet = parse_arp(arp_from(PEER, "10.0.0.1", "10.0.0.10"))
    assert packet.op == 1 and packet.sender_mac == mac_bytes(PEER)
    assert packet.target_ip == bytes([10, 0, 0, 10])
