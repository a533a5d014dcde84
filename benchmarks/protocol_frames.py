#!/usr/bin/env python3
"""Frames built and parsed per second by the protocol cores, beside scapy doing the same
work, in one run (these machines are noisy: compare the ratios, not the absolutes).

    .venv/bin/python benchmarks/protocol_frames.py [--seconds 1.0]

What is timed:
- build DISCOVER: rendering a device's DISCOVER from its template (xid, secs, checksum)
  versus scapy building the same packet from layers.
- parse OFFER: decoding a real server's OFFER (recorded from dnsmasq) with our parser
  versus scapy dissecting it.
- new client + DORA: a client core created, then taken INIT -> BOUND with in-memory
  OFFER/ACK bytes (two frames built, two parsed, state kept), per second.
"""
from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rate(fn, seconds: float) -> float:
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(200):
            fn()
        count += 200
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = parser.parse_args()

    from pytest_iotemu.profiles import builtin_profiles
    from pytest_iotemu.protocols import DhcpClient, Outbox
    from pytest_iotemu.protocols.dhcp_wire import parse_reply
    from pytest_iotemu.protocols.frames import mac_bytes

    record = json.loads((ROOT / "tests/data/dhcp-replies/dnsmasq.json").read_text())
    offer, ack = (bytes.fromhex(r["frame"]) for r in record["replies"][:2])
    fp = builtin_profiles()["axis-camera"].dhcp.merged({"arp_probe": False})
    mac = mac_bytes(record["mac"])

    out = Outbox()
    client = DhcpClient(mac, fp, out, hostname=record["hostname"], rng=random.Random(1))
    client.start(0.0)
    template = next(iter(client._templates.values()))
    xid = [0]

    def build_ours() -> None:
        xid[0] += 1
        template.render(xid[0] & 0xFFFFFFFF, 3)

    def parse_ours() -> None:
        parse_reply(offer)

    def dora() -> None:
        o = Outbox()
        c = DhcpClient(mac, fp, o, hostname=record["hostname"],
                       rng=random.Random(record["seed"]))
        c.start(0.0)
        c.xid = int.from_bytes(offer[46:50], "big")  # the recorded transaction
        c.receive(offer, 0.01)
        c.receive(ack, 0.02)

    import scapy.layers.dhcp  # noqa: F401  (imported outside the timing)
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    def build_scapy() -> None:
        bytes(Ether(src=record["mac"], dst="ff:ff:ff:ff:ff:ff") /
              IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67) /
              BOOTP(chaddr=mac, xid=1) /
              DHCP(options=[("message-type", 1), ("client_id", b"\x01" + mac),
                            ("hostname", b"axis-recorded"),
                            ("param_req_list", list(fp.param_request_list)), "end"]))

    def parse_scapy() -> None:
        _ = Ether(offer)[DHCP].options  # dissect the whole packet

    rows = [
        ("build DISCOVER", rate(build_ours, args.seconds), rate(build_scapy, args.seconds)),
        ("parse OFFER", rate(parse_ours, args.seconds), rate(parse_scapy, args.seconds)),
    ]
    dora_rate = rate(dora, args.seconds)
    print(f"{'operation':<16} {'ours/s':>12} {'scapy/s':>12} {'ratio':>8}")
    for name, ours, theirs in rows:
        print(f"{name:<16} {ours:>12,.0f} {theirs:>12,.0f} {ours / theirs:>7.1f}x")
    print(f"{'new client+DORA':<16} {dora_rate:>12,.0f} {'-':>12} {'':>8}")


if __name__ == "__main__":
    main()
