"""Probes and flows driven from the controller: sent to the engines that own the
devices, results gathered, and flows matched with what the target's responder measured.

Used by the policy, path and throughput items, the fixtures and ``iotemu run``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .engine import EngineError
from .protocols.flows import MAX_SIZE

# what a probe's result means for a verdict (CONTRACT.md, policy)
ALLOWED = {"tcp": ("connected", "refused"), "udp": ("answered",), "icmp": ("answered",)}
BLOCKED = {"tcp": ("timeout", "rejected"), "udp": ("timeout", "rejected"),
           "icmp": ("timeout", "rejected")}


def verdict_of(proto: str, result: str) -> str | None:
    """``allow``, ``block``, or None when the probe could not run (the device was not
    bound, had no route, or its next hop never answered ARP)."""
    if result in ALLOWED[proto]:
        return "allow"
    if result in BLOCKED[proto]:
        return "block"
    return None


def probe(engine: Any, names: list[str], target: str, proto: str, port: int,
          timeout: float = 3.0) -> dict[str, dict[str, Any]]:
    """Each named device probes ``target`` once; returns device -> result entry."""
    results: dict[str, dict[str, Any]] = {}
    jobs = []
    for client, share in engine.shards(names):
        reply = client.call("probe", devices=share, target=target, proto=proto, port=port,
                            timeout=timeout)
        jobs.append((client, reply["probe"]))
        for name in reply["not_bound"]:
            results[name] = {"result": "not_bound"}
    results.update(collect(jobs, "probe", time.monotonic() + timeout + 10.0,
                           f"probes to {target}"))
    return results


def collect(jobs: list[tuple[Any, int]], what: str, deadline: float,
            describe: str, poll: float = 0.05) -> dict[str, dict[str, Any]]:
    """The results of per-engine jobs (``probe`` or ``flow`` ids), once every engine says
    its job is done: device -> result. Raises ``EngineError`` past ``deadline``."""
    results: dict[str, dict[str, Any]] = {}
    pending = list(jobs)
    while pending:
        for job in list(pending):
            client, ident = job
            reply = client.call(f"{what}_results", **{what: ident})
            if reply["done"]:
                results.update(reply["results"])
                pending.remove(job)
        if not pending:
            break
        if time.monotonic() > deadline:
            raise EngineError(f"{describe} did not finish in time")
        time.sleep(poll)
    return results


def payload_size(rate: float) -> int:
    """Datagram payload for a flow of ``rate`` bit/s: full frames for fast flows, and at
    least ~50 datagrams a second for slow ones (so gaps are measured finely)."""
    return int(max(64, min(MAX_SIZE - 72, rate / 8 / 50)))


@dataclass
class FlowRun:
    """One flow per device, possibly across several engines."""

    target: str
    port: int
    rate: float
    size: int
    duration: float
    started: float
    jobs: list[tuple[Any, int]] = field(default_factory=list)
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> id, ip, flow
    not_bound: list[str] = field(default_factory=list)

    @property
    def interval(self) -> float:
        return self.size * 8 / self.rate

    def wait(self, extra: float = 10.0) -> dict[str, dict[str, Any]]:
        """Until every flow has sent everything; device -> {sent, bytes, elapsed}."""
        return collect(self.jobs, "flow", self.started + self.duration + extra,
                       f"flows to {self.target} ({self.duration:g}s offered)", poll=0.1)


def start_flow(engine: Any, names: list[str], target: str, port: int, rate: float,
               duration: float, size: int | None = None, tos: int = 0) -> FlowRun:
    size = size or payload_size(rate)
    run = FlowRun(target, port, rate, size, duration, time.monotonic())
    for client, share in engine.shards(names):
        reply = client.call("flow", devices=share, target=target, port=port, rate=rate,
                            size=size, duration=duration, tos=tos)
        run.jobs.append((client, reply["flow"]))
        run.not_bound.extend(reply["not_bound"])
        for name, entry in reply["devices"].items():
            run.devices[name] = {**entry, "flow": reply["flow"]}
    return run


def flow_observations(run: FlowRun, sent: dict[str, dict[str, Any]],
                      received: dict[int, dict[str, dict[str, Any]]]) -> dict[str, dict]:
    """Per device: what it sent (engine) beside what the target received (responder,
    ``received[flow id][source ip]``), with the outage including a silent tail."""
    out: dict[str, dict[str, Any]] = {}
    for name, entry in run.devices.items():
        got = received.get(entry["flow"], {}).get(entry["ip"])
        count = sent.get(name, {}).get("sent", 0)
        row: dict[str, Any] = {"ip": entry["ip"], "sent": count,
                               "received": got["packets"] if got else 0,
                               "bytes": got["bytes"] if got else 0,
                               "by_wan": dict(got["by_interface"]) if got else {},
                               "jitter": got["jitter"] if got else None}
        highest = got["highest"] if got else -1
        tail = max(0, count - 1 - highest) * run.interval  # nothing after the last arrival
        gap = got["largest_gap"] if got else 0.0
        row["outage"] = round(max(gap, tail) if highest >= 0 else run.duration, 6)
        row["gap_after"] = got["gap_after"] if got else None
        row["loss"] = round(1 - row["received"] / count, 6) if count else None
        row["achieved"] = row["bytes"] * 8 / run.duration
        out[name] = row
    for name in run.not_bound:
        out[name] = {"ip": None, "sent": 0, "received": 0, "bytes": 0, "by_wan": {},
                     "outage": run.duration, "loss": None, "achieved": 0.0,
                     "not_bound": True}
    return out
