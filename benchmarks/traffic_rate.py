#!/usr/bin/env python3
"""Line-rate UDP, side by side in one run (root): the engine's aggregate send rate across
1,000 devices against the raw-socket ceiling and scapy, with 64-byte and 1,400-byte
frames, every count checked at the receiver.

    sudo .venv/bin/python benchmarks/traffic_rate.py [--devices 1000] [--seconds 5]

One lab (Kea binds the fleet quickly). The receiver is a host on the LAN bridge, so no
WAN rate limit is in the way; it counts what arrives with an nftables counter in its own
namespace (in the kernel, at the prerouting hook, then drops it) and answers nothing.
- engine: every device sends one flow to the receiver on one schedule, offered faster than
  one process can send, so the engine runs flat out; rate = datagrams / (last - first).
- ceiling: a bare loop in the engine's namespace, `socket.send(prebuilt frame)` on the same
  port, the fastest a Python process can put frames on this veth.
- scapy: `sendp(pkt, count=N)` on the same port, for reference.
Frames are counted as handed to the socket (no FCS): 64 bytes = 22 bytes of UDP payload
(the flows' compact header), 1,400 bytes = 1,358.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_iotemu import traffic  # noqa: E402
from pytest_iotemu.engine import EngineClient  # noqa: E402
from pytest_iotemu.lab import Lab  # noqa: E402
from pytest_iotemu.metrics import Sampler  # noqa: E402
from pytest_iotemu.spec.schema import parse_spec  # noqa: E402

SPEC = """
fleet: line-rate
seed: 14
lab:
  lan: 10.140.0.0/20
  dhcp_server: kea
  pools: {{default: {{range: 10.140.0.10-10.140.14.250}}}}
