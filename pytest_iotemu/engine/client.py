"""``EngineClient``: spawn an engine (in a lab namespace or on a real interface), talk
to it, watch it. A dead or silent engine is reported on the next call with its stderr
tail and last events."""
from __future__ import annotations

import collections
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Iterable

from ..spec.model import Device


class EngineError(RuntimeError):
    """The engine died, went silent or broke the protocol."""


class EngineCommandError(RuntimeError):
    """The engine refused a command (``ok: false``)."""

    def __init__(self, cmd: str, code: str, message: str):
        super().__init__(f"{cmd}: {code}: {message}")
        self.code = code
        self.message = message


def device_entry(device: Device) -> dict[str, Any]:
    """A spec device as ``add_devices`` takes it."""
    fp = device.dhcp.as_dict()
    fp.pop("hostname", None)
    entry = {"name": device.name, "group": device.group, "mac": device.mac,
             "hostname": device.hostname, "dhcp": fp}
    if device.request_ip is not None:
        entry["request_ip"] = str(device.request_ip)
    if device.protocols:
        entry["protocols"] = [p.as_dict() for p in device.protocols
                              if p.name not in ("dhcp", "arp")]
    if device.threats:
        entry["threats"] = list(device.threats)
    if device.protocols or device.threats:
        entry["description"] = f"{device.vendor} {device.profile} ({device.cls})"
    return entry


def targets_entry(site: Any) -> dict[str, dict[str, Any]]:
    """A site's targets as the engine's ``apps`` command names them: the DNS name the
    devices look up (their own name, or ``<target>.<domain>``) or the address, and the
    first TCP and UDP service of each."""
    domain = site.lab.domain if site.lab is not None else None
    out = {}
    for target in site.targets:
        host = target.dns_name or (f"{target.name}.{domain}" if domain else str(target.address))
        entry: dict[str, Any] = {"host": host}
        for service in target.services:
            if service.port and service.proto not in entry:
                entry[service.proto] = service.port
        out[target.name] = entry
    return out


