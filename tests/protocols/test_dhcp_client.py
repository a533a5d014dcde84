"""The DHCP client, state by state, paired in memory with a scapy-built server."""
from __future__ import annotations

import random

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether

from pytest_iotemu.profiles import builtin_profiles
from pytest_iotemu.profiles.model import DhcpFingerprint
from pytest_iotemu.protocols import DhcpClient, LocalProtocolError, Outbox, State
from pytest_iotemu.protocols.frames import mac_bytes

from .fake_server import FakeServer, arp_from, dhcp_options, message_type


def rebuilt(pkt) -> bytes:
    """A scapy packet edited after parsing, with lengths and checksums computed again."""
    pkt = pkt.copy()
    del pkt[IP].len, pkt[IP].chksum, pkt[UDP].len, pkt[UDP].chksum
    return bytes(pkt)

MAC = "00:40:8c:01:02:03"
PLAIN = DhcpFingerprint(param_request_list=(1, 3, 6, 15), client_id="mac")
PROBING = DhcpFingerprint(param_request_list=(1, 3, 6), arp_probe=True)


class Pair:
    """A client and a server exchanging frames in memory, on a clock of our own."""

    def __init__(self, fingerprint: DhcpFingerprint = PLAIN, server: FakeServer | None = None,
                 scale: float = 1.0, seed: int = 1, **kwargs):
        self.out = Outbox()
        self.client = DhcpClient(mac_bytes(MAC), fingerprint, self.out,
                                 rng=random.Random(seed), time_scale=scale, **kwargs)
        self.server = server or FakeServer()
        self.now = 0.0
        self.sent: list = []  # every client frame, decoded by scapy
        self.events: list = []

    def pump(self) -> None:
        """Deliver frames until both sides are quiet."""
        while True:
            frames = self.out.take_frames()
            self.events += self.out.take_events()
            if not frames:
                return
            for frame in frames:
                self.sent.append(Ether(frame))
                for reply in self.server.handle(frame):
                    self.client.receive(reply, self.now)

    def start(self) -> None:
        self.client.start(self.now)
        self.pump()

    def advance(self, until: float) -> None:
        """Run timers up to ``until``."""
        while True:
            deadline = self.client.next_timer()
            if deadline is None or deadline > until:
                break
            self.now = max(self.now, deadline)
            self.client.on_timer(self.now)
            self.pump()
        self.now = until

    def types(self, kind: str) -> list:
        return [e for e in self.events if e.type == kind]

    def dhcp_sent(self) -> list[int]:
        return [message_type(p) for p in self.sent if DHCP in p]


def test_dora_binds_and_reports_timings() -> None:
    pair = Pair()
    pair.start()
    assert pair.client.state is State.BOUND
    assert pair.dhcp_sent() == [1, 3]  # DISCOVER, REQUEST
    (bound,) = pair.types("dhcp.bound")
    assert bound.data["ip"] == "10.0.0.10" and bound.data["mask"] == "255.255.255.0"
    assert bound.data["router"] == ["10.0.0.1"] and bound.data["domain"] == "branch.lab"
    assert bound.data["lease"] == 600 and bound.data["t1"] == 300 and bound.data["t2"] == 525
    assert bound.data["total"] == 0 and bound.data["retransmits"] == 0
    assert {"discover_to_offer", "request_to_ack"} <= set(bound.data)
    assert [e.data["new"] for e in pair.types("dhcp.state")] == ["SELECTING", "REQUESTING",
                                                                  "BOUND"]
    # the REQUEST names the offer and the server, with the DISCOVER's xid
    discover, request = [p for p in pair.sent if DHCP in p]
    opts = dhcp_options(request)
    assert opts["requested_addr"] == "10.0.0.10" and opts["server_id"] == "10.0.0.1"
    assert request[BOOTP].xid == discover[BOOTP].xid
    # an announcement follows the binding: sender = target = the address
    arp = [p for p in pair.sent if ARP in p]
    assert len(arp) == 1 and arp[0][ARP].psrc == arp[0][ARP].pdst == "10.0.0.10"


