"""What the lab's cloud answers to the devices' application traffic (pure: bytes in,
bytes out), used by the responder for services with a ``kind``:

=========  =====================================================================
``http``   HTTP/1.1: 200 with a small body for GET/HEAD (404 for ``/missing``), 200 for
           a POST once its whole body (Content-Length) has arrived; then close
``tls``    reads a ClientHello, notes its server name (SNI), answers a fatal
           handshake_failure alert (no certificate: the exchange is what is tested)
``rtsp``   OPTIONS (the methods) and DESCRIBE (an SDP for one H.264 stream)
``ntp``    a server reply (mode 4, stratum 2) with the transmit time of now
``coap``   a piggy-backed 2.05 Content acknowledgement to a confirmable request
``sip``    200 OK to a request, its Via, From, To, Call-ID and CSeq echoed
``sink``   counted, never answered (syslog, RTP, SNMP traps)
``echo``   (the default) echoed back, as the targets' responders do
=========  =====================================================================
"""
from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field

from ..protocols.apps import NTP_EPOCH, tls_sni

KINDS = ("echo", "http", "tls", "rtsp", "ntp", "coap", "sip", "sink")
TLS_ALERT = b"\x15\x03\x03\x00\x02\x02\x28"  # fatal handshake_failure
SDP = ("v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=iotemu\r\nt=0 0\r\n"
       "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=1\r\n")


def answer_udp(kind: str, data: bytes) -> bytes | None:
    if kind == "echo":
        return data
    if kind == "ntp" and len(data) >= 48 and data[0] & 0x07 == 3:
        now = time.time() + NTP_EPOCH
        seconds, fraction = int(now), int((now % 1) * (1 << 32))
        origin = data[40:48]  # the client's transmit time becomes our origin time
        return (struct.pack("!BBbb", (4 << 3) | 4, 2, data[2], -20) + struct.pack("!II", 0, 0)
                + b"LOCL" + struct.pack("!II", seconds, fraction) + origin
                + struct.pack("!IIII", seconds, fraction, seconds, fraction))
    if kind == "coap" and len(data) >= 4 and data[0] >> 6 == 1 and data[0] & 0x30 == 0:
        tkl = data[0] & 0x0F
        token = data[4:4 + tkl]
        return bytes([0x60 | tkl, 0x45]) + data[2:4] + token + b"\xff" + b"ok"
    if kind == "sip" and data[:1].isalpha() and not data.startswith(b"SIP/2.0"):
        lines = data.decode("latin-1").split("\r\n")
        keep = [l for l in lines[1:] if l.split(":", 1)[0].strip().lower()
                in ("via", "from", "to", "call-id", "cseq")]
        return ("\r\n".join(["SIP/2.0 200 OK", *keep, "Content-Length: 0", "", ""])).encode()
    return None


@dataclass
class TcpSession:
    """One accepted connection of a ``kind``; ``feed`` returns (reply, close), and
    ``seen`` collects what the peer learnt: (``request``, "GET /x"), (``sni``, name),
    (``method``, "DESCRIBE"), (``uploaded``, bytes) — drained by the responder."""

    kind: str
    buffer: bytearray = field(default_factory=bytearray)
    seen: list = field(default_factory=list)

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        if self.kind == "echo":
            return data, False
        self.buffer += data
        handler = getattr(self, f"_{self.kind}", None)
        return handler() if handler else (b"", False)

    def _http(self) -> tuple[bytes, bool]:
        head, sep, body = bytes(self.buffer).partition(b"\r\n\r\n")
        if not sep:
            return b"", len(self.buffer) > 65536
        lines = head.decode("latin-1").split("\r\n")
        method, _, rest = lines[0].partition(" ")
        path = rest.split(" ")[0]
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length" and value.strip().isdigit():
                length = int(value.strip())
        if len(body) < length:
            return b"", False  # the rest of the upload is still coming
        self.seen.append(("request", f"{method} {path}"))
        if length:
            self.seen.append(("uploaded", length))
        status = "404 Not Found" if path == "/missing" else "200 OK"
        payload = b"" if method == "HEAD" else b"ok\n"
        return (f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: "
                f"{len(payload)}\r\nConnection: close\r\n\r\n").encode() + payload, True

    def _tls(self) -> tuple[bytes, bool]:
        if len(self.buffer) < 5:
            return b"", False
        length = struct.unpack_from("!H", self.buffer, 3)[0]
        if len(self.buffer) < 5 + length:
            return b"", False
        self.seen.append(("sni", tls_sni(self.buffer) or ""))
        return TLS_ALERT, True

    def _rtsp(self) -> tuple[bytes, bool]:
        out = b""
        while b"\r\n\r\n" in self.buffer:
            head, _, rest = bytes(self.buffer).partition(b"\r\n\r\n")
            self.buffer = bytearray(rest)
            lines = head.decode("latin-1").split("\r\n")
            method = lines[0].split(" ")[0]
            cseq = next((l.split(":", 1)[1].strip() for l in lines
                         if l.lower().startswith("cseq:")), "0")
            self.seen.append(("method", method))
            if method == "OPTIONS":
                out += (f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nPublic: OPTIONS, DESCRIBE, "
                        "SETUP, PLAY, TEARDOWN\r\n\r\n").encode()
            elif method == "DESCRIBE":
                out += (f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Type: application/sdp"
                        f"\r\nContent-Length: {len(SDP)}\r\n\r\n{SDP}").encode()
            else:
                out += f"RTSP/1.0 405 Method Not Allowed\r\nCSeq: {cseq}\r\n\r\n".encode()
        return out, False


def link_local_kind(frame: bytes) -> str | None:
    """``lldp``, ``mdns``, ``ssdp`` or None for an Ethernet frame."""
    if len(frame) < 14:
        return None
    ethertype = (frame[12] << 8) | frame[13]
    if ethertype == 0x88CC:
        return "lldp"
    if ethertype != 0x0800 or len(frame) < 14 + 20 + 8 or frame[23] != 17:
        return None
    ihl = (frame[14] & 0x0F) * 4
    if len(frame) < 14 + ihl + 4:
        return None
    dport = (frame[14 + ihl + 2] << 8) | frame[14 + ihl + 3]
    return {5353: "mdns", 1900: "ssdp"}.get(dport)
