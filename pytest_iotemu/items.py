"""A fleet spec as pytest items: one per expectation per site, with ids such as
``branch.yaml::branch-paris-01::dhcp[all]``."""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import pytest

from . import traffic
from .checks import (ExpectationFailed, judge_dhcp, judge_path, judge_policy, judge_resources,
                     judge_throughput)
from .engine import EngineCommandError, EngineError
from .lab import LabError
from .run import RunUnavailable, SiteRun
from .spec.model import (DhcpExpect, ExpectEntry, FleetSpec, PathExpect, PolicyExpect,
                         ResourcesExpect, Site, ThroughputExpect)

if TYPE_CHECKING:
    from .session import IotSession

NEEDS_RESPONDERS = ("needs the lab's target responders to measure what arrives; on a real "
                    "interface path and throughput are not measured")
PATH_LEAD = 1.5  # seconds of steady flow before a WAN is failed


class RunError(Exception):
    """The lab or the engine failed: an error of the item, with its cause."""


class SpecFile(pytest.File):
    def collect(self) -> Iterator[pytest.Collector]:
        session: IotSession = self.config.stash[_session_key()]
        spec = session.spec_for(Path(self.path))
        if spec is None:
            return
        for site in spec.sites:
            yield SiteCollector.from_parent(self, name=site.name, spec=spec, site=site)


class SiteCollector(pytest.Collector):
    def __init__(self, *, spec: FleetSpec, site: Site, **kwargs: Any):
        super().__init__(**kwargs)
        self.spec = spec
        self.site = site

    def collect(self) -> Iterator[pytest.Item]:
        seen: dict[str, int] = {}
        for entry in self.site.expectations:
            seen[entry.id] = seen.get(entry.id, 0) + 1
            name = entry.id if seen[entry.id] == 1 else f"{entry.id}#{seen[entry.id]}"
            yield ExpectationItem.from_parent(self, name=name, spec=self.spec,
                                              site=self.site, entry=entry)


