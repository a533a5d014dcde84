"""One device's probes (sans-I/O): TCP, UDP and ICMP, with next-hop resolution through
the shared ARP cache. (Flows, which many devices send on one schedule, live in
``flows.py`` and are driven by the engine.)

A probe ends with one ``probe.result`` event:

==============  =================================================================
``connected``   TCP: the handshake completed
``refused``     TCP: the target itself answered with a reset (port closed, path open)
``answered``    UDP: the target's responder answered; ICMP: an echo reply came back
``rejected``    the branch answered instead: a reset from the next hop, or an ICMP error
``timeout``     nothing came back within the probe's timeout
``unresolved``  the next hop never answered ARP (the device could not send at all)
``no_route``    the device's lease has no router for that destination
==============  =================================================================
"""
from __future__ import annotations

import ipaddress
import random
import struct
from dataclasses import dataclass
from typing import Any, Callable

from .arp import ArpCache, request_for
from .core import Outbox
from .frames import (ETH_P_IP, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IcmpError, Ipv4Packet,
                     TcpSegment, UdpDatagram, checksum, ethernet, icmp_echo, ip_text, ipv4,
                     udp)
from .tcp import TcpConnection

ECHO_REQUEST, ECHO_REPLY = 8, 0
PROBE_DATA = b"iotemu-probe\n"
ARP_RETRY = 1.0


@dataclass
class Job:
    """A probe waiting for its next hop, or under way."""

    kind: str  # tcp | udp | icmp
    key: Any  # the probe id the engine gave
    dst: bytes
    port: int
    started: float
    timeout: float
    hop: bytes | None = None
    hop_mac: bytes | None = None
    routed: bool = True
    sport: int = 0
    conn: TcpConnection | None = None
    params: dict | None = None
    sent_at: float = 0.0
    tries: int = 0
    done: bool = False
    # an application exchange (generators): what to send, the IP TOS byte, whether an
    # answer is awaited, and who is told the outcome with the answer's bytes instead of a
    # probe.result event
    payload: bytes = PROBE_DATA
    tos: int = 0
    expect_reply: bool = True
    on_done: Callable[["Job", str, dict, bytes], None] | None = None
    reply: bytes = b""


