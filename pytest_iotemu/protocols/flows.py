"""Sequence-numbered UDP flows: the sender side (sans-I/O: a schedule shared by every
device of a flow, frames handed to a sink) and the receiver's statistics (used by the lab's
responder, or any host running it).

Every datagram starts with a header, then padding up to the flow's size. From 28 bytes::

    magic "IOTF" | flow id u32 | device id u32 | seq u32 | send time u64 (ns) | size u32

and, for payloads of 20 to 27 bytes (64-byte frames), the compact form without device id
and size (the source address names the device)::

    magic "IOTc" | flow id u32 | seq u32 | send time u64 (ns)

The send time is the sender's monotonic clock. The receiver never compares it with its
own clock directly: jitter (RFC 3550) uses differences of transit times, and gaps use
differences of send times, so an offset between two hosts' clocks cancels out.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Callable

from .frames import (ETH_LEN, ETH_P_IP, IP_LEN, IPPROTO_UDP, UDP_LEN, _pseudo_sum, _sum16,
                     ethernet, fold, ipv4)

MAGIC, COMPACT_MAGIC = b"IOTF", b"IOTc"
HEADER = struct.Struct("!4sIIIQI")
COMPACT = struct.Struct("!4sIIQ")
MIN_SIZE = COMPACT.size  # 20: the payload of a 62-byte frame
_pack_seq_time = struct.Struct("!IQ").pack_into
_pack_csum = struct.Struct("!H").pack_into
MAX_SIZE = 1472  # one Ethernet frame
MAX_BURST = 64  # datagrams per device per wake-up, so a late wake-up cannot flood
FRAME_OVERHEAD = ETH_LEN + IP_LEN + UDP_LEN  # 42 bytes around the payload


def encode(flow: int, device: int, seq: int, sent_ns: int, size: int) -> bytes:
    if size < HEADER.size:
        return COMPACT.pack(COMPACT_MAGIC, flow, seq, sent_ns).ljust(size, b"\x00")
    return HEADER.pack(MAGIC, flow, device, seq, sent_ns, size).ljust(size, b"\x00")


def decode(data: bytes | memoryview) -> tuple[int, int, int, int] | None:
    """(flow, device, seq, send time ns) of a flow datagram, or None if it is not one
    (device is 0 in the compact form)."""
    if len(data) < MIN_SIZE:
        return None
    magic = bytes(data[:4])
    if magic == MAGIC and len(data) >= HEADER.size:
        _magic, flow, device, seq, sent_ns, _size = HEADER.unpack_from(data)
        return flow, device, seq, sent_ns
    if magic == COMPACT_MAGIC:
        _magic, flow, seq, sent_ns = COMPACT.unpack_from(data)
        return flow, 0, seq, sent_ns
    return None


def _words(value: int, count: int) -> int:
    """The sum of ``value``'s 16-bit words (its ``count`` lowest)."""
    total = 0
    for _ in range(count):
        total += value & 0xFFFF
        value >>= 16
    return total


class FlowSender:
    """One device's datagrams of a flow: a frame template patched in place — sequence
    number, send time and the UDP checksum, updated arithmetically from a precomputed
    sum — and handed to a sink that must consume it at once (the buffer is reused).

    The IP header never changes: DF is set, so the identification may stay 0 (RFC 6864)
    and the header checksum is computed once.
    """

    __slots__ = ("device", "frame", "_seq_at", "_time_at", "_csum_at", "_base", "sent",
                 "bytes", "size")

    def __init__(self, flow: int, device: int, mac: bytes, src: bytes, sport: int,
                 dst: bytes, dport: int, hop_mac: bytes, *, size: int, tos: int = 0):
        if not MIN_SIZE <= size <= MAX_SIZE:
            raise ValueError(f"size: {MIN_SIZE} to {MAX_SIZE} bytes")
        self.device, self.size = device, size
        self.sent = self.bytes = 0
        payload = encode(flow, device, 0, 0, size)
        segment = struct.pack("!HHHH", sport, dport, UDP_LEN + size, 0) + payload
        self.frame = bytearray(ethernet(hop_mac, mac, ETH_P_IP,
                                        ipv4(src, dst, IPPROTO_UDP, segment, tos=tos,
                                             dont_fragment=True)))
        data = FRAME_OVERHEAD
        compact = size < HEADER.size
        self._seq_at = data + (8 if compact else 12)
        self._time_at = self._seq_at + 4
        self._csum_at = ETH_LEN + IP_LEN + 6
        # everything but the sequence number and the time, summed once (both are zero in
        # the template, so the whole segment's sum is that)
        self._base = fold(_pseudo_sum(src, dst, IPPROTO_UDP, UDP_LEN + size) + _sum16(segment))

    def emit(self, seq: int, sent_ns: int, time_words: int,
             sink: Callable[[bytearray], Any]) -> bool:
        """Patch and hand over datagram ``seq``; False when the sink could not take it."""
        frame = self.frame
        _pack_seq_time(frame, self._seq_at, seq, sent_ns)
        total = self._base + time_words + (seq >> 16) + (seq & 0xFFFF)
        total = (total & 0xFFFF) + (total >> 16)
        total = (total & 0xFFFF) + (total >> 16)
        _pack_csum(frame, self._csum_at, ((~total) & 0xFFFF) or 0xFFFF)
        if sink(frame) is False:
            return False
        self.sent += 1
        self.bytes += self.size
        return True


class FlowSchedule:
    """Every device's datagrams of one flow on one fixed schedule: datagram ``k`` of each
    device is due at ``start + k * interval``. A wake-up sends all that is due (at most
    ``MAX_BURST`` per device), interleaving the devices; a late wake-up catches up instead
    of lowering the rate. One timer for the whole flow, however many devices."""

    def __init__(self, senders: list[FlowSender], *, rate: float, size: int,
                 duration: float, start: float):
        if rate <= 0 or duration <= 0:
            raise ValueError("rate and duration: above zero")
        self.senders = senders
        self.interval = size * 8 / rate
        self.total = max(1, int(duration / self.interval))
        self.start = start
        self.next_seq = 0  # the next datagram number every device still owes…
        self._next_device = 0  # …from this device on (a sink that filled up stops a round)
        self.last_sent_at: float | None = None  # the wake-up that sent the last datagrams
        self.handed = 0  # datagrams handed to the sink so far, every device together

    @property
    def done(self) -> bool:
        return self.next_seq >= self.total

    def next_timer(self) -> float | None:
        return None if self.done else self.start + self.next_seq * self.interval

    def on_timer(self, now: float, sink: Callable[[bytearray], Any]) -> bool:
        """Sends what is due; False when the sink filled up (call again soon)."""
        if self.done:
            return True
        sent_ns = int(now * 1e9)
        time_words = _words(sent_ns, 4)
        last = min(self.total, self.next_seq + MAX_BURST)
        senders = self.senders
        while self.next_seq < last and self.start + self.next_seq * self.interval <= now:
            seq = self.next_seq
            for index in range(self._next_device, len(senders)):
                if not senders[index].emit(seq, sent_ns, time_words, sink):
                    self._next_device = index
                    return False
                self.handed += 1
            self._next_device = 0
            self.next_seq += 1
            self.last_sent_at = now
        return True


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


__all__ = ["FlowSchedule", "FlowSender", "FlowStats", "MAGIC", "MAX_SIZE", "MIN_SIZE",
           "decode", "encode"]
