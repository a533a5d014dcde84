"""The lab's path monitor, run in the gateway's namespace like an SD-WAN path monitor:

    python -m pytest_iotemu.lab.pathmon CONFIG.json

It probes each WAN's far side with ICMP echoes several times a second. After ``misses``
consecutive unanswered probes a WAN is down; after ``misses`` answered ones it is up
again. The first WAN that is up carries the default paths: the main table's target routes
and the cloud's route back to the LAN; each WAN's own table (for ``via:`` traffic) uses
that WAN while it is up and the primary otherwise. Every change is written to the status
file (JSON) the lab reads. Prints ``ready`` once the first routes are in place.
"""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from typing import Any


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total) & 0xFFFF


class Monitor:
    def __init__(self, config: dict[str, Any]):
        self.config = config
        self.wans = config["wans"]
        self.interval = config.get("interval", 0.2)
        self.misses = config.get("misses", 3)
        self.state = {w["name"]: {"up": True, "streak": 0, "changed": time.time()}
                      for w in self.wans}
        self.socks = {}
        for wan in self.wans:
            sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
            sock.setsockopt(socket.SOL_SOCKET, 25, wan["gw_if"].encode())  # SO_BINDTODEVICE
            sock.setblocking(False)
            self.socks[wan["name"]] = sock
        self.seq = 0
        self.primary: str | None = None
        self.running = True

    def probe_round(self) -> None:
        self.seq = (self.seq + 1) & 0xFFFF
        ident = os.getpid() & 0xFFFF
        for wan in self.wans:
            header = struct.pack("!BBHHH", 8, 0, 0, ident, self.seq)
            packet = struct.pack("!BBHHH", 8, 0, _checksum(header + b"pathmon"), ident,
                                 self.seq) + b"pathmon"
            try:
                self.socks[wan["name"]].sendto(packet, (wan["cloud_address"], 0))
            except OSError:
                pass
        answered = set()
        deadline = time.monotonic() + self.interval
        while time.monotonic() < deadline:
            ready, _, _ = select.select(list(self.socks.values()), [], [],
                                        max(0.0, deadline - time.monotonic()))
            for sock in ready:
                try:
                    data = sock.recv(2048)
                except OSError:
                    continue
                ihl = (data[0] & 0x0F) * 4
                if len(data) >= ihl + 8 and data[ihl] == 0:
                    rid, rseq = struct.unpack_from("!HH", data, ihl + 4)
                    if rid == ident and rseq == self.seq:
                        name = next(n for n, s in self.socks.items() if s is sock)
                        answered.add(name)
        changed = False
        for wan in self.wans:
            st = self.state[wan["name"]]
            ok = wan["name"] in answered
            if ok == st["up"]:
                st["streak"] = 0
                continue
            st["streak"] += 1
            if st["streak"] >= self.misses:
                st["up"], st["streak"], st["changed"] = ok, 0, time.time()
                changed = True
        if changed or self.primary is None:
            self.apply()

    def apply(self) -> None:
        up = [w for w in self.wans if self.state[w["name"]]["up"]]
        primary = up[0] if up else self.wans[0]
        commands = []
        for target in self.config["targets"]:
            commands.append(f"route replace {target}/32 via {primary['cloud_address']}")
            for wan in self.wans:
                use = wan if self.state[wan["name"]]["up"] else primary
                commands.append(f"route replace {target}/32 via {use['cloud_address']} "
                                f"table {wan['table']}")
        subprocess.run(["ip", "-batch", "-"], input="\n".join(commands) + "\n",
                       capture_output=True, text=True)
        subprocess.run(["ip", "-n", self.config["cloud"], "route", "replace",
                        self.config["lan"], "via", primary["gw_address"]],
                       capture_output=True, text=True)
        self.primary = primary["name"]
        status = {"primary": self.primary, "time": time.time(),
                  "wans": {name: {"up": st["up"], "changed": st["changed"]}
                           for name, st in self.state.items()}}
        tmp = self.config["status"] + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(status, handle)
        os.replace(tmp, self.config["status"])

    def run(self) -> None:
        self.apply()
        print("ready", flush=True)
        while self.running:
            self.probe_round()


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: python -m pytest_iotemu.lab.pathmon CONFIG.json", file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as handle:
        monitor = Monitor(json.load(handle))

    def stop(_signum: int, _frame: object) -> None:
        monitor.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    monitor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
