"""A minimal user-space TCP for one emulated device's outgoing connection (sans-I/O).

What a branch test needs from TCP and no more: the three-way handshake, data in order
with retransmission on timeout, FIN in both directions, RST. Every connection attempt
ends with one **outcome**:

- ``connected``: the handshake completed;
- ``refused``: the target itself answered with a reset (port closed, path open);
- ``rejected``: the branch answered instead (a reset from the next hop, or an ICMP
  error), see ``reset_origin``;
- ``timeout``: nothing came back.

The engine's interface carries no IP address, so the kernel never answers for our
devices: this core is the only TCP they have.
"""
from __future__ import annotations

from enum import Enum
from typing import Callable

from .core import LocalProtocolError, Outbox
from .frames import (ACK, ETH_P_IP, FIN, IPPROTO_TCP, PSH, RST, SYN, TcpSegment, ethernet,
                     ipv4, tcp)

MSS = 1460
INITIAL_TTLS = (64, 128, 255)  # what hosts start with: a reset with one of these
# has crossed no router


class TcpState(str, Enum):
    CLOSED = "CLOSED"
    SYN_SENT = "SYN_SENT"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN_WAIT_1"
    FIN_WAIT_2 = "FIN_WAIT_2"
    CLOSING = "CLOSING"
    TIME_WAIT = "TIME_WAIT"
    CLOSE_WAIT = "CLOSE_WAIT"
    LAST_ACK = "LAST_ACK"


S = TcpState
# (state, what happened) -> next state; anything else is LocalProtocolError (our misuse)
# or, for what the peer sent, ignored and counted
TRANSITIONS: dict[tuple[TcpState, str], TcpState] = {
    (S.CLOSED, "connect"): S.SYN_SENT,
    (S.SYN_SENT, "syn_ack"): S.ESTABLISHED,
    (S.SYN_SENT, "reset"): S.CLOSED,
    (S.SYN_SENT, "icmp_error"): S.CLOSED,
    (S.SYN_SENT, "give_up"): S.CLOSED,
    (S.ESTABLISHED, "close"): S.FIN_WAIT_1,
    (S.ESTABLISHED, "fin"): S.CLOSE_WAIT,
    (S.FIN_WAIT_1, "fin_acked"): S.FIN_WAIT_2,
    (S.FIN_WAIT_1, "fin"): S.CLOSING,
    (S.FIN_WAIT_1, "fin_and_fin_acked"): S.TIME_WAIT,
    (S.FIN_WAIT_2, "fin"): S.TIME_WAIT,
    (S.CLOSING, "fin_acked"): S.TIME_WAIT,
    (S.CLOSE_WAIT, "close"): S.LAST_ACK,
    (S.LAST_ACK, "fin_acked"): S.CLOSED,
    (S.TIME_WAIT, "time_wait_over"): S.CLOSED,
}
# from every state but CLOSED: a reset, an abort or too many retransmissions end it
for _state in TcpState:
    if _state is not S.CLOSED:
        for _what in ("reset", "abort", "give_up"):
            TRANSITIONS.setdefault((_state, _what), S.CLOSED)


def _after(a: int, b: int) -> bool:
    """Sequence number ``a`` is after ``b`` (mod 2^32)."""
    return 0 < ((a - b) & 0xFFFFFFFF) < 0x80000000


