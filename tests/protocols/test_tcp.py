"""The user-space TCP against a scripted peer, with no sockets: handshake, data in order,
retransmission, close, and the four outcomes."""
from __future__ import annotations

import pytest

from pytest_iotemu.protocols.core import LocalProtocolError, Outbox
from pytest_iotemu.protocols.frames import (ACK, ETH_P_IP, FIN, IPPROTO_TCP, PSH, RST, SYN,
                                            ethernet, ip_bytes, ipv4, parse_ipv4, parse_tcp,
                                            tcp)
from pytest_iotemu.protocols.tcp import TcpConnection, TcpState

DEV_MAC, GW_MAC = bytes.fromhex("020000000001"), bytes.fromhex("020000000fff")
DEV, TARGET = ip_bytes("10.20.3.10"), ip_bytes("198.51.100.10")


class Peer:
    """The target's side, scripted by the test: it answers what it is told to."""

    def __init__(self, isn: int = 5000, ttl: int = 63):
        self.seq = isn
        self.ttl = ttl
        self.ack = 0

    def segment(self, flags: int, data: bytes = b"", *, seq: int | None = None,
                ack: int | None = None, ttl: int | None = None, window: int = 65535):
        seg = tcp(TARGET, DEV, 443, 40000, self.seq if seq is None else seq,
                  self.ack if ack is None else ack, flags, data, window=window, mss=1400
                  if flags & SYN else None)
        frame = ethernet(DEV_MAC, GW_MAC, ETH_P_IP,
                         ipv4(TARGET, DEV, IPPROTO_TCP, seg, ttl=self.ttl if ttl is None else ttl))
        return parse_tcp(parse_ipv4(frame))


def sent(out: Outbox):
    return [parse_tcp(parse_ipv4(f)) for f in out.take_frames()]


def connect(**kwargs):
    out = Outbox()
    outcomes = []
    conn = TcpConnection(DEV_MAC, DEV, 40000, TARGET, 443, GW_MAC, out, iss=1000,
                         on_outcome=lambda c, o, t: outcomes.append((o, t)), **kwargs)
    conn.connect(0.0)
    return conn, out, outcomes


def test_handshake_data_in_order_and_close():
    conn, out, outcomes = connect()
    (syn,) = sent(out)
    assert syn.flags == SYN and syn.seq == 1000 and syn.mss == 1460
    peer = Peer()
    peer.ack = 1001
    assert conn.handle(peer.segment(SYN | ACK), 0.05) is None
    assert outcomes == [("connected", 0.05)] and conn.rtt == pytest.approx(0.05)
    assert conn.state is TcpState.ESTABLISHED
    (ack,) = sent(out)
    assert ack.flags == ACK and ack.ack == 5001 and ack.seq == 1001
    peer.seq = 5001
    conn.send(b"hello", 0.1)
    (data,) = sent(out)
    assert bytes(data.data) == b"hello" and data.flags == ACK | PSH
    # the peer echoes in two segments; the second arrives first and is not delivered
    peer.ack = 1006
    assert conn.handle(peer.segment(ACK | PSH, b"llo", seq=5003), 0.2) == "tcp_out_of_order"
    (dup,) = sent(out)
    assert dup.ack == 5001  # asks again for what is missing
    assert conn.handle(peer.segment(ACK | PSH, b"he", seq=5001), 0.21) is None
    assert conn.handle(peer.segment(ACK | PSH, b"llo", seq=5003), 0.22) is None
    assert bytes(conn.received) == b"hello"
    sent(out)
    conn.close(0.3)
    (fin,) = sent(out)
    assert fin.flags == FIN | ACK and fin.seq == 1006
    assert conn.state is TcpState.FIN_WAIT_1
    # the peer acknowledges our FIN and sends its own in one segment
    assert conn.handle(peer.segment(FIN | ACK, seq=5006, ack=1007), 0.35) is None
    assert conn.state is TcpState.TIME_WAIT
    (last,) = sent(out)
    assert last.ack == 5007
    conn.on_timer(conn.next_timer())
    assert conn.state is TcpState.CLOSED and conn.next_timer() is None


