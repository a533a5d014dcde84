"""Validation of a site's ``expect:`` list (meanings in docs/spec.md and CONTRACT.md)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .check import BAD, Checker, join
from .model import (Bound, DhcpExpect, ExpectEntry, Failover, LabSpec, PathExpect,
                    PolicyExpect, ResourcesExpect, Target, ThroughputExpect)
from .options import DHCP_OPTIONS
from .source import Node
from .units import (UnitError, parse_cpu_percent, parse_duration, parse_network,
                    parse_percent, parse_rate, parse_service, parse_size)

KINDS = ("dhcp", "policy", "path", "throughput", "resources")
KEYS = {
    "dhcp": ("group", "bound", "within", "pool", "subnet", "options"),
    "policy": ("from", "to", "service", "verdict", "sample"),
    "path": ("from", "to", "service", "via", "failover"),
    "throughput": ("from", "to", "service", "rate", "min", "max_loss", "duration"),
    "resources": ("engine_rss", "engine_cpu", "server_rss", "server_cpu"),
}
REQUIRED = {
    "dhcp": (), "policy": ("from", "to", "verdict"), "path": ("from", "to"),
    "throughput": ("from", "to", "rate"), "resources": (),
}


@dataclass
class SiteRefs:
    """What expectations can refer to in their site."""

    groups: dict[str, int]  # group name -> device count (enabled or not)
    static_groups: set[str]
    dhcp_devices: int  # size of `all`
    targets: dict[str, Target]
    lab: LabSpec | None
    is_lab: bool
    # False when other parts of the site had errors: names that are not found may be
    # the broken ones, so references and sizes are checked once those are fixed.
    complete: bool = True


def _parse_bound(value: Any) -> Bound:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise UnitError("a count of at least 1 or a percentage above 0% such as 95%")
        return Bound(count=value)
    if isinstance(value, str) and value.strip().endswith("%"):
        fraction = parse_percent(value)
    else:
        raise UnitError("a percentage such as 95% or a count of devices such as 10")
    if fraction <= 0:
        raise UnitError("a count of at least 1 or a percentage above 0% such as 95%")
    return Bound(fraction=fraction)


def _positive_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise UnitError("a duration above zero such as 5s")
    return seconds


class ExpectChecker:
    def __init__(self, check: Checker, refs: SiteRefs):
        self.check = check
        self.refs = refs

    def _ref(self, node: Node | None, path: str, kind: str, names: Any,
             extra: tuple[str, ...] = (), fix: str = "") -> Any:
        if not self.refs.complete and node is not None and node.kind == "scalar" \
                and node.value not in names and node.value not in extra:
            return BAD  # maybe one of the broken parts; reported once they are fixed
        return self.check.reference(node, path, kind, names, extra=extra, fix=fix)

    def check_all(self, node: Node | None, path: str) -> tuple[ExpectEntry, ...] | Any:
        items = self.check.sequence(node, path, "a list of expectations such as "
                                    "[{dhcp: {group: all}}]")
        out = []
        ok = node is None or node.is_seq()
        for i, item in enumerate(items):
            ipath = join(path, i)
            if not item.is_map() or len(item.value) != 1:
                self.check.error(item, ipath, "expected a mapping with one key, the kind of "
                                 "expectation: dhcp, policy, path, throughput or resources; got "
                                 + (f"{len(item.value)} keys" if item.is_map()
                                    else item.describe()))
                ok = False
                continue
            kind, body = next(item.items())
            if kind not in KINDS:
                self.check.mapping(item, ipath, "an expectation", KINDS)  # did you mean …
                ok = False
                continue
            kpath = join(ipath, kind)
            if body.kind == "scalar" and body.value is None and kind in ("dhcp",):
                body = Node({}, body.line, body.col, "map")
            if not self.check.mapping(body, kpath, f"a {kind} expectation", KEYS[kind],
                                      REQUIRED[kind]):
                ok = False
                continue
            expect = getattr(self, f"_{kind}")(body, kpath)
            if expect is BAD:
                ok = False
                continue
            out.append(ExpectEntry(expect, i, item.line, {kind: body.plain()}))
        return tuple(out) if ok else BAD

    # references -------------------------------------------------------------------------
    def _group(self, node: Node | None, path: str, allow_all: bool = True,
               dhcp_only: bool = False) -> Any:
        name = self._ref(node, path, "device group", self.refs.groups,
                                    extra=("all",) if allow_all else ())
        if name is BAD or name is None:
            return name
        if dhcp_only and name in self.refs.static_groups:
            return self.check.error(node, path, f"group {name!r} has static_ip and does no "
                                    "DHCP; pick a DHCP group or `all`")
        return name

    def _target(self, node: Node | None, path: str) -> Target | Any:
        name = self._ref(node, path, "target", self.refs.targets,
                                    fix="declare it under `targets:`")
        return self.refs.targets[name] if isinstance(name, str) else name

    def _wans(self, node: Node, path: str) -> list[str] | Any:
        if self.refs.lab is None:
            if not self.refs.complete:
                return BAD
            return self.check.error(node, path, "this site declares no WANs: add "
                                    "`lab: {lan: …, wan: [...]}` describing the branch")
        return [w.name for w in self.refs.lab.wans]

    def _service(self, node: Node | None, path: str, target: Any, body: Node,
                 proto: str | None = None) -> Any:
        """The service probed on ``target``; defaults to its only (matching) service."""
        if target is BAD or target is None:
            return BAD
        offered = [s for s in target.services if proto is None or s.proto == proto]
        if node is None:
            if len(offered) == 1:
                return offered[0]
            want = f" {proto.upper()}" if proto else ""
            if not offered:
                return self.check.error(body, path, f"target {target.name!r} has no{want} service; add "
                                        f"one to targets.{target.name}.services")
            return self.check.error(body, path, f"target {target.name!r} has several{want} "
                                    f"services ({', '.join(map(str, offered))}); say which "
                                    "with `service:`")
        service = self.check.parse(node, path, parse_service)
        if service is BAD:
            return BAD
        if proto is not None and service.proto != proto:
            return self.check.error(node, path, f"expected a {proto.upper()} service here "
                                    f"(such as 5060/{proto}), got {service}")
        if service.proto != "icmp" and service not in target.services:
            listed = ", ".join(map(str, target.services)) or "none"
            return self.check.error(node, path, f"target {target.name!r} does not offer "
                                    f"{service} (it lists: {listed}); add it to "
                                    f"targets.{target.name}.services")
        return service

    def _flow(self, body: Node, path: str, proto: str | None) -> tuple[Any, Any, Any]:
        """``from``, ``to`` and ``service`` of a policy, path or throughput expectation."""
        group = self._group(body.get("from"), join(path, "from"))
        target = self._target(body.get("to"), join(path, "to"))
        service = self._service(body.get("service"), join(path, "service"), target, body,
                                proto=proto)
        return group, target, service

    def _group_size(self, group: str) -> int:
        return self.refs.dhcp_devices if group == "all" else self.refs.groups[group]

    # kinds -----------------------------------------------------------------------------
    def _dhcp(self, body: Node, path: str) -> DhcpExpect | Any:
        c = self.check
        group = self._group(body.get("group"), join(path, "group"), dhcp_only=True)
        group = "all" if group is None else group
        bound = c.parse(body.get("bound"), join(path, "bound"), _parse_bound, Bound(fraction=1.0))
        within = c.parse(body.get("within"), join(path, "within"), _positive_duration, 10.0)
        pool = None
        if "pool" in body.value:
            pools = [p.name for p in self.refs.lab.pools] if self.refs.lab else []
            pool = self._ref(body.value["pool"], join(path, "pool"), "pool", pools,
                               fix="pools are declared under lab.pools")
        subnet = c.parse(body.get("subnet"), join(path, "subnet"), parse_network)
        options = self._options(body.get("options"), join(path, "options"))
        if BAD in (group, bound, within, pool, subnet, options):
            return BAD
        if self.refs.complete and bound.count is not None:
            size = self._group_size(group)
            if bound.count > size:
                return c.error(body.value["bound"], join(path, "bound"),
                               f"expected at most {size} (the size of {group!r}), got "
                               f"{bound.count}")
        return DhcpExpect(group, bound, within, pool, subnet, options)

    def _options(self, node: Node | None, path: str) -> Any:
        if node is None:
            return ()
        if not self.check.mapping(node, path, "a mapping of DHCP option names to values",
                                  DHCP_OPTIONS):
            return BAD
        out = []
        for name, value_node in node.items():
            if name not in DHCP_OPTIONS:
                continue  # already reported as an unknown key
            _code, reader = DHCP_OPTIONS[name]
            value = self.check.parse(value_node, join(path, name),
                                     reader) if value_node.kind == "scalar" else None
            if value_node.kind == "seq":
                try:
                    value = reader(value_node.plain())
                except UnitError as exc:
                    value = self.check.expected(value_node, join(path, name), str(exc))
            elif value_node.kind == "map":
                value = self.check.expected(value_node, join(path, name), "a value or a list")
            if value is BAD:
                return BAD
            out.append((name, value))
        return tuple(out)

    def _policy(self, body: Node, path: str) -> PolicyExpect | Any:
        c = self.check
        group, target, service = self._flow(body, path, None)
        verdict = c.choice(body.get("verdict"), join(path, "verdict"), ("allow", "block"))
        sample = c.integer(body.get("sample"), join(path, "sample"), 1)
        if BAD in (group, target, service, verdict, sample) or None in (group, target, verdict):
            return BAD
        if self.refs.complete and sample is not None and sample > self._group_size(group):
            return c.error(body.value["sample"], join(path, "sample"),
                           f"expected at most {self._group_size(group)} (the size of "
                           f"{group!r}), got {sample}")
        return PolicyExpect(group, target.name, service, verdict, sample)

    def _path(self, body: Node, path: str) -> PathExpect | Any:
        c = self.check
        group, target, service = self._flow(body, path, "udp")
        wans = self._wans(body, path)
        via = fail = within = None
        if wans is not BAD:
            via = self._ref(body.get("via"), join(path, "via"), "WAN", wans,
                              fix="WANs are declared under lab.wan")
            via = wans[0] if via is None else via
        failover: Any = None
        fnode = body.get("failover")
        if fnode is not None:
            if c.mapping(fnode, join(path, "failover"), "a failover mapping",
                         ("fail", "within"), ("within",)):
                within = c.parse(fnode.get("within"), join(path, "failover.within"),
                                 _positive_duration)
                if wans is not BAD:
                    fail = self._ref(fnode.get("fail"), join(path, "failover.fail"), "WAN",
                                       wans, fix="WANs are declared under lab.wan")
                    if len(wans) < 2:
                        fail = c.error(fnode, join(path, "failover"),
                                       "failover needs a second WAN to move to; add one "
                                       "under lab.wan")
                if BAD not in (fail, within, via):
                    failover = Failover(fail or via, within)
                else:
                    failover = BAD
            else:
                failover = BAD
        if BAD in (group, target, service, wans, via, failover) or None in (group, target):
            return BAD
        return PathExpect(group, target.name, service, via, failover)

    def _throughput(self, body: Node, path: str) -> ThroughputExpect | Any:
        c = self.check
        group, target, service = self._flow(body, path, "udp")
        if body.get("service") is None and target not in (BAD, None) \
                and len(target.services) > 1 and service is not BAD:
            service = c.error(body, join(path, "service"),
                              f"target {target.name!r} has several services "
                              f"({', '.join(map(str, target.services))}); say which with "
                              "`service:`")
        rate = c.parse(body.get("rate"), join(path, "rate"), parse_rate)
        minimum = c.parse(body.get("min"), join(path, "min"), parse_rate)
        max_loss = c.parse(body.get("max_loss"), join(path, "max_loss"), parse_percent)
        duration = c.parse(body.get("duration"), join(path, "duration"), _positive_duration,
                           10.0)
        if rate not in (BAD, None) and rate <= 0:
            rate = c.expected(body.value["rate"], join(path, "rate"), "a rate above zero")
        if BAD not in (rate, minimum) and minimum is not None and rate is not None \
                and minimum > rate:
            minimum = c.error(body.value["min"], join(path, "min"),
                              f"min {body.value['min'].text} is above the offered rate "
                              f"{body.value['rate'].text}; it can never pass")
        values = (group, target, service, rate, minimum, max_loss, duration)
        if BAD in values or None in (group, target, rate):
            return BAD
        return ThroughputExpect(group, target.name, service, rate, minimum, max_loss, duration)

    def _resources(self, body: Node, path: str) -> ResourcesExpect | Any:
        c = self.check
        if not body.value:
            return c.error(body, path, "expected at least one of engine_rss, engine_cpu, "
                           "server_rss, server_cpu")
        values = {
            "engine_rss": c.parse(body.get("engine_rss"), join(path, "engine_rss"), parse_size),
            "engine_cpu": c.parse(body.get("engine_cpu"), join(path, "engine_cpu"),
                                  parse_cpu_percent),
            "server_rss": c.parse(body.get("server_rss"), join(path, "server_rss"), parse_size),
            "server_cpu": c.parse(body.get("server_cpu"), join(path, "server_cpu"),
                                  parse_cpu_percent),
        }
        if not self.refs.is_lab:
            for key in ("server_rss", "server_cpu"):
                if key in body.value:
                    values[key] = c.error(body.value[key], join(path, key),
                                          f"{key} measures the lab's DHCP server; on a real "
                                          "interface the server is not ours to measure")
        if BAD in values.values():
            return BAD
        return ResourcesExpect(**values)