class TcpConnection:
    """One active-open connection from ``(src, sport)`` to ``(dst, dport)``, its frames
    sent through ``hop_mac`` (the router's MAC, or the target's when on-link).

    ``on_outcome(conn, outcome, now)`` is called once; ``received`` holds the peer's
    data in order; ``state`` follows ``TRANSITIONS``.
    """

    def __init__(self, mac: bytes, src: bytes, sport: int, dst: bytes, dport: int,
                 hop_mac: bytes, outbox: Outbox, *, iss: int, routed: bool = True,
                 connect_timeout: float = 3.0, rto: float = 1.0, max_retries: int = 5,
                 time_wait: float = 1.0, fin_timeout: float = 10.0, tos: int = 0,
                 on_outcome: Callable[["TcpConnection", str, float], None] | None = None):
        self.mac, self.src, self.sport, self.dst, self.dport = mac, src, sport, dst, dport
        self.hop_mac = hop_mac
        self.out = outbox
        self.routed = routed  # through a router: a reset that crossed none is the branch's
        self.connect_timeout = connect_timeout
        self.base_rto = rto
        self.max_retries = max_retries
        self.time_wait = time_wait
        self.fin_timeout = fin_timeout  # how long FIN_WAIT_2 waits for the peer's FIN
        self.tos = tos
        self.on_outcome = on_outcome
        self.state = S.CLOSED
        self.iss = iss & 0xFFFFFFFF
        self.snd_una = self.snd_nxt = self.iss
        self.snd_wnd = MSS
        self.peer_mss = 536
        self.rcv_nxt = 0
        self.sendbuf = bytearray()  # from snd_una on: in flight, then not yet sent
        self.fin_queued = False
        self.fin_sent = False
        self.received = bytearray()
        self.outcome: str | None = None
        self.detail = ""
        self.started: float | None = None
        self.rtt: float | None = None
        self.reset_ttl: int | None = None
        self._timer: float | None = None
        self._retries = 0
        self._rto = rto
        self._ident = iss & 0xFFFF

    # --- the state table ---------------------------------------------------------------
    def _go(self, what: str) -> None:
        new = TRANSITIONS.get((self.state, what))
        if new is None:
            raise LocalProtocolError(f"TCP: {what} is not allowed in {self.state.value}")
        self.state = new
        if new is S.CLOSED:
            self._timer = None

    def _finish(self, outcome: str, now: float, detail: str = "") -> None:
        if self.outcome is None:
            self.outcome = outcome
            self.detail = detail
            if self.on_outcome is not None:
                self.on_outcome(self, outcome, now)

    # --- what the device does ----------------------------------------------------------
    def connect(self, now: float) -> None:
        self._go("connect")
        self.started = now
        self._send(self.iss, 0, SYN, mss=MSS)
        self.snd_nxt = (self.iss + 1) & 0xFFFFFFFF
        self._timer = now + self._rto

    def send(self, data: bytes, now: float) -> None:
        if self.state not in (S.ESTABLISHED, S.CLOSE_WAIT) or self.fin_queued:
            raise LocalProtocolError(f"TCP: cannot send in {self.state.value}")
        self.sendbuf += data
        self._push(now)

    def close(self, now: float) -> None:
        """Send FIN once the data before it is out."""
        if self.state in (S.ESTABLISHED, S.CLOSE_WAIT):
            self.fin_queued = True
            self._go("close")
            self._push(now)
        elif self.state is S.SYN_SENT:
            self.abort(now)

    def abort(self, now: float) -> None:
        if self.state is not S.CLOSED:
            if self.state is not S.SYN_SENT:
                self._send(self.snd_nxt, self.rcv_nxt, RST | ACK)
            self._go("abort")
            self._finish("timeout", now, "aborted")

    # --- segments in --------------------------------------------------------------------
    def handle(self, seg: TcpSegment, now: float) -> str | None:
        """A segment for this connection; returns why it was ignored, or None."""
        flags = seg.flags
        if self.state is S.CLOSED:
            return "tcp_closed"
        if self.state is S.SYN_SENT:
            return self._handle_syn_sent(seg, now)
        if flags & RST:
            if not self._in_window(seg.seq):
                return "tcp_reset_out_of_window"
            self._go("reset")
            self._finish("timeout", now, "reset after connecting")
            return None
        if flags & ACK:
            self._on_ack(seg, now)
        data = seg.data
        if data or flags & FIN:
            if seg.seq != self.rcv_nxt:
                self._send(self.snd_nxt, self.rcv_nxt, ACK)  # out of order: ask again
                return "tcp_out_of_order"
            if data:
                self.received += data
                self.rcv_nxt = (self.rcv_nxt + len(data)) & 0xFFFFFFFF
            if flags & FIN:
                self.rcv_nxt = (self.rcv_nxt + 1) & 0xFFFFFFFF
                if self.state is S.FIN_WAIT_1 and self._fin_acked():
                    self._go("fin_and_fin_acked")
                elif self.state in (S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2):
                    self._go("fin")
                if self.state is S.TIME_WAIT:
                    self._timer = now + self.time_wait
            self._send(self.snd_nxt, self.rcv_nxt, ACK)
        return None

    def _handle_syn_sent(self, seg: TcpSegment, now: float) -> str | None:
        flags = seg.flags
        if flags & ACK and seg.ack != self.snd_nxt:
            return "tcp_bad_ack"
        if flags & RST:
            if not flags & ACK:
                return "tcp_reset_without_ack"
            self.reset_ttl = seg.ip.ttl
            self._go("reset")
            # nftables' `reject with tcp reset` answers in the target's name; only the
            # TTL tells it apart: the branch's reset has crossed no router
            if self.routed and seg.ip.ttl in INITIAL_TTLS:
                self._finish("rejected", now, f"reset from the next hop (ttl {seg.ip.ttl})")
            else:
                self._finish("refused", now, f"reset from the target (ttl {seg.ip.ttl})")
            return None
        if not (flags & SYN and flags & ACK):
            return "tcp_unexpected_in_syn_sent"
        self.rcv_nxt = (seg.seq + 1) & 0xFFFFFFFF
        self.snd_una = seg.ack
        self.snd_wnd = max(1, seg.window)
        self.peer_mss = seg.mss or 536
        self.rtt = now - self.started if self.started is not None else None
        self._retries, self._rto, self._timer = 0, self.base_rto, None
        self._go("syn_ack")
        self._send(self.snd_nxt, self.rcv_nxt, ACK)
        self._finish("connected", now)
        self._push(now)
        return None

    def icmp_error(self, kind: int, code: int, origin: bytes, now: float) -> str | None:
        if self.state is not S.SYN_SENT:
            return "icmp_error_after_connect"
        self._go("icmp_error")
        from .frames import ip_text
        self._finish("rejected", now, f"ICMP {kind}/{code} from {ip_text(origin)}")
        return None

    def _in_window(self, seq: int) -> bool:
        return seq == self.rcv_nxt or _after(seq, self.rcv_nxt) and \
            not _after(seq, (self.rcv_nxt + 65535) & 0xFFFFFFFF)

    def _fin_acked(self) -> bool:
        return self.fin_sent and self.snd_una == self.snd_nxt

    def _on_ack(self, seg: TcpSegment, now: float) -> None:
        ack = seg.ack
        if _after(ack, self.snd_una) and not _after(ack, self.snd_nxt):
            acked = (ack - self.snd_una) & 0xFFFFFFFF
            data_acked = min(acked, len(self.sendbuf))
            del self.sendbuf[:data_acked]
            self.snd_una = ack
            self._retries, self._rto = 0, self.base_rto
            self._timer = None if self.snd_una == self.snd_nxt else now + self._rto
            if self._fin_acked() and not seg.flags & FIN:
                if self.state in (S.FIN_WAIT_1, S.CLOSING, S.LAST_ACK):
                    self._go("fin_acked")
                    if self.state is S.TIME_WAIT:
                        self._timer = now + self.time_wait
                    elif self.state is S.FIN_WAIT_2:
                        self._timer = now + self.fin_timeout
        self.snd_wnd = max(1, seg.window)
        self._push(now)

    # --- segments out -------------------------------------------------------------------
    def _send(self, seq: int, ack: int, flags: int, payload: bytes = b"",
              mss: int | None = None) -> None:
        self._ident = (self._ident + 1) & 0xFFFF
        segment = tcp(self.src, self.dst, self.sport, self.dport, seq, ack, flags, payload,
                      mss=mss)
        self.out.send(ethernet(self.hop_mac, self.mac, ETH_P_IP,
                               ipv4(self.src, self.dst, IPPROTO_TCP, segment,
                                    ident=self._ident, tos=self.tos, dont_fragment=True)))

    def _push(self, now: float) -> None:
        """Send what the peer's window allows, then the FIN when everything is out."""
        if self.state not in (S.ESTABLISHED, S.CLOSE_WAIT, S.FIN_WAIT_1, S.LAST_ACK,
                              S.CLOSING):
            return
        mss = min(MSS, self.peer_mss)
        in_flight = (self.snd_nxt - self.snd_una) & 0xFFFFFFFF
        if self.fin_sent:
            return
        while in_flight < len(self.sendbuf) and in_flight < self.snd_wnd:
            chunk = bytes(self.sendbuf[in_flight:in_flight + min(mss, self.snd_wnd - in_flight)])
            self._send(self.snd_nxt, self.rcv_nxt, ACK | PSH, chunk)
            self.snd_nxt = (self.snd_nxt + len(chunk)) & 0xFFFFFFFF
            in_flight += len(chunk)
            if self._timer is None:
                self._timer = now + self._rto
        if self.fin_queued and in_flight == len(self.sendbuf):
            self._send(self.snd_nxt, self.rcv_nxt, FIN | ACK)
            self.snd_nxt = (self.snd_nxt + 1) & 0xFFFFFFFF
            self.fin_sent = True
            if self._timer is None:
                self._timer = now + self._rto

    # --- time ---------------------------------------------------------------------------
    def next_timer(self) -> float | None:
        return self._timer

    def on_timer(self, now: float) -> None:
        if self._timer is None or now < self._timer:
            return
        if self.state is S.TIME_WAIT:
            self._go("time_wait_over")
            return
        if self.state is S.FIN_WAIT_2:
            self._go("give_up")  # the peer never closed its side
            return
        if self.state is S.SYN_SENT:
            assert self.started is not None
            if now - self.started >= self.connect_timeout:
                self._go("give_up")
                self._finish("timeout", now, f"no answer in {self.connect_timeout:g}s")
                return
            self._send(self.iss, 0, SYN, mss=MSS)  # retransmit the SYN
            self._rto *= 2
            self._timer = min(now + self._rto, self.started + self.connect_timeout)
            return
        self._retries += 1
        if self._retries > self.max_retries:
            self._go("give_up")
            return
        # go back to the oldest unacknowledged byte (the FIN counts as one)
        self.snd_nxt = self.snd_una
        self.fin_sent = False
        self._rto *= 2
        self._timer = None
        self._push(now)
        if self._timer is None:
            self._timer = now + self._rto
