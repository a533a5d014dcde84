"""A device's own traffic, from its profile's habits and its group's threat behaviours
(sans-I/O, driven by the device's timer like its DHCP client).

Each habit runs every ``interval`` (± ``jitter``, 10% by default), first at a random
moment within its first interval (at most 10 s). Destinations are names: a target's name
(resolved through the target's DNS name when it has one), a DNS name (asked of the DNS
server the lease gave, answers cached for 5 minutes) or an address. Every exchange ends
with an ``app.result`` event; threat behaviours add one ``threat`` event per run.
"""
from __future__ import annotations

import ipaddress
import random
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from . import apps
from .frames import (ETH_P_IP, IPPROTO_UDP, _pseudo_sum, _sum16, ethernet, fold, ip_bytes,
                     ip_text, ipv4)
from .traffic import next_hop

if TYPE_CHECKING:
    from .device import DeviceCore

# protocol -> (transport, port, default destination name, default interval in seconds)
PROTOCOLS: dict[str, tuple[str, int, str, float]] = {
    "dns": ("udp", 53, "updates.iot.example", 300), "ntp": ("udp", 123, "ntp.iot.example", 3600),
    "http": ("tcp", 80, "cloud.iot.example", 300), "https": ("tcp", 443, "cloud.iot.example", 300),
    "cloud": ("tcp", 443, "cloud.iot.example", 120), "mqtt": ("tcp", 1883, "mqtt.iot.example", 60),
    "rtsp": ("tcp", 554, "video.iot.example", 600), "rtp": ("udp", 5004, "video.iot.example", 0),
    "coap": ("udp", 5683, "coap.iot.example", 120), "syslog": ("udp", 514, "logs.iot.example", 300),
    "sip": ("udp", 5060, "sip.iot.example", 60), "snmp": ("udp", 162, "nms.iot.example", 600),
    "udp": ("udp", 7, "echo.iot.example", 60), "tcp": ("tcp", 7, "echo.iot.example", 60),
    "mdns": ("link", 5353, "", 120), "ssdp": ("link", 1900, "", 180), "lldp": ("link", 0, "", 30),
}
SEND_ONLY = {"syslog", "snmp"}
THREAT_INTERVAL = 60.0
BEACON_INTERVAL = 30.0
SCAN_PORTS = (21, 22, 23, 25, 53, 80, 110, 135, 139, 143, 443, 445, 554, 1883, 3389, 5060,
              5683, 8080, 8443, 23231)
PAN_TEST_DOMAINS = (
    "test-malware.testpanw.com", "test-phishing.testpanw.com", "test-c2.testpanw.com",
    "test-dnstun.testpanw.com", "test-dga.testpanw.com", "test-ddns.testpanw.com",
    "test-nrd.testpanw.com", "test-grayware.testpanw.com", "test-parked.testpanw.com",
    "test-proxy.testpanw.com",
)
PAN_URL_HOST = "urlfiltering.paloaltonetworks.com"
PAN_URL_PATHS = ("/test-malware", "/test-phishing", "/test-command-and-control",
                 "/test-grayware", "/test-proxy-avoidance")
BEHAVIOURS = ("dns_flood", "port_scan", "beacon", "data_exfil", "pan_test_domains")
DNS_TTL = 300.0


@dataclass
class Habit:
    name: str
    interval: float
    jitter: float
    to: str
    size: int | None
    rate: float | None
    tos: int
    due: float = 0.0
    threat: bool = False


