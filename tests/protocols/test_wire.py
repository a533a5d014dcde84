"""Our frames against scapy's encoding (byte for byte) and tshark's dissection; parsing
of random and mutated frames never raises and the counters add up."""
from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Padding
from scapy.utils import wrpcap

from pytest_iotemu.profiles import builtin_profiles
from pytest_iotemu.protocols import DeviceCore, DhcpClient, Outbox
from pytest_iotemu.protocols import dhcp_wire as w
from pytest_iotemu.protocols.frames import (arp_frame, checksum, icmp_echo, mac_bytes,
                                            udp_frame)

from .fake_server import FakeServer, arp_from

MAC = "00:1b:54:0a:0b:0c"


def scapy_client(xid: int, options: list, *, flags: int = 0, src="0.0.0.0",
                 dst="255.255.255.255", dst_mac="ff:ff:ff:ff:ff:ff", ciaddr="0.0.0.0") -> bytes:
    def build(pads: int):
        return (Ether(src=MAC, dst=dst_mac) / IP(src=src, dst=dst, ttl=64, id=0, flags=0) /
                UDP(sport=68, dport=67) /
                BOOTP(op=1, xid=xid, flags=flags, ciaddr=ciaddr, chaddr=mac_bytes(MAC)) /
                DHCP(options=options + ["end"] + ["pad"] * pads))
    short = 300 - len(build(0)[BOOTP])
    return bytes(build(max(short, 0)))


def our_discover(profile_name: str, hostname: str = "SEP001B540A0B0C"):
    out = Outbox()
    profile = builtin_profiles()[profile_name]
    client = DhcpClient(mac_bytes(MAC), profile.dhcp, out, hostname=hostname,
                        rng=random.Random(9))
    client.start(0.0)
    return client, out.take_frames()[0], profile


@pytest.mark.parametrize("profile_name", ["cisco-ip-phone", "windows-10", "android",
                                          "raspberry-pi", "siemens-plc"])
def test_discover_matches_scapy_byte_for_byte(profile_name: str) -> None:
    client, ours, profile = our_discover(profile_name)
    fp = profile.dhcp
    options: list = [("message-type", 1)]
    if fp.client_id == "mac":
        options.append(("client_id", b"\x01" + mac_bytes(MAC)))
    elif fp.client_id == "duid":
        options.append(("client_id", b"\xff" + mac_bytes(MAC)[2:] + b"\x00\x03\x00\x01"
                        + mac_bytes(MAC)))
    if fp.max_message_size:
        options.append(("max_dhcp_size", fp.max_message_size))
    options.append(("hostname", b"SEP001B540A0B0C"))
    if fp.fqdn:
        options.append(("client_FQDN", b"\x00\x00\x00SEP001B540A0B0C"))
    if fp.vendor_class:
        options.append(("vendor_class_id", fp.vendor_class.encode()))
    options.append(("param_req_list", list(fp.param_request_list)))
    theirs = scapy_client(client.xid, options, flags=0x8000 if fp.broadcast else 0)
    assert ours == theirs


def test_renew_request_and_release_match_scapy() -> None:
    pair_out = Outbox()
    fp = builtin_profiles()["cisco-ip-phone"].dhcp
    client = DhcpClient(mac_bytes(MAC), fp, pair_out, hostname="phone", rng=random.Random(2))
    server = FakeServer()
    client.start(0.0)
    for _ in range(2):
        for frame in pair_out.take_frames():
            for reply in server.handle(frame):
                client.receive(reply, 0.0)
    client.renew(10.0)
    (renew,) = [f for f in pair_out.take_frames() if f[12:14] == b"\x08\x00"]
    options = [("message-type", 3), ("client_id", b"\x01" + mac_bytes(MAC)),
               ("hostname", b"phone"), ("vendor_class_id", fp.vendor_class.encode()),
               ("param_req_list", list(fp.param_request_list))]
    expected = scapy_client(client.xid, options, src="10.0.0.10", dst="10.0.0.1",
                            dst_mac="02:00:00:00:00:fe", ciaddr="10.0.0.10")
    expected = bytearray(expected)
    expected[14 + 20 + 8 + 8:14 + 20 + 8 + 10] = renew[14 + 20 + 8 + 8:14 + 20 + 8 + 10]  # secs
    assert renew == bytes(Ether(bytes(_recsum(bytes(expected)))))


def _recsum(frame: bytes):
    pkt = Ether(frame)
    del pkt[UDP].chksum
    return pkt


def test_arp_and_icmp_match_scapy() -> None:
    ours = arp_frame(1, mac_bytes(MAC), bytes(4), bytes(6), bytes([10, 0, 0, 10]))
    theirs = Ether(src=MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=MAC, psrc="0.0.0.0",
                                                            hwdst="00:00:00:00:00:00",
                                                            pdst="10.0.0.10")
    assert ours == bytes(theirs / Padding(load=b"\x00" * 18))
    message = icmp_echo(8, 0x4242, 3, b"abc")
    assert message == bytes(ICMP(type=8, id=0x4242, seq=3) / b"abc")


