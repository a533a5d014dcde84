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
from ..protocols.apps import lldp_system_name
from .peers import TcpSession, answer_udp, link_local_kind

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
        self.kinds: dict[tuple[str, str], str] = {}  # (target, service) -> peer kind
        self.sessions: dict[socket.socket, TcpSession] = {}
        for service in config["services"]:
            key = f"{service['port']}/{service['proto']}"
            self.kinds[(service["target"], key)] = service.get("kind", "echo")
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
        if config.get("watch"):  # link-local announcements on a LAN interface
            raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
            raw.bind((config["watch"], 0))
            raw.setblocking(False)
            self.selector.register(raw, selectors.EVENT_READ, ("watch", "lan", ""))
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
            reply = answer_udp(self.kinds.get((target, service), "echo"), data)
            if reply is None:
                continue
            try:
                sock.sendto(reply, addr)
            except OSError:
                pass

    def _on_watch(self, sock: socket.socket, target: str, _service: str) -> None:
        """mDNS (UDP 5353), SSDP (UDP 1900) and LLDP frames, per source MAC; LLDP's
        system name is kept."""
        for _ in range(256):
            try:
                frame = sock.recv(65535)
            except BlockingIOError:
                return
            kind = link_local_kind(frame)
            if kind is None:
                continue
            source = ":".join(f"{b:02x}" for b in frame[6:12])
            entry = self.count(target, kind, source, len(frame))
            if kind == "lldp":
                name = lldp_system_name(frame)
                if name:
                    entry["system_name"] = name

    def _on_listen(self, sock: socket.socket, target: str, service: str) -> None:
        conn, addr = sock.accept()
        conn.setblocking(False)
        entry = self.counters[target][service][addr[0]]
        entry["connections"] = entry.get("connections", 0) + 1
        self.sessions[conn] = TcpSession(self.kinds.get((target, service), "echo"))
        self.selector.register(conn, selectors.EVENT_READ, ("tcp", target, service))

    def _on_tcp(self, sock: socket.socket, target: str, service: str) -> None:
        data = sock.recv(65535)
        if not data:
            self._close(sock)
            return
        peer = sock.getpeername()[0]
        entry = self.count(target, service, peer, len(data))
        session = self.sessions.get(sock) or TcpSession("echo")
        reply, close = session.feed(data)
        for name, value in session.seen:  # what the peer learnt, per source
            if name == "uploaded":
                entry["uploaded"] = entry.get("uploaded", 0) + value
            else:
                seen = entry.setdefault(f"{name}s", [])
                seen.append(value)
                del seen[:-20]  # the last twenty
                entry[f"{name}_count"] = entry.get(f"{name}_count", 0) + 1
        session.seen.clear()
        if reply:
            sock.sendall(reply)
        if close:
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def _close(self, sock: socket.socket) -> None:
        try:
            self.selector.unregister(sock)
        except (KeyError, ValueError):
            pass
        self.sessions.pop(sock, None)
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

    class Stop(Exception):
        pass

    def stop(_signum: int, _frame: object) -> None:
        raise Stop  # out of select() at once (it would otherwise be resumed, PEP 475)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("ready", flush=True)
    try:
        responder.run()
    except Stop:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
