"""Probes and flows through the engine's logic, with no sockets: a scripted gateway and
target (scapy) answer ARP, TCP, UDP and ICMP as a branch would."""
from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether

from pytest_iotemu.engine.client import device_entry
from pytest_iotemu.engine.core import CommandError
from pytest_iotemu.protocols import flows

from ..protocols.fake_server import SERVER_MAC, FakeServer
from .test_core import Wire, fleet

TARGET = "198.51.100.10"


class Branch(FakeServer):
    """The DHCP server, plus a gateway that routes to a target and enforces a policy:
    443/tcp open, 22/tcp closed at the target, 445/tcp rejected by the branch, 139/tcp
    dropped, 5060/udp echoed, 161/udp dropped, ICMP echoed; flow datagrams counted."""

    def __init__(self, **kwargs):
        super().__init__(pool=[f"10.0.0.{i}" for i in range(10, 250)], **kwargs)
        self.answer_arp = True
        self.flow_stats: dict[tuple[str, int], flows.FlowStats] = {}
        self.now_ns = 0

    def handle(self, frame: bytes) -> list[bytes]:
        pkt = Ether(frame)
        if ARP in pkt:
            if pkt[ARP].op == 1 and pkt[ARP].pdst == self.server_ip and self.answer_arp:
                return [bytes(Ether(src=self.mac, dst=pkt.src) /
                              ARP(op=2, hwsrc=self.mac, psrc=self.server_ip,
                                  hwdst=pkt.src, pdst=pkt[ARP].psrc))]
            return []
        if IP not in pkt or pkt[IP].dst != TARGET:
            return super().handle(frame)
        assert pkt.dst == SERVER_MAC  # sent to the router, not to the target
        ip = pkt[IP]
        back = Ether(src=self.mac, dst=pkt.src)
        if TCP in pkt:
            seg = pkt[TCP]
            if seg.flags == "S":
                if seg.dport == 443:
                    return [bytes(back / IP(src=TARGET, dst=ip.src, ttl=63) /
                                  TCP(sport=443, dport=seg.sport, flags="SA", seq=7000,
                                      ack=seg.seq + 1))]
                if seg.dport in (22, 445):
                    return [bytes(back / IP(src=TARGET, dst=ip.src,
                                            ttl=63 if seg.dport == 22 else 64) /
                                  TCP(sport=seg.dport, dport=seg.sport, flags="RA", seq=0,
                                      ack=seg.seq + 1))]
            elif seg.flags & 0x01:  # FIN: acknowledge it and close our side too
                return [bytes(back / IP(src=TARGET, dst=ip.src, ttl=63) /
                              TCP(sport=443, dport=seg.sport, flags="FA", seq=7001,
                                  ack=seg.seq + len(seg.payload) + 1))]
            return []
        if UDP in pkt:
            data = bytes(pkt[UDP].payload)
            decoded = flows.decode(data)
            if decoded is not None:
                flow, device, seq, sent = decoded
                stats = self.flow_stats.setdefault((ip.src, flow), flows.FlowStats())
                stats.add(seq, sent, self.now_ns, len(data), "wan")
                return []
            if pkt[UDP].dport == 5060:
                return [bytes(back / IP(src=TARGET, dst=ip.src, ttl=63) /
                              UDP(sport=5060, dport=pkt[UDP].sport) / data)]
            return []
        if ICMP in pkt and pkt[ICMP].type == 8:
            return [bytes(back / IP(src=TARGET, dst=ip.src, ttl=63) /
                          ICMP(type=0, id=pkt[ICMP].id, seq=pkt[ICMP].seq) /
                          bytes(pkt[ICMP].payload))]
        return []


class TrafficWire(Wire):
    def run(self, until: float, step: float = 0.01) -> None:
        while self.now < until:
            self.server.now_ns = int(self.now * 1e9)
            for frame in self.engine.take_frames():
                for reply in self.server.handle(frame):
                    self.engine.on_frame(reply, False, self.now)
            self.engine.on_timers(self.now)
            self.now += step