def test_udp_frames_and_checksums_match_scapy() -> None:
    ours = udp_frame(mac_bytes(MAC), mac_bytes("02:00:00:00:00:01"), bytes([10, 0, 0, 10]),
                     bytes([198, 51, 100, 10]), 40000, 554, b"x" * 33, ident=7, tos=0xB8)
    theirs = (Ether(src=MAC, dst="02:00:00:00:00:01") /
              IP(src="10.0.0.10", dst="198.51.100.10", id=7, tos=0xB8, ttl=64, flags=0) /
              UDP(sport=40000, dport=554) / (b"x" * 33))
    assert ours == bytes(theirs)
    assert checksum(b"\x00\x01\xf2\x03\xf4\xf5\xf6\xf7") == 0x220D  # RFC 1071's example


def test_long_options_are_split_rfc3396() -> None:
    encoded = w.encode_options([(43, bytes(300))])
    assert encoded[:2] == bytes((43, 255)) and encoded[257:259] == bytes((43, 45))
    parsed: dict = {}
    assert w.parse_options(encoded, parsed) and parsed[43] == bytes(300)


def test_option_overload_is_read() -> None:
    reply = Ether(FakeServer().reply(
        Ether(our_discover("cisco-ip-phone")[1]), 2, "10.0.0.20"))
    bootp = reply[BOOTP]
    bootp.file = bytes((1, 4, 255, 255, 252, 0, 255)).ljust(128, b"\x00")
    reply[DHCP].options = [o for o in reply[DHCP].options
                           if not (isinstance(o, tuple) and o[0] == "subnet_mask")]
    reply[DHCP].options.insert(1, ("dhcp-option-overload", 1))
    del reply[IP].len, reply[IP].chksum, reply[UDP].len, reply[UDP].chksum
    parsed = w.parse_reply(bytes(reply))
    assert parsed.ip_option(w.OPT_SUBNET_MASK) == bytes((255, 255, 252, 0))


TSHARK = shutil.which("tshark")


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (apt-get install tshark)")
def test_tshark_decodes_our_frames_without_warnings(tmp_path: Path) -> None:
    frames = []
    for name in ("cisco-ip-phone", "windows-10", "raspberry-pi", "hp-printer", "android"):
        out = Outbox()
        fp = builtin_profiles()[name].dhcp.merged({"arp_probe": True})
        device = DeviceCore(mac_bytes(MAC), fp, outbox=out, hostname="host-1",
                            rng=random.Random(4))
        server = FakeServer()
        device.dhcp.start(0.0)
        for _ in range(3):
            for frame in out.take_frames():
                frames.append(frame)
                for reply in server.handle(frame):
                    frames.append(reply)
                    device.receive(reply, 0.0)
        while device.next_timer() is not None and device.next_timer() <= 5.0:
            device.on_timer(device.next_timer())
        frames.extend(out.take_frames())
        device.receive(arp_from("02:00:00:00:00:01", "10.0.0.1", "10.0.0.10"), 5.0)
        device.dhcp.renew(6.0)
        device.dhcp.release(7.0)
        frames.extend(out.take_frames())
    # a DECLINE too
    out = Outbox()
    device = DeviceCore(mac_bytes(MAC), builtin_profiles()["axis-camera"].dhcp, outbox=out,
                        rng=random.Random(4))
    server = FakeServer()
    device.dhcp.start(0.0)
    for _ in range(2):
        for frame in out.take_frames():
            for reply in server.handle(frame):
                device.receive(reply, 0.0)
    device.receive(arp_from("02:00:00:00:00:09", "10.0.0.10", "10.0.0.1", op=2), 0.1)
    frames.extend(out.take_frames())
    pcap = tmp_path / "ours.pcap"
    wrpcap(str(pcap), [Ether(f) for f in frames])
    result = subprocess.run([TSHARK, "-n", "-r", str(pcap), "-V", "-o",
                             "udp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.count("Dynamic Host Configuration Protocol (") >= 20
    for bad in ("Malformed", "[Expert Info (Warning", "[Expert Info (Error",
                "Bad checksum", "[incorrect"):
        assert bad not in text, bad
    assert "(Decline)" in text and "(Release)" in text and "(Request)" in text


# --- never raise on what the network sends ----------------------------------------------

def _offer_frame() -> tuple[DhcpClient, bytes]:
    out = Outbox()
    client = DhcpClient(mac_bytes(MAC), builtin_profiles()["axis-camera"].dhcp, out,
                        rng=random.Random(1))
    client.start(0.0)
    (discover,) = out.take_frames()
    return client, FakeServer().handle(discover)[0]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=700))
def test_random_frames_never_raise(data: bytes) -> None:
    device = DeviceCore(mac_bytes(MAC), builtin_profiles()["axis-camera"].dhcp,
                        rng=random.Random(1))
    device.dhcp.start(0.0)
    device.receive(data, 1.0)
    device.receive(data, 1.0, checksum_unfilled=True)
    c = device.counters
    assert c["received"] == 2 == c["accepted"] + c.ignored_total()


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=8),
       st.integers(0, 400), st.booleans())
def test_mutated_offers_never_raise(mutations, cut, unfilled) -> None:
    """Flip bytes and truncate a real OFFER: lengths, options and overflow all lie."""
    client, offer = _offer_frame()
    frame = bytearray(offer)
    for at, value in mutations:
        if at < len(frame):
            frame[at] = value
    frame = frame[:max(cut, 0) + 200]
    client.receive(bytes(frame), 0.5, checksum_unfilled=unfilled)
    c = client.counters
    assert c["received"] == 1 == c["accepted"] + c.ignored_total()
