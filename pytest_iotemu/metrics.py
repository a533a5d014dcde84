"""Metrics of a run: engine stats and events, psutil samples of the engine and the lab's
daemons (taken by a thread of their own, never on the engine's loop), the end-of-session
table and the ``--iot-metrics`` JSON."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psutil


@dataclass
class Series:
    """Samples of one process: time, CPU % of one core, RSS bytes, fds, threads."""

    name: str
    pid: int
    samples: list[tuple[float, float, int, int, int]] = field(default_factory=list)
    since: float = field(default_factory=time.monotonic)  # the CPU baseline's time

    def peak(self, index: int) -> float | None:
        values = [s[index] for s in self.samples]
        return max(values) if values else None


class Sampler:
    """Samples processes every ``interval`` seconds on its own thread. One
    ``psutil.Process`` per pid is kept across samples (the CPU baseline lives on it)."""

    def __init__(self, interval: float = 0.5):
        self.interval = interval
        self.series: dict[str, Series] = {}
        self._procs: dict[str, psutil.Process] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def watch(self, name: str, pid: int | None) -> None:
        if pid is None:
            return
        try:
            proc = psutil.Process(pid)
            proc.cpu_percent(None)  # the first call only sets the baseline
        except psutil.Error:
            return
        with self._lock:
            self._procs[name] = proc
            self.series[name] = Series(name, pid)

    def start(self) -> "Sampler":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name="iotemu-sampler")
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        """One sample of every process; a process sampled less than a fifth of a second ago
        is skipped (psutil's CPU share over a few milliseconds is noise: one clock tick in
        4 ms reads as 250%)."""
        with self._lock:
            self._sample()

    def _sample(self) -> None:
        now = time.monotonic()
        for name, proc in list(self._procs.items()):
            series = self.series[name]
            last = series.samples[-1][0] if series.samples else series.since
            if now - last < 0.2:
                continue
            try:
                with proc.oneshot():
                    cpu = proc.cpu_percent(None)
                    rss = proc.memory_info().rss
                    fds = proc.num_fds()
                    threads = proc.num_threads()
            except psutil.Error:
                continue
            self.series[name].samples.append((now, cpu, rss, fds, threads))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval * 4)

    def peaks(self) -> dict[str, float | None]:
        """Peaks per process kind; with several engines, the highest of any one engine
        (the limits are per engine process)."""
        out: dict[str, float | None] = {}
        for prefix, name in (("engine", "engine"), ("server", "dhcp")):
            series = [s for key, s in self.series.items()
                      if key == name or key.startswith(name + "-")]
            cpu = [p for p in (s.peak(1) for s in series) if p is not None]
            rss = [p for p in (s.peak(2) for s in series) if p is not None]
            out[f"{prefix}_cpu"] = max(cpu) if cpu else None
            out[f"{prefix}_rss"] = max(rss) if rss else None
        return out


@dataclass
class SiteMetrics:
    fleet: str
    site: str
    started: float = field(default_factory=time.monotonic)
    stats: list[dict[str, Any]] = field(default_factory=list)  # engine.stats events
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # iot_metrics.add(...)
    sampler: Sampler | None = None
    bind_rate: float | None = None

    def on_event(self, event: dict[str, Any]) -> None:
        if event.get("type") == "engine.stats":
            self.stats.append(event)

    def rates(self) -> dict[str, float | None]:
        """Average packet and bit rates of the engines' sockets over the run (summed over
        the engines of a sharded site)."""
        keys = {"tx_pps": "tx", "rx_pps": "rx", "tx_bps": "tx_bytes", "rx_bps": "rx_bytes"}
        by_engine: dict[Any, list[dict[str, Any]]] = {}
        for stats in self.stats:
            by_engine.setdefault(stats.get("pid"), []).append(stats)
        out: dict[str, float | None] = {k: None for k in keys}
        for series in by_engine.values():
            if len(series) < 2:
                continue
            first, last = series[0], series[-1]
            span = last["mono"] - first["mono"]
            if span <= 0:
                continue
            for name, key in keys.items():
                delta = last["socket"].get(key, 0) - first["socket"].get(key, 0)
                rate = delta * (8 if name.endswith("bps") else 1) / span
                out[name] = (out[name] or 0.0) + rate
        return out

    def as_json(self) -> dict[str, Any]:
        processes = {}
        if self.sampler is not None:
            for name, series in self.sampler.series.items():
                processes[name] = {"pid": series.pid, "columns": ["mono", "cpu_percent", "rss",
                                                                  "fds", "threads"],
                                   "samples": series.samples}
        return {
            "fleet": self.fleet, "site": self.site, "groups": self.groups,
            "bind_rate": self.bind_rate,
            "peaks": self.sampler.peaks() if self.sampler else {},
            "rates": self.rates(), "extra": self.extra, "processes": processes,
            "stats": [{k: v for k, v in s.items() if k not in ("groups",)} for s in self.stats],
        }


def percentile(values: list[float], q: float) -> float | None:
    data = sorted(values)
    if not data:
        return None
    return data[min(len(data) - 1, int(q * len(data)))]


def group_rows(devices: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per group: devices, bound, DORA p50/p95/p99, retransmits, from ``devices`` output."""
    groups: dict[str, dict[str, Any]] = {}
    for entry in devices:
        g = groups.setdefault(entry["group"], {"devices": 0, "bound": 0, "retransmits": 0,
                                               "_lat": []})
        g["devices"] += 1
        g["bound"] += entry["ip"] is not None
        g["retransmits"] += entry.get("retransmits") or 0
        if entry.get("bound_after") is not None:
            g["_lat"].append(entry["bound_after"])
    for g in groups.values():
        lat = g.pop("_lat")
        g.update({"dora_p50": percentile(lat, 0.5), "dora_p95": percentile(lat, 0.95),
                  "dora_p99": percentile(lat, 0.99)})
    return groups