@pytest.mark.parametrize("name", ["windows-10", "cisco-ip-phone", "raspberry-pi", "android",
                                  "hp-printer", "siemens-plc"])
def test_every_message_carries_the_fingerprint_exactly(name: str) -> None:
    profile = builtin_profiles()[name]
    pair = Pair(profile.dhcp, hostname="dev-01")
    pair.start()
    for pkt in [p for p in pair.sent if DHCP in p]:
        raw = pkt[DHCP].options
        codes = {o[0]: o for o in raw if isinstance(o, tuple)}
        assert list(bytes(pkt[BOOTP])[240:])[:1] == [53]  # message type first
        prl = codes["param_req_list"][1]
        assert tuple(prl) == profile.dhcp.param_request_list  # in order
        if profile.dhcp.vendor_class:
            assert codes["vendor_class_id"][1] == profile.dhcp.vendor_class.encode()
        else:
            assert "vendor_class_id" not in codes
        client_id = codes.get("client_id")
        if profile.dhcp.client_id == "mac":
            assert client_id[1] == b"\x01" + mac_bytes(MAC)
        elif profile.dhcp.client_id == "duid":
            assert client_id[1][:1] == b"\xff" and client_id[1].endswith(mac_bytes(MAC))
        assert codes["hostname"][1] == b"dev-01"
        assert ("max_dhcp_size" in codes) == bool(profile.dhcp.max_message_size)
        assert ("client_FQDN" in codes) == profile.dhcp.fqdn
        assert bool(pkt[BOOTP].flags & 0x8000) == profile.dhcp.broadcast
        assert len(bytes(pkt[BOOTP])) >= 300


def test_discover_retransmits_with_rfc2131_backoff_and_jitter() -> None:
    pair = Pair(server=FakeServer(silent=True))
    pair.start()
    times = [0.0]
    for _ in range(7):
        deadline = pair.client.next_timer()
        pair.advance(deadline)
        times.append(deadline)
    gaps = [b - a for a, b in zip(times, times[1:])]
    for gap, base in zip(gaps, [4, 8, 16, 32, 64, 64, 64]):
        assert base - 1 <= gap <= base + 1
    assert len(set(round(g, 6) for g in gaps)) == len(gaps)  # jittered, not constant
    assert pair.client.state is State.SELECTING and pair.dhcp_sent() == [1] * 8
    xids = {p[BOOTP].xid for p in pair.sent}
    assert len(xids) == 1  # one transaction
    secs = [p[BOOTP].secs for p in pair.sent]
    assert secs == sorted(secs) and secs[-1] > 100  # seconds since the first DISCOVER


def test_time_scale_divides_every_timer() -> None:
    pair = Pair(scale=100.0, server=FakeServer(lease=600))
    pair.start()
    assert pair.client.next_timer() == pytest.approx(3.0)  # T1 = 300 s / 100
    slow = Pair(server=FakeServer(silent=True), scale=4.0)
    slow.start()
    assert 0.75 <= slow.client.next_timer() <= 1.25  # (4 s ± 1 s) / 4


def test_request_retries_then_starts_over() -> None:
    server = FakeServer()
    pair = Pair(server=server)
    pair.client.start(0.0)
    frames = pair.out.take_frames()  # the DISCOVER
    (offer,) = server.handle(frames[0])
    server.silent = True
    pair.client.receive(offer, 0.5)
    assert pair.client.state is State.REQUESTING
    pair.pump()
    pair.advance(200)
    kinds = pair.dhcp_sent()
    assert kinds[:4] == [3, 3, 3, 3] and 1 in kinds[4:]  # 4 REQUESTs, then DISCOVER again
    assert pair.client.state is State.SELECTING
    assert pair.client.last_seen == "no ACK to REQUEST"


