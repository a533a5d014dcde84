#!/usr/bin/env python3
"""DHCP at scale, side by side in one run (root): our engine binding fleets of fresh
devices, perfdhcp (kea-admin) against the same server configuration, and the previous
tool's approach (scapy sendp then sniff, one process per device).

    sudo .venv/bin/python benchmarks/dhcp_rate.py [--sizes 1000,10000] [--renew]

For each case a fresh lab (Kea; dnsmasq at 1,000) with one pool that serves everyone:
- engine: N devices (tplink-kasa-plug: no ARP check, so the latency is the server's and
  ours), from the first DISCOVER to the last ACK -> bind rate; DORA p50/p95/p99; devices
  lost (not bound after 120 s); retransmits; engine RSS and CPU peaks (psutil, 0.2 s);
- perfdhcp: `-R N -n N` (N distinct clients, each one DORA) at rising `-r` rates, each on a
  fresh server; its best achieved rate with under 1% drops;
- previous tool: 20 processes, each `sendp` a DISCOVER then `sniff` for the OFFER, then the
  same for REQUEST/ACK; leases obtained, RSS per process.
With --renew: 10,000 devices on 2-minute leases (renewing every minute) and the engine's
CPU over one full renewal minute.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_iotemu.engine import EngineClient  # noqa: E402
from pytest_iotemu.lab import Lab  # noqa: E402
from pytest_iotemu.metrics import Sampler, bind_rate  # noqa: E402
from pytest_iotemu.spec.schema import parse_spec  # noqa: E402

SPEC = """
fleet: bench-{n}
seed: {n}
lab:
  lan: 10.128.0.0/16
  dhcp_server: {server}
  lease_time: {lease}
  pools: {{default: {{range: 10.128.0.10-10.128.250.250}}}}
devices: [{{profile: tplink-kasa-plug, count: {n}}}]
"""
PERF_IP = "10.128.255.250/16"


def site_for(n: int, server: str, lease: str = "1h"):
    return parse_spec(SPEC.format(n=n, server=server, lease=lease), "bench", env={}).sites[0]


def engine_case(n: int, server: str) -> dict:
    site = site_for(n, server)
    with Lab(site) as lab:
        ns, port = lab.engine_interfaces()[0]
        with EngineClient(port, netns=ns) as engine:
            sampler = Sampler(0.2)
            sampler.watch("engine", engine.process.pid)
            engine.add_devices(site.devices)
            sampler.start()
            engine.call("start")
            try:
                stats = engine.wait_bound(timeout=120)
            except TimeoutError:
                stats = engine.call("stats")
            listed = engine.call("devices")["devices"]
            sampler.sample()
            sampler.stop()
            bound = [d for d in listed if d["bound_after"] is not None]
            lat = sorted(d["bound_after"] for d in bound)
            peaks = sampler.peaks()
            return {
                "case": f"engine, {server}, {n}", "devices": n, "bound": len(bound),
                "lost": n - len(bound), "rate": bind_rate(listed) or 0.0,
                "p50": lat[len(lat) // 2] if lat else None,
                "p95": lat[int(0.95 * len(lat))] if lat else None,
                "p99": lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else None,
                "retransmits": stats["counters"].get("retransmits", 0),
                "rss_mb": (peaks["engine_rss"] or 0) / 1e6, "cpu": peaks["engine_cpu"],
            }


def perfdhcp_once(n: int, server: str, rate: int) -> dict:
    site = site_for(1, server)
    with Lab(site) as lab:
        host = lab.add_host("perf")
        subprocess.run(["ip", "-n", host, "addr", "add", PERF_IP, "dev", "eth0"], check=True)
        result = subprocess.run(["ip", "netns", "exec", host, "perfdhcp", "-4", "-l", "eth0",
                                 "-r", str(rate), "-R", str(n), "-n", str(n),
                                 "-p", str(int(n / rate) + 10)],
                                capture_output=True, text=True, timeout=n / rate + 60)
    out = result.stdout
    achieved = float(m.group(1)) if (m := re.search(r"Rate: ([\d.]+) 4-way", out)) else 0.0
    sent = [int(x) for x in re.findall(r"sent packets: (\d+)", out)]
    drops = [int(x) for x in re.findall(r"drops: (\d+)", out)]
    ratio = sum(drops) / max(sum(sent), 1)
    return {"rate": achieved, "offered": rate, "drop_ratio": ratio}


def perfdhcp_case(n: int, server: str) -> dict:
    best: dict | None = None
    tried = []
    for rate in (500, 1000, 2000, 4000, 8000):
        if n / rate > 60 and best is not None:
            break
        attempt = perfdhcp_once(n, server, rate)
        tried.append(attempt)
        if attempt["drop_ratio"] < 0.01 and (best is None or attempt["rate"] > best["rate"]):
            best = attempt
        if attempt["drop_ratio"] >= 0.05:
            break
    return {"case": f"perfdhcp -R {n}, {server}", "devices": n,
            "rate": best["rate"] if best else 0.0,
            "offered": best["offered"] if best else None, "tried": tried}


LEGACY = r"""
import os, sys, json, random, psutil
from scapy.all import Ether, IP, UDP, BOOTP, DHCP, sendp, sniff, conf
iface, mac = sys.argv[1], sys.argv[2]
conf.verb = 0
xid = random.getrandbits(32)
raw = bytes.fromhex(mac.replace(':', ''))
def msg(kind, extra):
    return (Ether(src=mac, dst='ff:ff:ff:ff:ff:ff') / IP(src='0.0.0.0', dst='255.255.255.255') /
            UDP(sport=68, dport=67) / BOOTP(chaddr=raw, xid=xid, flags=0x8000) /
            DHCP(options=[('message-type', kind)] + extra + ['end']))
