"""DHCP messages on the wire (RFC 2131/2132): client frames from per-device templates,
server replies parsed without trusting any length."""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Iterable

from .frames import (Ipv4Packet, ETH_LEN, ETH_P_IP, IP_LEN, IPPROTO_UDP, UDP_LEN,
                     Malformed, _pseudo_sum, _sum16, ethernet, fold, ipv4, ip_text,
                     parse_ipv4, parse_udp)

CLIENT_PORT = 68
SERVER_PORT = 67
MAGIC = b"\x63\x82\x53\x63"
BOOTP_FIXED = 236  # up to the magic cookie
BOOTP_MIN = 300  # classic minimum; some servers and relays drop shorter messages

DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)
MESSAGE_NAMES = {DISCOVER: "discover", OFFER: "offer", REQUEST: "request",
                 DECLINE: "decline", ACK: "ack", NAK: "nak", RELEASE: "release",
                 INFORM: "inform"}

OPT_PAD, OPT_END = 0, 255
OPT_SUBNET_MASK, OPT_ROUTER, OPT_DNS, OPT_HOSTNAME, OPT_DOMAIN = 1, 3, 6, 12, 15
OPT_REQUESTED_IP, OPT_LEASE_TIME, OPT_OVERLOAD, OPT_MESSAGE_TYPE = 50, 51, 52, 53
OPT_SERVER_ID, OPT_PARAM_LIST, OPT_MESSAGE, OPT_MAX_SIZE = 54, 55, 56, 57
OPT_T1, OPT_T2, OPT_VENDOR_CLASS, OPT_CLIENT_ID, OPT_FQDN = 58, 59, 60, 61, 81

# where the client's fields sit in a frame built by ``client_frame``
_BOOTP_AT = ETH_LEN + IP_LEN + UDP_LEN
XID_AT = _BOOTP_AT + 4
SECS_AT = _BOOTP_AT + 8
UDP_CSUM_AT = ETH_LEN + IP_LEN + 6


def encode_options(options: Iterable[tuple[int, bytes]]) -> bytes:
    """TLVs in the given order; values over 255 bytes are split (RFC 3396)."""
    out = bytearray()
    for code, value in options:
        if not value:
            out += bytes((code, 0))
        for start in range(0, len(value), 255):
            chunk = value[start:start + 255]
            out += bytes((code, len(chunk))) + chunk
    out.append(OPT_END)
    return bytes(out)


def bootp_request(chaddr: bytes, xid: int, options: bytes, *, secs: int = 0,
                  broadcast: bool = False, ciaddr: bytes = b"\x00" * 4) -> bytes:
    header = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, secs,
                         0x8000 if broadcast else 0, ciaddr, b"\x00" * 4, b"\x00" * 4,
                         b"\x00" * 4, chaddr.ljust(16, b"\x00"), b"", b"")
    message = header + MAGIC + options
    return message.ljust(BOOTP_MIN, b"\x00")


class ClientTemplate:
    """A complete client frame whose xid and secs are patched per send.

    The UDP checksum is updated incrementally (RFC 1624) from the sum of the frame with
    xid and secs zeroed, so rendering costs a few integer operations, not a re-sum.
    """

    __slots__ = ("frame", "_base")

    def __init__(self, src_mac: bytes, dst_mac: bytes, src_ip: bytes, dst_ip: bytes,
                 bootp: bytes):
        segment = bytearray(struct.pack("!HHHH", CLIENT_PORT, SERVER_PORT,
                                        UDP_LEN + len(bootp), 0) + bootp)
        struct.pack_into("!IH", segment, UDP_LEN + 4, 0, 0)  # xid and secs zeroed
        self._base = _pseudo_sum(src_ip, dst_ip, IPPROTO_UDP, len(segment)) + _sum16(segment)
        packet = ipv4(src_ip, dst_ip, IPPROTO_UDP, bytes(segment), ttl=64)
        self.frame = bytearray(ethernet(dst_mac, src_mac, ETH_P_IP, packet))

    def render(self, xid: int, secs: int = 0) -> bytes:
        secs = min(max(int(secs), 0), 0xFFFF)
        total = fold(self._base + (xid >> 16) + (xid & 0xFFFF) + secs)
        csum = (~total) & 0xFFFF or 0xFFFF
        frame = self.frame
        struct.pack_into("!IH", frame, XID_AT, xid, secs)
        struct.pack_into("!H", frame, UDP_CSUM_AT, csum)
        return bytes(frame)


