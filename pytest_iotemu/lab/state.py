"""Per-run state files and the sweep that reaps labs whose owner died.

Each lab writes ``<base>/iotemu-<run>/state.json`` *before* it creates anything: owner
pid and start time, whether it is detached, its namespaces and the daemons it started.
The sweep reaps a lab only when its owner is gone and it is not detached: it kills the
processes inside each of the lab's namespaces, deletes the namespaces and the run
directory. Nothing is matched by a broad pattern: only what a state file names.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_BASE = Path(os.environ.get("IOTEMU_RUN_BASE", "/run/iotemu"))


def process_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None when it is gone
    (a pid alone can be reused; pid plus start time names one process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name may hold spaces and parentheses: fields follow the last ')'
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[19])


def is_alive(pid: int, start: int | None) -> bool:
    """The same process still runs (a zombie, dead but not yet waited for, does not)."""
    now = process_start_time(pid)
    return now is not None and (start is None or now == start) and not _zombie(pid)


@dataclass
class ProcessRecord:
    name: str
    pid: int
    start: int | None


@dataclass
class LabState:
    run: str
    site: str
    owner_pid: int
    owner_start: int | None
    detached: bool
    namespaces: list[str]
    processes: list[ProcessRecord] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    spec: str = ""

    @property
    def owner_alive(self) -> bool:
        return is_alive(self.owner_pid, self.owner_start)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "LabState":
        data = json.loads(text)
        data["processes"] = [ProcessRecord(**p) for p in data.get("processes", [])]
        return cls(**data)


def run_dir(run: str, base: Path | None = None) -> Path:
    return (base or DEFAULT_BASE) / f"iotemu-{run}"


def save(state: LabState, base: Path | None = None) -> Path:
    directory = run_dir(state.run, base)
    # readable by the daemons after they drop privileges (dnsmasq runs as nobody)
    directory.mkdir(parents=True, exist_ok=True, mode=0o755)
    directory.chmod(0o755)
    tmp = directory / "state.json.tmp"
    tmp.write_text(state.to_json())
    tmp.replace(directory / "state.json")
    return directory


def load_all(base: Path | None = None) -> list[LabState]:
    out = []
    root = base or DEFAULT_BASE
    if not root.is_dir():
        return out
    for directory in sorted(root.glob("iotemu-*")):
        try:
            out.append(LabState.from_json((directory / "state.json").read_text()))
        except (OSError, ValueError, TypeError, KeyError):
            continue
    return out


def netns_pids(namespace: str) -> list[int]:
    result = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True)
    return [int(p) for p in result.stdout.split() if p.isdigit()]


def existing_namespaces() -> set[str]:
    result = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    return {line.split()[0] for line in result.stdout.splitlines() if line.strip()}


def kill_processes(pids: list[tuple[int, int | None]], grace: float = 2.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds, each only if it is still the same
    process (pid and start time)."""
    alive = [(p, s) for p, s in pids if is_alive(p, s)]
    for pid, _ in alive:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = [(p, s) for p, s in alive if is_alive(p, s) and not _zombie(p)]
    for pid, _ in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def reap(state: LabState, base: Path | None = None) -> list[str]:
    """Remove everything ``state`` names; returns what could not be removed."""
    problems = []
    present = existing_namespaces()
    recorded = [(p.pid, p.start) for p in state.processes]
    kill_processes(recorded)
    for namespace in state.namespaces:
        if namespace not in present:
            continue
        inside = [(pid, process_start_time(pid)) for pid in netns_pids(namespace)]
        kill_processes(inside)
        result = subprocess.run(["ip", "netns", "del", namespace], capture_output=True,
                                text=True)
        if result.returncode != 0 and namespace in existing_namespaces():
            problems.append(f"{namespace}: {result.stderr.strip()}")
    if not problems:
        shutil.rmtree(run_dir(state.run, base), ignore_errors=True)
    return problems


def sweep(base: Path | None = None, *, include_detached: bool = False,
          keep: set[str] = frozenset()) -> list[str]:
    """Reap dead owners' labs (and detached ones with ``include_detached``); never a live
    run's. Returns the runs reaped."""
    reaped = []
    for state in load_all(base):
        if state.run in keep or state.owner_alive:
            continue
        if state.detached and not include_detached:
            continue
        if not reap(state, base):
            reaped.append(state.run)
    return reaped
