"""DHCP options an expectation can check in the ACK, by name, with how to read the value."""
from __future__ import annotations

import ipaddress
from typing import Any, Callable

from .units import UnitError, parse_duration, parse_ipv4


def _ips(value: Any) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    try:
        return tuple(str(parse_ipv4(v)) for v in values)
    except UnitError:
        raise UnitError("an IPv4 address or a list of them, such as 10.20.0.1") from None


def _ip(value: Any) -> str:
    return str(parse_ipv4(value))


def _text(value: Any) -> str:
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise UnitError("a text value")
    return str(value)


def _seconds(value: Any) -> int:
    return int(parse_duration(value))


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 68 <= value <= 65535:
        raise UnitError("a whole number from 68 to 65535")
    return value


def _mask(value: Any) -> str:
    text = _ip(value)
    try:
        ipaddress.IPv4Network(f"0.0.0.0/{text}")
    except ValueError:
        raise UnitError("a subnet mask such as 255.255.252.0") from None
    return text


# name -> (option code, reader of the expected value)
DHCP_OPTIONS: dict[str, tuple[int, Callable[[Any], Any]]] = {
    "subnet_mask": (1, _mask),
    "router": (3, _ips),
    "dns_server": (6, _ips),
    "hostname": (12, _text),
    "domain_name": (15, _text),
    "mtu": (26, _int),
    "broadcast_address": (28, _ip),
    "ntp_server": (42, _ips),
    "lease_time": (51, _seconds),
    "server_id": (54, _ip),
    "renewal_time": (58, _seconds),
    "rebinding_time": (59, _seconds),
    "tftp_server": (66, _text),
    "bootfile": (67, _text),
}
