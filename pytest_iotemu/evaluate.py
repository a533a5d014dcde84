"""The traffic expectations carried out on a running site: probes and flows sent through
its engines, what arrived read from its lab, a verdict from ``checks``. Shared by the
spec's items and the ``iot_fleet`` fixture's ``assert_*`` methods."""
from __future__ import annotations

import random
import time
from typing import Any, Callable

import pytest

from . import traffic
from .checks import Verdict, judge_path, judge_policy, judge_throughput
from .lab import LabError
from .run import SiteRun
from .spec.model import PathExpect, PolicyExpect, ThroughputExpect

PATH_LEAD = 1.5  # seconds of steady flow before a WAN is failed
PATH_RATE = 50.0  # datagrams a second per device on a path flow…
PATH_TOTAL = 2000.0  # …and at most this many in all
PATH_SIZE = 200


def senders(run: SiteRun, group: str) -> list:
    """The group's devices that the engine drives, once they are bound (or out of time):
    the ones that cannot send are reported by the judge, not left out."""
    driven = {d.name for d in run.devices}
    devices = [d for d in run.site.devices_of(group) if d.name in driven]
    if not devices:
        pytest.skip(f"no enabled DHCP devices in {group} to send from")
    run.wait_settled([d.name for d in devices], within=10.0, limit=60.0)
    return devices


def policy(run: SiteRun, expect: PolicyExpect) -> Verdict:
    devices = senders(run, expect.group)
    if expect.sample is not None and expect.sample < len(devices):
        chooser = random.Random(f"{run.spec.seed}:{run.site.name}:{expect.id}")
        chosen = set(chooser.sample(range(len(devices)), expect.sample))
        devices = [d for i, d in enumerate(devices) if i in chosen]
    target = run.site.target(expect.target)
    service = expect.service
    with run._step(f"probe {service} on {expect.target} ({target.address}) from "
                   f"{len(devices)} devices"):
        results = traffic.probe(run.engine, [d.name for d in devices], str(target.address),
                                service.proto, service.port or 0)
    counters = run.lab.policy_counters() if run.lab is not None else None
    return judge_policy(expect, devices, results, counters)


def _flow(run: SiteRun, group: str, target_name: str, port: int, rate: float,
          duration: float, size: int | None = None,
          during: Callable[[traffic.FlowRun], None] | None = None) -> dict[str, dict]:
    devices = senders(run, group)
    target = run.site.target(target_name)
    with run._step(f"UDP flow to {target_name} {port}/udp from {len(devices)} devices, "
                   f"{rate / 1e6:g} Mbit/s each for {duration:g}s"):
        flow = traffic.start_flow(run.engine, [d.name for d in devices],
                                  str(target.address), port, rate, duration, size=size)
        if during is not None:
            during(flow)
        sent = flow.wait()
        time.sleep(0.3)  # the last datagrams in flight
    assert run.lab is not None
    received = {ident: run.lab.flow_stats(target_name, f"{port}/udp", ident)
                for _, ident in flow.jobs}
    return traffic.flow_observations(flow, sent, received)


def path(run: SiteRun, expect: PathExpect) -> Verdict:
    lab = run.lab
    assert lab is not None
    failover = expect.failover
    count = len(senders(run, expect.group))
    per_second = min(PATH_RATE, PATH_TOTAL / count)
    duration = 2.0 if failover is None else PATH_LEAD + failover.within + 2.5
    before = lab.path_status().get("primary")
    monitor: dict = {}

    def fail_midway(flow: traffic.FlowRun) -> None:
        assert failover is not None
        time.sleep(max(0.0, flow.started + PATH_LEAD - time.monotonic()))
        with run._step(f"fail WAN {failover.fail} (black hole on its far side)"):
            lab.fail_wan(failover.fail)

    try:
        rows = _flow(run, expect.group, expect.target, expect.service.port,
                     per_second * PATH_SIZE * 8, duration, size=PATH_SIZE,
                     during=fail_midway if failover is not None else None)
        monitor = lab.path_status()
    finally:
        if failover is not None:
            with run._step(f"heal WAN {failover.fail}; path monitor back on {before}"):
                lab.heal_wan(failover.fail)
                wait_primary(lab, before)
    return judge_path(expect, rows, monitor, before)


def wait_primary(lab: Any, primary: str | None, timeout: float = 10.0) -> None:
    """The lab restored: its path monitor back on the WAN it had before."""
    deadline = time.monotonic() + timeout
    while primary is not None and time.monotonic() < deadline:
        if lab.path_status().get("primary") == primary:
            return
        time.sleep(0.1)
    if primary is not None:
        raise LabError(f"the path monitor did not return to {primary} in {timeout:g}s "
                       "after the WAN was healed")


def throughput(run: SiteRun, expect: ThroughputExpect) -> Verdict:
    rows = _flow(run, expect.group, expect.target, expect.service.port, expect.rate,
                 expect.duration)
    return judge_throughput(expect, rows)