def test_reset_from_the_target_is_refused_from_the_next_hop_rejected():
    conn, out, outcomes = connect()
    assert conn.handle(Peer(ttl=63).segment(RST | ACK, seq=0, ack=1001), 0.01) is None
    assert outcomes[0][0] == "refused" and conn.state is TcpState.CLOSED
    conn, out, outcomes = connect()
    # nftables' `reject with tcp reset` in the gateway: TTL untouched by any router
    assert conn.handle(Peer(ttl=64).segment(RST | ACK, seq=0, ack=1001), 0.01) is None
    assert outcomes[0][0] == "rejected" and "next hop" in conn.detail
    conn, out, outcomes = connect(routed=False)  # on-link target: its reset has TTL 64
    conn.handle(Peer(ttl=64).segment(RST | ACK, seq=0, ack=1001), 0.01)
    assert outcomes[0][0] == "refused"


def test_reset_that_does_not_ack_our_syn_is_ignored():
    conn, out, outcomes = connect()
    assert conn.handle(Peer().segment(RST | ACK, seq=0, ack=999), 0.01) == "tcp_bad_ack"
    assert conn.handle(Peer().segment(RST, seq=0, ack=0), 0.01) == "tcp_reset_without_ack"
    assert outcomes == [] and conn.state is TcpState.SYN_SENT


def test_syn_retransmitted_then_timeout():
    conn, out, outcomes = connect(connect_timeout=3.0)
    sent(out)
    times = []
    while conn.next_timer() is not None:
        now = conn.next_timer()
        conn.on_timer(now)
        times.append(now)
        for seg in sent(out):
            assert seg.flags == SYN and seg.seq == 1000
    assert times == [1.0, 3.0]  # backoff: 1 s, then the deadline
    assert outcomes == [("timeout", 3.0)] and conn.state is TcpState.CLOSED


def test_icmp_error_while_connecting_is_rejected():
    conn, out, outcomes = connect()
    conn.icmp_error(3, 13, ip_bytes("10.20.0.1"), 0.02)
    assert outcomes[0][0] == "rejected" and "10.20.0.1" in conn.detail


def test_lost_data_is_retransmitted_until_acknowledged():
    conn, out, outcomes = connect()
    peer = Peer()
    peer.ack = 1001
    conn.handle(peer.segment(SYN | ACK), 0.01)
    sent(out)
    conn.send(b"x" * 3000, 0.02)  # three segments: 1400 (peer's MSS), 1400, 200
    first = sent(out)
    assert [len(s.data) for s in first] == [1400, 1400, 200]
    conn.on_timer(conn.next_timer())  # nothing acknowledged: back to the first byte
    again = sent(out)
    assert again[0].seq == 1001 and len(again) == 3
    peer.seq = 5001
    conn.handle(peer.segment(ACK, ack=1001 + 3000), 1.5)
    assert conn.next_timer() is None and not conn.sendbuf


def test_misuse_is_a_local_protocol_error():
    out = Outbox()
    conn = TcpConnection(DEV_MAC, DEV, 40000, TARGET, 443, GW_MAC, out, iss=1)
    with pytest.raises(LocalProtocolError):
        conn.send(b"x", 0.0)
    conn.connect(0.0)
    with pytest.raises(LocalProtocolError):
        conn.connect(0.0)


def test_segments_decode_in_scapy():
    scapy = pytest.importorskip("scapy.layers.l2")
    from scapy.layers.inet import IP, TCP
    conn, out, _ = connect()
    frame = out.take_frames()[0]
    packet = scapy.Ether(frame)
    raw = bytes(packet)
    del packet[IP].chksum, packet[TCP].chksum
    assert bytes(scapy.Ether(bytes(packet))) == raw  # scapy computes the same checksums
    assert packet[TCP].flags == "S" and packet[TCP].options == [("MSS", 1460)]
