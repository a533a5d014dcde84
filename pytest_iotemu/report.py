"""What each item shows in the Allure report (with ``--alluredir``): labels, parameters,
steps, and attachments — the spec fragment, expected vs observed, a per-device CSV,
plots, and with ``--iot-pcap`` the capture of the devices involved. Plus the session's
``environment.properties`` and ``categories.json``, written by the controller only.

Nothing here runs without ``--alluredir``: the items call these functions, which return
at once when the report is off.
"""
from __future__ import annotations

import csv
import io
import json
import platform
import subprocess
import time
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

    from .items import ExpectationItem
    from .run import SiteRun

FEATURES = {"dhcp": "DHCP", "policy": "Policy", "path": "Path", "throughput": "Throughput",
            "resources": "Resources"}

# failure categories: what a failure message (or a broken item's) says
CATEGORIES = [
    {"name": "DHCP timeout", "matchedStatuses": ["failed"],
     "messageRegex": r"(?s).*(bound within|stuck in|never started).*"},
    {"name": "Policy mismatch", "matchedStatuses": ["failed"],
     "messageRegex": r"(?s).*probes of .* agree with .*"},
    {"name": "Path failover", "matchedStatuses": ["failed"],
     "messageRegex": r"(?s).*(moved off|arrived only over|path monitor).*"},
    {"name": "Throughput shortfall", "matchedStatuses": ["failed"],
     "messageRegex": r"(?s).*offered .* per device.*"},
    {"name": "Resource limit", "matchedStatuses": ["failed"],
     "messageRegex": r"(?s).*(peaked at|not measured).*"},
    {"name": "Engine crash", "matchedStatuses": ["broken"],
     "messageRegex": r"(?s).*(the engine failed|engine .*exited|engine process).*"},
    {"name": "Lab failure", "matchedStatuses": ["broken"],
     "messageRegex": r"(?s).*(the lab failed|could not run|cannot |did not become ready).*"},
]


def results_dir(config: "pytest.Config") -> Path | None:
    value = getattr(config.option, "allure_report_dir", None)
    return Path(value) if value else None


def enabled(config: "pytest.Config") -> bool:
    return results_dir(config) is not None


def _allure():
    import allure
    return allure


def step(config: "pytest.Config", title: str):
    return _allure().step(title) if enabled(config) else nullcontext()


# --- per item ----------------------------------------------------------------------------
def label(item: "ExpectationItem") -> None:
    """Labels and parameters: epic = fleet, feature = kind, story = group, tag = site."""
    if not enabled(item.config):
        return
    allure = _allure()
    expect = item.entry.expect
    allure.dynamic.epic(item.spec.name)
    allure.dynamic.feature(FEATURES[item.kind])
    group = getattr(expect, "group", None)
    allure.dynamic.story(group or "fleet")
    allure.dynamic.tag(item.site.name)
    allure.dynamic.description(f"`{item.entry.fragment}`\n\nline {item.entry.line} of "
                               f"{item.spec.source}")
    # the expectation itself tells items of one kind apart: allure-pytest reads a YAML
    # item's id as one test with parameters, so without it two policy items of a site
    # would share one history id (and Allure 3 would show them as retries of one test)
    allure.dynamic.parameter("expectation", item.name)
    if group:
        allure.dynamic.parameter("devices", len(item.site.devices_of(group)))
    allure.dynamic.parameter("fleet devices", len(item.site.devices))
    allure.dynamic.parameter("interface", item.site.interface)


def label_run(item: "ExpectationItem", run: "SiteRun") -> None:
    """Run-specific parameters (engine pids, the lab's run id): excluded from history."""
    if not enabled(item.config):
        return
    allure = _allure()
    if run.lab is not None:
        allure.dynamic.parameter("lab run", run.lab.run, excluded=True)
    pids = getattr(run.engine, "pids", None) or (
        [run.engine.process.pid] if run.engine is not None and run.engine.process else [])
    allure.dynamic.parameter("engine pid", ", ".join(map(str, pids)), excluded=True)


def _csv(rows: list[dict[str, Any]]) -> str:
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (json.dumps(v) if isinstance(v, (dict, list)) else v)
                         for k, v in row.items()})
    return out.getvalue()


def attach_outcome(item: "ExpectationItem", run: "SiteRun | None", verdict: Any) -> None:
    """The spec fragment, expected vs observed, the per-device CSV and the plots."""
    if not enabled(item.config):
        return
    allure = _allure()
    kind = allure.attachment_type
    allure.attach(_fragment_yaml(item), "spec fragment", kind.YAML)
    expected = {"kind": item.kind, "spec": item.entry.fragment}
    observed = {"passed": verdict.passed, "summary": verdict.summary,
                "details": verdict.details, **verdict.observed}
    allure.attach(json.dumps({"expected": expected, "observed": observed}, indent=2,
                             default=str), "expected vs observed", kind.JSON)
    if verdict.rows:
        allure.attach(_csv(verdict.rows), "devices", kind.CSV)
    for title, svg in plots_for(item, run, verdict):
        allure.attach(svg, title, kind.SVG)


def _fragment_yaml(item: "ExpectationItem") -> str:
    import yaml
    return yaml.safe_dump([item.entry.fragment], sort_keys=False, default_flow_style=None)


