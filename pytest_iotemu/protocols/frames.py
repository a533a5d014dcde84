"""Ethernet, IPv4, UDP, TCP, ARP and ICMP with ``struct``: building, checksums and parsing
that never trusts a length from the network.

Parsing returns ``None`` with a reason instead of raising: a malformed frame is the
peer's problem, counted by the caller and otherwise ignored.
"""
from __future__ import annotations

import struct
import sys
from dataclasses import dataclass

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_8021Q = 0x8100
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
BROADCAST_MAC = b"\xff" * 6
ZERO_MAC = b"\x00" * 6

_ETH = struct.Struct("!6s6sH")
_IP = struct.Struct("!BBHHHBBH4s4s")
_UDP = struct.Struct("!HHHH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")
_ICMP_ECHO = struct.Struct("!BBHHH")
_TCP = struct.Struct("!HHIIBBHHH")

TCP_LEN = 20
# TCP flags
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

ETH_LEN = 14
IP_LEN = 20
UDP_LEN = 8


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", "").replace("-", ""))


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def ip_bytes(address: str | int) -> bytes:
    if isinstance(address, int):
        return address.to_bytes(4, "big")
    return bytes(int(part) for part in address.split("."))


def ip_text(address: bytes) -> str:
    return ".".join(str(b) for b in address)


# --- checksums ------------------------------------------------------------------------

def fold(total: int) -> int:
    """Fold carries of a ones'-complement sum into 16 bits."""
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _sum16(data: bytes | bytearray | memoryview) -> int:
    """Ones'-complement sum of big-endian 16-bit words, folded, not inverted.

    Summing native-order words with ``memoryview.cast`` and swapping bytes afterwards
    gives the same result as a big-endian sum (the ones'-complement sum commutes with
    byte swapping), at C speed.
    """
    if len(data) % 2:
        data = bytes(data) + b"\x00"
    total = fold(sum(memoryview(data).cast("H")))
    if sys.byteorder == "little":
        total = ((total & 0xFF) << 8) | (total >> 8)
    return total


def checksum(data: bytes | bytearray | memoryview) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    return (~_sum16(data)) & 0xFFFF


def _pseudo_sum(src: bytes, dst: bytes, proto: int, length: int) -> int:
    return _sum16(src + dst + struct.pack("!BBH", 0, proto, length))


def transport_checksum(src: bytes, dst: bytes, proto: int, segment: bytes | bytearray) -> int:
    """UDP/TCP checksum over the pseudo-header and ``segment`` (checksum field zeroed)."""
    total = fold(_pseudo_sum(src, dst, proto, len(segment)) + _sum16(segment))
    value = (~total) & 0xFFFF
    if proto == IPPROTO_UDP and value == 0:
        return 0xFFFF  # 0 means "no checksum" in UDP
    return value


# --- building ---------------------------------------------------------------------------

