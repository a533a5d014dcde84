"""Validate a fleet spec and expand it into devices: ``load_spec(path) -> FleetSpec``.

Every problem is collected (validation goes on after each) and raised together as one
``SpecError`` whose lines read ``file:line:col: key.path: expected …, got …``.
"""
from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from ..profiles.library import ProfileLibrary, builtin_profiles
from ..profiles.schema import check_fingerprint, check_hostname_pattern, check_protocols
from .check import BAD, Checker, join
from .classify import classify
from .errors import ErrorCollector, SpecError
from .expect_schema import ExpectChecker, SiteRefs
from .lab_schema import (check_lab_basics, check_pools, check_targets,
                         check_wans, default_pool, LAB_KEYS)
from .model import (LAB_INTERFACE, THREATS, Device, FleetSpec, Group, LabSpec, Pacing,
                    Policy, PolicyRule, Site, Wan)
from .naming import (UNIQUE_FIELDS, derive_mac, device_name, hostname_problem,
                     pattern_fields, render)
from .source import Node, load_yaml
from .units import parse_duration, parse_ipv4, parse_mac, parse_service

TOP_KEYS = ("fleet", "seed", "profiles", "allow_live", "sites", "interface", "lab",
            "targets", "devices", "expect", "pacing", "engines")
SITE_KEYS = ("name", "interface", "allow_live", "lab", "targets", "devices", "expect",
             "pacing", "engines")
SHORTHAND_KEYS = ("interface", "lab", "targets", "devices", "expect", "pacing", "engines")
PACING_KEYS = ("window", "rate", "stagger")
GROUP_KEYS = ("profile", "count", "name", "hostname", "enabled", "static_ip", "mac",
              "threats", "dhcp", "protocols", "vendor", "request_ip")
RULE_KEYS = ("from", "to", "service", "action", "via")
POLICY_KEYS = ("default", "rules")

FLEET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
FLEET_HINT = "a name of letters, digits, '.', '_' and '-' (at most 63)"
GROUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$")
GROUP_HINT = "a group name of letters, digits, '_' and '-' (at most 48)"
IFACE = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9_.:@-]{1,15}$")
IFACE_HINT = "`lab` or a network interface name such as ens4 (at most 15 characters)"
MAX_COUNT = 1_000_000


@dataclass
class _GroupDraft:
    group: Group
    node: Node
    path: str


@dataclass
class _SiteDraft:
    name: str
    node: Node
    path: str
    interface: str
    allow_live: bool
    lab: LabSpec | None
    lab_node: Node | None
    pool_nodes: dict[str, Node]
    targets: tuple
    groups: list[_GroupDraft] = field(default_factory=list)
    devices: list[Device] = field(default_factory=list)
    ok: bool = True
    pacing: Any = None
    engines: Any = 1