def test_first_valid_offer_wins_and_later_offers_are_ignored() -> None:
    first, second = FakeServer(server_ip="10.0.0.1"), FakeServer(server_ip="10.0.0.2",
                                                                 mac="02:00:00:00:00:fd")
    out = Outbox()
    client = DhcpClient(mac_bytes(MAC), PLAIN, out, rng=random.Random(3))
    client.start(0.0)
    (discover,) = out.take_frames()
    offer1, offer2 = first.handle(discover)[0], second.handle(discover)[0]
    client.receive(offer2, 0.1)  # the second server is faster: it wins
    client.receive(offer1, 0.2)
    assert client.server_id == bytes([10, 0, 0, 2])
    assert client.counters["ignored.offer_in_requesting"] == 1
    (request,) = out.take_frames()
    assert dhcp_options(Ether(request))["server_id"] == "10.0.0.2"
    assert first.handle(request) == []  # the other server sees it was not chosen
    client.receive(second.handle(request)[0], 0.3)
    assert client.state is State.BOUND and client.lease["ip"] == "10.0.0.10"


def test_offer_without_server_id_or_with_a_bad_address_is_ignored() -> None:
    out = Outbox()
    client = DhcpClient(mac_bytes(MAC), PLAIN, out, rng=random.Random(3))
    client.start(0.0)
    (discover,) = out.take_frames()
    offer = Ether(FakeServer().handle(discover)[0])
    offer[DHCP].options = [o for o in offer[DHCP].options
                           if not (isinstance(o, tuple) and o[0] == "server_id")]
    client.receive(rebuilt(offer), 0.1)
    offer2 = Ether(FakeServer().handle(discover)[0])
    offer2[BOOTP].yiaddr = "224.0.0.1"
    client.receive(rebuilt(offer2), 0.1)
    assert client.state is State.SELECTING
    assert client.counters["ignored.offer_without_server_id"] == 1
    assert client.counters["ignored.offer_bad_address"] == 1


def test_nak_in_requesting_restarts() -> None:
    pair = Pair(server=FakeServer(nak_requests=True))
    pair.client.start(0.0)
    pair.out.take_events()
    frames = pair.out.take_frames()
    offer = pair.server.handle(frames[0])[0]
    pair.client.receive(offer, 0.1)
    (request,) = pair.out.take_frames()
    pair.client.receive(pair.server.handle(request)[0], 0.2)
    events = [e.type for e in pair.out.take_events()]
    assert "dhcp.nak" in events and pair.client.state is State.SELECTING
    assert pair.client.last_seen.startswith("NAK (address not available)")


def test_renewing_at_t1_is_unicast_to_the_server() -> None:
    pair = Pair(server=FakeServer(lease=600))
    pair.start()
    pair.sent.clear()
    pair.advance(300)
    assert pair.client.state is State.BOUND  # renewed at T1
    (renew,) = [p for p in pair.sent if DHCP in p]
    assert renew[Ether].dst == "02:00:00:00:00:fe" and renew[IP].dst == "10.0.0.1"
    assert renew[IP].src == "10.0.0.10" and renew[BOOTP].ciaddr == "10.0.0.10"
    opts = dhcp_options(renew)
    assert "requested_addr" not in opts and "server_id" not in opts
    assert [e.type for e in pair.events].count("dhcp.renewed") == 1
    assert pair.client.next_timer() == pytest.approx(600)  # the next T1


def test_rebinding_at_t2_then_expiry() -> None:
    server = FakeServer(lease=600)
    pair = Pair(server=server)
    pair.start()
    server.silent = True
    pair.sent.clear()
    pair.advance(520)
    assert pair.client.state is State.RENEWING
    pair.advance(530)
    assert pair.client.state is State.REBINDING
    rebind = [p for p in pair.sent if DHCP in p][-1]
    assert rebind[Ether].dst == "ff:ff:ff:ff:ff:ff" and rebind[IP].dst == "255.255.255.255"
    assert rebind[BOOTP].ciaddr == "10.0.0.10" and rebind[IP].src == "10.0.0.10"
    assert not rebind[BOOTP].flags & 0x8000
    pair.advance(601)
    assert pair.client.state is State.SELECTING
    kinds = [e.type for e in pair.events]
    assert kinds.index("dhcp.rebinding") < kinds.index("dhcp.expired")
    assert pair.dhcp_sent()[-1] == 1  # a fresh DISCOVER


