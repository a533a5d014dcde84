"""Flow datagrams: both header forms, checksums patched arithmetically and still right,
the shared schedule (catch-up, a full sink, interleaving), and the receiver's statistics."""
from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_iotemu.protocols.flows import (MIN_SIZE, FlowSchedule, FlowSender, FlowStats,
                                           decode)
from pytest_iotemu.protocols.frames import ip_bytes, parse_ipv4, parse_udp

MAC, GW = bytes.fromhex("020000000001"), bytes.fromhex("02000000ffff")
SRC, DST = ip_bytes("10.0.0.10"), ip_bytes("198.51.100.10")


def sender(size: int, device: int = 7, flow: int = 99) -> FlowSender:
    return FlowSender(flow, device, MAC, SRC, 40000, DST, 554, GW, size=size)


@pytest.mark.parametrize("size", [MIN_SIZE, 22, 27, 28, 200, 1358, 1472])
@given(seq=st.integers(0, 2**32 - 1), sent=st.integers(0, 2**63 - 1))
def test_every_datagram_checks_out(size: int, seq: int, sent: int) -> None:
    out = []
    s = sender(size)
    words = sum((sent >> shift) & 0xFFFF for shift in (0, 16, 32, 48))
    assert s.emit(seq, sent, words, out.append) is not False
    frame = bytes(out[0])
    assert len(frame) == 42 + size
    udp = parse_udp(parse_ipv4(frame))  # raises on a wrong UDP or IP checksum
    flow, device, got_seq, got_sent = decode(udp.data)
    assert (flow, got_seq, got_sent) == (99, seq, sent)
    assert device == (7 if size >= 28 else 0)  # the compact form has no device id
    assert frame[20] & 0x40  # DF: the IP id may stay 0


def test_schedule_interleaves_devices_and_catches_up() -> None:
    senders = [sender(100, device=i) for i in range(3)]
    sched = FlowSchedule(senders, rate=80_000, size=100, duration=1.0, start=10.0)
    assert sched.interval == pytest.approx(0.01) and sched.total == 100
    got = []
    sched.on_timer(10.0, lambda f: got.append(decode(bytes(f)[42:])))
    assert [(d, s) for _f, d, s, _t in got] == [(0, 0), (1, 0), (2, 0)]
    got.clear()
    sched.on_timer(10.25, lambda f: got.append(decode(bytes(f)[42:])))  # late: catch up
    assert len(got) == 3 * 25 and sched.next_seq == 26
    assert sched.next_timer() == pytest.approx(10.26)


def test_a_full_sink_resumes_where_it_stopped() -> None:
    senders = [sender(100, device=i) for i in range(4)]
    sched = FlowSchedule(senders, rate=80_000, size=100, duration=0.05, start=0.0)
    taken = []
    budget = [6]

    def sink(frame):
        if budget[0] == 0:
            return False
        budget[0] -= 1
        taken.append(decode(bytes(frame)[42:])[1:3])

    assert sched.on_timer(1.0, sink) is False
    budget[0] = 100
    assert sched.on_timer(1.0, sink) is True and sched.done
    assert taken == [(d, s) for s in range(5) for d in range(4)]  # none lost, none twice
    assert [s.sent for s in senders] == [5, 5, 5, 5]


def test_stats_count_gaps_duplicates_and_reordering() -> None:
    stats = FlowStats()
    order = list(range(100))
    del order[40:60]  # 20 lost: a 0.21 s gap in send time at 10 ms
    order.insert(10, 5)  # a duplicate
    order[20], order[21] = order[21], order[20]  # reordered
    for seq in order:
        stats.add(seq, seq * 10_000_000, seq * 10_000_000 + 1_000_000 + random.randint(0, 10),
                  100, "wan0")
    data = stats.as_json()
    assert data["packets"] == 80 and data["duplicates"] == 1 and data["reordered"] == 1
    assert data["largest_gap"] == pytest.approx(0.21) and data["gap_after"] == 39
    assert data["by_interface"] == {"wan0": 80} and data["jitter"] < 0.001