class Apps:
    """The generators of one device. ``targets`` maps a target's name to how it is
    reached: ``{"host": its DNS name or address, "tcp": port, "udp": port}`` (the first
    service of each kind it offers)."""

    def __init__(self, core: "DeviceCore", habits: list[dict[str, Any]], threats: list[str],
                 targets: dict[str, dict[str, Any]], rng: random.Random, *,
                 hostname: str = "", description: str = ""):
        self.core = core
        self.rng = rng
        self.targets = targets
        self.hostname = hostname or core.dhcp.name
        self.description = description
        self.habits: list[Habit] = []
        for entry in habits:
            name = entry["name"]
            if name not in PROTOCOLS:
                continue
            _t, _p, default_to, default_interval = PROTOCOLS[name]
            dscp = entry.get("dscp") or 0
            self.habits.append(Habit(name, float(entry.get("interval") or default_interval),
                                     float(entry.get("jitter", 0.1) if entry.get("jitter")
                                           is not None else 0.1),
                                     entry.get("to") or default_to, entry.get("size"),
                                     entry.get("rate"), dscp << 2))
        for behaviour in threats:
            interval = BEACON_INTERVAL if behaviour == "beacon" else THREAT_INTERVAL
            self.habits.append(Habit(behaviour, interval, 0.0 if behaviour == "beacon" else 0.1,
                                     "", None, None, 0, threat=True))
        self.running = False
        self.dns_cache: dict[str, tuple[bytes, float]] = {}
        self._waiting: dict[str, list[Callable[[bytes | None], None]]] = {}
        self._ids = 0
        self.streams: list["RtpStream"] = []

    # --- life -------------------------------------------------------------------------------
    def start(self, now: float) -> None:
        self.running = True
        for habit in self.habits:
            if self._streams(habit):
                habit.due = now + self.rng.uniform(0, 1.0)
            else:
                first = min(habit.interval, 10.0) if habit.interval else 1.0
                habit.due = now + self.rng.uniform(0.2, max(0.3, first))

    @staticmethod
    def _streams(habit: Habit) -> bool:
        """RTP always streams; generic UDP streams when it has a ``rate``."""
        return habit.name == "rtp" or (habit.name == "udp" and bool(habit.rate))

    def stop(self) -> None:
        self.running = False
        self.streams.clear()

    def next_timer(self) -> float | None:
        if not self.running:
            return None
        times = [h.due for h in self.habits if h.due] + [s.next_time for s in self.streams]
        return min(times) if times else None

    def on_timer(self, now: float) -> None:
        if not self.running:
            return
        if self.core.address is None:  # not bound (yet, or any more): look again later
            for habit in self.habits:
                if habit.due and habit.due <= now:
                    habit.due = now + 1.0
            for stream in self.streams:
                stream.next_time = max(stream.next_time, now + 1.0)
            return
        for stream in self.streams:
            stream.on_timer(now)
        for habit in self.habits:
            if habit.due and habit.due <= now:
                if self._streams(habit):
                    habit.due = 0.0  # a stream: started once, runs until stopped
                else:
                    spread = habit.interval * habit.jitter
                    habit.due = now + max(0.05, habit.interval + self.rng.uniform(-spread,
                                                                                  spread))
                self._run(habit, now)

    # --- results ----------------------------------------------------------------------------
    def _emit(self, now: float, protocol: str, result: str, *, to: str = "",
              address: bytes | None = None, threat: str | None = None, **data: Any) -> None:
        fields = {"protocol": protocol, "result": result, "to": to}
        if address is not None:
            fields["address"] = ip_text(address)
        if threat:
            fields["threat"] = threat
        self.core.out.emit("app.result", now, **fields, **data)

    def _next_id(self) -> int:
        self._ids = (self._ids + 1) & 0xFFFF
        return self._ids

    # --- resolution -------------------------------------------------------------------------
    def resolve(self, name: str, now: float, then: Callable[[bytes | None], None],
                threat: str | None = None) -> None:
        """``then(address or None)``, through the lease's DNS server (cached)."""
        name = self.targets.get(name, {}).get("host", name)
        try:
            then(ipaddress.IPv4Address(name).packed)
            return
        except ValueError:
            pass
        cached = self.dns_cache.get(name)
        if cached is not None and cached[1] > now:
            then(cached[0])
            return
        if name in self._waiting:
            self._waiting[name].append(then)
            return
        self._waiting[name] = [then]
        self._dns(name, "A", now, threat=threat)

    def _dns(self, name: str, qtype: str, now: float, threat: str | None = None,
             report: bool = True) -> None:
        servers = self.core.dhcp.lease.get("dns") or self.core.dhcp.lease.get("router") or []
        ident = self._next_id()

        def done(job: Any, result: str, data: dict, reply: bytes) -> None:
            answer = apps.dns_answers(reply, ident) if result == "answered" else None
            address = ip_bytes(answer[1][0]) if answer and answer[1] else None
            if report:
                detail = (f"{qtype} {name}: " + (", ".join(answer[1]) if answer and answer[1]
                                                 else f"rcode {answer[0]}" if answer
                                                 else result))
                self._emit(job_now(data, now), "dns", "answered" if answer else result,
                           to=name, address=address, threat=threat, detail=detail)
            if address is not None and qtype == "A":
                self.dns_cache[name] = (address, now + DNS_TTL)
            for waiter in self._waiting.pop(name, []) if qtype == "A" else []:
                waiter(address)

        if not servers:
            done(None, "no_route", {}, b"")
            return
        self._exchange("udp", ip_bytes(servers[0]), 53, apps.dns_query(ident, name, qtype),
                       done, now)

    # --- the exchanges -------------------------------------------------------------------------
    def _exchange(self, proto: str, dst: bytes, port: int, payload: bytes,
                  done: Callable[[Any, str, dict, bytes], None], now: float, *,
                  tos: int = 0, expect_reply: bool = True, timeout: float = 3.0) -> None:
        core = self.core
        if core.address is None:
            done(None, "not_bound", {}, b"")
            return
        core.traffic.exchange(("app", self._next_id()), proto, dst, port, core.address,
                              core.dhcp.lease, now, payload=payload, on_done=done,
                              tos=tos, expect_reply=expect_reply, timeout=timeout)

    def _run(self, habit: Habit, now: float) -> None:
        if habit.threat:
            self._threat(habit.name, now)
            return
        transport, port, _default, _interval = PROTOCOLS[habit.name]
        if transport == "link":
            self._announce(habit, now)
            return
        if habit.name == "dns":
            qtype = "A" if self.rng.random() < 0.7 else "AAAA"
            self._dns(self.targets.get(habit.to, {}).get("host", habit.to), qtype, now)
            return
        if habit.name == "ntp":
            servers = ntp_servers(self.core.dhcp.lease)
            if habit.to == PROTOCOLS["ntp"][2] and servers:
                self._send_app(habit, ip_bytes(servers[0]), servers[0], now)
                return
        port = self.targets.get(habit.to, {}).get(transport) or port  # its own service

        def go(address: bytes | None) -> None:
            if address is None:
                self._emit(now, habit.name, "unresolved", to=habit.to)
                return
            self._send_app(habit, address, habit.to, now, port)

        self.resolve(habit.to, now, go)

    def _send_app(self, habit: Habit, address: bytes, to: str, now: float,
                  port: int | None = None) -> None:
        transport, default_port, _d, _i = PROTOCOLS[habit.name]
        port = port or default_port
        name = habit.name
        if self._streams(habit):
            self.streams.append(RtpStream(self, address, port, habit.rate or 1e6,
                                          habit.size or 1200, habit.tos, now,
                                          rtp=name == "rtp"))
            self._emit(now, name, "streaming", to=to, address=address,
                       detail=f"{(habit.rate or 1e6) / 1e6:g} Mbit/s")
            return
        payload = self._payload(name, to, habit)

        def done(job: Any, result: str, data: dict, reply: bytes) -> None:
            self._emit(job_now(data, now), name, self._verdict(name, result, reply), to=to,
                       address=address, detail=self._detail(name, result, reply, data))

        self._exchange(transport, address, port, payload, done, now, tos=habit.tos,
                       expect_reply=name not in SEND_ONLY)

    def _payload(self, name: str, to: str, habit: Habit) -> bytes:
        host = to if not _is_address(to) else "device.iot.example"
        if name == "ntp":
            return apps.ntp_request()
        if name == "http":
            return apps.http_get(host, "/status", self.hostname)
        if name in ("https", "cloud"):
            return apps.tls_client_hello(host, self.rng)
        if name == "mqtt":
            topic = f"iotemu/{self.hostname}/telemetry"
            return (apps.mqtt_connect(self.hostname) +
                    apps.mqtt_publish(topic, b'{"state":"ok"}') + apps.mqtt_disconnect())
        if name == "rtsp":
            url = f"rtsp://{host}/stream1"
            return apps.rtsp_request("OPTIONS", url, 1) + apps.rtsp_request("DESCRIBE", url, 2)
        if name == "coap":
            return apps.coap_get(self._next_id(), self.rng.randbytes(2), "sensors/state")
        if name == "syslog":
            return apps.syslog_message(self.hostname, "iotemu", "heartbeat ok")
        if name == "sip":
            return _sip_options(host, self.hostname, ip_text(self.core.address or b"\0" * 4),
                                self.rng)
        if name == "snmp":
            return _snmp_trap(self._next_id())
        return self.rng.randbytes(max(1, habit.size or 64))  # udp, tcp

    @staticmethod
    def _verdict(name: str, result: str, reply: bytes) -> str:
        if result == "answered" and name == "ntp" and not apps.ntp_is_reply(reply):
            return "bad_reply"
        return result

    @staticmethod
    def _detail(name: str, result: str, reply: bytes, data: dict) -> str:
        if data.get("detail"):
            return str(data["detail"])
        if name in ("http", "rtsp"):
            return apps.status_line(reply) or f"{len(reply)} bytes back"
        if name == "mqtt":
            return "CONNACK accepted" if apps.mqtt_connack_ok(reply) else \
                f"{len(reply)} bytes back"
        if name in ("https", "cloud"):
            if reply[:1] == b"\x15":
                return "TLS alert"
            return "TLS record" if reply[:1] == b"\x16" else f"{len(reply)} bytes back"
        return f"{len(reply)} bytes back" if reply else result

    # --- link-local announcements -------------------------------------------------------------
    def _announce(self, habit: Habit, now: float) -> None:
        core = self.core
        address = core.address
        if habit.name == "lldp":
            frame = apps.lldp_frame(core.mac, self.hostname, self.description or self.hostname)
        elif address is None:
            return
        elif habit.name == "mdns":
            frame = apps.mdns_announcement(core.mac, address, self.hostname, "_http._tcp", 80)
        else:
            frame = apps.ssdp_notify(core.mac, address, core.mac.hex(),
                                     "urn:schemas-upnp-org:device:Basic:1",
                                     f"Linux UPnP/1.0 {self.hostname}/1.0")
        core.out.send(frame)
        self._emit(now, habit.name, "sent", detail=f"{len(frame)} bytes")

    # --- threat behaviours ----------------------------------------------------------------------
    def _threat(self, behaviour: str, now: float) -> None:
        if behaviour == "random":
            behaviour = self.rng.choice(BEHAVIOURS)
        getattr(self, f"_{behaviour}")(now)

    def _announce_threat(self, behaviour: str, now: float, **data: Any) -> None:
        self.core.out.emit("threat", now, behaviour=behaviour, **data)

    def _dns_flood(self, now: float, count: int = 100) -> None:
        servers = self.core.dhcp.lease.get("dns") or []
        if not servers:
            return
        for _ in range(count):
            name = f"{self.rng.getrandbits(48):012x}.flood.iot.example"
            self._exchange("udp", ip_bytes(servers[0]), 53,
                           apps.dns_query(self._next_id(), name), lambda *a: None, now,
                           expect_reply=False)
        self._announce_threat("dns_flood", now, queries=count, server=servers[0])

    def _port_scan(self, now: float) -> None:
        results: dict[str, int] = {}

        def scan(address: bytes | None) -> None:
            if address is None:
                self._emit(now, "tcp", "unresolved", to="scan.iot.example", threat="port_scan")
                return
            for port in SCAN_PORTS:
                def done(job: Any, result: str, data: dict, reply: bytes, port=port) -> None:
                    results[result] = results.get(result, 0) + 1
                    if sum(results.values()) == len(SCAN_PORTS):
                        self._emit(job_now(data, now), "tcp", "scanned", to="scan.iot.example",
                                   address=address, threat="port_scan",
                                   detail=", ".join(f"{n} {r}" for r, n in sorted(
                                       results.items())))
                self._exchange("tcp", address, port, b"", done, now, timeout=2.0)
            self._announce_threat("port_scan", now, target=ip_text(address),
                                  ports=len(SCAN_PORTS))

        self.resolve("scan.iot.example", now, scan, threat="port_scan")

    def _beacon(self, now: float) -> None:
        name = "c2-beacon.iot.example"

        def go(address: bytes | None) -> None:
            if address is None:
                return
            def done(job: Any, result: str, data: dict, reply: bytes) -> None:
                self._emit(job_now(data, now), "https", result, to=name, address=address,
                           threat="beacon", detail=self._detail("https", result, reply, data))
            self._exchange("tcp", address, 443, apps.tls_client_hello(name, self.rng), done,
                           now)
            self._announce_threat("beacon", now, to=name)

        self.resolve(name, now, go, threat="beacon")

    def _data_exfil(self, now: float, size: int = 1_000_000) -> None:
        name = "drop.exfil.example"

        def go(address: bytes | None) -> None:
            if address is None:
                return
            body = self.rng.randbytes(size)
            def done(job: Any, result: str, data: dict, reply: bytes) -> None:
                self._emit(job_now(data, now), "http", result, to=name, address=address,
                           threat="data_exfil", detail=apps.status_line(reply) or result,
                           bytes=size)
            self._exchange("tcp", address, 80, apps.http_post(name, "/upload", body,
                                                               self.hostname), done, now,
                           timeout=10.0)
            self._announce_threat("data_exfil", now, to=name, bytes=size)

        self.resolve(name, now, go, threat="data_exfil")

    def _pan_test_domains(self, now: float) -> None:
        for domain in PAN_TEST_DOMAINS:
            self._dns(domain, "A", now, threat="pan_test_domains")

        def fetch(address: bytes | None) -> None:
            if address is None:
                return
            for path in PAN_URL_PATHS:
                def done(job: Any, result: str, data: dict, reply: bytes, path=path) -> None:
                    self._emit(job_now(data, now), "http", result, to=PAN_URL_HOST + path,
                               address=address, threat="pan_test_domains",
                               detail=apps.status_line(reply) or result)
                self._exchange("tcp", address, 80, apps.http_get(PAN_URL_HOST, path,
                                                                  self.hostname), done, now)

        self.resolve(PAN_URL_HOST, now, fetch, threat="pan_test_domains")
        self._announce_threat("pan_test_domains", now, domains=len(PAN_TEST_DOMAINS),
                              urls=len(PAN_URL_PATHS))


