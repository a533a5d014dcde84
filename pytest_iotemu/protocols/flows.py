"""Sequence-numbered UDP flows: the sender (sans-I/O, one per device and flow) and the
receiver's statistics (used by the lab's responder, or any host running it).

Every datagram starts with a 28-byte header, then padding up to the flow's size::

    magic "IOTF" | flow id u32 | device id u32 | seq u32 | send time u64 (ns) | size u32

The send time is the sender's monotonic clock. The receiver never compares it with its
own clock directly: jitter (RFC 3550) uses differences of transit times, and gaps use
differences of send times, so an offset between two hosts' clocks cancels out.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from .core import Outbox
from .frames import (ETH_LEN, ETH_P_IP, IP_LEN, IPPROTO_UDP, UDP_LEN, _pseudo_sum, _sum16,
                     checksum, ethernet, fold, ipv4)

MAGIC = b"IOTF"
HEADER = struct.Struct("!4sIIIQI")
MIN_SIZE = HEADER.size
MAX_SIZE = 1472  # one Ethernet frame
MAX_BURST = 256  # datagrams per device per wake-up, so one device cannot starve the rest


def encode(flow: int, device: int, seq: int, sent_ns: int, size: int) -> bytes:
    return HEADER.pack(MAGIC, flow, device, seq, sent_ns, size).ljust(size, b"\x00")


def decode(data: bytes | memoryview) -> tuple[int, int, int, int] | None:
    """(flow, device, seq, send time ns) of a flow datagram, or None if it is not one."""
    if len(data) < MIN_SIZE or bytes(data[:4]) != MAGIC:
        return None
    _magic, flow, device, seq, sent_ns, _size = HEADER.unpack_from(data)
    return flow, device, seq, sent_ns


class FlowSender:
    """``rate`` payload bits/s of ``size``-byte datagrams for ``duration`` seconds.

    The schedule is fixed from the start time: a wake-up sends every datagram that is due
    (at most ``MAX_BURST``), so a late wake-up catches up instead of lowering the rate.
    Frames are patched copies of one template: sequence, time, IP id and both checksums.
    """

    def __init__(self, flow: int, device: int, mac: bytes, src: bytes, sport: int,
                 dst: bytes, dport: int, hop_mac: bytes, outbox: Outbox, *, rate: float,
                 size: int, duration: float, start: float, tos: int = 0):
        if not MIN_SIZE <= size <= MAX_SIZE:
            raise ValueError(f"size: {MIN_SIZE} to {MAX_SIZE} bytes")
        if rate <= 0 or duration <= 0:
            raise ValueError("rate and duration: above zero")
        self.flow, self.device, self.size = flow, device, size
        self.out = outbox
        self.interval = size * 8 / rate
        self.total = max(1, int(duration / self.interval))
        self.start = start
        self.sent = 0
        self.bytes = 0
        self.done = False
        payload = encode(flow, device, 0, 0, size)
        segment = struct.pack("!HHHH", sport, dport, UDP_LEN + size, 0) + payload
        frame = ethernet(hop_mac, mac, ETH_P_IP,
                         ipv4(src, dst, IPPROTO_UDP, segment, tos=tos))
        self._frame = bytearray(frame)
        self._ip = ETH_LEN
        self._udp = ETH_LEN + IP_LEN
        self._data = self._udp + UDP_LEN
        # the checksums without the changing fields, summed once
        self._ip_base = _sum16(bytes(frame[ETH_LEN:ETH_LEN + 4]) + bytes(frame[ETH_LEN + 6:
                                                                             ETH_LEN + 10])
                               + bytes(frame[ETH_LEN + 12:ETH_LEN + IP_LEN]))
        self._udp_base = fold(_pseudo_sum(src, dst, IPPROTO_UDP, UDP_LEN + size)
                              + _sum16(segment[:6]) + _sum16(payload[:8])
                              + _sum16(payload[HEADER.size:]))
        self._ident = (device * 7919) & 0xFFFF

    def next_timer(self) -> float | None:
        return None if self.done else self.start + self.sent * self.interval

    def on_timer(self, now: float) -> None:
        if self.done:
            return
        frame, data = self._frame, self._data
        sent_ns = int(now * 1e9)
        # due: every datagram whose time (exactly as next_timer computes it) has come
        for _ in range(MAX_BURST):
            seq = self.sent
            if seq >= self.total or self.start + seq * self.interval > now:
                break
            struct.pack_into("!IQ", frame, data + 12, seq, sent_ns)
            self._ident = (self._ident + 1) & 0xFFFF
            struct.pack_into("!H", frame, self._ip + 4, self._ident)
            struct.pack_into("!H", frame, self._ip + 10, (~fold(self._ip_base + self._ident))
                             & 0xFFFF)
            struct.pack_into("!H", frame, self._udp + 6, 0)
            total = fold(self._udp_base + _sum16(frame[data + 8:data + HEADER.size]))
            struct.pack_into("!H", frame, self._udp + 6, ((~total) & 0xFFFF) or 0xFFFF)
            self.out.send(bytes(frame))
            self.sent += 1
            self.bytes += self.size
        if self.sent >= self.total:
            self.done = True


@dataclass
class FlowStats:
    """What a receiver saw of one flow from one source."""

    packets: int = 0
    bytes: int = 0
    duplicates: int = 0
    reordered: int = 0
    highest: int = -1
    first_ns: int = 0
    last_ns: int = 0
    jitter_ns: float = 0.0
    largest_gap_ns: int = 0  # largest send-time gap between consecutive sequence numbers
    gap_after: int = -1  # the sequence number after which that gap opened
    by_interface: dict[str, int] = field(default_factory=dict)
    _seen: bytearray = field(default_factory=bytearray, repr=False)
    _last_sent: int = 0
    _last_transit: int | None = None

    def add(self, seq: int, sent_ns: int, now_ns: int, size: int, interface: str = "") -> None:
        if seq >= (1 << 24):
            return  # beyond any flow we send; not worth a bitmap
        if seq >= len(self._seen) * 8:
            self._seen += bytes(max(seq // 8 + 1 - len(self._seen), len(self._seen)))
        if self._seen[seq >> 3] & (1 << (seq & 7)):
            self.duplicates += 1
            return
        self._seen[seq >> 3] |= 1 << (seq & 7)
        self.packets += 1
        self.bytes += size
        if interface:
            self.by_interface[interface] = self.by_interface.get(interface, 0) + 1
        if not self.first_ns:
            self.first_ns = now_ns
        self.last_ns = now_ns
        transit = now_ns - sent_ns
        if self._last_transit is not None:  # RFC 3550 section 6.4.1
            self.jitter_ns += (abs(transit - self._last_transit) - self.jitter_ns) / 16
        self._last_transit = transit
        if seq > self.highest:
            if self.highest >= 0 and sent_ns - self._last_sent > self.largest_gap_ns:
                self.largest_gap_ns = sent_ns - self._last_sent
                self.gap_after = self.highest
            self.highest = seq
            self._last_sent = sent_ns
        else:
            self.reordered += 1

    def as_json(self) -> dict[str, Any]:
        return {"packets": self.packets, "bytes": self.bytes, "duplicates": self.duplicates,
                "reordered": self.reordered, "highest": self.highest,
                "first_ns": self.first_ns, "last_ns": self.last_ns,
                "jitter": round(self.jitter_ns / 1e9, 6),
                "largest_gap": round(self.largest_gap_ns / 1e9, 6),
                "gap_after": self.gap_after, "by_interface": dict(self.by_interface)}


__all__ = ["FlowSender", "FlowStats", "MAGIC", "MAX_SIZE", "MIN_SIZE", "checksum", "decode",
           "encode"]
