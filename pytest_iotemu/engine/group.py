"""Several engines behind one face: a site's devices split across N engine processes
(``engines: N``, ``--iot-engines``), with commands routed to the owners and stats,
device lists and events merged. Has the parts of ``EngineClient``'s API the plugin uses."""
from __future__ import annotations

import time
from collections import Counter
from typing import Any, Callable, Iterable

from ..spec.model import Device
from .client import EngineClient, EngineCommandError, wait_bound
from .core import HISTOGRAM_EDGES, percentiles


class EngineGroup:
    def __init__(self, clients: list[EngineClient]):
        if not clients:
            raise ValueError("an engine group needs at least one engine")
        self.clients = clients
        self.owner: dict[str, int] = {}  # device name -> engine index

    # --- life ---------------------------------------------------------------------------
    def start(self, **hello: Any) -> "EngineGroup":
        started = []
        try:
            for client in self.clients:
                client.start(**hello)
                started.append(client)
        except BaseException:
            for client in started:
                client.close()
            raise
        return self

    def close(self) -> None:
        for client in self.clients:
            client.close()

    @property
    def process(self):
        return self.clients[0].process

    @property
    def pids(self) -> list[int]:
        return [c.process.pid for c in self.clients if c.process is not None]

    @property
    def events(self) -> list[dict[str, Any]]:
        merged = [e for c in self.clients for e in c.events]
        merged.sort(key=lambda e: e.get("mono", 0.0))
        return merged

    @property
    def transcript(self):
        return None

    def subscribe(self, callback: Callable[[dict[str, Any]], None]) -> None:
        for client in self.clients:
            client.subscribe(callback)

    # --- commands -------------------------------------------------------------------------
    def add_devices(self, devices: Iterable[Device]) -> int:
        """Round-robin over the engines, so each gets a share of every group."""
        shares: list[list[Device]] = [[] for _ in self.clients]
        count = 0
        for index, device in enumerate(devices):
            slot = (len(self.owner) + index) % len(self.clients)
            shares[slot].append(device)
            count += 1
        for slot, share in enumerate(shares):
            if share:
                self.clients[slot].add_devices(share)
                for device in share:
                    self.owner[device.name] = slot
        return count

    def call(self, cmd: str, timeout: float = 15.0, **args: Any) -> dict[str, Any]:
        if "devices" in args and cmd != "add_devices":
            return self._routed(cmd, timeout, args)
        replies = []
        errors = []
        for client in self.clients:
            try:
                replies.append(client.call(cmd, timeout=timeout, **args))
            except EngineCommandError as exc:
                if exc.code != "unknown_group":
                    raise
                errors.append(exc)
        if not replies and errors:
            raise errors[0]
        return merge(cmd, replies)

    def shards(self, names: list[str]) -> list[tuple[EngineClient, list[str]]]:
        """The engines that own ``names``, each with its share; commands whose results
        are per engine (probes, flows) go to each engine separately."""
        by_engine: dict[int, list[str]] = {}
        for name in names:
            if name not in self.owner:
                raise EngineCommandError("shards", "unknown_device", f"unknown device {name}")
            by_engine.setdefault(self.owner[name], []).append(name)
        return [(self.clients[slot], chosen) for slot, chosen in sorted(by_engine.items())]

    def _routed(self, cmd: str, timeout: float, args: dict[str, Any]) -> dict[str, Any]:
        names = args["devices"]
        by_engine: dict[int, list[str]] = {}
        for name in names:
            if name not in self.owner:
                raise EngineCommandError(cmd, "unknown_device", f"unknown devices: {name}")
            by_engine.setdefault(self.owner[name], []).append(name)
        replies = [self.clients[slot].call(cmd, timeout=timeout, **{**args, "devices": chosen})
                   for slot, chosen in sorted(by_engine.items())]
        if cmd == "remove":
            for name in names:
                self.owner.pop(name, None)
        return merge(cmd, replies)

    def wait_bound(self, group: str = "all", timeout: float = 30.0,
                   count: int | None = None) -> dict[str, Any]:
        return wait_bound(self.call, group, timeout, count)

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float,
                 since: int = 0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events[since:]:
                if predicate(event):
                    return event
            time.sleep(0.05)
        raise TimeoutError(f"no matching event in {timeout:g}s")


def merge(cmd: str, replies: list[dict[str, Any]]) -> dict[str, Any]:
    """One reply from several engines' replies to the same command."""
    if len(replies) == 1:
        return replies[0]
    if cmd == "devices":
        return {"id": None, "ok": True,
                "devices": [d for r in replies for d in r.get("devices", [])]}
    if cmd == "stats":
        return merge_stats(replies)
    out: dict[str, Any] = {"id": None, "ok": True}
    for reply in replies:
        for key, value in reply.items():
            if key in ("id", "ok"):
                continue
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[key] = out.get(key, 0) + value
            elif isinstance(value, list):
                out[key] = out.get(key, []) + value
            else:
                out.setdefault(key, value)
    return out


def merge_stats(replies: list[dict[str, Any]]) -> dict[str, Any]:
    states: Counter = Counter()
    groups: dict[str, Counter] = {}
    counters: Counter = Counter()
    ignored: Counter = Counter()
    hist = [0] * (len(HISTOGRAM_EDGES) + 1)
    for reply in replies:
        states.update(reply.get("states", {}))
        for name, group_states in reply.get("groups", {}).items():
            groups.setdefault(name, Counter()).update(group_states)
        counters.update(reply.get("counters", {}))
        ignored.update(reply.get("ignored", {}))
        for i, n in enumerate(reply.get("latency", {}).get("histogram", {}).get("counts", [])):
            hist[i] += n
    # percentiles do not merge: report the highest engine's (an upper bound), beside the
    # merged histogram and each engine's own p95
    latency = percentiles([])
    for key in ("p50", "p95", "p99", "max"):
        values = [r.get("latency", {}).get(key) for r in replies]
        values = [v for v in values if v is not None]
        latency[key] = max(values) if values else None
    latency.update({"count": sum(hist), "histogram": {"edges": list(HISTOGRAM_EDGES),
                                                      "counts": hist},
                    "p95_by_engine": [r.get("latency", {}).get("p95") for r in replies]})
    return {
        "id": None, "ok": True, "engines": len(replies),
        "devices": sum(r.get("devices", 0) for r in replies),
        "bound": sum(r.get("bound", 0) for r in replies),
        "outstanding": sum(r.get("outstanding", 0) for r in replies),
        "waiting": sum(r.get("waiting", 0) for r in replies),
        "window": sum(r.get("window", 0) for r in replies),
        "states": dict(states), "groups": {g: dict(c) for g, c in groups.items()},
        "counters": dict(counters), "ignored": dict(ignored), "latency": latency,
    }