@dataclass(frozen=True)
class DhcpReply:
    """A server's message to a client, checked and decoded."""

    msg_type: int
    xid: int
    flags: int
    ciaddr: bytes
    yiaddr: bytes
    siaddr: bytes
    giaddr: bytes
    chaddr: bytes  # the 6-byte client hardware address
    options: dict[int, bytes] = field(repr=False)
    eth_src: bytes = b""
    ip_src: bytes = b""

    @property
    def name(self) -> str:
        return MESSAGE_NAMES.get(self.msg_type, str(self.msg_type))

    def option(self, code: int) -> bytes | None:
        return self.options.get(code)

    def ip_option(self, code: int) -> bytes | None:
        value = self.options.get(code)
        return value if value is not None and len(value) == 4 else None

    def ip_list(self, code: int) -> list[str]:
        value = self.options.get(code) or b""
        return [ip_text(value[i:i + 4]) for i in range(0, len(value) - len(value) % 4, 4)]

    def u32(self, code: int) -> int | None:
        value = self.options.get(code)
        return int.from_bytes(value, "big") if value is not None and len(value) == 4 else None

    @property
    def server_id(self) -> bytes | None:
        return self.ip_option(OPT_SERVER_ID)


def parse_options(data: memoryview | bytes, into: dict[int, bytes]) -> bool:
    """Read TLVs into ``into`` (repeated codes concatenate, RFC 3396). Returns whether an
    END option was seen. Raises ``Malformed`` on an option that runs past the data."""
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        if code == OPT_PAD:
            i += 1
            continue
        if code == OPT_END:
            return True
        if i + 1 >= n:
            raise Malformed("dhcp_option_truncated")
        length = data[i + 1]
        if i + 2 + length > n:
            raise Malformed("dhcp_option_overflow")
        value = bytes(data[i + 2:i + 2 + length])
        into[code] = into[code] + value if code in into else value
        i += 2 + length
    return False


def parse_reply(frame: bytes | memoryview, checksum_unfilled: bool = False) -> DhcpReply:
    """A server-to-client DHCP message from a frame; raises ``Malformed`` with a reason."""
    return reply_from_packet(parse_ipv4(frame), checksum_unfilled)


def reply_from_packet(packet: Ipv4Packet, checksum_unfilled: bool = False) -> DhcpReply:
    """The same, from an IPv4 packet already parsed (so the header is checked once)."""
    udp = parse_udp(packet, checksum_unfilled)
    if udp.dport != CLIENT_PORT:
        raise Malformed("not_dhcp_client_port")
    data = udp.data
    if len(data) < BOOTP_FIXED + 4:
        raise Malformed("short_bootp")
    op, htype, hlen = data[0], data[1], data[2]
    if op != 2:
        raise Malformed("not_bootreply")
    if htype != 1 or hlen != 6:
        raise Malformed("bootp_not_ethernet")
    if bytes(data[BOOTP_FIXED:BOOTP_FIXED + 4]) != MAGIC:
        raise Malformed("no_magic_cookie")
    xid, _secs, flags = struct.unpack_from("!IHH", data, 4)
    options: dict[int, bytes] = {}
    parse_options(data[BOOTP_FIXED + 4:], options)
    overload = options.get(OPT_OVERLOAD)
    if overload is not None:  # RFC 2131: options continue in `file`, then `sname`
        if len(overload) != 1 or overload[0] not in (1, 2, 3):
            raise Malformed("bad_option_overload")
        if overload[0] & 1:
            parse_options(data[108:236], options)
        if overload[0] & 2:
            parse_options(data[44:108], options)
    message_type = options.get(OPT_MESSAGE_TYPE)
    if message_type is None or len(message_type) != 1:
        raise Malformed("no_message_type")
    return DhcpReply(
        msg_type=message_type[0], xid=xid, flags=flags, ciaddr=bytes(data[12:16]),
        yiaddr=bytes(data[16:20]), siaddr=bytes(data[20:24]), giaddr=bytes(data[24:28]),
        chaddr=bytes(data[28:34]), options=options, eth_src=udp.ip.eth_src,
        ip_src=udp.ip.src)


def peek_chaddr(frame: bytes | memoryview) -> bytes | None:
    """The client MAC of a DHCP reply, cheaply, for demultiplexing; None if not one."""
    view = memoryview(frame)
    if len(view) < _BOOTP_AT + 34 or view[12] != 0x08 or view[13] != 0x00:
        return None
    ihl = (view[ETH_LEN] & 0x0F) * 4
    at = ETH_LEN + ihl
    if view[ETH_LEN + 9] != IPPROTO_UDP or len(view) < at + UDP_LEN + 34:
        return None
    if ((view[at + 2] << 8) | view[at + 3]) != CLIENT_PORT:
        return None
    return bytes(view[at + UDP_LEN + 28:at + UDP_LEN + 34])