def table(rows: list[list[str]], headers: list[str]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return out


def summary_lines(site: dict[str, Any]) -> list[str]:
    """The end-of-session lines of one site, from ``SiteMetrics.as_json()`` (so that the
    sites of xdist workers, which arrive as JSON, print the same way)."""
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v * 1000:.0f}ms"

    def mb(v: float | None) -> str:
        return "-" if v is None else f"{v / 1e6:.0f}MB"

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:.0f}%"

    peaks = site.get("peaks") or {}
    rates = site.get("rates") or {}
    rows = [[name, str(g["devices"]), str(g["bound"]), ms(g["dora_p50"]), ms(g["dora_p95"]),
             ms(g["dora_p99"]), str(g["retransmits"])]
            for name, g in sorted((site.get("groups") or {}).items())]
    where = f" (worker {site['worker']})" if site.get("worker") else ""
    lines = [f"{site['fleet']} / {site['site']}{where}:"]
    lines += ["  " + line for line in table(rows, ["GROUP", "DEVICES", "BOUND", "DORA p50",
                                                    "p95", "p99", "RETRANSMITS"])]
    pps = "-" if rates.get("tx_pps") is None else (
        f"tx {rates['tx_pps']:.0f} pps {rates['tx_bps'] / 1e3:.0f} kbit/s, "
        f"rx {rates['rx_pps']:.0f} pps {rates['rx_bps'] / 1e3:.0f} kbit/s")
    rate = site.get("bind_rate")
    lines.append(f"  bind rate {'-' if rate is None else f'{rate:.0f}/s'}; engine: CPU peak "
                 f"{pct(peaks.get('engine_cpu'))}, RSS peak {mb(peaks.get('engine_rss'))}; "
                 f"DHCP server: CPU peak {pct(peaks.get('server_cpu'))}, RSS peak "
                 f"{mb(peaks.get('server_rss'))}; socket {pps}")
    last = (site.get("stats") or [{}])[-1]
    if last.get("apps") or last.get("threats"):
        lines.append("  " + traffic_line(last))
    for key, value in sorted((site.get("extra") or {}).items()):
        lines.append(f"  {key}: {value}")
    return lines


def traffic_line(stats: dict[str, Any]) -> str:
    """``apps: dns 12 ok, http 4 ok 1 refused; threats: port_scan 1, beacon 2``."""
    per: dict[str, dict[str, int]] = {}
    for key, count in sorted(stats.get("apps", {}).items()):
        protocol, _, result = key.partition(".")
        per.setdefault(protocol, {})[result] = count
    ok = ("answered", "connected", "sent", "streaming", "scanned")
    parts = []
    for protocol, results in per.items():
        good = sum(n for r, n in results.items() if r in ok)
        bad = ", ".join(f"{n} {r}" for r, n in results.items() if r not in ok)
        parts.append(f"{protocol} {good} ok" + (f" ({bad})" if bad else ""))
    threats = ", ".join(f"{b} {n}" for b, n in sorted(stats.get("threats", {}).items())
                        if "." not in b)
    return "apps: " + ("; ".join(parts) or "none") + (f" | threats: {threats}" if threats
                                                       else "")


def bind_rate(devices: list[dict[str, Any]]) -> float | None:
    """Devices bound per second, from the first DISCOVER to the last ACK (``devices``
    entries carry ``started_ago`` and ``bound_after``, seconds, as of the listing)."""
    bound = [d for d in devices if d.get("bound_after") is not None
             and d.get("started_ago") is not None]
    if not bound:
        return None
    first = max(d["started_ago"] for d in bound)
    last = min(d["started_ago"] - d["bound_after"] for d in bound)
    return len(bound) / max(first - last, 1e-6)