def answer(p):
    return BOOTP in p and p[BOOTP].xid == xid and p[BOOTP].op == 2
got = {'offer': False, 'ack': False}
sendp(msg('discover', []), iface=iface)                 # the old tool: send ...
offer = sniff(iface=iface, lfilter=answer, count=1, timeout=5)   # ... then start sniffing
if offer:
    got['offer'] = True
    sendp(msg('request', [('requested_addr', offer[0][BOOTP].yiaddr)]), iface=iface)
    ack = sniff(iface=iface, lfilter=answer, count=1, timeout=5)
    got['ack'] = bool(ack)
got['rss'] = psutil.Process().memory_info().rss
print(json.dumps(got))
"""


def legacy_case(count: int = 20) -> dict:
    site = site_for(count, "dnsmasq")
    with Lab(site) as lab:
        ns, port = lab.engine_interfaces()[0]
        procs = [subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", LEGACY, port,
                                   d.mac], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True, env={**os.environ,
                                                  "PYTHONPATH": os.pathsep.join(sys.path)})
                 for d in site.devices]
        results = []
        for proc in procs:
            out, _ = proc.communicate(timeout=60)
            try:
                results.append(json.loads(out.strip().splitlines()[-1]))
            except (ValueError, IndexError):
                results.append({"offer": False, "ack": False, "rss": 0})
    acks = sum(r["ack"] for r in results)
    return {"case": f"previous tool (scapy sendp+sniff), {count} processes", "devices": count,
            "bound": acks, "lost": count - acks,
            "rss_mb": statistics.mean(r["rss"] for r in results) / 1e6}


def renew_case(n: int = 10000) -> dict:
    site = site_for(n, "kea", lease="2m")
    with Lab(site) as lab:
        ns, port = lab.engine_interfaces()[0]
        with EngineClient(port, netns=ns) as engine:
            engine.add_devices(site.devices)
            engine.call("start")
            engine.wait_bound(timeout=120)
            sampler = Sampler(1.0)
            sampler.watch("engine", engine.process.pid)
            sampler.start()
            before = engine.call("stats")["counters"].get("dhcp.renewed", 0)
            time.sleep(60)
            sampler.stop()
            after = engine.call("stats")["counters"].get("dhcp.renewed", 0)
            cpu = [s[1] for s in sampler.series["engine"].samples]
            return {"case": f"engine, kea, {n} bound, renewing every minute",
                    "renewals_per_min": after - before, "cpu_mean": statistics.mean(cpu),
                    "cpu_peak": max(cpu)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--renew", action="store_true", help="also the renewal load (2+ min)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the lab builds network namespaces")
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    for n in sizes:
        ours = engine_case(n, "kea")
        theirs = perfdhcp_case(n, "kea")
        rows.append((ours, theirs))
        print(json.dumps({"engine": ours, "perfdhcp": theirs}), file=sys.stderr)
    dnsmasq = engine_case(1000, "dnsmasq")
    dnsmasq_ref = perfdhcp_case(1000, "dnsmasq")
    legacy = legacy_case(20)

    print(f"\n{'case':<34} {'bound':>11} {'lost':>5} {'binds/s':>9} {'p50':>7} {'p95':>7} "
          f"{'p99':>7} {'retx':>5} {'RSS MB':>7} {'CPU%':>5} {'vs perfdhcp':>12}")

    def line(r: dict, ref: dict | None) -> None:
        def s(v: float | None) -> str:
            return "-" if v is None else f"{v:.3f}"
        ratio = f"{r['rate'] / ref['rate']:.2f}x" if ref and ref["rate"] else "-"
        print(f"{r['case']:<34} {r['bound']:>5}/{r['devices']:<5} {r['lost']:>5} "
              f"{r['rate']:>9.0f} {s(r['p50']):>7} {s(r['p95']):>7} {s(r['p99']):>7} "
              f"{r['retransmits']:>5} {r['rss_mb']:>7.0f} {r['cpu'] or 0:>5.0f} {ratio:>12}")

    for ours, theirs in rows:
        line(ours, theirs)
        print(f"{theirs['case']:<34} {'':>11} {'':>5} {theirs['rate']:>9.0f}   best -r with "
              f"<1% drops: {theirs['offered']}")
    line(dnsmasq, dnsmasq_ref)
    print(f"{dnsmasq_ref['case']:<34} {'':>11} {'':>5} {dnsmasq_ref['rate']:>9.0f}   best -r "
          f"with <1% drops: {dnsmasq_ref['offered']}")
    print(f"{legacy['case']:<34} {legacy['bound']:>5}/{legacy['devices']:<5} "
          f"{legacy['lost']:>5} {'':>9} {'':>7} {'':>7} {'':>7} {'':>5} "
          f"{legacy['rss_mb']:>7.0f}   (per process)")
    if args.renew:
        renew = renew_case()
        print(f"\n{renew['case']}: {renew['renewals_per_min']} renewals in a minute, engine "
              f"CPU mean {renew['cpu_mean']:.1f}% (peak {renew['cpu_peak']:.0f}%) of one core")


if __name__ == "__main__":
    main()
