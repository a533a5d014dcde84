"""ARP for emulated devices: answering for a device's address, and a per-interface cache
of the neighbours devices talk to (the gateway above all), shared by every device."""
from __future__ import annotations

from dataclasses import dataclass

from .frames import ArpPacket, arp_frame

ZERO_IP = b"\x00" * 4


def reply_for(packet: ArpPacket, mac: bytes, ip: bytes) -> bytes | None:
    """Our reply when ``packet`` asks who has ``ip``; None otherwise."""
    if packet.op != 1 or packet.target_ip != ip or packet.sender_ip == ZERO_IP:
        return None  # not for us, or someone's probe (answered only by conflict detection)
    return arp_frame(2, mac, ip, packet.sender_mac, packet.sender_ip)


def request_for(mac: bytes, ip: bytes, target_ip: bytes) -> bytes:
    return arp_frame(1, mac, ip, b"\x00" * 6, target_ip)


@dataclass
class _Entry:
    mac: bytes
    learned: float


class ArpCache:
    """Neighbour MACs by IPv4 address for one interface, learned from replies and
    announcements, kept ``ttl`` seconds. One cache serves every device on the interface,
    so a thousand devices ask for their gateway once, not a thousand times."""

    def __init__(self, ttl: float = 300.0):
        self.ttl = ttl
        self._entries: dict[bytes, _Entry] = {}
        self._asked: dict[bytes, float] = {}

    def learn(self, packet: ArpPacket, now: float) -> None:
        if packet.sender_ip != ZERO_IP:
            self._entries[packet.sender_ip] = _Entry(packet.sender_mac, now)
            self._asked.pop(packet.sender_ip, None)

    def lookup(self, ip: bytes, now: float) -> bytes | None:
        entry = self._entries.get(ip)
        if entry is None or now - entry.learned > self.ttl:
            return None
        return entry.mac

    def needs_request(self, ip: bytes, now: float, retry: float = 1.0) -> bool:
        """True when nobody has asked for ``ip`` in the last ``retry`` seconds (the caller
        then sends one request on behalf of all devices)."""
        if self.lookup(ip, now) is not None:
            return False
        asked = self._asked.get(ip)
        if asked is not None and now - asked < retry:
            return False
        self._asked[ip] = now
        return True

    def asked_at(self, ip: bytes) -> float | None:
        """When a request for ``ip`` was last sent (None: not asked, or answered)."""
        return self._asked.get(ip)

    def __len__(self) -> int:
        return len(self._entries)
