"""Plots for the reports, drawn with matplotlib (Agg, no display) as SVG bytes.

Imported only when a report is written: matplotlib costs the pytest process ~40 MB.
"""
from __future__ import annotations

import io
from typing import Any, Iterable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.grid": True,
                     "grid.alpha": 0.3, "figure.dpi": 100})


def _svg(fig: Any) -> bytes:
    out = io.BytesIO()
    fig.tight_layout()
    fig.savefig(out, format="svg")
    plt.close(fig)
    return out.getvalue()


def latency_histogram(values: Iterable[float], title: str) -> bytes:
    """DORA latency (DISCOVER to BOUND) per device, in milliseconds."""
    data = [v * 1000 for v in values]
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.hist(data, bins=min(30, max(5, len(data) // 2)) if data else 5, color="#3572a5")
    ax.set_xlabel("DISCOVER to BOUND (ms)")
    ax.set_ylabel("devices")
    ax.set_title(title)
    return _svg(fig)


def bound_over_time(points: list[tuple[float, int]], total: int, title: str) -> bytes:
    """Devices bound against seconds since the fleet started."""
    fig, ax = plt.subplots(figsize=(6, 3))
    if points:
        xs, ys = zip(*points)
        ax.step(xs, ys, where="post", color="#2f8f4e")
    ax.axhline(total, color="grey", linestyle="--", linewidth=0.8, label=f"fleet ({total})")
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("devices bound")
    ax.set_ylim(0, max(total, 1) * 1.05)
    ax.legend(loc="lower right")
    ax.set_title(title)
    return _svg(fig)


def rate_series(points: list[tuple[float, float]], title: str, label: str) -> bytes:
    """A rate (Mbit/s) against seconds since the fleet started."""
    fig, ax = plt.subplots(figsize=(6, 3))
    if points:
        xs, ys = zip(*points)
        ax.plot(xs, ys, color="#a55135")
    ax.set_xlabel("seconds since start")
    ax.set_ylabel(label)
    ax.set_title(title)
    return _svg(fig)


def per_device_bars(names: list[str], values: list[float], title: str, label: str,
                    limit: float | None = None) -> bytes:
    fig, ax = plt.subplots(figsize=(6, max(2.5, 0.22 * len(names) + 1)))
    ax.barh(names, values, color="#3572a5")
    if limit is not None:
        ax.axvline(limit, color="#c0392b", linestyle="--", linewidth=1, label="expected")
        ax.legend(loc="lower right")
    ax.invert_yaxis()
    ax.set_xlabel(label)
    ax.set_title(title)
    return _svg(fig)


def resources(series: dict[str, list[tuple[float, float, int]]], start: float,
              title: str) -> bytes:
    """CPU (% of one core) and RSS (MB) of each sampled process over the run."""
    fig, (cpu, rss) = plt.subplots(2, 1, figsize=(6, 4.5), sharex=True)
    for name, samples in series.items():
        if not samples:
            continue
        xs = [s[0] - start for s in samples]
        cpu.plot(xs, [s[1] for s in samples], label=name)
        rss.plot(xs, [s[2] / 1e6 for s in samples], label=name)
    cpu.set_ylabel("CPU % of a core")
    rss.set_ylabel("RSS (MB)")
    rss.set_xlabel("seconds since start")
    cpu.legend(loc="upper right")
    cpu.set_title(title)
    return _svg(fig)
