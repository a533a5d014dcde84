"""ICMP echo for emulated devices: replying to pings, and pinging with RTT."""
from __future__ import annotations

import struct

from .core import LocalProtocolError, Outbox
from .frames import (ETH_P_IP, IPPROTO_ICMP, Ipv4Packet, checksum, ethernet, icmp_echo,
                     ip_text, ipv4)

ECHO_REPLY, ECHO_REQUEST = 0, 8


def echo_reply_for(packet: Ipv4Packet, mac: bytes, ip: bytes) -> bytes | None:
    """The reply to an echo request for ``ip``; None if ``packet`` is not one (or is
    malformed: a bad ICMP checksum is not answered)."""
    if packet.proto != IPPROTO_ICMP or packet.dst != ip:
        return None
    data = packet.payload
    if len(data) < 8 or data[0] != ECHO_REQUEST or data[1] != 0 or checksum(data) != 0:
        return None
    ident, seq = struct.unpack_from("!HH", data, 4)
    reply = icmp_echo(ECHO_REPLY, ident, seq, bytes(data[8:]))
    return ethernet(packet.eth_src, mac, ETH_P_IP, ipv4(ip, packet.src, IPPROTO_ICMP, reply))


class Pinger:
    """Echo requests from one device with their round-trip times.

    ``ping()`` sends; ``handle()`` matches a reply by identifier and sequence and emits
    ``icmp.reply`` with ``rtt``; ``on_timer()`` emits ``icmp.timeout`` for the lost ones.
    """

    def __init__(self, mac: bytes, outbox: Outbox, ident: int, timeout: float = 1.0):
        self.mac = mac
        self.out = outbox
        self.ident = ident & 0xFFFF
        self.timeout = timeout
        self._seq = 0
        self._pending: dict[int, tuple[float, bytes]] = {}  # seq -> (sent, destination)

    def ping(self, src_ip: bytes | None, dst_ip: bytes, dst_mac: bytes, now: float,
             payload: bytes = b"iotemu-ping-0123456789abcdefghijklmn") -> int:
        if src_ip is None:
            raise LocalProtocolError("ping needs the device's address: it is not bound")
        self._seq = (self._seq + 1) & 0xFFFF
        message = icmp_echo(ECHO_REQUEST, self.ident, self._seq, payload)
        self.out.send(ethernet(dst_mac, self.mac, ETH_P_IP,
                               ipv4(src_ip, dst_ip, IPPROTO_ICMP, message)))
        self._pending[self._seq] = (now, dst_ip)
        return self._seq

    def handle(self, packet: Ipv4Packet, now: float) -> str | None:
        data = packet.payload
        if len(data) < 8 or data[0] != ECHO_REPLY:
            return "not_echo_reply"
        if checksum(data) != 0:
            return "bad_icmp_checksum"
        ident, seq = struct.unpack_from("!HH", data, 4)
        if ident != self.ident or seq not in self._pending:
            return "unknown_echo_reply"
        sent, dst = self._pending.pop(seq)
        if packet.src != dst:
            self._pending[seq] = (sent, dst)
            return "echo_reply_from_other_host"
        self.out.emit("icmp.reply", now, seq=seq, rtt=now - sent, src=ip_text(packet.src))
        return None

    def next_timer(self) -> float | None:
        if not self._pending:
            return None
        return min(sent for sent, _ in self._pending.values()) + self.timeout

    def on_timer(self, now: float) -> None:
        for seq, (sent, dst) in list(self._pending.items()):
            if now - sent >= self.timeout:
                del self._pending[seq]
                self.out.emit("icmp.timeout", now, seq=seq, dst=ip_text(dst))
