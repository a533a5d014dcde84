"""The running fleet as hand-written tests see it (the ``iot_fleet`` fixture).

    def test_cameras(iot_fleet):
        iot_fleet.wait_bound("axis-camera", timeout=30)
        assert iot_fleet.group("axis-camera").bound_fraction == 1.0
        assert iot_fleet.dhcp_latency(p=95, group="axis-camera") < 2.0
        assert iot_fleet.device("axis-camera-03").lease["router"] == ["10.20.0.1"]
        iot_fleet.assert_dhcp("axis-camera", pool="cameras", within="5s")
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .checks import ExpectationFailed, judge_dhcp
from .metrics import percentile
from .run import SiteRun
from .spec.model import Bound, DhcpExpect
from .spec.units import parse_duration, parse_network, parse_percent


@dataclass(frozen=True)
class DeviceView:
    name: str
    group: str
    mac: str
    state: str
    ip: str | None
    lease: dict[str, Any] | None
    last_seen: str
    bound_after: float | None


@dataclass(frozen=True)
class GroupView:
    name: str
    devices: tuple[DeviceView, ...]

    @property
    def bound(self) -> int:
        return sum(d.ip is not None for d in self.devices)

    @property
    def bound_fraction(self) -> float:
        return self.bound / len(self.devices) if self.devices else 0.0


class FleetHandle:
    def __init__(self, run: SiteRun):
        self.run = run
        self.spec = run.spec
        self.site = run.site

    @property
    def lab(self):
        return self.run.lab

    @property
    def engine(self):
        return self.run.engine

    def _views(self, names: list[str] | None = None) -> list[DeviceView]:
        observed = self.run.observed(names)
        return [DeviceView(e["name"], e["group"], e["mac"], e["state"], e["ip"], e["lease"],
                           e["last_seen"], e["bound_after"]) for e in observed.values()]

    def wait_bound(self, group: str = "all", timeout: float = 60.0) -> None:
        assert self.run.engine is not None
        self.run.engine.wait_bound(group, timeout=timeout)

    def group(self, name: str) -> GroupView:
        names = [d.name for d in self.site.devices_of(name) if d.enabled and d.static_ip is None]
        if not names:
            raise KeyError(f"no running devices in group {name!r}")
        return GroupView(name, tuple(self._views(names)))

    def device(self, name: str) -> DeviceView:
        views = self._views([name])
        if not views:
            raise KeyError(f"no running device {name!r}")
        return views[0]

    def dhcp_latency(self, p: float = 95, group: str | None = None) -> float | None:
        """The ``p``-th percentile of DISCOVER→BOUND (seconds) over bound devices."""
        views = self.group(group).devices if group else self._views()
        return percentile([v.bound_after for v in views if v.bound_after is not None], p / 100)

    def events(self, type: str | None = None, device: str | None = None) -> list[dict]:
        assert self.run.engine is not None
        return [e for e in self.run.engine.events
                if (type is None or e.get("type") == type)
                and (device is None or e.get("device") == device)]

    def assert_dhcp(self, group: str = "all", *, bound: Any = "100%", within: Any = "10s",
                    pool: str | None = None, subnet: str | None = None) -> None:
        """The ``dhcp`` expectation from Python, with the same failure message."""
        bound_value = Bound(count=bound) if isinstance(bound, int) else \
            Bound(fraction=parse_percent(bound))
        seconds = within if isinstance(within, (int, float)) else parse_duration(within)
        expect = DhcpExpect(group, bound_value, float(seconds), pool,
                            parse_network(subnet) if subnet else None)
        devices = list(self.site.devices_of(group))
        observed = self.run.wait_settled([d.name for d in devices], expect.within)
        verdict = judge_dhcp(expect, devices, observed, self.site.lab)
        if not verdict.passed:
            raise ExpectationFailed(verdict.message())