def plots_for(item: "ExpectationItem", run: "SiteRun | None",
              verdict: Any) -> list[tuple[str, bytes]]:
    from . import plots
    out: list[tuple[str, bytes]] = []
    rows = verdict.rows or []
    metrics = run.metrics if run is not None else None
    start = metrics.started if metrics is not None else time.monotonic()
    if item.kind == "dhcp":
        latencies = [r["bound_after"] for r in rows if r.get("bound_after") is not None]
        out.append(("DORA latency", plots.latency_histogram(
            latencies, f"{item.entry.expect.group}: DISCOVER to BOUND")))
        if metrics is not None and metrics.stats:
            points = [(s["mono"] - start, s["bound"]) for s in metrics.stats if "mono" in s]
            out.append(("devices bound over time", plots.bound_over_time(
                points, metrics.stats[-1].get("devices", 0), "fleet: devices bound")))
    elif item.kind in ("path", "throughput"):
        names = [r["device"] for r in rows]
        if item.kind == "throughput":
            expect = item.entry.expect
            out.append(("achieved per device", plots.per_device_bars(
                names, [r.get("achieved", 0) / 1e6 for r in rows], "received at the target",
                "Mbit/s of payload", (expect.min or expect.rate) / 1e6)))
        else:
            failover = item.entry.expect.failover
            out.append(("outage per device", plots.per_device_bars(
                names, [r.get("outage", 0) for r in rows], "largest gap in the flow",
                "seconds", failover.within if failover else None)))
        if metrics is not None and len(metrics.stats) > 1:
            points = []
            for before, after in zip(metrics.stats, metrics.stats[1:]):
                span = after["mono"] - before["mono"]
                sent = after.get("socket", {}).get("tx_bytes", 0) - \
                    before.get("socket", {}).get("tx_bytes", 0)
                if span > 0:
                    points.append((after["mono"] - start, sent * 8 / span / 1e6))
            out.append(("engine send rate", plots.rate_series(
                points, "the fleet's frames sent by the engine", "Mbit/s")))
    elif item.kind == "resources" and metrics is not None and metrics.sampler is not None:
        series = {name: [(s[0], s[1], s[2]) for s in data.samples]
                  for name, data in metrics.sampler.series.items()}
        out.append(("CPU and RSS", plots.resources(series, start, "engine and DHCP server")))
    return out


def attach_capture(item: "ExpectationItem", run: "SiteRun | None", verdict: Any,
                   started: float, failed: bool) -> None:
    """With ``--iot-pcap``: the frames of the item's devices during the item."""
    from .plugin import SESSION_KEY
    session = item.config.stash.get(SESSION_KEY, None)
    mode = session.config.pcap if session is not None else "off"
    if not enabled(item.config) or run is None or run.capture is None or mode == "off":
        return
    if mode == "on-failure" and not failed:
        return
    rows = verdict.rows if verdict is not None else []
    involved = [r["device"] for r in rows if not r.get("agrees", True)] or \
        [r["device"] for r in rows]
    by_name = {d.name: d.mac for d in item.site.devices}
    macs = [by_name[n] for n in involved if n in by_name]
    if not macs:
        group = getattr(item.entry.expect, "group", None)
        macs = [d.mac for d in item.site.devices_of(group)] if group else []
    if not macs:
        return
    out = Path(run.capture.directory) / f"item-{time.monotonic_ns()}.pcap"
    try:
        cut = run.capture.cut(macs, started - 0.5, time.time() + 0.5, out)
    except Exception as exc:  # noqa: BLE001 - a capture problem must not hide the verdict
        _allure().attach(str(exc), "capture unavailable", _allure().attachment_type.TEXT)
        return
    if cut is not None:
        note = " (frames cut to 128 bytes, first 50,000)" if run.capture.trimmed(cut) else ""
        _allure().attach.file(str(cut), f"capture ({len(macs)} devices){note}",
                              _allure().attachment_type.PCAP)
        cut.unlink(missing_ok=True)


def attach_failure_context(item: "ExpectationItem", run: "SiteRun | None") -> None:
    """For an item the lab or engine broke: the DHCP server's log and the engine's
    stderr tail."""
    if not enabled(item.config) or run is None:
        return
    allure = _allure()
    if run.lab is not None:
        log = run.lab.server_log()
        if log:
            allure.attach(log[-200_000:], "DHCP server log", allure.attachment_type.TEXT)


# --- the session -------------------------------------------------------------------------
def _version(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    text = (result.stdout or result.stderr).strip().splitlines()
    return text[0].strip() if text else "unknown"


def environment(specs: Any, config: "pytest.Config") -> dict[str, str]:
    from importlib.metadata import version
    sites = [site for spec in specs for site in spec.sites]
    servers = sorted({site.lab.dhcp_server for site in sites if site.is_lab and site.lab})
    versions = {"dnsmasq": ["dnsmasq", "--version"], "kea": ["kea-dhcp4", "-V"]}
    env = {
        "kernel": platform.release(),
        "python": platform.python_version(),
        "pytest-iotemu": version("pytest-iotemu"),
        "fleets": ", ".join(spec.name for spec in specs),
        "devices": str(sum(len(site.devices) for site in sites)),
        "interfaces": ", ".join(sorted({site.interface for site in sites})),
        "dhcp servers": ", ".join(servers) or "the branch's own (real interface)",
    }
    for server in servers:
        env[f"{server} version"] = _version(versions[server])
    return env


def write_session_files(config: "pytest.Config", specs: Any) -> None:
    """``environment.properties`` and ``categories.json``: the controller's job only (a
    worker would race the others)."""
    directory = results_dir(config)
    if directory is None or hasattr(config, "workerinput"):
        return
    directory.mkdir(parents=True, exist_ok=True)
    lines = [f"{key.replace(' ', '.')}={value}" for key, value in environment(specs,
                                                                              config).items()]
    (directory / "environment.properties").write_text("\n".join(lines) + "\n")
    (directory / "categories.json").write_text(json.dumps(CATEGORIES, indent=2))