class ExpectationItem(pytest.Item):
    def __init__(self, *, spec: FleetSpec, site: Site, entry: ExpectEntry, **kwargs: Any):
        super().__init__(**kwargs)
        self.spec = spec
        self.site = site
        self.entry = entry
        self.add_marker(pytest.mark.iot_expectation(entry.expect.kind))
        if len(spec.sites) > 1:  # xdist --dist loadgroup: a site's items on one worker
            self.add_marker(pytest.mark.xdist_group(f"{spec.name}::{site.name}"))

    @property
    def kind(self) -> str:
        return self.entry.expect.kind

    def reportinfo(self) -> tuple[Path, int, str]:
        return Path(self.path), self.entry.line - 1, f"{self.site.name}::{self.name}"

    def _run(self) -> SiteRun:
        session: IotSession = self.config.stash[_session_key()]
        try:
            return session.site_run(self.spec, self.site).start()
        except RunUnavailable as exc:
            raise pytest.skip.Exception(str(exc), _use_item_location=True) from None
        except (LabError, EngineError, EngineCommandError, OSError) as exc:
            raise RunError(f"the fleet of site {self.site.name} could not run: {exc}") from exc
        raise AssertionError("unreachable")

    def setup(self) -> None:
        """The site's fleet starts here (once per session): a lab that cannot start or an
        engine that dies on the way is an error of the item, not a failure."""
        self.run: SiteRun | None = None
        if isinstance(self.entry.expect, (PathExpect, ThroughputExpect)) \
                and not self.site.is_lab:
            raise pytest.skip.Exception(NEEDS_RESPONDERS, _use_item_location=True)
        self.run = self._run()

    def runtest(self) -> None:
        expect = self.entry.expect
        run = self.run
        assert run is not None
        try:
            if isinstance(expect, DhcpExpect):
                self._dhcp(run, expect)
            elif isinstance(expect, ResourcesExpect):
                self._resources(run, expect)
            elif isinstance(expect, PolicyExpect):
                self._policy(run, expect)
            elif isinstance(expect, PathExpect):
                self._path(run, expect)
            elif isinstance(expect, ThroughputExpect):
                self._throughput(run, expect)
        except LabError as exc:
            raise RunError(f"the lab failed: {exc}") from exc
        except (EngineError, EngineCommandError) as exc:
            raise RunError(f"the engine failed: {exc}") from exc

    def _dhcp(self, run: SiteRun, expect: DhcpExpect) -> None:
        devices = list(self.site.devices_of(expect.group))
        if expect.group != "all":
            group = self.site.group(expect.group)
            if not group.enabled:
                pytest.skip(f"group {group.name} is disabled (enabled: false)")
        if not devices:
            pytest.skip(f"no enabled DHCP devices in {expect.group}")
        observed = run.wait_settled([d.name for d in devices], expect.within)
        lab = self.site.lab
        verdict = judge_dhcp(expect, devices, observed, lab, on_real_interface=not self.site.is_lab)
        self.user_properties.append(("observed", verdict.observed))
        if not verdict.passed:
            raise ExpectationFailed(verdict.message())

    # --- traffic ---------------------------------------------------------------------------
    def _senders(self, run: SiteRun, group: str) -> list:
        """The group's devices that the engine drives, once they are bound (or out of
        time): the ones that cannot send are reported by the judge, not skipped."""
        driven = {d.name for d in run.devices}
        devices = [d for d in self.site.devices_of(group) if d.name in driven]
        if not devices:
            pytest.skip(f"no enabled DHCP devices in {group} to send from")
        run.wait_settled([d.name for d in devices], within=10.0, limit=60.0)
        return devices

    def _policy(self, run: SiteRun, expect: PolicyExpect) -> None:
        import random
        devices = self._senders(run, expect.group)
        if expect.sample is not None and expect.sample < len(devices):
            chooser = random.Random(f"{self.spec.seed}:{self.site.name}:{expect.id}")
            chosen = set(chooser.sample(range(len(devices)), expect.sample))
            devices = [d for i, d in enumerate(devices) if i in chosen]
        target = self.site.target(expect.target)
        service = expect.service
        results = traffic.probe(run.engine, [d.name for d in devices], str(target.address),
                                service.proto, service.port or 0)
        counters = run.lab.policy_counters() if run.lab is not None else None
        verdict = judge_policy(expect, devices, results, counters)
        self._conclude(verdict)

    def _flow(self, run: SiteRun, group: str, target_name: str, port: int, rate: float,
              duration: float, during: Any = None) -> tuple[dict, traffic.FlowRun]:
        devices = self._senders(run, group)
        target = self.site.target(target_name)
        flow = traffic.start_flow(run.engine, [d.name for d in devices], str(target.address),
                                  port, rate, duration)
        if during is not None:
            during(flow)
        sent = flow.wait()
        time.sleep(0.3)  # the last datagrams in flight
        assert run.lab is not None
        service = f"{port}/udp"
        received = {ident: run.lab.flow_stats(target_name, service, ident)
                    for _, ident in flow.jobs}
        return traffic.flow_observations(flow, sent, received), flow

    def _path(self, run: SiteRun, expect: PathExpect) -> None:
        lab = run.lab
        assert lab is not None
        failover = expect.failover
        devices = self._senders(run, expect.group)
        # a steady flow, fine-grained enough to time the outage: 50 datagrams a second
        # per device, at most 2,000 a second in all
        per_second = min(50.0, 2000.0 / len(devices))
        size = 200
        duration = 2.0 if failover is None else PATH_LEAD + failover.within + 2.5
        before = lab.path_status().get("primary")
        monitor: dict = {}

        def fail_midway(flow: traffic.FlowRun) -> None:
            time.sleep(max(0.0, flow.started + PATH_LEAD - time.monotonic()))
            lab.fail_wan(failover.fail)

        try:
            rows, _ = self._flow(run, expect.group, expect.target, expect.service.port,
                                 per_second * size * 8, duration,
                                 during=fail_midway if failover is not None else None)
            monitor = lab.path_status()
        finally:
            if failover is not None:
                lab.heal_wan(failover.fail)
                self._wait_primary(lab, before)
        verdict = judge_path(expect, rows, monitor, before)
        self._conclude(verdict)

    @staticmethod
    def _wait_primary(lab: Any, primary: str | None, timeout: float = 10.0) -> None:
        """The lab restored: its path monitor back on the WAN it had before."""
        deadline = time.monotonic() + timeout
        while primary is not None and time.monotonic() < deadline:
            if lab.path_status().get("primary") == primary:
                return
            time.sleep(0.1)
        if primary is not None:
            raise LabError(f"the path monitor did not return to {primary} in {timeout:g}s "
                           "after the WAN was healed")

    def _throughput(self, run: SiteRun, expect: ThroughputExpect) -> None:
        rows, _ = self._flow(run, expect.group, expect.target, expect.service.port,
                             expect.rate, expect.duration)
        verdict = judge_throughput(expect, rows)
        self._conclude(verdict)

    def _conclude(self, verdict: Any) -> None:
        self.user_properties.append(("observed", verdict.observed))
        if not verdict.passed:
            raise ExpectationFailed(verdict.message())

    def _resources(self, run: SiteRun, expect: ResourcesExpect) -> None:
        assert run.metrics is not None and run.metrics.sampler is not None
        # peaks over the run: when this item is the first of the site here (an xdist
        # worker), let the fleet bind first, and take at least one real sample
        run.wait_settled([d.name for d in run.devices], within=10.0, limit=60.0)
        sampler = run.metrics.sampler
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            sampler.sample()
            if all(series.samples for series in sampler.series.values()):
                break
            time.sleep(0.05)
        peaks = sampler.peaks()
        verdict = judge_resources(expect, peaks)
        self.user_properties.append(("observed", verdict.observed))
        if not verdict.passed:
            raise ExpectationFailed(verdict.message())

    def _repr_failure_py(self, excinfo: pytest.ExceptionInfo[BaseException],
                         style: Any = None) -> Any:
        # setup errors (a lab that cannot start) are reported through here, not through
        # repr_failure: they too read as their cause, without our traceback
        if isinstance(excinfo.value, (ExpectationFailed, RunError)):
            return self.repr_failure(excinfo)
        return super()._repr_failure_py(excinfo, style)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, (ExpectationFailed, RunError)):
            fragment = self.entry.fragment
            return f"{excinfo.value}\n(spec line {self.entry.line}: {fragment})"
        return super().repr_failure(excinfo, style)


def _session_key():
    from .plugin import SESSION_KEY
    return SESSION_KEY
