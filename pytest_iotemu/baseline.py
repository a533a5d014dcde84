"""Performance baselines: save a run's metrics, compare a later run with them, and fail
the session with a table of the regressions (``--iot-save-baseline``, ``--iot-baseline``,
``--iot-tolerance``)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# metric -> True when a higher value is better
METRICS = {"bind_rate": True, "dora_p95": False, "engine_rss": False, "engine_cpu": False,
           "server_rss": False, "server_cpu": False}
# Differences smaller than these never count, whatever the tolerance: a CPU peak sampled
# every half second moves by several points between identical runs, and a 36-device fleet
# can go from 2% to 17% on a busy machine.
NOISE_FLOOR = {"engine_cpu": 25.0, "server_cpu": 25.0, "engine_rss": 10e6,
               "server_rss": 10e6, "dora_p95": 0.010, "bind_rate": 0.0}


def flatten(sites: list[dict[str, Any]]) -> dict[str, float]:
    """``fleet/site[/group]:metric`` -> value, from ``SiteMetrics.as_json()`` dicts."""
    out: dict[str, float] = {}
    for site in sites:
        key = f"{site['fleet']}/{site['site']}"
        if site.get("bind_rate") is not None:
            out[f"{key}:bind_rate"] = site["bind_rate"]
        for name, value in (site.get("peaks") or {}).items():
            if value is not None:
                out[f"{key}:{name}"] = value
        for group, row in (site.get("groups") or {}).items():
            if row.get("dora_p95") is not None:
                out[f"{key}/{group}:dora_p95"] = row["dora_p95"]
    return out


def save(path: Path, sites: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": 1, "metrics": flatten(sites)}, indent=1) + "\n")


class BaselineError(ValueError):
    pass


def load(path: Path) -> dict[str, float]:
    try:
        data = json.loads(path.read_text())
        metrics = data["metrics"]
        if not isinstance(metrics, dict):
            raise TypeError
        return {k: float(v) for k, v in metrics.items()}
    except FileNotFoundError:
        raise BaselineError(f"{path}: baseline not found; write one with "
                            "--iot-save-baseline") from None
    except (ValueError, TypeError, KeyError):
        raise BaselineError(f"{path}: not a baseline file (write one with "
                            "--iot-save-baseline)") from None


@dataclass(frozen=True)
class Regression:
    key: str
    baseline: float
    current: float
    limit: float

    @property
    def change(self) -> float:
        return (self.current - self.baseline) / self.baseline if self.baseline else 0.0


def compare(baseline: dict[str, float], sites: list[dict[str, Any]],
            tolerance: float) -> list[Regression]:
    current = flatten(sites)
    out = []
    for key, old in sorted(baseline.items()):
        metric = key.rsplit(":", 1)[1]
        new = current.get(key)
        if new is None or metric not in METRICS:
            continue
        floor = NOISE_FLOOR.get(metric, 0.0)
        if METRICS[metric]:
            limit = min(old * (1 - tolerance), old - floor)
            if new < limit:
                out.append(Regression(key, old, new, limit))
        else:
            limit = max(old * (1 + tolerance), old + floor)
            if new > limit:
                out.append(Regression(key, old, new, limit))
    return out


def table_lines(regressions: list[Regression], tolerance: float) -> list[str]:
    from .metrics import table
    rows = [[r.key, f"{r.baseline:.4g}", f"{r.current:.4g}", f"{r.change:+.0%}",
             f"{r.limit:.4g}"] for r in regressions]
    return [f"{len(regressions)} metric(s) regressed beyond {tolerance:.0%}:"] + table(
        rows, ["METRIC", "BASELINE", "NOW", "CHANGE", "LIMIT"])
