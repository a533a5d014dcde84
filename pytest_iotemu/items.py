"""A fleet spec as pytest items: one per expectation per site, with ids such as
``branch.yaml::branch-paris-01::dhcp[all]``."""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import pytest

from . import evaluate, report
from .checks import ExpectationFailed, judge_dhcp, judge_resources
from .engine import EngineCommandError, EngineError
from .lab import LabError
from .run import RunUnavailable, SiteRun
from .spec.model import (DhcpExpect, ExpectEntry, FleetSpec, PathExpect, PolicyExpect,
                         ResourcesExpect, Site, ThroughputExpect)

if TYPE_CHECKING:
    from .session import IotSession

NEEDS_RESPONDERS = ("needs the lab's target responders to measure what arrives; on a real "
                    "interface path and throughput are not measured")


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
        run = session.site_run(self.spec, self.site)
        run.step = (lambda title: report.step(self.config, title)) \
            if report.enabled(self.config) else None
        try:
            return run.start()
        except RunUnavailable as exc:
            raise pytest.skip.Exception(str(exc), _use_item_location=True) from None
        except (LabError, EngineError, EngineCommandError, OSError) as exc:
            raise RunError(f"the fleet of site {self.site.name} could not run: {exc}") from exc
        raise AssertionError("unreachable")

    def setup(self) -> None:
        """The site's fleet starts here (once per session): a lab that cannot start or an
        engine that dies on the way is an error of the item, not a failure."""
        self.run: SiteRun | None = None
        self.verdict: Any = None
        report.label(self)
        if isinstance(self.entry.expect, (PathExpect, ThroughputExpect)) \
                and not self.site.is_lab:
            raise pytest.skip.Exception(NEEDS_RESPONDERS, _use_item_location=True)
        self.run = self._run()
        report.label_run(self, self.run)

    def runtest(self) -> None:
        started = time.time()
        failed = True
        try:
            self._runtest()
            failed = False
        finally:
            if self.verdict is not None:
                report.attach_outcome(self, self.run, self.verdict)
            elif failed:
                report.attach_failure_context(self, self.run)
            report.attach_capture(self, self.run, self.verdict, started, failed)

    def _runtest(self) -> None:
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
        with report.step(self.config, f"wait until the {len(devices)} devices of "
                         f"{expect.group} are bound or past {expect.within:g}s"):
            observed = run.wait_settled([d.name for d in devices], expect.within)
        lab = self.site.lab
        self._conclude(judge_dhcp(expect, devices, observed, lab,
                                  on_real_interface=not self.site.is_lab))

    # --- traffic ---------------------------------------------------------------------------
    def _policy(self, run: SiteRun, expect: PolicyExpect) -> None:
        self._conclude(evaluate.policy(run, expect))

    def _path(self, run: SiteRun, expect: PathExpect) -> None:
        self._conclude(evaluate.path(run, expect))

    def _throughput(self, run: SiteRun, expect: ThroughputExpect) -> None:
        self._conclude(evaluate.throughput(run, expect))

    def _conclude(self, verdict: Any) -> None:
        self.verdict = verdict
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
        self._conclude(judge_resources(expect, sampler.peaks()))

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