class RtpStream:
    """A stream at a bit rate: one datagram each ``size * 8 / rate`` seconds — RTP
    (H.264-like payload type 96, sequence numbers, a 90 kHz timestamp), or plain bytes for
    a generic UDP stream (``rtp=False``). One frame template, patched per datagram: the
    RTP sequence and timestamp, and the UDP checksum updated arithmetically."""

    def __init__(self, owner: Apps, dst: bytes, port: int, rate: float, size: int, tos: int,
                 now: float, rtp: bool = True):
        self.owner = owner
        self.rtp = rtp
        self.dst, self.port, self.size, self.tos = dst, port, max(12, size), tos
        self.interval = self.size * 8 / rate
        self.start = now
        self.next_time = now
        self.seq = owner.rng.getrandbits(16)
        self.ssrc = owner.rng.getrandbits(32)
        self.sport = owner.core.traffic.next_port()
        self.sent = 0
        self._frame: bytearray | None = None
        self._hop_mac: bytes | None = None
        self._src: bytes | None = None  # the address the template was built for
        self._hop: bytes | None = None
        self._base = 0

    def _template(self, mac: bytes) -> None:
        core = self.owner.core
        src = core.address
        payload = apps.rtp_packet(0, 0, self.ssrc, size=self.size) if self.rtp \
            else bytes(self.size)
        segment = struct.pack("!HHHH", self.sport, self.port, 8 + len(payload), 0) + payload
        self._frame = bytearray(ethernet(mac, core.mac, ETH_P_IP,
                                         ipv4(src, self.dst, IPPROTO_UDP, segment,
                                              tos=self.tos, dont_fragment=True)))
        self._hop_mac = mac
        self._src = src
        self._base = fold(_pseudo_sum(src, self.dst, IPPROTO_UDP, len(segment))
                          + _sum16(segment))

    def on_timer(self, now: float) -> None:
        core = self.owner.core
        if core.address is None:
            self.next_time = now + 1.0
            return
        if self._hop is None or core.address != self._src:  # routed once per lease
            route = next_hop(self.dst, core.dhcp.lease)
            self._hop = route[0] if route else None
            self._frame = None
        mac = core.arp_cache.lookup(self._hop, now) if self._hop else None
        if mac is None:
            self.next_time = now + 1.0  # wait for the next hop to be known
            return
        if self._frame is None or mac != self._hop_mac:
            self._template(mac)
        frame = self._frame
        assert frame is not None
        for _ in range(64):
            if self.next_time > now:
                break
            total = self._base
            if self.rtp:
                seq = (self.seq + self.sent) & 0xFFFF
                stamp = round(self.sent * self.interval * 90000) & 0xFFFFFFFF
                struct.pack_into("!HI", frame, 44, seq, stamp)
                total += seq + (stamp >> 16) + (stamp & 0xFFFF)
            total = (total & 0xFFFF) + (total >> 16)
            total = (total & 0xFFFF) + (total >> 16)
            struct.pack_into("!H", frame, 40, ((~total) & 0xFFFF) or 0xFFFF)
            core.out.send(bytes(frame))
            self.sent += 1
            self.next_time += self.interval
        if self.next_time < now - 1.0:  # more than a second behind: drop the backlog
            self.next_time = now


