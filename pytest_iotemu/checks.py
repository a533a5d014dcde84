"""Judging expectations from what the engine and the recorder observed (pure functions:
observations in, a verdict and a message out), with the meanings of CONTRACT.md."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from .spec.model import (Device, DhcpExpect, LabSpec, PathExpect, PolicyExpect,
                         ResourcesExpect, ThroughputExpect)
from .spec.options import DHCP_OPTIONS
from .spec.units import format_duration, format_rate
from .traffic import verdict_of

MAX_LISTED = 25


class ExpectationFailed(AssertionError):
    """An expectation the branch did not meet: reported as a test failure."""


@dataclass
class Verdict:
    passed: bool
    summary: str  # expected vs observed, one line
    details: list[str] = field(default_factory=list)  # the devices that did not count
    observed: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)  # per device, for reports

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
    rows = []
    for device in devices:
        entry = observed.get(device.name, {})
        rows.append({"device": device.name, "mac": device.mac, "state": entry.get("state"),
                     "ip": entry.get("ip"), "bound_after": entry.get("bound_after"),
                     "retransmits": entry.get("retransmits"), "last_seen": entry.get("last_seen")})
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
    details = _capped([line for _, line in problems])
    failing = {device.name for device, _ in problems}
    for row in rows:
        row["agrees"] = row["device"] not in failing
    return Verdict(passed, summary, details, {"counted": len(counted), "size": size,
                                              "required": required}, rows)


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


def _capped(lines: list[str]) -> list[str]:
    if len(lines) > MAX_LISTED:
        return lines[:MAX_LISTED] + [f"… and {len(lines) - MAX_LISTED} more"]
    return lines


def _counter_lines(counters: dict[str, dict] | None) -> list[str]:
    if not counters:
        return []
    lines = ["rule counters (packets):"]
    for name, entry in counters.items():
        lines.append(f"  {name}: {entry.get('packets', 0)}  ({entry.get('rule', '')})")
    return lines


def _describe_probe(entry: dict[str, Any]) -> str:
    result = entry.get("result", "no result")
    text = {"connected": "connected", "refused": "refused by the target (reset)",
            "rejected": "rejected by the branch", "answered": "answered",
            "timeout": "no answer", "unresolved": "could not send: its gateway never "
                       "answered ARP", "no_route": "could not send: no route",
            "not_bound": "could not probe: not bound"}.get(result, result)
    detail = entry.get("detail")
    if detail and result not in ("timeout",):
        text += f" ({detail})"
    elif entry.get("rtt") is not None and result in ("connected", "answered", "refused"):
        text += f" in {entry['rtt'] * 1000:.1f} ms"
    return text


def judge_policy(expect: PolicyExpect, probed: list[Device],
                 results: dict[str, dict[str, Any]], counters: dict[str, dict] | None
                 ) -> Verdict:
    """``results``: per device name, its probe result (``traffic.probe``)."""
    proto = expect.service.proto
    disagree = []
    tally: dict[str, int] = {}
    rows = []
    for device in probed:
        entry = results.get(device.name, {})
        result = entry.get("result", "no result")
        tally[result] = tally.get(result, 0) + 1
        agrees = verdict_of(proto, result) == expect.verdict
        rows.append({"device": device.name, "mac": device.mac, "result": result,
                     "rtt": entry.get("rtt"), "ttl": entry.get("ttl"),
                     "detail": entry.get("detail"), "agrees": agrees})
        if not agrees:
            disagree.append(f"{device.name} {device.mac}: {_describe_probe(entry)}")
    seen = ", ".join(f"{n} {r}" for r, n in sorted(tally.items()))
    summary = (f"{len(probed) - len(disagree)}/{len(probed)} probes of {expect.group} to "
               f"{expect.target} {expect.service} agree with {expect.verdict} ({seen})")
    details = _capped(disagree)
    if disagree:
        details += _counter_lines(counters)
    return Verdict(not disagree and bool(probed), summary, details,
                   {"results": tally, "probed": len(probed), "disagree": len(disagree),
                    "counters": counters or {}}, rows)


def _wans(rows: dict[str, dict[str, Any]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for row in rows.values():
        for wan, count in row.get("by_wan", {}).items():
            total[wan] = total.get(wan, 0) + count
    return total


def _path_problem(expect: PathExpect, name: str, row: dict[str, Any]) -> str | None:
    wans = row.get("by_wan", {})
    shown = ", ".join(f"{w} {n}" for w, n in sorted(wans.items())) or "nothing"
    if not row.get("received"):
        return (f"{name} {row.get('ip') or 'not bound'}: nothing arrived at {expect.target} "
                f"(sent {row.get('sent', 0)})")
    if expect.failover is None:
        if any(w != expect.via for w in wans):
            return f"{name} {row['ip']}: arrived over {shown}, expected all over {expect.via}"
        return None
    limit = expect.failover.within
    if row["outage"] > limit:
        return (f"{name} {row['ip']}: outage {row['outage']:.2f}s, above "
                f"{format_duration(limit)} (arrived over {shown})")
    if expect.failover.fail == expect.via and set(wans) <= {expect.via}:
        return f"{name} {row['ip']}: never left {expect.via} (arrived over {shown})"
    return None


def judge_path(expect: PathExpect, rows: dict[str, dict[str, Any]],
               monitor: dict[str, Any] | None = None, wan_before: str | None = None
               ) -> Verdict:
    """``rows``: per device, ``traffic.flow_observations``. Without failover every
    datagram must arrive over ``via``; with it, the flow must leave the failed WAN and its
    outage (largest gap, a silent tail included) must be at most ``within``."""
    problems = []
    failing: set[str] = set()
    for name, row in sorted(rows.items()):
        problem = _path_problem(expect, name, row)
        if problem:
            problems.append(problem)
            failing.add(name)
    total = _wans(rows)
    per_wan = ", ".join(f"{w} {n}" for w, n in sorted(total.items())) or "nothing"
    outages = [r["outage"] for r in rows.values() if r.get("received")]
    if expect.failover is None:
        summary = (f"{len(rows) - len(problems)}/{len(rows)} flows of {expect.group} to "
                   f"{expect.target} {expect.service} arrived only over {expect.via} "
                   f"(datagrams per WAN: {per_wan})")
    else:
        worst = max(outages) if outages else None
        summary = (f"{len(rows) - len(problems)}/{len(rows)} flows of {expect.group} moved "
                   f"off {expect.failover.fail} within "
                   f"{format_duration(expect.failover.within)}; largest outage "
                   f"{'none' if worst is None else f'{worst:.2f}s'} "
                   f"(datagrams per WAN: {per_wan})")
    details = _capped(problems)
    if problems and monitor:
        wans = monitor.get("wans", {})
        state = ", ".join(f"{w} {'up' if s.get('up') else 'down'}" for w, s in wans.items())
        details.append(f"path monitor: primary {monitor.get('primary')}"
                       + (f" (was {wan_before})" if wan_before else "") + f"; {state}")
    table = [{"device": n, **r, "agrees": n not in failing} for n, r in sorted(rows.items())]
    return Verdict(not problems and bool(rows), summary, details,
                   {"per_wan": total, "largest_outage": max(outages) if outages else None,
                    "flows": len(rows)}, table)


def judge_throughput(expect: ThroughputExpect, rows: dict[str, dict[str, Any]]) -> Verdict:
    """``rows``: per device, ``traffic.flow_observations``. ``min`` per device,
    ``max_loss`` over the group; without either, loss must stay within 1%."""
    max_loss = expect.max_loss
    if max_loss is None and expect.min is None:
        max_loss = 0.01
    sent = sum(r.get("sent", 0) for r in rows.values())
    received = sum(r.get("received", 0) for r in rows.values())
    loss = 1 - received / sent if sent else 1.0
    slow = sorted(rows.items(), key=lambda item: item[1].get("achieved", 0.0))
    problems = []
    if expect.min is not None:
        for name, row in slow:
            if row.get("achieved", 0.0) < expect.min:
                problems.append(f"{name} {row.get('ip') or 'not bound'}: "
                                f"{format_rate(row.get('achieved', 0.0), 4)} "
                                f"(loss {row['loss'] * 100:.1f}%)" if row.get("loss") is not None
                                else f"{name}: not bound, sent nothing")
    loss_ok = max_loss is None or loss <= max_loss
    achieved = [r.get("achieved", 0.0) for r in rows.values()]
    summary = (f"{expect.group} to {expect.target} {expect.service}: offered "
               f"{format_rate(expect.rate)} per device; slowest "
               f"{format_rate(min(achieved), 4) if achieved else 'none'}"
               + (f" (min {format_rate(expect.min)}, {len(rows) - len(problems)}/{len(rows)} "
                  "devices reached it)" if expect.min is not None else "")
               + f"; loss {loss * 100:.2f}% over the group"
               + (f" (max {max_loss * 100:g}%)" if max_loss is not None else ""))
    details = []
    if problems:
        details.append("slowest devices:")
        details += ["  " + p for p in _capped(problems)]
    if not loss_ok:
        details.append(f"loss {loss * 100:.2f}%: {received} of {sent} datagrams arrived")
    if not loss_ok or problems:
        details.append("datagrams per WAN: " + (", ".join(
            f"{w} {n}" for w, n in sorted(_wans(rows).items())) or "nothing"))
    floor = expect.min or 0.0
    table = [{"device": n, **r, "agrees": r.get("achieved", 0.0) >= floor}
             for n, r in sorted(rows.items())]
    return Verdict(loss_ok and not problems and bool(rows), summary, details,
                   {"loss": round(loss, 6), "sent": sent, "received": received,
                    "slowest": min(achieved) if achieved else None,
                    "mean": sum(achieved) / len(achieved) if achieved else None}, table)