class SpecValidator(Checker):
    def __init__(self, errors: ErrorCollector, profiles: ProfileLibrary, base_dir: Path,
                 interfaces: Mapping[str, str], scale: float = 1.0):
        super().__init__(errors)
        self.scale = scale  # --iot-scale: every count multiplied (explicit MACs excepted)
        self.profiles = profiles
        self.base_dir = base_dir
        self.interfaces = dict(interfaces)

    # top level -----------------------------------------------------------------------
    def fleet(self, root: Node) -> FleetSpec | Any:
        if not self.mapping(root, "", "a fleet spec mapping (fleet:, devices:, …)", TOP_KEYS,
                            ("fleet",)):
            return BAD
        name = self.string(root.get("fleet"), "fleet", FLEET_HINT, FLEET_NAME)
        seed = self.integer(root.get("seed"), "seed", 0, 2**63 - 1, default=0,
                            what="a whole number seed")
        allow_live = self.boolean(root.get("allow_live"), "allow_live", default=False)
        profile_files = self._profile_files(root.get("profiles"))
        if "sites" in root.value:
            for key in SHORTHAND_KEYS:
                if key in root.value:
                    self.error(root.keys[key], key, f"`{key}:` cannot stand beside `sites:`; "
                               "move it into a site (the one-site shorthand is for files "
                               "without `sites:`)")
            site_nodes = [(join("sites", i), node) for i, node in
                          enumerate(self.sequence(root.value["sites"], "sites",
                                                  "a list of sites"))]
            if root.value["sites"].is_seq() and not site_nodes:
                self.error(root.value["sites"], "sites", "expected at least one site, got an "
                           "empty list")
        else:
            site_nodes = [("", root)]
        if name is BAD or seed is BAD or allow_live is BAD:
            name = name if isinstance(name, str) else "fleet"
        drafts = []
        names: dict[str, int] = {}
        for path, node in site_nodes:
            draft = self.site(node, path, shorthand=(path == ""), fleet=name,
                              allow_live=allow_live is True)
            if draft is BAD:
                continue
            if draft.name in names:
                self.error(node.get("name") or node, join(path, "name"),
                           f"site {draft.name!r} is defined twice (first at line "
                           f"{names[draft.name]}); site names must be unique")
                continue
            names[draft.name] = node.line
            drafts.append(draft)
        unknown_ifaces = set(self.interfaces) - set(names) - {"*"}
        for site in sorted(unknown_ifaces):
            self.error(root, "sites", f"an interface was given for site {site!r}, which this "
                       f"spec does not define (sites: {', '.join(names) or 'none'})")
        complete = not self.errors
        if complete:
            self.expand(drafts, seed)
            complete = not self.errors
        # expectations are checked even when other parts failed, so that every error
        # shows in one run (references to broken parts wait until those are fixed)
        sites = tuple(self.finish_site(d, complete) for d in drafts)
        if self.errors:
            return BAD
        return FleetSpec(name=name, seed=seed, sites=sites, source=self.errors.file,
                         profile_files=tuple(profile_files))

    def _profile_files(self, node: Node | None) -> list[str]:
        files: list[str] = []
        for i, item in enumerate(self.sequence(node, "profiles",
                                               "a list of profile files (paths relative to "
                                               "this spec)")):
            text = self.string(item, join("profiles", i), "a path to a profile file")
            if text is BAD:
                continue
            path = Path(text).expanduser()
            if not path.is_absolute():
                path = self.base_dir / path
            if not path.is_file():
                self.error(item, join("profiles", i), f"profile file {text!r} not found "
                           f"(looked at {path})")
                continue
            try:
                self.profiles = self.profiles.with_files([path])
            except SpecError as exc:
                self.errors.issues.extend(exc.issues)
                continue
            files.append(str(path))
        return files

    # a site --------------------------------------------------------------------------
    def site(self, node: Node, path: str, shorthand: bool, fleet: str,
             allow_live: bool) -> _SiteDraft | Any:
        if not shorthand:
            if not self.mapping(node, path, "a site mapping", SITE_KEYS, ("name",)):
                return BAD
            name = self.string(node.get("name"), join(path, "name"), FLEET_HINT, FLEET_NAME)
            site_live = self.boolean(node.get("allow_live"), join(path, "allow_live"),
                                     default=allow_live)
        else:
            name, site_live = fleet, allow_live
        if name is BAD:
            return BAD
        interface = self.string(node.get("interface"), join(path, "interface"), IFACE_HINT,
                                IFACE, default=LAB_INTERFACE)
        interface = self.interfaces.get(name, self.interfaces.get("*", interface))
        in_lab = interface == LAB_INTERFACE
        lab_node = node.get("lab")
        basics: dict[str, Any] = {"lan": None, "gateway": None}
        if lab_node is not None and self.mapping(lab_node, join(path, "lab"), "a lab mapping",
                                                 LAB_KEYS, ("lan",)):
            basics = check_lab_basics(self, lab_node, join(path, "lab"))
        elif lab_node is None and in_lab:
            self.error(node, join(path, "lab"), "`interface: lab` needs a `lab:` block with at "
                       "least `lan:` (e.g. lab: {lan: 10.20.0.0/22})")
        elif lab_node is not None:
            basics = {"lan": BAD, "gateway": BAD}
        targets = check_targets(self, node.get("targets"), join(path, "targets"),
                                basics.get("lan"), basics.get("gateway"), in_lab)
        draft = _SiteDraft(name, node, path, interface, site_live, None, lab_node, {},
                           targets[0] if targets is not BAD else ())
        draft.ok = targets is not BAD
        draft.pacing = self.pacing(node.get("pacing"), join(path, "pacing"))
        draft.engines = self.integer(node.get("engines"), join(path, "engines"), 1, 64,
                                     default=1, what="a number of engine processes")
        draft.ok = draft.ok and draft.pacing is not BAD and draft.engines is not BAD
        self.groups(draft, node.get("devices"), join(path, "devices"))
        if lab_node is not None and lab_node.is_map() and BAD not in basics.values():
            draft.lab = self.lab(draft, lab_node, join(path, "lab"), basics)
            draft.ok = draft.ok and draft.lab is not BAD
            if draft.lab is BAD:
                draft.lab = None
        elif lab_node is not None:
            draft.ok = False
        if "devices" not in node.value:
            self.error(node, join(path, "devices"), "required key 'devices' is missing: list "
                       "the device groups, e.g. devices: [{profile: axis-camera, count: 4}]")
        return draft

    def pacing(self, node: Node | None, path: str) -> Pacing | Any:
        if node is None:
            return Pacing()
        if not self.mapping(node, path, "a pacing mapping", PACING_KEYS):
            return BAD
        window = self.integer(node.get("window"), join(path, "window"), 1, 100_000,
                              default=32, what="a number of outstanding DHCP starts")
        rate = None
        if "rate" in node.value:
            rnode = node.value["rate"]
            if isinstance(rnode.value, (int, float)) and not isinstance(rnode.value, bool) \
                    and rnode.value > 0:
                rate = float(rnode.value)
            else:
                rate = self.expected(rnode, join(path, "rate"),
                                     "DHCP starts per second, a number above zero")
        stagger = self.parse(node.get("stagger"), join(path, "stagger"), parse_duration, 0.0)
        if BAD in (window, rate, stagger):
            return BAD
        return Pacing(window=window, rate=rate, stagger=stagger)

    def lab(self, draft: _SiteDraft, node: Node, path: str, basics: dict) -> LabSpec | Any:
        lan, gateway = basics["lan"], basics["gateway"]
        pools_node = node.get("pools")
        if pools_node is None:
            pools: Any = (default_pool(lan, gateway),)
        else:
            checked = check_pools(self, pools_node, join(path, "pools"), lan, gateway,
                                  self.profiles)
            if checked is BAD:
                return BAD
            pools, draft.pool_nodes = checked
            group_names = [g.group.name for g in draft.groups]
            for pool in pools:
                for i, _group in enumerate(pool.match.groups if pool.match else ()):
                    gnode = draft.pool_nodes[pool.name].value["match"].value["group"]
                    where = gnode.value[i] if gnode.is_seq() else gnode
                    self.reference(where, join(path, f"pools.{pool.name}.match.group"),
                                   "device group", group_names)
        wans: Any = (Wan("internet"),)
        if node.get("wan") is not None:
            wans = check_wans(self, node.value["wan"], join(path, "wan"))
        if wans is BAD:
            return BAD
        policy = self.policy(node.get("policy"), join(path, "policy"), pools, wans, draft)
        if policy is BAD:
            return BAD
        return LabSpec(lan=lan, gateway=gateway, dhcp_server=basics["dhcp_server"],
                       lease_time=basics["lease_time"], domain=basics["domain"],
                       pools=pools, wans=wans, policy=policy)

    def policy(self, node: Node | None, path: str, pools: Any, wans: Any,
               draft: _SiteDraft) -> Policy | Any:
        if node is None:
            return Policy()
        if not self.mapping(node, path, "a policy mapping", POLICY_KEYS):
            return BAD
        default = self.choice(node.get("default"), join(path, "default"), ("allow", "block"),
                              "allow")
        rules = []
        pool_names = [p.name for p in pools]
        wan_names = [w.name for w in wans]
        target_names = [t.name for t in draft.targets]
        group_names = [g.group.name for g in draft.groups]
        ok = default is not BAD
        for i, rnode in enumerate(self.sequence(node.get("rules"), join(path, "rules"),
                                                "a list of rules")):
            rpath = join(path, f"rules[{i}]")
            if not self.mapping(rnode, rpath, "a policy rule", RULE_KEYS, ("action",)):
                ok = False
                continue
            action = self.choice(rnode.get("action"), join(rpath, "action"),
                                 ("allow", "block", "reject"))
            from_pool = from_group = None
            fnode = rnode.get("from")
            if fnode is not None and not (fnode.kind == "scalar" and fnode.value == "any"):
                if self.mapping(fnode, join(rpath, "from"), "`any` or a mapping with one of "
                                "pool or group", ("pool", "group")):
                    if len(fnode.value) != 1:
                        self.error(fnode, join(rpath, "from"), "expected exactly one of pool "
                                   f"or group, got {len(fnode.value)} keys")
                        ok = False
                    from_pool = self.reference(fnode.get("pool"), join(rpath, "from.pool"),
                                               "pool", pool_names)
                    from_group = self.reference(fnode.get("group"), join(rpath, "from.group"),
                                                "device group", group_names)
                else:
                    ok = False
            to = None
            tnode = rnode.get("to")
            if tnode is not None and not (tnode.kind == "scalar" and tnode.value == "any"):
                to = self.reference(tnode, join(rpath, "to"), "target", target_names,
                                    extra=("any",), fix="declare it under `targets:`")
            service = self.parse(rnode.get("service"), join(rpath, "service"), parse_service)
            via = self.reference(rnode.get("via"), join(rpath, "via"), "WAN", wan_names,
                                 fix="WANs are declared under lab.wan")
            if via not in (None, BAD) and action in ("block", "reject"):
                via = self.error(rnode.value["via"], join(rpath, "via"),
                                 f"`via` routes allowed traffic; a rule that says {action} "
                                 "sends nothing anywhere: remove `via` or allow")
            values = (action, from_pool, from_group, to, service, via)
            if BAD in values:
                ok = False
                continue
            rules.append(PolicyRule(action, from_pool, from_group, to, service, via))
        return Policy(default, tuple(rules)) if ok else BAD

    # device groups -------------------------------------------------------------------
    def groups(self, draft: _SiteDraft, node: Node | None, path: str) -> None:
        items = self.sequence(node, path, "a list of device groups such as "
                              "[{profile: axis-camera, count: 12}]")
        if node is not None and node.is_seq() and not items:
            self.error(node, path, "expected at least one device group, got an empty list")
        seen: dict[str, tuple[str, Node]] = {}
        for i, gnode in enumerate(items):
            gpath = join(path, i)
            group = self.group(gnode, gpath)
            if group is BAD:
                draft.ok = False
                continue
            if group.name in seen:
                first_path, first = seen[group.name]
                how = "named" if "name" in gnode.value else "named after its profile"
                self.error(gnode.get("name") or gnode.get("profile") or gnode, gpath,
                           f"group {group.name!r} ({how}) clashes with {first_path} (line "
                           f"{first.line}); give one of them a distinct `name:`")
                draft.ok = False
                continue
            seen[group.name] = (gpath, gnode)
            draft.groups.append(_GroupDraft(group, gnode, gpath))

    def group(self, node: Node, path: str) -> Group | Any:
        if not self.mapping(node, path, "a device group mapping", GROUP_KEYS, ("profile",)):
            return BAD
        pnode = node.get("profile")
        pname = self.string(pnode, join(path, "profile"), "a profile name")
        profile: Any = BAD
        if pname is not BAD and pname is not None:
            if pname in self.profiles:
                profile = self.profiles[pname]
            else:
                self.error(pnode, join(path, "profile"),
                           f"unknown profile {pname!r}{self.profiles.suggest(pname)}; "
                           "`iotemu profiles` lists them, or add your own with `profiles:`")
        name = self.string(node.get("name"), join(path, "name"), GROUP_HINT, GROUP_NAME)
        if name == "all":
            name = self.error(node.value["name"], join(path, "name"),
                              "'all' is reserved (it means every DHCP device); pick another")
        if name is None and pname not in (BAD, None):
            name = pname
        macs = self._macs(node.get("mac"), join(path, "mac"))
        count = self.integer(node.get("count"), join(path, "count"), 1, MAX_COUNT,
                             what="a device count")
        if count is None:
            count = len(macs) if macs not in (BAD, ()) else 1
        elif count is not BAD and self.scale != 1.0 and macs in ((), BAD):
            count = max(1, round(count * self.scale))
        if macs not in (BAD, ()) and count is not BAD and len(macs) != count:
            count = self.error(node.value["count"], join(path, "count"),
                               f"count is {count} but `mac:` lists {len(macs)} address"
                               f"{'es' if len(macs) != 1 else ''}; give one MAC per device")
        enabled = self.boolean(node.get("enabled"), join(path, "enabled"), default=True)
        vendor = self.string(node.get("vendor"), join(path, "vendor"), "the vendor's name")
        static_ip = self.parse(node.get("static_ip"), join(path, "static_ip"), parse_ipv4)
        request_ip = self.parse(node.get("request_ip"), join(path, "request_ip"), parse_ipv4)
        if request_ip not in (None, BAD) and static_ip not in (None, BAD):
            request_ip = self.error(node.value["request_ip"], join(path, "request_ip"),
                                    "request_ip asks a DHCP server for an address; a group "
                                    "with static_ip does no DHCP: keep one of them")
        threats = self._threats(node.get("threats"), join(path, "threats"))
        overrides = {}
        if node.get("dhcp") is not None:
            overrides = check_fingerprint(self, node.value["dhcp"], join(path, "dhcp"),
                                          partial=True)
        protocols = profile.protocols if profile is not BAD else ()
        if "protocols" in node.value:
            protocols = check_protocols(self, node.value["protocols"], join(path, "protocols"))
        hostname: Any = None
        if "hostname" in node.value:
            hostname = check_hostname_pattern(self, node.value["hostname"],
                                              join(path, "hostname"))
        values = (profile, name, macs, count, enabled, static_ip, threats, overrides, hostname,
                  protocols, vendor, request_ip)
        if BAD in values:
            return BAD
        fingerprint = profile.dhcp.merged(overrides)
        if "hostname" not in node.value:
            hostname = fingerprint.hostname
        elif count > 1 and hostname is not None \
                and not set(pattern_fields(hostname)) & set(UNIQUE_FIELDS):
            return self.error(node.value["hostname"], join(path, "hostname"),
                              f"all {count} devices would send the host name {hostname!r}; "
                              "add {n} (e.g. " + hostname + "-{n}) or {mac6}")
        return Group(name=name, profile=profile, count=count, enabled=enabled,
                     hostname=hostname, static_ip=static_ip, macs=macs, threats=threats,
                     dhcp=fingerprint.merged({"hostname": hostname}), protocols=protocols,
                     vendor=vendor or profile.vendor, request_ip=request_ip)

    def _macs(self, node: Node | None, path: str) -> tuple[str, ...] | Any:
        if node is None:
            return ()
        items = node.value if node.is_seq() else [node]
        macs = []
        for i, item in enumerate(items):
            macs.append(self.parse(item, join(path, i) if node.is_seq() else path, parse_mac))
        if node.is_seq() and not items:
            return self.error(node, path, "expected a MAC or a list of MACs, got an empty list")
        return BAD if BAD in macs else tuple(macs)

    def _threats(self, node: Node | None, path: str) -> tuple[str, ...] | Any:
        if node is None:
            return ()
        items = node.value if node.is_seq() else [node]
        out = [self.choice(item, join(path, i) if node.is_seq() else path, THREATS)
               for i, item in enumerate(items)]
        return BAD if BAD in out else tuple(dict.fromkeys(out))

    # expansion -----------------------------------------------------------------------
    def expand(self, drafts: list[_SiteDraft], seed: int) -> None:
        """Devices with MACs and host names; MACs unique across the fleet."""
        taken: dict[str, str] = {}
        for draft in drafts:
            for gd in draft.groups:
                mac_node = gd.node.get("mac")
                for i, mac in enumerate(gd.group.macs):
                    where = mac_node.value[i] if mac_node and mac_node.is_seq() else mac_node
                    owner = f"{draft.name}/{gd.group.name}-{i + 1}"
                    if mac in taken:
                        self.error(where, join(gd.path, "mac"), f"MAC {mac} is already used by "
                                   f"{taken[mac]}; every device needs its own MAC")
                    taken[mac] = owner
        used = set(taken)
        for draft in drafts:
            for gd in draft.groups:
                group = gd.group
                for index in range(1, group.count + 1):
                    if group.macs:
                        mac = group.macs[index - 1]
                    else:
                        mac = derive_mac(seed, draft.name, group.name, index,
                                         group.profile.ouis, used)
                    hostname = None
                    if group.hostname is not None:
                        hostname = render(group.hostname, n=index, group=group.name, mac=mac)
                        problem = hostname_problem(hostname)
                        if problem:
                            where = gd.node.get("hostname") or gd.node.get("profile")
                            self.error(where, join(gd.path, "hostname"),
                                       f"device {index} would send {hostname!r}, {problem}")
                            break
                    static_ip = request_ip = None
                    if group.static_ip is not None:
                        static_ip = group.static_ip + (index - 1)
                    if group.request_ip is not None:
                        request_ip = group.request_ip + (index - 1)
                    draft.devices.append(Device(
                        name=device_name(group.name, index, group.count), group=group.name,
                        index=index, mac=mac, profile=group.profile.name, cls=group.profile.cls,
                        vendor=group.vendor, hostname=hostname,
                        dhcp=group.dhcp.merged({"hostname": hostname}), static_ip=static_ip,
                        enabled=group.enabled, pool=None, threats=group.threats,
                        protocols=group.protocols, request_ip=request_ip))

    def finish_site(self, draft: _SiteDraft, complete: bool) -> Site:
        devices = draft.devices
        lab = draft.lab
        if lab is not None and complete:
            devices = self._classify(draft, lab)
            self._static_addresses(draft, lab)
        group_sizes = {gd.group.name: gd.group.count for gd in draft.groups}
        refs = SiteRefs(
            groups=group_sizes,
            static_groups={gd.group.name for gd in draft.groups if not gd.group.uses_dhcp},
            dhcp_devices=sum(1 for d in devices if d.enabled and d.static_ip is None),
            targets={t.name: t for t in draft.targets}, lab=lab,
            is_lab=draft.interface == LAB_INTERFACE, complete=complete and draft.ok)
        expectations = ExpectChecker(self, refs).check_all(draft.node.get("expect"),
                                                           join(draft.path, "expect"))
        return Site(name=draft.name, interface=draft.interface, lab=lab,
                    targets=tuple(draft.targets), groups=tuple(g.group for g in draft.groups),
                    devices=tuple(devices), expectations=expectations or (),
                    allow_live=draft.allow_live, pacing=draft.pacing or Pacing(),
                    engines=draft.engines if isinstance(draft.engines, int) else 1)

    def _classify(self, draft: _SiteDraft, lab: LabSpec) -> list[Device]:
        out = []
        load: dict[str, int] = {p.name: 0 for p in lab.pools}
        unmatched: dict[str, int] = {}
        for device in draft.devices:
            if device.static_ip is not None:
                out.append(device)
                continue
            pool = classify(device, lab.pools)
            if pool is None:
                unmatched[device.group] = unmatched.get(device.group, 0) + 1
            elif device.enabled:
                load[pool] += 1
            out.append(replace(device, pool=pool))
        where = draft.lab_node.get("pools") if draft.lab_node else None
        for group, n in unmatched.items():
            gd = next(g for g in draft.groups if g.group.name == group)
            self.error(gd.node, gd.path, f"{n} device{'s' if n != 1 else ''} of group "
                       f"{group!r} match{'es' if n == 1 else ''} no pool and there is no catch-all pool; add a pool "
                       "without `match:` or a match for them")
        for pool in lab.pools:
            if load[pool.name] > pool.range.size:
                pnode = draft.pool_nodes.get(pool.name, where or draft.lab_node)
                rnode = pnode.get("range") if pnode is not None and pnode.is_map() else pnode
                self.error(rnode, join(draft.path, f"lab.pools.{pool.name}.range"),
                           f"pool {pool.name!r} has {pool.range.size} addresses but "
                           f"{load[pool.name]} enabled devices classify into it; widen "
                           "the range or move devices to another pool")
        return out

    def _static_addresses(self, draft: _SiteDraft, lab: LabSpec) -> None:
        owners: dict[ipaddress.IPv4Address, str] = {}
        hosts_first, hosts_last = lab.lan.network_address + 1, lab.lan.broadcast_address - 1
        for gd in draft.groups:
            group = gd.group
            if group.request_ip is not None:
                last = int(group.request_ip) + group.count - 1
                if group.request_ip < hosts_first or last > int(hosts_last):
                    self.error(gd.node.value["request_ip"], join(gd.path, "request_ip"),
                               f"{group.count} addresses from {group.request_ip} do not fit in "
                               f"the LAN's hosts ({hosts_first}-{hosts_last})")
            if group.static_ip is None:
                continue
            where = gd.node.value["static_ip"]
            path = join(gd.path, "static_ip")
            last = group.static_ip + (group.count - 1) if \
                int(group.static_ip) + group.count - 1 <= 0xFFFFFFFF else None
            if last is None or group.static_ip < hosts_first or last > hosts_last:
                self.error(where, path, f"{group.count} addresses from {group.static_ip} do not "
                           f"fit in the LAN's hosts ({hosts_first}-{hosts_last})")
                continue
            if group.static_ip <= lab.gateway <= last:
                self.error(where, path, f"addresses {group.static_ip}-{last} include the "
                           f"gateway {lab.gateway}")
                continue
            clash = next((p for p in lab.pools if p.range.first <= last
                          and group.static_ip <= p.range.last), None)
            if clash:
                self.error(where, path, f"addresses {group.static_ip}-{last} overlap DHCP pool "
                           f"{clash.name!r} ({clash.range}); the server would hand them out: "
                           "pick addresses outside the pools")
                continue
            for k in range(group.count):
                address = group.static_ip + k
                if address in owners:
                    self.error(where, path, f"address {address} is also static for group "
                               f"{owners[address]!r}")
                    break
                owners[address] = group.name