class Traffic:
    def __init__(self, mac: bytes, outbox: Outbox, arp_cache: ArpCache, rng: random.Random,
                 device_id: int = 0):
        self.mac = mac
        self.out = outbox
        self.arp = arp_cache
        self.rng = rng
        self.device_id = device_id
        self.jobs: list[Job] = []
        self._port = 32768 + rng.randrange(28000)
        self._ident = rng.getrandbits(16)

    def __bool__(self) -> bool:
        return bool(self.jobs)

    # --- starting ------------------------------------------------------------------------
    def next_port(self) -> int:
        """An ephemeral port no job of this device uses."""
        return self._next_port()

    def _next_port(self) -> int:
        in_use = {job.sport for job in self.jobs}
        while True:
            self._port = 32768 + (self._port - 32768 + 1) % 28232
            if self._port not in in_use:
                return self._port

    def _route(self, job: Job, lease: dict) -> bool:
        """Sets the job's next hop; False when there is none."""
        hop = next_hop(job.dst, lease)
        if hop is None:
            return False
        job.hop, job.routed = hop
        return True

    def probe(self, key: Any, proto: str, dst: bytes, port: int, address: bytes,
              lease: dict, now: float, timeout: float = 3.0) -> None:
        job = Job(proto, key, dst, port, now, timeout)
        job.sport = self._next_port()
        self._begin(job, address, lease, now)

    def exchange(self, key: Any, proto: str, dst: bytes, port: int, address: bytes,
                 lease: dict, now: float, *, payload: bytes,
                 on_done: Callable[[Job, str, dict, bytes], None], timeout: float = 3.0,
                 tos: int = 0, expect_reply: bool = True, sport: int | None = None) -> Job:
        """An application exchange: UDP, a datagram (and its answer, unless
        ``expect_reply`` is false); TCP, a connection that sends ``payload``, half-closes
        and reads until the peer closes. ``on_done(job, result, data, reply)`` gets the
        outcome (``answered``/``sent``/``connected``, or why not) and the bytes read."""
        job = Job(proto, key, dst, port, now, timeout, payload=payload, tos=tos,
                  expect_reply=expect_reply, on_done=on_done)
        job.sport = sport if sport is not None else self._next_port()
        self._begin(job, address, lease, now)
        return job

    def _begin(self, job: Job, address: bytes, lease: dict, now: float) -> None:
        self.jobs.append(job)
        job.params = dict(job.params or {}, src=address)
        if not self._route(job, lease):
            self._result(job, "no_route", now, detail=f"no router for {ip_text(job.dst)}")
            return
        self._resolve(job, now)

    def _resolve(self, job: Job, now: float) -> None:
        assert job.hop is not None
        mac = self.arp.lookup(job.hop, now)
        if mac is None:
            if self.arp.needs_request(job.hop, now, ARP_RETRY):
                self.out.send(request_for(self.mac, job.params["src"], job.hop))
            return
        job.hop_mac = mac
        self._go(job, now)

    def _go(self, job: Job, now: float) -> None:
        src = job.params["src"]
        if job.kind == "tcp":
            job.conn = TcpConnection(self.mac, src, job.sport, job.dst, job.port, job.hop_mac,
                                     self.out, iss=self.rng.getrandbits(32), routed=job.routed,
                                     connect_timeout=max(0.1, job.timeout - (now - job.started)),
                                     tos=job.tos,
                                     on_outcome=lambda conn, outcome, when, job=job:
                                     self._tcp_outcome(job, conn, outcome, when))
            job.conn.connect(now)
        elif job.kind == "udp":
            self._send_udp(job, now)
        else:
            self._send_echo(job, now)

    def _send_udp(self, job: Job, now: float) -> None:
        src = job.params["src"]
        job.tries += 1
        job.sent_at = now
        self._ident = (self._ident + 1) & 0xFFFF
        self.out.send(ethernet(job.hop_mac, self.mac, ETH_P_IP,
                               ipv4(src, job.dst, IPPROTO_UDP,
                                    udp(src, job.dst, job.sport, job.port, job.payload),
                                    ident=self._ident, tos=job.tos)))
        if not job.expect_reply:
            self._result(job, "sent", now)

    def _send_echo(self, job: Job, now: float) -> None:
        src = job.params["src"]
        job.tries += 1
        job.sent_at = now
        self._ident = (self._ident + 1) & 0xFFFF
        message = icmp_echo(ECHO_REQUEST, job.sport, job.tries, PROBE_DATA)
        self.out.send(ethernet(job.hop_mac, self.mac, ETH_P_IP,
                               ipv4(src, job.dst, IPPROTO_ICMP, message, ident=self._ident)))

    # --- results ---------------------------------------------------------------------------
    def _result(self, job: Job, result: str, now: float, **data: Any) -> None:
        if job.done:
            return
        job.done = True
        if job.on_done is not None:
            data["rtt"] = round(now - job.started, 6)
            job.on_done(job, result, data, job.reply)
            return
        self.out.emit("probe.result", now, probe=job.key, proto=job.kind,
                      target=ip_text(job.dst), port=job.port, result=result,
                      rtt=round(now - job.started, 6), **data)

    def _tcp_outcome(self, job: Job, conn: TcpConnection, outcome: str, now: float) -> None:
        data: dict[str, Any] = {}
        if conn.detail:
            data["detail"] = conn.detail
        if conn.reset_ttl is not None:
            data["ttl"] = conn.reset_ttl
        if outcome == "connected" and job.on_done is not None:
            conn.send(job.payload, now)  # then read the answer until the peer closes
            conn.close(now)
            return
        self._result(job, outcome, now, **data)
        if outcome == "connected":
            conn.send(PROBE_DATA, now)  # the responder counts it; then a clean close
            conn.close(now)

    # --- frames in -------------------------------------------------------------------------
    def resolving(self) -> bool:
        """Some job still waits for its next hop's MAC."""
        return any(job.hop_mac is None and not job.done for job in self.jobs)

    def on_arp(self, now: float) -> None:
        for job in self.jobs:
            if job.hop_mac is None and not job.done and job.hop is not None:
                mac = self.arp.lookup(job.hop, now)
                if mac is not None:
                    job.hop_mac = mac
                    self._go(job, now)

    def handle_tcp(self, seg: TcpSegment, now: float) -> str | None:
        for job in self.jobs:
            conn = job.conn
            if conn is not None and conn.sport == seg.dport and conn.dport == seg.sport \
                    and conn.dst == seg.ip.src:
                reason = conn.handle(seg, now)
                self._exchange_over(job, now)
                self._reap(now)
                return reason
        return "tcp_no_connection"

    def handle_udp(self, datagram: UdpDatagram, now: float) -> str | None:
        for job in self.jobs:
            if job.kind == "udp" and not job.done and job.sport == datagram.dport \
                    and job.port == datagram.sport and job.dst == datagram.ip.src:
                job.reply = bytes(datagram.data[:2048])
                self._result(job, "answered", now)
                self._reap(now)
                return None
        return "udp_not_handled"

    def handle_echo_reply(self, packet: Ipv4Packet, now: float) -> str | None:
        data = packet.payload
        if len(data) < 8 or checksum(data) != 0:
            return "bad_icmp_checksum"
        ident, _seq = struct.unpack_from("!HH", data, 4)
        for job in self.jobs:
            if job.kind == "icmp" and not job.done and job.sport == ident \
                    and job.dst == packet.src:
                self._result(job, "answered", now)
                self._reap(now)
                return None
        return "unknown_echo_reply"

    def handle_icmp_error(self, error: IcmpError, now: float) -> str | None:
        proto = {IPPROTO_TCP: "tcp", IPPROTO_UDP: "udp", IPPROTO_ICMP: "icmp"}.get(
            error.inner_proto)
        for job in self.jobs:
            if job.done or job.kind != proto:
                continue
            if job.dst != error.inner_dst or job.sport != error.sport and proto != "icmp":
                continue
            if job.kind == "tcp" and job.conn is not None:
                reason = job.conn.icmp_error(error.type, error.code, error.ip.src, now)
            else:
                self._result(job, "rejected", now, detail=f"ICMP {error.type}/{error.code} "
                             f"from {ip_text(error.ip.src)}")
                reason = None
            self._reap(now)
            return reason
        return "icmp_error_not_ours"

    # --- time ------------------------------------------------------------------------------
    def next_timer(self) -> float | None:
        best: float | None = None
        for job in self.jobs:
            when = self._job_timer(job)
            if when is not None and (best is None or when < best):
                best = when
        return best

    def _job_timer(self, job: Job) -> float | None:
        if job.conn is not None:
            when = job.conn.next_timer()
            if job.on_done is not None and not job.done and job.conn.outcome == "connected":
                limit = job.started + job.timeout * 2
                when = limit if when is None else min(when, limit)
            return when
        if job.done:
            return None
        if job.hop_mac is None:
            return min(job.started + job.timeout, self._arp_retry(job))
        if job.kind in ("udp", "icmp"):
            return min(job.started + job.timeout, job.sent_at + job.timeout / 3)
        return None

    def _arp_retry(self, job: Job) -> float:
        asked = self.arp.asked_at(job.hop) if job.hop is not None else None
        return (asked if asked is not None else job.started) + ARP_RETRY

    def on_timer(self, now: float) -> None:
        for job in list(self.jobs):
            if job.conn is not None:
                job.conn.on_timer(now)
                self._exchange_over(job, now)
                continue
            if job.done:
                continue
            if now >= job.started + job.timeout:
                if job.hop_mac is None:
                    self._result(job, "unresolved", now,
                                 detail=f"no ARP answer from {ip_text(job.hop or b'')}")
                else:
                    self._result(job, "timeout", now)
            elif job.hop_mac is None:
                self._resolve(job, now)
            elif now >= job.sent_at + job.timeout / 3:
                (self._send_udp if job.kind == "udp" else self._send_echo)(job, now)
        self._reap(now)

    def _exchange_over(self, job: Job, now: float) -> None:
        """A connected exchange ends when the connection has (or the time is up)."""
        conn = job.conn
        if job.done or job.on_done is None or conn is None or conn.outcome != "connected":
            return
        from .tcp import TcpState
        if conn.state in (TcpState.TIME_WAIT, TcpState.CLOSED) or \
                now - job.started >= job.timeout * 2:
            job.reply = bytes(conn.received[:4096])
            self._result(job, "connected", now)

    def _reap(self, now: float) -> None:
        """Forget finished jobs (a TCP connection once it has closed)."""
        from .tcp import TcpState
        self.jobs = [job for job in self.jobs
                     if not job.done or (job.conn is not None
                                         and job.conn.state is not TcpState.CLOSED)]


def next_hop(dst: bytes, lease: dict) -> tuple[bytes, bool] | None:
    """(the next hop, routed or not) for ``dst`` from a lease: the destination itself
    inside the leased subnet, else the first router; None without one."""
    from .dhcp import network_of
    network = network_of(lease)
    if network is not None and ipaddress.IPv4Address(dst) in network:
        return dst, False
    routers = lease.get("router") or []
    if not routers:
        return None
    return bytes(int(part) for part in routers[0].split(".")), True