def ethernet(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> bytes:
    return _ETH.pack(dst, src, ethertype) + payload


def ipv4(src: bytes, dst: bytes, proto: int, payload: bytes, *, ident: int = 0, ttl: int = 64,
         tos: int = 0, dont_fragment: bool = False) -> bytes:
    flags = 0x4000 if dont_fragment else 0
    header = bytearray(_IP.pack(0x45, tos, IP_LEN + len(payload), ident & 0xFFFF, flags, ttl,
                                proto, 0, src, dst))
    struct.pack_into("!H", header, 10, checksum(header))
    return bytes(header) + payload


def udp(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    segment = bytearray(_UDP.pack(sport, dport, UDP_LEN + len(payload), 0) + payload)
    struct.pack_into("!H", segment, 6, transport_checksum(src, dst, IPPROTO_UDP, segment))
    return bytes(segment)


def udp_frame(src_mac: bytes, dst_mac: bytes, src_ip: bytes, dst_ip: bytes, sport: int,
              dport: int, payload: bytes, *, ident: int = 0, ttl: int = 64,
              tos: int = 0) -> bytes:
    segment = udp(src_ip, dst_ip, sport, dport, payload)
    return ethernet(dst_mac, src_mac, ETH_P_IP,
                    ipv4(src_ip, dst_ip, IPPROTO_UDP, segment, ident=ident, ttl=ttl, tos=tos))


def tcp(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int,
        payload: bytes = b"", *, window: int = 65535, mss: int | None = None) -> bytes:
    """A TCP segment with its checksum; ``mss`` adds the MSS option (SYNs)."""
    options = struct.pack("!BBH", 2, 4, mss) if mss else b""
    offset = (TCP_LEN + len(options)) // 4
    segment = bytearray(_TCP.pack(sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                                  offset << 4, flags, window, 0, 0) + options + payload)
    struct.pack_into("!H", segment, 16, transport_checksum(src, dst, IPPROTO_TCP, segment))
    return bytes(segment)


def arp_frame(op: int, sender_mac: bytes, sender_ip: bytes, target_mac: bytes,
              target_ip: bytes, *, dst_mac: bytes | None = None) -> bytes:
    """An ARP request (op 1) or reply (op 2); requests go to broadcast by default."""
    if dst_mac is None:
        dst_mac = BROADCAST_MAC if op == 1 else target_mac
    body = _ARP.pack(1, ETH_P_IP, 6, 4, op, sender_mac, sender_ip, target_mac, target_ip)
    return ethernet(dst_mac, sender_mac, ETH_P_ARP, body + b"\x00" * 18)  # pad to 60 bytes


def icmp_echo(kind: int, ident: int, seq: int, payload: bytes) -> bytes:
    """ICMP echo request (type 8) or reply (type 0)."""
    message = bytearray(_ICMP_ECHO.pack(kind, 0, 0, ident, seq) + payload)
    struct.pack_into("!H", message, 2, checksum(message))
    return bytes(message)


# --- parsing ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Ipv4Packet:
    """An IPv4 packet in a frame, its header checked."""

    eth_src: bytes
    eth_dst: bytes
    src: bytes
    dst: bytes
    proto: int
    payload: memoryview  # transport header and data, cut to the IP total length
    ttl: int


@dataclass(frozen=True)
class UdpDatagram:
    ip: Ipv4Packet
    sport: int
    dport: int
    data: memoryview


@dataclass(frozen=True)
class TcpSegment:
    ip: Ipv4Packet
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    window: int
    data: memoryview
    mss: int | None


@dataclass(frozen=True)
class IcmpError:
    """An ICMP error (destination unreachable, time exceeded) and the header of the
    packet it is about: who complained, and about which of our flows."""

    ip: Ipv4Packet
    type: int
    code: int
    inner_src: bytes
    inner_dst: bytes
    inner_proto: int
    sport: int
    dport: int


@dataclass(frozen=True)
class ArpPacket:
    eth_src: bytes
    op: int
    sender_mac: bytes
    sender_ip: bytes
    target_mac: bytes
    target_ip: bytes


class Malformed(Exception):
    """Raised inside the parsers only; callers see ``None`` and a reason."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def ethertype_of(frame: bytes | memoryview) -> tuple[int, int]:
    """(ethertype, offset of the payload), skipping one 802.1Q tag."""
    if len(frame) < ETH_LEN:
        raise Malformed("short_ethernet")
    ethertype = (frame[12] << 8) | frame[13]
    offset = ETH_LEN
    if ethertype == ETH_P_8021Q:
        if len(frame) < ETH_LEN + 4:
            raise Malformed("short_ethernet")
        ethertype = (frame[16] << 8) | frame[17]
        offset += 4
    return ethertype, offset


def parse_ipv4(frame: bytes | memoryview) -> Ipv4Packet:
    """Raises ``Malformed``. The IP header checksum is always verified (the kernel fills
    it even where it leaves the transport checksum to the NIC)."""
    view = memoryview(frame)
    ethertype, offset = ethertype_of(view)
    if ethertype != ETH_P_IP:
        raise Malformed("not_ipv4")
    if len(view) < offset + IP_LEN:
        raise Malformed("short_ip")
    ver_ihl = view[offset]
    if ver_ihl >> 4 != 4:
        raise Malformed("bad_ip_version")
    ihl = (ver_ihl & 0x0F) * 4
    if ihl < IP_LEN or len(view) < offset + ihl:
        raise Malformed("bad_ip_header_length")
    total = (view[offset + 2] << 8) | view[offset + 3]
    if total < ihl or len(view) < offset + total:
        raise Malformed("bad_ip_total_length")
    if checksum(view[offset:offset + ihl]) != 0:
        raise Malformed("bad_ip_checksum")
    frag = ((view[offset + 6] << 8) | view[offset + 7]) & 0x3FFF
    if frag:
        raise Malformed("ip_fragment")
    return Ipv4Packet(
        eth_src=bytes(view[6:12]), eth_dst=bytes(view[0:6]),
        src=bytes(view[offset + 12:offset + 16]), dst=bytes(view[offset + 16:offset + 20]),
        proto=view[offset + 9], payload=view[offset + ihl:offset + total],
        ttl=view[offset + 8])


def parse_udp(packet: Ipv4Packet, checksum_unfilled: bool = False) -> UdpDatagram:
    """Raises ``Malformed``. ``checksum_unfilled``: the kernel said the checksum was left
    to the (virtual) NIC (``TP_STATUS_CSUMNOTREADY``), so it cannot be checked."""
    if packet.proto != IPPROTO_UDP:
        raise Malformed("not_udp")
    seg = packet.payload
    if len(seg) < UDP_LEN:
        raise Malformed("short_udp")
    sport, dport, length, csum = _UDP.unpack_from(seg)
    if length < UDP_LEN or length > len(seg):
        raise Malformed("bad_udp_length")
    if csum and not checksum_unfilled:
        total = fold(_pseudo_sum(packet.src, packet.dst, IPPROTO_UDP, length)
                     + _sum16(seg[:length]))
        if total != 0xFFFF:
            raise Malformed("bad_udp_checksum")
    return UdpDatagram(packet, sport, dport, seg[UDP_LEN:length])


def parse_arp(frame: bytes | memoryview) -> ArpPacket:
    view = memoryview(frame)
    ethertype, offset = ethertype_of(view)
    if ethertype != ETH_P_ARP:
        raise Malformed("not_arp")
    if len(view) < offset + _ARP.size:
        raise Malformed("short_arp")
    htype, ptype, hlen, plen, op, smac, sip, tmac, tip = _ARP.unpack_from(view, offset)
    if htype != 1 or ptype != ETH_P_IP or hlen != 6 or plen != 4:
        raise Malformed("arp_not_ethernet_ipv4")
    if op not in (1, 2):
        raise Malformed("bad_arp_op")
    return ArpPacket(bytes(view[6:12]), op, smac, sip, tmac, tip)


def parse_tcp(packet: Ipv4Packet, checksum_unfilled: bool = False) -> TcpSegment:
    """Raises ``Malformed``; the checksum is checked unless the kernel left it unfilled."""
    if packet.proto != IPPROTO_TCP:
        raise Malformed("not_tcp")
    seg = packet.payload
    if len(seg) < TCP_LEN:
        raise Malformed("short_tcp")
    sport, dport, seq, ack, off, flags, window, _csum, _urg = _TCP.unpack_from(seg)
    header = (off >> 4) * 4
    if header < TCP_LEN or header > len(seg):
        raise Malformed("bad_tcp_offset")
    if not checksum_unfilled:
        total = fold(_pseudo_sum(packet.src, packet.dst, IPPROTO_TCP, len(seg)) + _sum16(seg))
        if total != 0xFFFF:
            raise Malformed("bad_tcp_checksum")
    mss = None
    at = TCP_LEN
    while at < header:  # options: only MSS matters to us
        kind = seg[at]
        if kind == 0:
            break
        if kind == 1:
            at += 1
            continue
        if at + 1 >= header or seg[at + 1] < 2 or at + seg[at + 1] > header:
            raise Malformed("bad_tcp_option")
        if kind == 2 and seg[at + 1] == 4:
            mss = (seg[at + 2] << 8) | seg[at + 3]
        at += seg[at + 1]
    return TcpSegment(packet, sport, dport, seq, ack, flags & 0x3F, window, seg[header:], mss)


ICMP_UNREACHABLE, ICMP_TIME_EXCEEDED = 3, 11


def parse_icmp_error(packet: Ipv4Packet) -> IcmpError:
    """Raises ``Malformed`` (or ``not_icmp_error`` for other ICMP messages)."""
    data = packet.payload
    if packet.proto != IPPROTO_ICMP or len(data) < 8 or \
            data[0] not in (ICMP_UNREACHABLE, ICMP_TIME_EXCEEDED):
        raise Malformed("not_icmp_error")
    if checksum(data) != 0:
        raise Malformed("bad_icmp_checksum")
    inner = data[8:]
    if len(inner) < IP_LEN or inner[0] >> 4 != 4:
        raise Malformed("short_icmp_error")
    ihl = (inner[0] & 0x0F) * 4
    if ihl < IP_LEN or len(inner) < ihl + 4:
        raise Malformed("short_icmp_error")
    sport, dport = struct.unpack_from("!HH", inner, ihl)
    return IcmpError(packet, data[0], data[1], bytes(inner[12:16]), bytes(inner[16:20]),
                     inner[9], sport, dport)
