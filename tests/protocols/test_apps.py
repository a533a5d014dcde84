"""Every application message a device sends, dissected by tshark: the right protocol,
the fields we set, and not one malformed-packet or error warning."""
from __future__ import annotations

import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from pytest_iotemu.protocols import apps
from pytest_iotemu.protocols.frames import (ACK, ETH_P_IP, IPPROTO_TCP, PSH, ethernet,
                                            ip_bytes, ipv4, tcp, udp_frame)

MAC, GW = bytes.fromhex("accc8e010203"), bytes.fromhex("020000000001")
DEV, PEER = ip_bytes("10.20.1.10"), ip_bytes("198.51.100.10")

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None,
                                reason="tshark not installed: apt-get install tshark")


def over_udp(dport: int, payload: bytes, sport: int = 40000) -> bytes:
    return udp_frame(MAC, GW, DEV, PEER, sport, dport, payload)


_ports = iter(range(41000, 42000))


def over_tcp(dport: int, payload: bytes) -> bytes:
    """A data segment of a connection of its own (two on one would read as a
    retransmission)."""
    segment = tcp(DEV, PEER, next(_ports), dport, 1000, 2000, ACK | PSH, payload)
    return ethernet(GW, MAC, ETH_P_IP, ipv4(DEV, PEER, IPPROTO_TCP, segment))


def write_pcap(path: Path, frames: list[bytes]) -> None:
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, frame in enumerate(frames):
            out.write(struct.pack("<IIII", 1_800_000_000 + i, 0, len(frame), len(frame)))
            out.write(frame)


MESSAGES = [
    ("DNS", over_udp(53, apps.dns_query(0x1234, "cloud.axis.example", "A")),
     "dns.qry.name", "cloud.axis.example"),
    ("DNS", over_udp(53, apps.dns_query(7, "ntp.branch.lab", "AAAA")), "dns.qry.type", "28"),
    ("NTP", over_udp(123, apps.ntp_request(1.8e9), sport=123), "ntp.flags.mode", "3"),
    ("HTTP", over_tcp(80, apps.http_get("cloud.axis.example", "/status")),
     "http.request.uri", "/status"),
    ("TLSv1", over_tcp(443, apps.tls_client_hello("cloud.axis.example", random.Random(1))),
     "tls.handshake.extensions_server_name", "cloud.axis.example"),
    ("MQTT", over_tcp(1883, apps.mqtt_connect("axis-camera-01")), "mqtt.clientid",
     "axis-camera-01"),
    ("MQTT", over_tcp(1883, apps.mqtt_publish("iotemu/axis-camera-01/state", b'{"on":1}')),
     "mqtt.topic", "iotemu/axis-camera-01/state"),
    ("RTSP", over_tcp(554, apps.rtsp_request("DESCRIBE", "rtsp://198.51.100.10/stream1", 2)),
     "rtsp.method", "DESCRIBE"),
    ("RTP", over_udp(5004, apps.rtp_packet(7, 90000, 0xABCDEF, size=200), sport=5004),
     "rtp.seq", "7"),
    ("CoAP", over_udp(5683, apps.coap_get(0x55, b"\x01\x02", "sensors/temp")),
     "coap.opt.uri_path_recon", "/sensors/temp"),
    ("Syslog", over_udp(514, apps.syslog_message("prn-01", "printer", "toner low", now=1.8e9)),
     "syslog.msg", "toner low"),
    ("MDNS", apps.mdns_announcement(MAC, DEV, "axis-0102", "_axis-video._tcp", 80),
     "dns.resp.name", "axis-0102.local"),
    ("SSDP", apps.ssdp_notify(MAC, DEV, "8c1e-0001", "urn:schemas-upnp-org:device:Basic:1",
                              "Linux/5.10 UPnP/1.0 iotemu/1.0"), "http.request.method",
     "NOTIFY"),
    ("LLDP", apps.lldp_frame(MAC, "axis-camera-01", "AXIS M3106 network camera"),
     "lldp.tlv.system.name", "axis-camera-01"),
]


def test_tshark_decodes_every_message_without_a_warning(tmp_path: Path) -> None:
    pcap = tmp_path / "apps.pcap"
    write_pcap(pcap, [frame for _p, frame, _f, _v in MESSAGES])
    fields = sorted({f for _p, _fr, f, _v in MESSAGES})
    out = subprocess.run(["tshark", "-r", str(pcap), "-d", "udp.port==5004,rtp", "-T",
                          "fields", "-E", "separator=|", "-e", "_ws.col.Protocol",
                          "-e", "_ws.expert.severity", "-e", "_ws.malformed",
                          *[x for f in fields for x in ("-e", f)]],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(out) == len(MESSAGES)
    for line, (proto, _frame, field, value) in zip(out, MESSAGES):
        columns = line.split("|")
        shown = dict(zip(fields, columns[3:]))
        assert columns[0].startswith(proto), (proto, line)
        assert columns[2] == "", ("malformed", proto, line)
        # expert severity: none, or chat/note (e.g. "connection finish"), never warn/error
        severities = {int(s, 0) for s in columns[1].split(",") if s}
        assert all(s < 0x00600000 for s in severities), (proto, line)
        assert value in shown[field], (proto, field, shown[field])


def test_answers_are_read_back() -> None:
    query = apps.dns_query(0x4242, "cloud.axis.example")
    answer = (struct.pack("!HHHHHH", 0x4242, 0x8180, 1, 1, 0, 0) + query[12:]
              + b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([198, 51, 100, 10]))
    assert apps.dns_answers(answer, 0x4242) == (0, ["198.51.100.10"])
    assert apps.dns_answers(answer, 0x4243) is None
    assert apps.dns_answers(answer[:20], 0x4242) is None  # truncated: not an answer
    hello = apps.tls_client_hello("c2.example.net", random.Random(3))
    assert apps.tls_sni(hello) == "c2.example.net"
    assert apps.status_line(b"HTTP/1.1 404 Not Found\r\n\r\n") == "HTTP/1.1 404 Not Found"
    assert apps.lldp_system_name(apps.lldp_frame(MAC, "plc-7", "S7-1200")) == "plc-7"
    assert apps.mqtt_connack_ok(b"\x20\x02\x00\x00")