def bound_wire(n: int = 3) -> TrafficWire:
    wire = TrafficWire(Branch())
    wire.engine.command("add_devices", {"devices": [device_entry(d) for d in fleet()[:n]]}, 0)
    wire.engine.command("start", {}, 0)
    wire.run(1.0)
    assert wire.engine.stats()["bound"] == n
    return wire


def probe(wire: TrafficWire, **args) -> dict:
    job = wire.engine.command("probe", {"target": TARGET, **args}, wire.now)["probe"]
    wire.run(wire.now + 4.0)
    reply = wire.engine.command("probe_results", {"probe": job}, wire.now)
    assert reply["done"]
    return reply["results"]


@pytest.mark.parametrize("proto,port,result", [
    ("tcp", 443, "connected"), ("tcp", 22, "refused"), ("tcp", 445, "rejected"),
    ("tcp", 139, "timeout"), ("udp", 5060, "answered"), ("udp", 161, "timeout"),
    ("icmp", 0, "answered")])
def test_probe_outcomes(proto: str, port: int, result: str) -> None:
    wire = bound_wire()
    results = probe(wire, proto=proto, port=port, timeout=3.0)
    assert len(results) == 3
    assert {r["result"] for r in results.values()} == {result}, results
    events = [e for e in wire.engine.take_events() if e["type"] == "device.probe"]
    assert len(events) == 3


def test_connected_probe_closes_cleanly() -> None:
    wire = bound_wire(1)
    probe(wire, proto="tcp", port=443)
    dev = next(iter(wire.engine.devices.values()))
    assert not dev.core.traffic.jobs  # closed and forgotten after TIME_WAIT


def test_gateway_that_never_answers_arp_is_unresolved() -> None:
    wire = bound_wire(2)
    wire.engine.arp = type(wire.engine.arp)()  # forget the gateway
    for dev in wire.engine.devices.values():
        dev.core.arp_cache = dev.core.traffic.arp = wire.engine.arp
    wire.server.answer_arp = False
    results = probe(wire, proto="tcp", port=443, timeout=2.0)
    assert {r["result"] for r in results.values()} == {"unresolved"}
    arp_asks = [f for f in wire.server.seen]  # DHCP only; ARP requests are not DHCP
    assert arp_asks


def test_flow_sends_at_its_rate_with_sequence_numbers() -> None:
    wire = bound_wire(2)
    reply = wire.engine.command("flow", {"target": TARGET, "port": 554, "rate": 400_000,
                                         "size": 500, "duration": 2.0}, wire.now)
    assert reply["started"] == 2 and len(reply["devices"]) == 2
    wire.run(wire.now + 2.5)
    results = wire.engine.command("flow_results", {"flow": reply["flow"]}, wire.now)
    assert results["done"]
    for name, entry in results["results"].items():
        assert entry["sent"] == 200  # 400 kbit/s of 500-byte payloads for 2 s
    assert len(wire.server.flow_stats) == 2
    for stats in wire.server.flow_stats.values():
        assert stats.packets == 200 and stats.highest == 199 and stats.duplicates == 0
        assert stats.largest_gap_ns <= 0.021e9  # two 10 ms steps of this wire at most
        assert stats.by_interface == {"wan": 200}


def test_not_bound_devices_are_listed_and_bad_arguments_refused() -> None:
    wire = TrafficWire(Branch())
    wire.engine.command("add_devices", {"devices": [device_entry(fleet()[0])]}, 0)
    reply = wire.engine.command("probe", {"target": TARGET, "port": 443}, 0)
    assert reply["started"] == 0 and reply["not_bound"] == [fleet()[0].name]
    for bad in ({"target": "x", "port": 1}, {"target": TARGET, "port": 70000},
                {"target": TARGET, "port": 1, "proto": "sctp"},
                {"target": TARGET, "port": 0, "proto": "tcp"}):
        with pytest.raises(CommandError):
            wire.engine.command("probe", bad, 0)
    with pytest.raises(CommandError):
        wire.engine.command("flow", {"target": TARGET, "port": 1, "rate": 1e6, "size": 10,
                                     "duration": 1}, 0)
    with pytest.raises(CommandError):
        wire.engine.command("probe_results", {"probe": 99}, 0)