def ntp_servers(lease: dict) -> list[str]:
    """The NTP servers of a lease (option 42), as addresses."""
    raw = bytes.fromhex((lease.get("options") or {}).get(42, "") or "")
    return [ip_text(raw[i:i + 4]) for i in range(0, len(raw) - len(raw) % 4, 4)]


def job_now(data: dict, start: float) -> float:
    return start + float(data.get("rtt") or 0.0)


def _is_address(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
        return True
    except ValueError:
        return False


def _sip_options(host: str, user: str, address: str, rng: random.Random) -> bytes:
    branch = f"z9hG4bK{rng.getrandbits(40):010x}"
    tag = f"{rng.getrandbits(32):08x}"
    call = f"{rng.getrandbits(64):016x}@{address}"
    return (f"OPTIONS sip:{host} SIP/2.0\r\nVia: SIP/2.0/UDP {address}:5060;branch={branch}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:{user}@{address}>;tag={tag}\r\n"
            f"To: <sip:{host}>\r\nCall-ID: {call}\r\nCSeq: 1 OPTIONS\r\n"
            f"Contact: <sip:{user}@{address}:5060>\r\nAccept: application/sdp\r\n"
            "Content-Length: 0\r\n\r\n").encode()


def _ber(tag: int, body: bytes) -> bytes:
    if len(body) < 128:
        return bytes([tag, len(body)]) + body
    size = len(body).to_bytes(2, "big")
    return bytes([tag, 0x82]) + size + body


def _ber_int(value: int) -> bytes:
    raw = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True)
    return _ber(0x02, raw)


def _snmp_trap(request_id: int) -> bytes:
    """An SNMPv2c trap (coldStart) with sysUpTime, community ``public``."""
    oid_uptime = bytes.fromhex("2b06010201010300")  # 1.3.6.1.2.1.1.3.0
    oid_trap = bytes.fromhex("2b0601060301010401 00".replace(" ", ""))  # snmpTrapOID.0
    cold_start = bytes.fromhex("2b0601060301010501")  # 1.3.6.1.6.3.1.1.5.1
    binds = _ber(0x30, _ber(0x30, _ber(0x06, oid_uptime) + _ber(0x43, struct.pack("!I", 4200)))
                 + _ber(0x30, _ber(0x06, oid_trap) + _ber(0x06, cold_start)))
    pdu = _ber(0xA7, _ber_int(request_id) + _ber_int(0) + _ber_int(0) + binds)
    return _ber(0x30, _ber_int(1) + _ber(0x04, b"public") + pdu)