def _validate(root: Node | None, errors: ErrorCollector, profiles: ProfileLibrary | None,
              base_dir: Path | None, interfaces: Mapping[str, str] | None,
              scale: float = 1.0) -> FleetSpec:
    spec: Any = BAD
    if root is not None:  # validate even after a YAML-level problem: report everything
        spec = SpecValidator(errors, profiles or builtin_profiles(), base_dir or Path("."),
                             interfaces or {}, scale).fleet(root)
    if errors or spec is BAD:
        raise SpecError(errors.issues)
    return spec


def parse_spec(text: str, file: str = "<spec>", *, profiles: ProfileLibrary | None = None,
               env: Mapping[str, str] | None = None, base_dir: Path | None = None,
               interfaces: Mapping[str, str] | None = None, scale: float = 1.0) -> FleetSpec:
    """Validate spec ``text``; raises ``SpecError`` with every problem found."""
    errors = ErrorCollector(file)
    root = load_yaml(text, errors, env)
    return _validate(root, errors, profiles, base_dir, interfaces, scale)


def parse_legacy(text: str, file: str = "<devices.json>", *,
                 profiles: ProfileLibrary | None = None,
                 interfaces: Mapping[str, str] | None = None, scale: float = 1.0) -> FleetSpec:
    """Validate the previous emulator's JSON device file as a fleet spec."""
    from ..importer import read_legacy
    root, errors, result = read_legacy(text, file, profiles or builtin_profiles())
    spec = _validate(root, errors, profiles, None, interfaces, scale)
    return replace(spec, warnings=tuple(result.warnings if result else ()))


