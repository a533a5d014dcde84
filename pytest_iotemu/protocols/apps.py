"""Application messages IoT devices send, built with ``struct`` (and parsed where the
device reads an answer): DNS, NTP, HTTP, TLS ClientHello with SNI, MQTT, RTSP, RTP,
CoAP, syslog, mDNS, SSDP and LLDP. Pure functions: bytes in, bytes out.

Each builder makes what a real device of that kind sends; tshark decodes every one of
them without a malformed-packet warning (tests/protocols/test_apps.py).
"""
from __future__ import annotations

import random
import struct
import time

from .frames import ETH_P_IP, ethernet, ipv4, ip_text, udp

# --- DNS (RFC 1035) ------------------------------------------------------------------------
QTYPES = {"A": 1, "AAAA": 28, "PTR": 12, "TXT": 16, "SRV": 33}


def _name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        raw = label.encode("idna") if label else b""
        if not 0 < len(raw) < 64:
            raise ValueError(f"bad DNS label in {name!r}")
        out += bytes([len(raw)]) + raw
    return out + b"\x00"


def dns_query(ident: int, name: str, qtype: str = "A") -> bytes:
    """A recursive query for one name."""
    return struct.pack("!HHHHHH", ident & 0xFFFF, 0x0100, 1, 0, 0, 0) + _name(name) + \
        struct.pack("!HH", QTYPES[qtype], 1)


def _skip_name(data: bytes | memoryview, at: int) -> int:
    for _ in range(128):
        if at >= len(data):
            raise ValueError("truncated name")
        length = data[at]
        if length & 0xC0 == 0xC0:
            return at + 2
        if length == 0:
            return at + 1
        at += length + 1
    raise ValueError("name too long")


def dns_answers(data: bytes | memoryview, ident: int) -> tuple[int, list[str]] | None:
    """(rcode, IPv4 addresses) of a response to query ``ident``; None if it is not one."""
    data = bytes(data)
    if len(data) < 12:
        return None
    rid, flags, qd, an = struct.unpack_from("!HHHH", data)
    if rid != ident & 0xFFFF or not flags & 0x8000:
        return None
    try:
        at = 12
        for _ in range(qd):
            at = _skip_name(data, at) + 4
        out = []
        for _ in range(an):
            at = _skip_name(data, at)
            rtype, _cls, _ttl, length = struct.unpack_from("!HHIH", data, at)
            at += 10
            if rtype == 1 and length == 4:
                out.append(ip_text(data[at:at + 4]))
            at += length
    except (ValueError, struct.error):
        return None
    return flags & 0x0F, out


# --- NTP (RFC 5905) ------------------------------------------------------------------------
NTP_EPOCH = 2208988800  # seconds from 1900 to 1970


def ntp_request(now: float | None = None) -> bytes:
    """A client request (version 4, mode 3) with its transmit time set."""
    when = (time.time() if now is None else now) + NTP_EPOCH
    seconds = int(when)
    fraction = int((when - seconds) * (1 << 32))
    return struct.pack("!BBbb11I", (0 << 6) | (4 << 3) | 3, 0, 6, -20, 0, 0, 0, 0, 0, 0, 0,
                       0, 0, seconds & 0xFFFFFFFF, fraction)


def ntp_is_reply(data: bytes | memoryview) -> bool:
    return len(data) >= 48 and data[0] & 0x07 == 4


# --- HTTP / TLS ------------------------------------------------------------------------------
def http_get(host: str, path: str = "/", agent: str = "iotemu") -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {agent}\r\n"
            "Accept: */*\r\nConnection: close\r\n\r\n").encode()


def http_post(host: str, path: str, body: bytes, agent: str = "iotemu") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {agent}\r\n"
            "Content-Type: application/octet-stream\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


def status_line(data: bytes | memoryview) -> str | None:
    """The first line of an HTTP or RTSP response, e.g. ``HTTP/1.1 200 OK``."""
    head = bytes(data[:256]).split(b"\r\n", 1)[0]
    if head.startswith((b"HTTP/", b"RTSP/")):
        return head.decode("latin-1")
    return None


