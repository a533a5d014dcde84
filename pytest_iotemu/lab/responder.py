"""The target services of the lab's cloud: TCP accept + echo and UDP echo on each target
address and port, counting packets and bytes per source address.

Run by the lab inside the cloud namespace:

    python -m pytest_iotemu.lab.responder CONFIG.json

It prints ``ready`` once every socket is bound. On ``counters`` sent to its control
socket (a Unix datagram path from the config) it writes its counters to the config's
``dump`` file and answers ``ok``::

    {"services": {"<target>": {"<port>/<proto>": {"<source ip>": {"packets": n, "bytes": n}}}},
     "flows": {"<target>": {"<port>/<proto>": {"<source ip>": {"<flow id>": FlowStats}}}}}

For TCP, ``connections`` counts accepted connections and ``packets`` the reads. UDP
datagrams are echoed, except those of sequence-numbered flows (``protocols/flows.py``):
those are only measured (loss, jitter, largest gap, and the WAN they arrived on, from
the ingress interface).
"""
from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import sys
import time
from collections import defaultdict
from typing import Any

from ..protocols.flows import FlowStats, decode

IP_PKTINFO = 8


class Responder:
    def __init__(self, config: dict[str, Any]):
        self.selector = selectors.DefaultSelector()
        self.counters: dict[str, dict[str, dict[str, dict[str, int]]]] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(lambda: {"packets": 0, "bytes": 0})))
        self.flows: dict[str, dict[str, dict[str, dict[int, FlowStats]]]] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(dict)))
        self.interfaces: dict[str, str] = config.get("interfaces", {})
        self._ifnames: dict[int, str] = {}
        self.running = True
        for service in config["services"]:
            key = f"{service['port']}/{service['proto']}"
            if service["proto"] == "udp":
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
                sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
                sock.bind((service["address"], service["port"]))
                sock.setblocking(False)
                self.selector.register(sock, selectors.EVENT_READ, ("udp", service["target"], key))
            else:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((service["address"], service["port"]))
                sock.listen(512)
                sock.setblocking(False)
                self.selector.register(sock, selectors.EVENT_READ,
                                       ("listen", service["target"], key))
        control = config["control"]
        if os.path.exists(control):
            os.unlink(control)
        self.dump = config["dump"]
        self.control = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.control.bind(control)
        self.control.setblocking(False)
        self.selector.register(self.control, selectors.EVENT_READ, ("control", "", ""))

    def count(self, target: str, key: str, source: str, size: int) -> dict[str, int]:
        entry = self.counters[target][key][source]
        entry["packets"] += 1
        entry["bytes"] += size
        return entry

    def run(self) -> None:
        while self.running:
            for key, _ in self.selector.select(timeout=0.5):
                kind, target, service = key.data
                sock = key.fileobj
                try:
                    getattr(self, f"_on_{kind}")(sock, target, service)
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    if kind == "tcp":
                        self._close(sock)

    def _interface(self, ancillary: list) -> str:
        for level, kind, data in ancillary:
            if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(data) >= 4:
                index = int.from_bytes(data[:4], sys.byteorder)
                if index not in self._ifnames:
                    try:
                        name = socket.if_indextoname(index)
                    except OSError:
                        name = str(index)
                    self._ifnames[index] = self.interfaces.get(name, name)
                return self._ifnames[index]
        return ""

    def _on_udp(self, sock: socket.socket, target: str, service: str) -> None:
        space = socket.CMSG_SPACE(12)
        for _ in range(256):
            try:
                data, ancillary, _flags, addr = sock.recvmsg(65535, space)
            except BlockingIOError:
                return
            now_ns = time.monotonic_ns()
            self.count(target, service, addr[0], len(data))
            flow = decode(data)
            if flow is not None:  # measured, not echoed
                flow_id, _device, seq, sent_ns = flow
                per_source = self.flows[target][service][addr[0]]
                stats = per_source.get(flow_id)
                if stats is None:
                    stats = per_source[flow_id] = FlowStats()
                stats.add(seq, sent_ns, now_ns, len(data), self._interface(ancillary))
                continue
            try:
                sock.sendto(data, addr)
            except OSError:
                pass

    def _on_listen(self, sock: socket.socket, target: str, service: str) -> None:
        conn, addr = sock.accept()
        conn.setblocking(False)
        entry = self.counters[target][service][addr[0]]
        entry["connections"] = entry.get("connections", 0) + 1
        self.selector.register(conn, selectors.EVENT_READ, ("tcp", target, service))

    def _on_tcp(self, sock: socket.socket, target: str, service: str) -> None:
        data = sock.recv(65535)
        if not data:
            self._close(sock)
            return
        peer = sock.getpeername()[0]
        self.count(target, service, peer, len(data))
        sock.sendall(data)

    def _close(self, sock: socket.socket) -> None:
        try:
            self.selector.unregister(sock)
        except (KeyError, ValueError):
            pass
        sock.close()

    def _on_control(self, sock: socket.socket, _target: str, _service: str) -> None:
        data, addr = sock.recvfrom(1024)
        if data.strip() == b"counters" and addr:
            tmp = self.dump + ".tmp"
            flows = {t: {s: {src: {str(f): st.as_json() for f, st in per.items()}
                             for src, per in by_src.items()}
                         for s, by_src in by_svc.items()}
                     for t, by_svc in self.flows.items()}
            with open(tmp, "w", encoding="utf-8") as handle:
                json.dump({"services": self.counters, "flows": flows}, handle)
            os.replace(tmp, self.dump)
            sock.sendto(b"ok", addr)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m pytest_iotemu.lab.responder CONFIG.json", file=sys.stderr)
        return 2
    with open(args[0], encoding="utf-8") as handle:
        config = json.load(handle)
    responder = Responder(config)

    def stop(_signum: int, _frame: object) -> None:
        responder.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("ready", flush=True)
    responder.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