def load_spec(path: str | os.PathLike[str], *, profiles: ProfileLibrary | None = None,
              env: Mapping[str, str] | None = None,
              interfaces: Mapping[str, str] | None = None, scale: float = 1.0) -> FleetSpec:
    """Read and validate a fleet spec file (YAML, or the previous emulator's JSON)."""
    path = Path(path)
    text = read_text(path)
    if path.suffix.lower() == ".json":
        return parse_legacy(text, str(path), profiles=profiles, interfaces=interfaces,
                            scale=scale)
    return parse_spec(text, str(path), profiles=profiles, env=env, base_dir=path.parent,
                      interfaces=interfaces, scale=scale)


def read_text(path: Path) -> str:
    """A spec file's text; raises ``SpecError`` saying why it cannot be read."""
    errors = ErrorCollector(str(path))
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        errors.add((1, 1), "(file)", "spec file not found; check the path")
        raise SpecError(errors.issues) from None
    except IsADirectoryError:
        errors.add((1, 1), "(file)", "this is a directory; give a fleet spec file")
        raise SpecError(errors.issues) from None
    except OSError as exc:
        errors.add((1, 1), "(file)", f"cannot read the spec: {exc.strerror or exc}")
        raise SpecError(errors.issues) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        errors.add((1, 1), "(file)", f"not UTF-8 text (byte {exc.start}); save the spec as "
                   "UTF-8")
        raise SpecError(errors.issues) from None