def test_rebinding_ack_binds_again() -> None:
    server = FakeServer(lease=600)
    pair = Pair(server=server)
    pair.start()
    server.silent = True
    pair.advance(530)
    server.silent = False
    pair.advance(560)
    assert pair.client.state in (State.BOUND, State.REBINDING)
    pair.client.on_timer(pair.client.next_timer())
    pair.pump()
    assert pair.client.state is State.BOUND and pair.types("dhcp.renewed")


def test_nak_while_renewing_restarts_and_naks_in_a_row_back_off() -> None:
    server = FakeServer(lease=600)
    pair = Pair(server=server)
    pair.start()
    server.nak_requests = True
    pair.advance(300)
    # NAK of the renewal -> DISCOVER at once -> OFFER -> REQUEST -> NAK again -> wait 1 s
    assert len(pair.types("dhcp.nak")) == 2 and pair.client.state is State.INIT
    assert pair.client.next_timer() == pytest.approx(301)
    pair.advance(310)  # waits of 1, 2, 4 s
    starts = [e.time for e in pair.types("dhcp.discover")]
    assert starts[-3:] == pytest.approx([301, 303, 307])


def test_server_t1_t2_are_used_when_consistent() -> None:
    pair = Pair(server=FakeServer(lease=1000, t1=100, t2=200))
    pair.start()
    assert pair.client.lease["t1"] == 100 and pair.client.lease["t2"] == 200
    bad = Pair(server=FakeServer(lease=1000, t1=900, t2=100))
    bad.start()
    assert bad.client.lease["t1"] == 900 and bad.client.lease["t2"] == 900


def test_reboot_asks_for_the_previous_address() -> None:
    pair = Pair()
    pair.start()
    pair.sent.clear()
    pair.events.clear()
    pair.client.reboot(10.0)
    pair.pump()
    (request,) = [p for p in pair.sent if DHCP in p]
    opts = dhcp_options(request)
    assert opts["requested_addr"] == "10.0.0.10" and "server_id" not in opts
    assert request[BOOTP].ciaddr == "0.0.0.0" and request[Ether].dst == "ff:ff:ff:ff:ff:ff"
    (bound,) = pair.types("dhcp.bound")
    assert bound.data["rebooted"] is True and pair.client.state is State.BOUND


def test_reboot_nak_goes_back_to_discover() -> None:
    pair = Pair()
    pair.start()
    pair.server.naks_left = 1
    pair.client.reboot(10.0)
    pair.pump()
    assert len(pair.types("dhcp.nak")) == 1
    assert pair.client.state is State.BOUND  # started over at once, and bound again
    assert pair.dhcp_sent()[-3:] == [3, 1, 3]  # REQUEST (NAKed), DISCOVER, REQUEST


def test_arp_probe_then_bound() -> None:
    pair = Pair(PROBING)
    pair.start()
    assert pair.client.state is State.PROBING
    pair.advance(5)
    assert pair.client.state is State.BOUND
    arps = [p[ARP] for p in pair.sent if ARP in p]
    probes, announce = arps[:-1], arps[-1]
    assert len(probes) == 2 and all(a.psrc == "0.0.0.0" and a.pdst == "10.0.0.10"
                                    for a in probes)
    assert announce.psrc == announce.pdst == "10.0.0.10"
    (bound,) = pair.types("dhcp.bound")
    assert bound.data["total"] == pytest.approx(1.0)  # two probes 0.5 s apart, 0.5 s wait


@pytest.mark.parametrize("conflict", [
    arp_from("02:11:22:33:44:55", "10.0.0.10", "10.0.0.1", op=2),  # someone holds it
    arp_from("02:11:22:33:44:55", "0.0.0.0", "10.0.0.10"),  # someone else probes for it
])
def test_arp_conflict_declines_and_starts_over_after_10s(conflict: bytes) -> None:
    pair = Pair(PROBING)
    pair.start()
    pair.client.receive(conflict, 0.2)
    pair.pump()
    assert pair.client.state is State.INIT
    decline = [p for p in pair.sent if DHCP in p][-1]
    assert message_type(decline) == 4
    opts = dhcp_options(decline)
    assert opts["requested_addr"] == "10.0.0.10" and opts["server_id"] == "10.0.0.1"
    assert "param_req_list" not in opts
    assert pair.types("arp.conflict") and pair.types("dhcp.declined")
    assert pair.client.next_timer() == pytest.approx(10.2)
    pair.advance(11)
    assert pair.client.state is State.REQUESTING or pair.client.state is State.PROBING