class EngineClient:
    def __init__(self, iface: str, *, netns: str | None = None, allow_live: bool = False,
                 stats_interval: float = 1.0, heartbeat_timeout: float = 5.0,
                 seed: int = 0, python: str = sys.executable):
        argv = [python, "-m", "pytest_iotemu.engine", "--iface", iface,
                "--stats-interval", str(stats_interval), "--seed", str(seed)]
        if allow_live:
            argv.append("--allow-live")
        self.argv = ["ip", "netns", "exec", netns, *argv] if netns else argv
        self.heartbeat_timeout = heartbeat_timeout
        self.process: subprocess.Popen | None = None
        self.events: list[dict[str, Any]] = []
        self.transcript: list[dict[str, Any]] | None = None  # every message, when wanted
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=200)
        self.last_stats: dict[str, Any] | None = None
        self._replies: dict[Any, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self._last_seq = 0
        self._last_seen = time.monotonic()
        self._problem: str | None = None
        self._subscribers: list[Callable[[dict[str, Any]], None]] = []
        self._write_lock = threading.Lock()

    # --- life -----------------------------------------------------------------------------
    def start(self, timeout: float = 15.0, **hello: Any) -> "EngineClient":
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self.process = subprocess.Popen(self.argv, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        env=env)  # buffered: lines are read in blocks
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        self.wait_for(lambda e: e["type"] == "engine.ready", timeout)
        self.hello = self.call("hello", **hello)
        return self

    def __enter__(self) -> "EngineClient":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, grace: float = 5.0) -> int | None:
        """Release leases (``shutdown``), then SIGTERM, then SIGKILL after ``grace``."""
        proc = self.process
        if proc is None:
            return None
        if proc.poll() is None and self._problem is None:
            try:
                self.call("shutdown", timeout=grace)
            except (EngineError, EngineCommandError):
                pass
        try:
            proc.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    # --- reading --------------------------------------------------------------------------
    def _read_stdout(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for raw in self.process.stdout:
            try:
                message = json.loads(raw)
            except ValueError:
                with self._cond:
                    self._problem = f"not JSON on stdout: {raw[:200]!r}"
                    self._cond.notify_all()
                continue
            with self._cond:
                self._last_seen = time.monotonic()
                if self.transcript is not None:
                    self.transcript.append(message)
                if "id" in message and "seq" not in message:
                    self._replies[message["id"]] = message
                else:
                    seq = message.get("seq")
                    if seq != self._last_seq + 1 and self._problem is None:
                        self._problem = f"event sequence gap: {self._last_seq} then {seq}"
                    self._last_seq = seq if isinstance(seq, int) else self._last_seq
                    self.events.append(message)
                    if message.get("type") == "engine.stats":
                        self.last_stats = message
                self._cond.notify_all()
            if "seq" in message:
                for callback in list(self._subscribers):
                    try:
                        callback(message)
                    except Exception:  # noqa: BLE001 - a broken subscriber is dropped,
                        self._subscribers.remove(callback)  # the engine is still heard
        with self._cond:
            self._cond.notify_all()

    def _read_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for raw in self.process.stderr:
            self.stderr_tail.append(raw.decode(errors="replace").rstrip())

    def subscribe(self, callback: Callable[[dict[str, Any]], None]) -> None:
        self._subscribers.append(callback)

    # --- health ---------------------------------------------------------------------------
    def check(self) -> None:
        """Raise ``EngineError`` if the engine exited, went silent or broke the protocol."""
        proc = self.process
        if proc is None:
            raise EngineError("the engine was not started")
        problem = self._problem
        if problem is None and proc.poll() is not None:
            problem = f"the engine exited with status {proc.returncode}"
        if problem is None and time.monotonic() - self._last_seen > self.heartbeat_timeout:
            problem = f"no word from the engine for {self.heartbeat_timeout:g}s"
        if problem is not None:
            raise EngineError(self._report(problem))

    def _report(self, problem: str) -> str:
        time.sleep(0.05)  # let the stderr reader catch the last lines
        tail = "\n".join(list(self.stderr_tail)[-20:]) or "(nothing on stderr)"
        last = "\n".join(json.dumps(e) for e in self.events[-5:]) or "(no events)"
        return f"{problem}\n--- engine stderr (last lines):\n{tail}\n--- last events:\n{last}"

    # --- talking --------------------------------------------------------------------------
    def send(self, message: dict[str, Any]) -> None:
        assert self.process is not None and self.process.stdin is not None
        data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        with self._write_lock:
            try:
                self.process.stdin.write(data)
                self.process.stdin.flush()
            except (BrokenPipeError, OSError):
                self.check()
                raise EngineError(self._report("cannot write to the engine"))

    def call(self, cmd: str, timeout: float = 15.0, **args: Any) -> dict[str, Any]:
        self.check()
        ident = next(self._ids)
        self.send({"id": ident, "cmd": cmd, "args": args})
        deadline = time.monotonic() + timeout
        with self._cond:
            while ident not in self._replies:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise EngineError(self._report(f"no reply to {cmd} in {timeout:g}s"))
                self._cond.wait(min(remaining, 0.2))
                if ident not in self._replies:
                    self.check()
            reply = self._replies.pop(ident)
        if not reply.get("ok"):
            error = reply.get("error") or {}
            raise EngineCommandError(cmd, error.get("code", "?"), error.get("message", ""))
        return reply

    def add_devices(self, devices: Iterable[Device], chunk: int = 1000) -> int:
        entries = [device_entry(d) for d in devices]
        for start in range(0, len(entries), chunk):
            self.call("add_devices", devices=entries[start:start + chunk], timeout=60)
        return len(entries)

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float,
                 since: int = 0) -> dict[str, Any]:
        """The first event (from index ``since``) matching ``predicate``."""
        deadline = time.monotonic() + timeout
        index = since
        with self._cond:
            while True:
                while index < len(self.events):
                    event = self.events[index]
                    index += 1
                    if predicate(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no matching event in {timeout:g}s")
                self._cond.wait(min(remaining, 0.2))
                if self.process is not None and self.process.poll() is not None \
                        and index >= len(self.events):
                    self.check()

    def shards(self, names: list[str]) -> list[tuple["EngineClient", list[str]]]:
        """The engines that own ``names``, each with its share (here: just this one)."""
        return [(self, list(names))] if names else []

    def wait_bound(self, group: str = "all", timeout: float = 30.0,
                   count: int | None = None) -> dict[str, Any]:
        """Wait until ``count`` devices of ``group`` (default: all of them) are bound;
        returns the last stats. Raises ``TimeoutError`` with what is missing."""
        return wait_bound(self.call, group, timeout, count)


BOUND_STATES = ("BOUND", "RENEWING", "REBINDING")


def bound_in(stats: dict[str, Any], group: str = "all",
             groups: Iterable[str] | None = None) -> tuple[int, int]:
    """(bound, total) devices of ``group`` (or of the ``groups``) in a stats reply."""
    if group == "all" and groups is None:
        return stats["bound"], stats["devices"]
    names = list(groups) if groups is not None else [group]
    states = [stats["groups"].get(name, {}) for name in names]
    return (sum(s.get(k, 0) for s in states for k in BOUND_STATES),
            sum(sum(s.values()) for s in states))


def wait_bound(call: Callable[..., dict[str, Any]], group: str, timeout: float,
               count: int | None) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    stats: dict[str, Any] = {}
    while time.monotonic() < deadline:
        stats = call("stats")
        bound, total = bound_in(stats, group)
        if bound >= (count if count is not None else total) and total:
            return stats
        time.sleep(0.05)
    raise TimeoutError(f"{group}: {stats.get('bound')} of {stats.get('devices')} bound "
                       f"after {timeout:g}s; states {stats.get('states')}")