def tls_client_hello(server_name: str, rng: random.Random | None = None) -> bytes:
    """A TLS 1.2/1.3 ClientHello record with SNI, ALPN and the usual extensions."""
    rng = rng or random.Random()
    host = server_name.encode("idna")
    sni = struct.pack("!HBH", len(host) + 3, 0, len(host)) + host
    alpn_names = b"\x02h2\x08http/1.1"
    extensions = [
        (0, sni),
        (10, struct.pack("!H", 4) + struct.pack("!HH", 0x001D, 0x0017)),  # groups
        (11, b"\x01\x00"),  # ec point formats: uncompressed
        (13, struct.pack("!H", 6) + struct.pack("!HHH", 0x0403, 0x0804, 0x0401)),
        (16, struct.pack("!H", len(alpn_names)) + alpn_names),
        (43, b"\x04\x03\x04\x03\x03"),  # supported versions: 1.3, 1.2
        (51, struct.pack("!H", 36) + struct.pack("!HH", 0x001D, 32) + rng.randbytes(32)),
    ]
    ext = b"".join(struct.pack("!HH", kind, len(body)) + body for kind, body in extensions)
    suites = struct.pack("!6H", 0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0x009C)
    body = (b"\x03\x03" + rng.randbytes(32) + b"\x20" + rng.randbytes(32)
            + struct.pack("!H", len(suites)) + suites + b"\x01\x00"
            + struct.pack("!H", len(ext)) + ext)
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + handshake


def tls_sni(data: bytes | memoryview) -> str | None:
    """The server name of a ClientHello record, or None."""
    data = bytes(data)
    try:
        if data[0] != 0x16 or data[5] != 0x01:
            return None
        at = 9 + 2 + 32
        at += 1 + data[at]  # session id
        at += 2 + struct.unpack_from("!H", data, at)[0]  # cipher suites
        at += 1 + data[at]  # compression
        end = at + 2 + struct.unpack_from("!H", data, at)[0]
        at += 2
        while at + 4 <= end:
            kind, length = struct.unpack_from("!HH", data, at)
            if kind == 0:
                name_len = struct.unpack_from("!H", data, at + 7)[0]
                return data[at + 9:at + 9 + name_len].decode("idna")
            at += 4 + length
    except (IndexError, struct.error, UnicodeError):
        return None
    return None


# --- MQTT 3.1.1 ----------------------------------------------------------------------------
def _mqtt_len(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _mqtt_str(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def mqtt_connect(client_id: str, keepalive: int = 60) -> bytes:
    variable = _mqtt_str("MQTT") + bytes([4, 0x02]) + struct.pack("!H", keepalive)
    payload = _mqtt_str(client_id)
    body = variable + payload
    return b"\x10" + _mqtt_len(len(body)) + body


def mqtt_publish(topic: str, message: bytes) -> bytes:
    body = _mqtt_str(topic) + message  # QoS 0: no packet id
    return b"\x30" + _mqtt_len(len(body)) + body


def mqtt_disconnect() -> bytes:
    return b"\xe0\x00"


def mqtt_connack_ok(data: bytes | memoryview) -> bool:
    return len(data) >= 4 and data[0] == 0x20 and data[3] == 0


# --- RTSP (RFC 2326) and RTP (RFC 3550) -------------------------------------------------------
def rtsp_request(method: str, url: str, cseq: int) -> bytes:
    extra = "Accept: application/sdp\r\n" if method == "DESCRIBE" else ""
    return (f"{method} {url} RTSP/1.0\r\nCSeq: {cseq}\r\nUser-Agent: iotemu\r\n{extra}\r\n"
            ).encode()


def rtp_packet(seq: int, timestamp: int, ssrc: int, payload_type: int = 96,
               size: int = 1200) -> bytes:
    header = struct.pack("!BBHII", 0x80, payload_type & 0x7F, seq & 0xFFFF,
                         timestamp & 0xFFFFFFFF, ssrc & 0xFFFFFFFF)
    return header + bytes(max(0, size - len(header)))


# --- CoAP (RFC 7252), syslog (RFC 5424) -------------------------------------------------------
def coap_get(message_id: int, token: bytes, path: str) -> bytes:
    """A confirmable GET with Uri-Path options."""
    out = bytes([0x40 | len(token), 0x01]) + struct.pack("!H", message_id & 0xFFFF) + token
    last = 0
    for segment in path.strip("/").split("/"):
        raw = segment.encode()
        delta = 11 - last  # Uri-Path
        if len(raw) < 13:
            out += bytes([(delta << 4) | len(raw)]) + raw
        else:
            out += bytes([(delta << 4) | 13, len(raw) - 13]) + raw
        last = 11
    return out


def coap_is_response(data: bytes | memoryview, message_id: int) -> bool:
    return len(data) >= 4 and data[0] >> 6 == 1 and data[0] & 0x30 in (0x20, 0x00) and \
        struct.unpack_from("!H", data, 2)[0] == message_id & 0xFFFF and data[1] >= 0x40


def syslog_message(hostname: str, app: str, text: str, severity: int = 6,
                   facility: int = 1, now: float | None = None) -> bytes:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if now is None else now))
    return f"<{facility * 8 + severity}>1 {stamp} {hostname} {app} - - - {text}".encode()