devices: [{{profile: tplink-kasa-plug, count: {n}}}]
"""
SINK_IP, SINK_PORT = "10.140.15.250", 9
SINK_RULES = f"""table inet bench {{
  counter got {{ }}
  chain pre {{
    type filter hook prerouting priority -300; policy accept;
    udp dport {SINK_PORT} counter name "got" drop
  }}
}}
"""
OVERHEAD = 42  # Ethernet, IPv4 and UDP headers

RAW_LOOP = """
import socket, sys, time
iface, frame, n = sys.argv[1], bytes.fromhex(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
s.bind((iface, 0))
send = s.send
start = time.perf_counter()
for _ in range(n):
    send(frame)
print(n, time.perf_counter() - start)
"""
SCAPY_LOOP = """
import sys, time
from scapy.all import Ether, IP, UDP, Raw, sendp
iface, dst_mac, src_mac, src, dst, size, n = sys.argv[1:8]
pkt = (Ether(dst=dst_mac, src=src_mac) / IP(src=src, dst=dst) / UDP(sport=40000, dport=9)
       / Raw(b"x" * int(size)))
start = time.perf_counter()
sendp(pkt, iface=iface, count=int(n), verbose=False)
print(n, time.perf_counter() - start)
"""


class Sink:
    def __init__(self, lab: Lab):
        self.lab = lab
        self.ns = lab.add_host("sink")
        subprocess.run(["ip", "-n", self.ns, "addr", "add", f"{SINK_IP}/20", "dev", "eth0"],
                       check=True)
        subprocess.run(["ip", "netns", "exec", self.ns, "nft", "-f", "-"], input=SINK_RULES,
                       text=True, check=True)
        link = json.loads(subprocess.run(["ip", "-n", self.ns, "-j", "link", "show", "eth0"],
                                         capture_output=True, text=True).stdout)
        self.mac = link[0]["address"]

    def take(self) -> int:
        """Datagrams counted since the last call (the counter is reset)."""
        out = subprocess.run(["ip", "netns", "exec", self.ns, "nft", "-j", "reset", "counter",
                              "inet", "bench", "got"], capture_output=True, text=True)
        for entry in json.loads(out.stdout)["nftables"]:
            if "counter" in entry:
                return entry["counter"]["packets"]
        raise RuntimeError(out.stderr)


def settle(sink: Sink) -> int:
    time.sleep(0.5)  # the last frames through the bridge
    return sink.take()


def engine_case(client: EngineClient, names: list[str], sink: Sink, frame: int,
                seconds: float, per_device_pps: float, sampler: Sampler) -> dict:
    size = frame - OVERHEAD
    rate = per_device_pps * size * 8
    sink.take()
    flow = traffic.start_flow(client, names, SINK_IP, SINK_PORT, rate, seconds, size=size)
    sampler.sample()
    results = flow.wait(extra=120)
    sampler.sample()
    sent = sum(r["sent"] for r in results.values())
    elapsed = max(r["elapsed"] for r in results.values())
    got = settle(sink)
    cpu = sampler.series["engine"].peak(1)
    return {"way": f"engine, {len(names)} devices", "frame": frame, "sent": sent,
            "received": got, "seconds": elapsed, "cpu": cpu,
            "offered_pps": per_device_pps * len(names)}


def loop_case(ns: str, port: str, sink: Sink, frame: int, count: int, src_mac: str) -> dict:
    size = frame - OVERHEAD
    from pytest_iotemu.protocols.frames import ip_bytes, mac_bytes, udp_frame
    prebuilt = udp_frame(mac_bytes(src_mac), mac_bytes(sink.mac), ip_bytes("10.140.15.249"),
                         ip_bytes(SINK_IP), 40000, SINK_PORT, bytes(size))
    assert len(prebuilt) == frame
    sink.take()
    out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", RAW_LOOP, port,
                          prebuilt.hex(), str(count)], capture_output=True, text=True,
                         check=True).stdout.split()
    return {"way": "raw socket, one prebuilt frame", "frame": frame, "sent": int(out[0]),
            "received": settle(sink), "seconds": float(out[1]), "cpu": None}


def scapy_case(ns: str, port: str, sink: Sink, frame: int, count: int, src_mac: str) -> dict:
    sink.take()
    out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", SCAPY_LOOP, port,
                          sink.mac, src_mac, "10.140.15.249", SINK_IP, str(frame - OVERHEAD),
                          str(count)], capture_output=True, text=True, check=True).stdout.split()
    return {"way": "scapy sendp(count=N)", "frame": frame, "sent": int(out[0]),
            "received": settle(sink), "seconds": float(out[1]), "cpu": None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="how long each engine flow is offered for (default 5)")
    args = parser.parse_args()
    site = parse_spec(SPEC.format(n=args.devices), "bench", env={}).sites[0]
    rows = []
    with Lab(site) as lab:
        sink = Sink(lab)
        ns, port = lab.engine_interfaces()[0]
        with EngineClient(port, netns=ns) as client:
            client.add_devices(site.devices)
            client.call("start")
            client.wait_bound(timeout=120)
            names = [d.name for d in site.devices]
            sampler = Sampler(0.5)
            sampler.watch("engine", client.process.pid)
            sampler.start()
            src_mac = site.devices[0].mac
            for frame, pps in ((64, 600.0), (1400, 300.0)):
                ceiling = loop_case(ns, port, sink, frame, 1_000_000, src_mac)
                engine = engine_case(client, names, sink, frame, args.seconds, pps, sampler)
                scapy = scapy_case(ns, port, sink, frame, 20_000, src_mac)
                rows += [engine, ceiling, scapy]
            sampler.stop()
    print(f"\nUDP send rate, {args.devices} devices, one engine process, receiver on the "
          "LAN bridge (nftables counter)\n")
    print(f"{'way':34} {'frame':>6} {'sent':>10} {'received':>10} {'match':>8} "
          f"{'pps':>10} {'Gbit/s':>7} {'x ceiling':>9}")
    ceilings = {r["frame"]: r["sent"] / r["seconds"] for r in rows if r["way"].startswith("raw")}
    for r in rows:
        pps = r["sent"] / r["seconds"]
        match = r["received"] / r["sent"] if r["sent"] else 0
        print(f"{r['way']:34} {r['frame']:>6} {r['sent']:>10} {r['received']:>10} "
              f"{match * 100:>7.2f}% {pps:>10,.0f} {pps * r['frame'] * 8 / 1e9:>7.2f} "
              f"{pps / ceilings[r['frame']]:>9.2f}")
    for r in rows:
        if r["way"].startswith("engine"):
            pps = r["sent"] / r["seconds"]
            print(f"engine at {r['frame']} B: offered {r['offered_pps']:,.0f} pps, kept "
                  f"{pps:,.0f} pps over {r['seconds']:.2f}s; CPU peak {r['cpu'] or 0:.0f}% of a "
                  f"core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
