"""Units of the fleet spec: durations, rates, sizes, percentages, services, MACs, ranges.

Each parser takes what the user wrote and returns a plain number or a small value object,
or raises ``UnitError`` whose text completes "expected …".
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any


class UnitError(ValueError):
    """``str(err)`` is what was expected, e.g. "a duration such as 5s or 250ms"."""


_NUM = r"(\d+(?:\.\d+)?|\.\d+)"

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(rf"^{_NUM}(ms|s|m|h)$")
_DURATION_PART = re.compile(rf"{_NUM}(ms|s|m|h)")

DURATION_HINT = "a duration such as 250ms, 5s, 10m or 1h"
RATE_HINT = "a rate such as 500kbps, 2mbps (or 2mbit) or 1gbps"
SIZE_HINT = "a size such as 150MB (10^6 bytes) or 150MiB (2^20 bytes)"
PERCENT_HINT = "a percentage such as 99.5%"
SERVICE_HINT = "a service such as 445/tcp, 554/udp or icmp"


def _text(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        raise UnitError("")
    return str(value).strip()


def parse_duration(value: Any) -> float:
    """Seconds from ``250ms``, ``5s``, ``10m``, ``1h`` or a sum such as ``1m30s``."""
    try:
        text = _text(value)
    except UnitError:
        raise UnitError(DURATION_HINT) from None
    if _DURATION.match(text):
        number, unit = _DURATION.match(text).groups()  # type: ignore[union-attr]
        return float(number) * _DURATION_UNITS[unit]
    parts = _DURATION_PART.findall(text)
    if parts and "".join(n + u for n, u in parts) == text:
        return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    if re.fullmatch(_NUM, text):
        raise UnitError(DURATION_HINT + f" (a bare number has no unit: write {text}s?)")
    raise UnitError(DURATION_HINT)


_RATE = re.compile(rf"^{_NUM}\s*([kKmMgG]?)(bps|bit)$")
_RATE_SCALE = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}


def parse_rate(value: Any) -> float:
    """Bits per second from ``2mbps`` / ``2mbit`` (10^6), ``kbps``, ``gbps``."""
    try:
        text = _text(value)
    except UnitError:
        raise UnitError(RATE_HINT) from None
    match = _RATE.match(text)
    if not match:
        if re.match(rf"^{_NUM}\s*[kKmMgG]?B(ps|/s)$", text):
            raise UnitError(RATE_HINT + " (rates are in bits: 1MBps is 8mbps)")
        raise UnitError(RATE_HINT)
    number, prefix, _ = match.groups()
    return float(number) * _RATE_SCALE[prefix.lower()]


_SIZE = re.compile(rf"^{_NUM}\s*([kKMGT]?i?B)$")
_SIZE_SCALE = {
    "B": 1, "kB": 10**3, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
    "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40,
}


def parse_size(value: Any) -> int:
    """Bytes from ``150MB`` (10^6) or ``150MiB`` (2^20)."""
    try:
        text = _text(value)
    except UnitError:
        raise UnitError(SIZE_HINT) from None
    match = _SIZE.match(text)
    if not match or match.group(2) not in _SIZE_SCALE:
        raise UnitError(SIZE_HINT)
    return int(float(match.group(1)) * _SIZE_SCALE[match.group(2)])


def parse_percent(value: Any) -> float:
    """A fraction in [0, 1] from ``99.5%``."""
    try:
        text = _text(value)
    except UnitError:
        raise UnitError(PERCENT_HINT) from None
    match = re.match(rf"^{_NUM}\s*%$", text)
    if not match:
        raise UnitError(PERCENT_HINT)
    number = float(match.group(1))
    if number > 100:
        raise UnitError("a percentage between 0% and 100%")
    return number / 100.0


def parse_cpu_percent(value: Any) -> float:
    """CPU in % of one core; may exceed 100% on several cores."""
    try:
        text = _text(value)
    except UnitError:
        raise UnitError("a CPU share such as 80% (of one core)") from None
    match = re.match(rf"^{_NUM}\s*%$", text)
    if not match:
        raise UnitError("a CPU share such as 80% (of one core)")
    return float(match.group(1))


@dataclass(frozen=True)
class Service:
    """``445/tcp``, ``554/udp`` or ``icmp``."""

    proto: str  # "tcp", "udp" or "icmp"
    port: int | None = None

    def __str__(self) -> str:
        return self.proto if self.port is None else f"{self.port}/{self.proto}"


def parse_service(value: Any) -> Service:
    try:
        text = _text(value).lower()
    except UnitError:
        raise UnitError(SERVICE_HINT) from None
    if text == "icmp":
        return Service("icmp")
    match = re.match(r"^(\d+)/(tcp|udp)$", text)
    if not match:
        raise UnitError(SERVICE_HINT)
    port = int(match.group(1))
    if not 1 <= port <= 65535:
        raise UnitError("a port between 1 and 65535 (as in 445/tcp)")
    return Service(match.group(2), port)


_MAC = re.compile(r"^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}$")


def parse_mac(value: Any) -> str:
    """A MAC as lower-case ``aa:bb:cc:dd:ee:ff``; unicast only."""
    if not isinstance(value, str) or not _MAC.match(value.strip()):
        raise UnitError("a MAC address such as 00:40:8c:12:34:56")
    mac = value.strip().lower().replace("-", ":")
    if int(mac[:2], 16) & 1:
        raise UnitError("a unicast MAC address (the first octet of this one is multicast)")
    if mac == "00:00:00:00:00:00":
        raise UnitError("a MAC address other than 00:00:00:00:00:00")
    return mac


def parse_oui_prefix(value: Any) -> str:
    """A MAC prefix (``00:40:8C``, ``00408c``, ``00-40-8c-1``) as lower-case hex digits."""
    if not isinstance(value, str):
        raise UnitError("a MAC prefix such as 00:40:8c")
    digits = re.sub(r"[:\-.]", "", value.strip()).lower()
    if not digits or len(digits) > 12 or not re.fullmatch(r"[0-9a-f]+", digits):
        raise UnitError("a MAC prefix such as 00:40:8c")
    return digits


def parse_ipv4(value: Any) -> ipaddress.IPv4Address:
    if not isinstance(value, str):
        raise UnitError("an IPv4 address such as 10.20.0.1")
    try:
        return ipaddress.IPv4Address(value.strip())
    except ValueError:
        raise UnitError("an IPv4 address such as 10.20.0.1") from None


def parse_network(value: Any) -> ipaddress.IPv4Network:
    if not isinstance(value, str) or "/" not in value:
        raise UnitError("an IPv4 network such as 10.20.0.0/22")
    try:
        return ipaddress.IPv4Network(value.strip(), strict=True)
    except ValueError as exc:
        if "host bits set" in str(exc):
            net = ipaddress.IPv4Network(value.strip(), strict=False)
            raise UnitError(f"a network address with no host bits set (write {net})") from None
        raise UnitError("an IPv4 network such as 10.20.0.0/22") from None


@dataclass(frozen=True)
class AddressRange:
    first: ipaddress.IPv4Address
    last: ipaddress.IPv4Address

    @property
    def size(self) -> int:
        return int(self.last) - int(self.first) + 1

    def __contains__(self, address: object) -> bool:
        return isinstance(address, ipaddress.IPv4Address) and self.first <= address <= self.last

    def overlaps(self, other: "AddressRange") -> bool:
        return self.first <= other.last and other.first <= self.last

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"


def parse_range(value: Any) -> AddressRange:
    """``10.20.1.10-10.20.1.250`` (both ends included)."""
    hint = "an address range such as 10.20.1.10-10.20.1.250"
    if not isinstance(value, str) or value.count("-") != 1:
        raise UnitError(hint)
    left, right = (part.strip() for part in value.split("-"))
    try:
        first, last = ipaddress.IPv4Address(left), ipaddress.IPv4Address(right)
    except ValueError:
        raise UnitError(hint) from None
    if first > last:
        raise UnitError(f"a range whose first address comes first (write {last}-{first})")
    return AddressRange(first, last)


def format_rate(bps: float, digits: int | None = None) -> str:
    """In the spec's own units; ``digits`` rounds a measured rate to that many
    significant digits."""
    shape = f".{digits}g" if digits else "g"
    for scale, unit in ((10**9, "gbps"), (10**6, "mbps"), (10**3, "kbps")):
        if bps >= scale:
            return f"{bps / scale:{shape}}{unit}"
    return f"{bps:{shape}}bps"


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    if seconds < 60 or seconds % 60:
        return f"{seconds:g}s"
    if seconds % 3600:
        return f"{seconds / 60:g}m"
    return f"{seconds / 3600:g}h"
