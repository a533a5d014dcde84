"""Units of the spec language."""
from __future__ import annotations

import pytest

from pytest_iotemu.spec.units import (Service, UnitError, parse_duration, parse_mac,
                                      parse_percent, parse_range, parse_rate, parse_service,
                                      parse_size)


@pytest.mark.parametrize("text, seconds", [
    ("250ms", 0.25), ("5s", 5.0), ("10m", 600.0), ("1h", 3600.0), ("1.5s", 1.5),
    ("1m30s", 90.0), ("0s", 0.0),
])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["5", 5, "5 sec", "s", "1d", "", True, None, "-1s"])
def test_bad_durations(text) -> None:
    with pytest.raises(UnitError):
        parse_duration(text)


@pytest.mark.parametrize("text, bps", [
    ("2mbps", 2e6), ("2mbit", 2e6), ("2Mbps", 2e6), ("500kbps", 5e5), ("1gbps", 1e9),
    ("1.8mbps", 1.8e6), ("64kbit", 64e3), ("300bps", 300.0),
])
def test_rates_are_powers_of_ten_bits(text: str, bps: float) -> None:
    assert parse_rate(text) == pytest.approx(bps)


@pytest.mark.parametrize("text", ["2MBps", "2mb", "fast", "2", "2 mbit/s"])
def test_bad_rates(text: str) -> None:
    with pytest.raises(UnitError):
        parse_rate(text)


@pytest.mark.parametrize("text, size", [
    ("150MB", 150_000_000), ("150MiB", 150 * 2**20), ("1GiB", 2**30), ("512kB", 512_000),
    ("10B", 10),
])
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["150", "150mb", "150 megs", "1.5XB"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(UnitError):
        parse_size(text)


def test_percentages() -> None:
    assert parse_percent("99.5%") == pytest.approx(0.995)
    assert parse_percent("100%") == 1.0
    with pytest.raises(UnitError, match="between 0% and 100%"):
        parse_percent("101%")
    with pytest.raises(UnitError):
        parse_percent("0.5")


def test_services() -> None:
    assert parse_service("445/tcp") == Service("tcp", 445)
    assert parse_service("554/UDP") == Service("udp", 554)
    assert parse_service("icmp") == Service("icmp")
    assert str(parse_service("5060/udp")) == "5060/udp"
    for bad in ("445", "tcp/445", "0/tcp", "65536/udp", "icmp/1", "80/sctp"):
        with pytest.raises(UnitError):
            parse_service(bad)


def test_macs_normalise_and_refuse_multicast() -> None:
    assert parse_mac("00-40-8C-AB-CD-EF") == "00:40:8c:ab:cd:ef"
    for bad in ("00:40:8c:ab:cd", "01:00:5e:00:00:01", "00:00:00:00:00:00", "00:40-8c:ab:cd:ef"):
        with pytest.raises(UnitError):
            parse_mac(bad)


def test_ranges() -> None:
    rng = parse_range("10.20.1.10-10.20.1.250")
    assert rng.size == 241
    with pytest.raises(UnitError, match="write 10.0.0.1-10.0.0.9"):
        parse_range("10.0.0.9-10.0.0.1")
