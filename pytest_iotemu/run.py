"""A site's running fleet: its lab (or real interface), its engine, its metrics.

Started once per session on first use and shared by every item and fixture of the site;
a start that fails is remembered, and every later use reports the same cause.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any

from .engine import EngineClient
from .engine.client import bound_in
from .engine.group import EngineGroup
from .lab import Lab
from .metrics import Sampler, SiteMetrics, bind_rate, group_rows
from .spec.model import FleetSpec, Site


class RunUnavailable(Exception):
    """The fleet cannot run here (e.g. not root): items are skipped with this reason."""


@dataclass
class RunOptions:
    allow_live: bool = False
    keep_lab: bool = False
    sample_interval: float = 0.5
    engines: int | None = None  # --iot-engines: overrides the site's `engines:`
    on_event: Any = None  # also called with every engine event (iotemu run --jsonl)
    capture: bool = False  # --iot-pcap: a ring capture for the session
    traffic: bool = False  # --iot-traffic: the devices' own traffic and threat behaviours


@dataclass
class SiteRun:
    spec: FleetSpec
    site: Site
    options: RunOptions
    lab: Lab | None = None
    engine: Any = None  # an EngineClient, or an EngineGroup with several engines
    metrics: SiteMetrics | None = None
    error: BaseException | None = None
    started_at: float = 0.0
    _closed: bool = False
    devices: list = field(default_factory=list)
    progress: Any = None  # called with a line of progress during long waits
    capture: Any = None  # a capture.Capture while --iot-pcap is on
    step: Any = None  # a context manager factory: step(title), for reports
    _capture_dir: Any = None

    def _step(self, title: str):
        from contextlib import nullcontext
        return self.step(title) if self.step is not None else nullcontext()

    def start(self) -> "SiteRun":
        if self.error is not None:
            raise self.error
        if self.engine is not None:
            return self
        try:
            self._start()
        except BaseException as exc:
            self.error = exc
            self.close()
            raise
        return self

    def _start(self) -> None:
        site = self.site
        if site.is_lab and os.geteuid() != 0:
            raise RunUnavailable("the virtual branch needs root (network namespaces); run "
                                 "pytest as root, or give a real interface with --iot-iface")
        self.metrics = SiteMetrics(self.spec.name, site.name)
        sampler = Sampler(self.options.sample_interval)
        self.metrics.sampler = sampler
        count = self.options.engines or site.engines
        if site.is_lab:
            with self._step(f"lab up: {site.lab.dhcp_server if site.lab else ''} branch "
                            f"in namespaces"):
                self.lab = Lab(site, detached=self.options.keep_lab, engine_ports=count,
                               spec_path=self.spec.source).build()
                if self.options.capture:
                    self.capture = self.lab.start_capture()
            ports = self.lab.engine_interfaces()
            allow_live = False
            sampler.watch("dhcp", self.lab.daemons["dhcp"].pid)
        else:
            allow_live = self.options.allow_live or site.allow_live
            if not allow_live:
                raise RunUnavailable(f"site {site.name} runs on the real interface "
                                     f"{site.interface}: sending there needs --iot-allow-live "
                                     "(or allow_live: true in the spec)")
            ports = [(None, site.interface)] * count  # shards share the real interface
            if self.options.capture:
                self._start_live_capture(site.interface)
        clients = [EngineClient(iface, netns=netns, allow_live=allow_live,
                                seed=self.spec.seed + i) for i, (netns, iface) in enumerate(ports)]
        self.engine = clients[0] if count == 1 else EngineGroup(clients)
        self.engine.subscribe(self.metrics.on_event)
        if self.options.on_event is not None:
            self.engine.subscribe(self.options.on_event)
        with self._step(f"fleet start: {count} engine(s), "
                        f"{sum(1 for d in site.devices if d.enabled and d.static_ip is None)}"
                        " DHCP devices"):
            self.engine.start(**site.pacing.hello())
            for i, client in enumerate(clients):
                sampler.watch("engine" if count == 1 else f"engine-{i}",
                              client.process.pid if client.process else None)
            sampler.start()
            self.devices = [d for d in site.devices if d.enabled and d.static_ip is None]
            if self.devices:
                self.engine.add_devices(self.devices)
                self.engine.call("start")
                if self.options.traffic:
                    self.start_traffic()
        self.started_at = time.monotonic()

    def start_traffic(self) -> dict:
        """The devices' own traffic from their habits, and their threat behaviours: each
        device starts as soon as it is bound (docs/traffic.md)."""
        from .engine.client import targets_entry
        return self.engine.call("apps", action="start", targets=targets_entry(self.site))

    def stop_traffic(self) -> dict:
        return self.engine.call("apps", action="stop")

    def _start_live_capture(self, iface: str) -> None:
        import tempfile
        from .capture import Capture
        self._capture_dir = tempfile.TemporaryDirectory(prefix="iotemu-pcap-")
        capture = Capture(Path(self._capture_dir.name), iface)
        capture.daemon_for().start()
        self.capture = capture

    def observed(self, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
        assert self.engine is not None
        args: dict[str, Any] = {"devices": names} if names is not None else {}
        listed = self.engine.call("devices", **args)["devices"] if self.devices else []
        return {entry["name"]: entry for entry in listed}

    def wait_settled(self, names: list[str], within: float, limit: float = 120.0) -> dict:
        """Wait until each named device is bound or has had ``within`` since its first
        DISCOVER (so it can no longer count); returns the engine's view of them."""
        deadline = time.monotonic() + within + limit
        last_report = time.monotonic()
        wanted = set(names)
        groups = {d.group for d in self.devices if d.name in wanted}
        while True:
            # cheap stats first: the device list (which a large fleet makes big) only when
            # everything is bound, or every couple of seconds to see who ran out of time
            bound, total = bound_in(self.engine.call("stats"), groups=groups)
            if bound < total and time.monotonic() - last_report < 2.0 \
                    and time.monotonic() <= deadline:
                time.sleep(0.1)
                continue
            observed = self.observed(names)
            pending = [n for n in names
                       if observed.get(n, {}).get("ip") is None
                       and (observed.get(n, {}).get("started_ago") is None
                            or observed[n]["started_ago"] <= within)]
            if not pending or time.monotonic() > deadline:
                return observed
            if self.progress is not None and time.monotonic() - last_report > 2.0:
                last_report = time.monotonic()
                bound = sum(1 for n in names if observed.get(n, {}).get("ip"))
                self.progress(f"iotemu: {self.site.name}: {bound}/{len(names)} bound, "
                              f"{len(pending)} still within their {within:g}s")
            time.sleep(0.05)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.metrics is not None and self.engine is not None and self.engine.process \
                and self.engine.process.poll() is None:
            try:
                listed = self.engine.call("devices")["devices"]
                self.metrics.groups = group_rows(listed)
                self.metrics.bind_rate = bind_rate(listed)
            except Exception:  # noqa: BLE001 - metrics must not mask the real outcome
                pass
        if self.metrics is not None and self.metrics.sampler is not None:
            self.metrics.sampler.sample()
            self.metrics.sampler.stop()
        if self.engine is not None:
            self.engine.close()
        if self._capture_dir is not None:  # a real interface's capture: ours to end
            if self.capture is not None and self.capture.daemon is not None:
                self.capture.daemon.stop()
            self._capture_dir.cleanup()
        if self.lab is not None and not self.options.keep_lab:
            self.lab.teardown()
