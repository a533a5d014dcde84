"""The running fleet as hand-written tests see it (the ``iot_fleet`` fixture).

    def test_cameras(iot_fleet):
        iot_fleet.wait_bound("axis-camera", timeout=30)
        assert iot_fleet.group("axis-camera").bound_fraction == 1.0
        assert iot_fleet.dhcp_latency(p=95, group="axis-camera") < 2.0
        assert iot_fleet.device("axis-camera-03").lease["router"] == ["10.20.0.1"]
        iot_fleet.assert_dhcp("axis-camera", pool="cameras", within="5s")
        iot_fleet.assert_policy("axis-camera", "corp-files", "445/tcp", "block")
        results = iot_fleet.probe("hp-printer", "corp-files", "445/tcp")
        assert results["hp-printer-1"]["result"] == "connected"
        iot_fleet.assert_path("cisco-ip-phone", "sip-core", via="mpls")
        iot_fleet.assert_throughput("axis-camera", "camera-cloud", "554/udp",
                                    rate="2mbps", min="1.8mbps", duration="5s")
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import evaluate, traffic
from .checks import ExpectationFailed, Verdict, judge_dhcp
from .metrics import percentile
from .run import SiteRun
from .spec.model import (Bound, DhcpExpect, Failover, PathExpect, PolicyExpect,
                         ThroughputExpect)
from .spec.units import (Service, parse_duration, parse_network, parse_percent, parse_rate,
                         parse_service)


def _seconds(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else parse_duration(value)


def _bps(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else parse_rate(value)


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
        expect = DhcpExpect(group, bound_value, _seconds(within), pool,
                            parse_network(subnet) if subnet else None)
        devices = list(self.site.devices_of(group))
        observed = self.run.wait_settled([d.name for d in devices], expect.within)
        self._raise_unless(judge_dhcp(expect, devices, observed, self.site.lab))

    @staticmethod
    def _raise_unless(verdict: Verdict) -> None:
        if not verdict.passed:
            raise ExpectationFailed(verdict.message())

    def _service(self, target: str, service: Any, proto: str | None = None) -> Service:
        if service is not None:
            return service if isinstance(service, Service) else parse_service(service)
        offered = [s for s in self.site.target(target).services
                   if proto is None or s.proto == proto]
        if len(offered) != 1:
            raise ValueError(f"target {target!r} offers {len(offered)} such services; "
                             "say which with service=")
        return offered[0]

    def probe(self, group: str, target: str, service: Any = None,
              timeout: float = 3.0) -> dict[str, dict[str, Any]]:
        """Every device of ``group`` probes ``service`` on ``target``; device -> result
        (``connected``, ``refused``, ``answered``, ``rejected``, ``timeout``, …)."""
        chosen = self._service(target, service)
        devices = evaluate.senders(self.run, group)
        return traffic.probe(self.run.engine, [d.name for d in devices],
                             str(self.site.target(target).address), chosen.proto,
                             chosen.port or 0, timeout)

    def assert_policy(self, group: str, target: str, service: Any = None,
                      verdict: str = "allow", sample: int | None = None) -> None:
        """The ``policy`` expectation from Python, with the same failure message."""
        if verdict not in ("allow", "block"):
            raise ValueError("verdict: allow or block")
        expect = PolicyExpect(group, target, self._service(target, service), verdict, sample)
        self._raise_unless(evaluate.policy(self.run, expect))

    def assert_path(self, group: str, target: str, service: Any = None, *,
                    via: str | None = None, fail: str | None = None,
                    within: Any = None) -> None:
        """The ``path`` expectation; with ``within``, ``fail`` (default ``via``) is failed
        mid-flow and restored afterwards."""
        assert self.site.lab is not None
        via = via or self.site.lab.wans[0].name
        failover = Failover(fail or via, _seconds(within)) if within is not None else None
        expect = PathExpect(group, target, self._service(target, service, "udp"), via,
                            failover)
        self._raise_unless(evaluate.path(self.run, expect))

    def assert_throughput(self, group: str, target: str, service: Any = None, *,
                          rate: Any, min: Any = None, max_loss: Any = None,
                          duration: Any = "10s") -> None:
        """The ``throughput`` expectation from Python."""
        expect = ThroughputExpect(group, target, self._service(target, service, "udp"),
                                  _bps(rate), _bps(min) if min is not None else None,
                                  parse_percent(max_loss) if max_loss is not None else None,
                                  _seconds(duration))
        self._raise_unless(evaluate.throughput(self.run, expect))


class FleetFactory:
    """Ad-hoc fleets inside a test, on the session's running lab and engine
    (``iot_fleet_factory``): from a dict or a YAML file holding ``devices:``, or a profile
    and a count. Their MACs never clash with the devices already running; their names must
    not either (give groups a ``name:`` when they would)."""

    def __init__(self, run: SiteRun):
        self.run = run
        self.made: list[list[str]] = []

    def __call__(self, source: Any = None, *, profile: str | None = None, count: int = 1,
                 name: str | None = None) -> FleetHandle:
        import dataclasses
        from pathlib import Path

        import yaml

        from .spec.errors import SpecError
        from .spec.naming import derive_mac
        from .spec.schema import parse_spec

        k = len(self.made) + 1
        if profile is not None:
            groups = [{"profile": profile, "count": count, "name": name or f"adhoc{k}-{profile}"}]
        elif isinstance(source, dict):
            groups = source.get("devices")
        elif source is not None:
            groups = (yaml.safe_load(Path(source).read_text()) or {}).get("devices")
        else:
            raise TypeError("give a dict or a YAML file with devices:, or profile= and count=")
        site = self.run.site
        data: dict[str, Any] = {"fleet": f"adhoc{k}", "seed": 7919 * k,
                                "interface": site.interface, "devices": groups}
        if site.lab is not None:
            data["lab"] = {"lan": str(site.lab.lan), "gateway": str(site.lab.gateway)}
        try:
            spec = parse_spec(yaml.safe_dump(data, sort_keys=False), f"adhoc{k}", env={},
                              profiles=None)
        except SpecError as exc:
            raise ValueError(exc.render()) from None
        assert self.run.engine is not None
        running = self.run.observed()
        taken = {entry["mac"] for entry in running.values()}
        devices = []
        for device in spec.sites[0].devices:
            if device.name in running:
                raise ValueError(f"a device named {device.name} already runs; give the "
                                 "ad-hoc group another name:")
            if device.mac in taken:
                device = dataclasses.replace(device, mac=derive_mac(
                    7919 * k, f"adhoc{k}", device.group, device.index, [], taken))
            taken.add(device.mac)
            devices.append(device)
        if self.run.lab is not None:
            placed = self.run.lab.admit(devices)
            devices = [dataclasses.replace(d, pool=placed[d.mac]) for d in devices]
        names = [d.name for d in devices]
        self.run.engine.add_devices(devices)
        self.run.engine.call("start", devices=names)
        self.made.append(names)
        adhoc_site = dataclasses.replace(site, devices=tuple(devices),
                                         groups=spec.sites[0].groups)
        view = SiteRun(self.run.spec, adhoc_site, self.run.options, lab=self.run.lab,
                       engine=self.run.engine, metrics=self.run.metrics)
        view.devices = devices
        return FleetHandle(view)

    def close(self) -> None:
        for names in self.made:
            try:
                assert self.run.engine is not None
                self.run.engine.call("remove", devices=names)
            except Exception:  # noqa: BLE001 - the session's fleet goes on regardless
                pass
        self.made.clear()