# --- link-local announcements: mDNS, SSDP, LLDP ------------------------------------------------
MDNS_MAC, MDNS_IP = bytes.fromhex("01005e0000fb"), bytes([224, 0, 0, 251])
SSDP_MAC, SSDP_IP = bytes.fromhex("01005e7ffffa"), bytes([239, 255, 255, 250])
LLDP_MAC, ETH_P_LLDP = bytes.fromhex("0180c200000e"), 0x88CC


def _rr(name: str, rtype: int, data: bytes, ttl: int = 120, flush: bool = True) -> bytes:
    return _name(name) + struct.pack("!HHIH", rtype, 0x8001 if flush else 1, ttl,
                                     len(data)) + data


def mdns_announcement(mac: bytes, address: bytes, hostname: str, service: str,
                      port: int) -> bytes:
    """An unsolicited mDNS response announcing ``<host>.local`` and one service."""
    host = f"{hostname}.local"
    instance = f"{hostname}.{service}.local"
    answers = [
        _rr(host, 1, address),
        _rr(f"{service}.local", 12, _name(instance), ttl=4500, flush=False),
        _rr(instance, 33, struct.pack("!HHH", 0, 0, port) + _name(host)),
        _rr(instance, 16, b"\x09txtvers=1"),
    ]
    message = struct.pack("!HHHHHH", 0, 0x8400, 0, len(answers), 0, 0) + b"".join(answers)
    return ethernet(MDNS_MAC, mac, ETH_P_IP,
                    ipv4(address, MDNS_IP, 17, udp(address, MDNS_IP, 5353, 5353, message),
                         ttl=255))


def ssdp_notify(mac: bytes, address: bytes, uuid: str, device_type: str,
                server: str) -> bytes:
    text = ("NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: max-age=1800\r\n"
            f"LOCATION: http://{ip_text(address)}:80/description.xml\r\nNT: {device_type}\r\n"
            f"NTS: ssdp:alive\r\nSERVER: {server}\r\nUSN: uuid:{uuid}::{device_type}\r\n\r\n")
    return ethernet(SSDP_MAC, mac, ETH_P_IP,
                    ipv4(address, SSDP_IP, 17, udp(address, SSDP_IP, 1900, 1900, text.encode()),
                         ttl=4))


def _tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("!H", (kind << 9) | len(value)) + value


def lldp_frame(mac: bytes, system_name: str, description: str, port: str = "eth0",
               ttl: int = 120) -> bytes:
    """Chassis id (MAC), port id, TTL, system name, system description, end."""
    body = (_tlv(1, b"\x04" + mac) + _tlv(2, b"\x05" + port.encode()) +
            _tlv(3, struct.pack("!H", ttl)) + _tlv(5, system_name.encode()[:255]) +
            _tlv(6, description.encode()[:255]) + _tlv(0, b""))
    return ethernet(LLDP_MAC, mac, ETH_P_LLDP, body)


def lldp_system_name(frame: bytes | memoryview) -> str | None:
    data = bytes(frame)
    if len(data) < 16 or data[12:14] != b"\x88\xcc":
        return None
    at = 14
    while at + 2 <= len(data):
        header = struct.unpack_from("!H", data, at)[0]
        kind, length = header >> 9, header & 0x1FF
        if kind == 0:
            return None
        if kind == 5:
            return data[at + 2:at + 2 + length].decode("utf-8", "replace")
        at += 2 + length
    return None