def test_unrelated_arp_while_probing_is_ignored() -> None:
    pair = Pair(PROBING)
    pair.start()
    pair.client.receive(arp_from("02:11:22:33:44:55", "10.0.0.77", "10.0.0.1"), 0.1)
    assert pair.client.state is State.PROBING
    assert pair.client.counters["ignored.arp_unrelated"] == 1


def test_release_is_unicast_and_stops() -> None:
    pair = Pair()
    pair.start()
    pair.client.release(5.0)
    pair.pump()
    release = [p for p in pair.sent if DHCP in p][-1]
    assert message_type(release) == 7
    assert release[BOOTP].ciaddr == "10.0.0.10" and release[IP].dst == "10.0.0.1"
    assert dhcp_options(release)["server_id"] == "10.0.0.1"
    assert pair.client.state is State.STOPPED and pair.client.next_timer() is None
    assert pair.server.leases == {}
    pair.client.start(6.0)  # a stopped client can start again
    pair.pump()
    assert pair.client.state is State.BOUND


def test_stop_before_binding_sends_nothing() -> None:
    pair = Pair(server=FakeServer(silent=True))
    pair.start()
    pair.client.stop(1.0)
    pair.pump()
    assert pair.dhcp_sent() == [1] and pair.client.state is State.STOPPED


@pytest.mark.parametrize("call, state_setup", [
    ("release", "init"), ("renew", "init"), ("reboot", "init"), ("start", "bound"),
    ("renew", "selecting"), ("release", "selecting"),
])
def test_misuse_raises_a_typed_error(call: str, state_setup: str) -> None:
    pair = Pair(server=FakeServer(silent=state_setup == "selecting"))
    if state_setup != "init":
        pair.start()
    with pytest.raises(LocalProtocolError):
        getattr(pair.client, call)(1.0)


def test_replies_for_someone_else_are_counted_and_ignored() -> None:
    pair = Pair()
    pair.client.start(0.0)
    (discover,) = pair.out.take_frames()
    offer = Ether(FakeServer().handle(discover)[0])
    wrong_xid = offer.copy()
    wrong_xid[BOOTP].xid ^= 1
    wrong_mac = offer.copy()
    wrong_mac[BOOTP].chaddr = mac_bytes("00:40:8c:99:99:99") + b"\x00" * 10
    for frame in (wrong_xid, wrong_mac):
        pair.client.receive(rebuilt(frame), 0.1)
    pair.client.receive(b"\x00" * 10, 0.1)
    c = pair.client.counters
    assert c["ignored.wrong_xid"] == 1 and c["ignored.wrong_chaddr"] == 1
    assert c["ignored.short_ethernet"] == 1
    assert c["received"] == 3 and c["accepted"] == 0
    assert pair.client.state is State.SELECTING


def test_unfilled_udp_checksum_from_a_veth_is_accepted_only_when_flagged() -> None:
    pair = Pair()
    pair.client.start(0.0)
    (discover,) = pair.out.take_frames()
    offer = bytearray(FakeServer().handle(discover)[0])
    offer[14 + 20 + 6:14 + 20 + 8] = b"\x12\x34"  # a partial sum, as CHECKSUM_PARTIAL leaves
    pair.client.receive(bytes(offer), 0.1)
    assert pair.client.counters["ignored.bad_udp_checksum"] == 1
    pair.client.receive(bytes(offer), 0.1, checksum_unfilled=True)
    assert pair.client.state is State.REQUESTING


def test_request_ip_goes_in_the_discover() -> None:
    pair = Pair(request_ip=bytes([10, 0, 0, 42]))
    pair.start()
    assert dhcp_options(pair.sent[0])["requested_addr"] == "10.0.0.42"
