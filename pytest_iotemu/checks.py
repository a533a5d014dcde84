"""Judging expectations from what the engine and the recorder observed (pure functions:
observations in, a verdict and a message out), with the meanings of CONTRACT.md."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from .spec.model import Device, DhcpExpect, LabSpec, ResourcesExpect
from .spec.options import DHCP_OPTIONS
from .spec.units import format_duration


class ExpectationFailed(AssertionError):
    """An expectation the branch did not meet: reported as a test failure."""


@dataclass
class Verdict:
    passed: bool
    summary: str  # expected vs observed, one line
    details: list[str] = field(default_factory=list)  # the devices that did not count
    observed: dict[str, Any] = field(default_factory=dict)

    def message(self) -> str:
        return "\n".join([self.summary, *self.details])


def _why_stuck(entry: dict[str, Any]) -> str:
    if not entry:
        return "not in the engine"
    if entry.get("started_ago") is None:
        return "never started (still waiting for the pacer)"
    state = entry.get("state")
    seen = entry.get("last_seen") or "nothing"
    if state == "SELECTING":
        return "stuck in SELECTING, no OFFER" if seen == "nothing" else \
            f"stuck in SELECTING, last saw {seen}"
    if state == "REQUESTING":
        return f"stuck in REQUESTING, no ACK (last saw {seen})"
    return f"stuck in {state}, last saw {seen}"


def decode_option(name: str, hex_value: str) -> Any:
    """The value of a DHCP option from the ACK (hex), in the form the spec writes it."""
    raw = bytes.fromhex(hex_value)
    code, reader = DHCP_OPTIONS[name]
    if name in ("router", "dns_server", "ntp_server"):
        return tuple(".".join(str(b) for b in raw[i:i + 4]) for i in range(0, len(raw) // 4 * 4, 4))
    if name in ("subnet_mask", "broadcast_address", "server_id"):
        return ".".join(str(b) for b in raw[:4]) if len(raw) >= 4 else None
    if name in ("lease_time", "renewal_time", "rebinding_time"):
        return int.from_bytes(raw, "big") if len(raw) == 4 else None
    if name == "mtu":
        return int.from_bytes(raw, "big") if len(raw) == 2 else None
    return raw.decode("ascii", "replace")


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(value) + "]"
    return str(value)


def judge_dhcp(expect: DhcpExpect, devices: list[Device], observed: dict[str, dict[str, Any]],
               lab: LabSpec | None, on_real_interface: bool = False) -> Verdict:
    """``observed``: per device name, the engine's ``devices`` entry."""
    size = len(devices)
    required = expect.bound.required(size)
    pool_range = None
    if expect.pool is not None and lab is not None:
        pool_range = lab.pool(expect.pool).range
    counted, problems = [], []
    for device in devices:
        entry = observed.get(device.name, {})
        who = f"{device.name} {device.mac}"
        after = entry.get("bound_after")
        if entry.get("ip") is None or after is None:
            problems.append((device, f"{_why_stuck(entry)}: {who}"))
            continue
        if after > expect.within:
            problems.append((device, f"bound after {after:.2f}s, later than "
                                     f"{format_duration(expect.within)}: {who}"))
            continue
        address = ipaddress.IPv4Address(entry["ip"])
        if pool_range is not None and address not in pool_range:
            where = f"pool {expect.pool} ({pool_range})"
            problems.append((device, f"got {address}, outside {where}: {who}"))
            continue
        if expect.subnet is not None and address not in expect.subnet:
            problems.append((device, f"got {address}, outside {expect.subnet}: {who}"))
            continue
        lease = entry.get("lease") or {}
        options = lease.get("options") or {}
        wrong = []
        for name, wanted in expect.options:
            code = DHCP_OPTIONS[name][0]
            raw = options.get(str(code), options.get(code))
            got = decode_option(name, raw) if raw is not None else None
            if got != wanted:
                wrong.append(f"{name} was {_shown(got) if got is not None else 'absent'}, "
                             f"expected {_shown(wanted)}")
        if wrong:
            problems.append((device, f"ACK {'; '.join(wrong)}: {who}"))
            continue
        counted.append(device)
    passed = len(counted) >= required and size > 0
    what = f"bound within {format_duration(expect.within)}"
    if expect.pool:
        what += f" in pool {expect.pool}"
    if expect.subnet:
        what += f" in {expect.subnet}"
    if expect.options:
        what += " with the expected options"
    summary = (f"{len(counted)}/{size} of {expect.group} {what} "
               f"(expected at least {required}, bound: {expect.bound})")
    details = [line for _, line in problems]
    if len(details) > 25:
        details = details[:25] + [f"… and {len(details) - 25} more"]
    return Verdict(passed, summary, details, {"counted": len(counted), "size": size,
                                              "required": required})


def judge_resources(expect: ResourcesExpect, peaks: dict[str, float | None]) -> Verdict:
    """``peaks``: engine_rss and server_rss in bytes, engine_cpu and server_cpu in % of a
    core, as sampled over the run (None when not measured)."""
    checks = []
    for key, limit in (("engine_rss", expect.engine_rss), ("engine_cpu", expect.engine_cpu),
                       ("server_rss", expect.server_rss), ("server_cpu", expect.server_cpu)):
        if limit is None:
            continue
        got = peaks.get(key)
        unit = (lambda v: f"{v / 1e6:.1f}MB") if key.endswith("rss") else (lambda v: f"{v:.0f}%")
        if got is None:
            checks.append((False, f"{key}: not measured (limit {unit(limit)})"))
        else:
            checks.append((got <= limit, f"{key} peaked at {unit(got)} "
                                         f"({'within' if got <= limit else 'above'} {unit(limit)})"))
    passed = all(ok for ok, _ in checks)
    failing = [text for ok, text in checks if not ok]
    summary = "; ".join(failing) if failing else "; ".join(text for _, text in checks)
    return Verdict(passed, summary, [], {k: v for k, v in peaks.items()})
