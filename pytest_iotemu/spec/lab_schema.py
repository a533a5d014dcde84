"""Validation of a site's ``lab:`` block and ``targets:``."""
from __future__ import annotations

import ipaddress
import re
from typing import Any

from ..profiles.model import DEVICE_CLASSES
from .check import BAD, Checker, join
from .model import DHCP_SERVERS, Match, Pool, Target, Wan
from .source import Node
from .units import (AddressRange, parse_ipv4, parse_network, parse_oui_prefix,
                    parse_range, parse_rate, parse_duration, parse_service)

LAB_KEYS = ("lan", "gateway", "dhcp_server", "lease_time", "domain", "pools", "wan", "policy")
POOL_KEYS = ("range", "match")
MATCH_KEYS = ("class", "profile", "group", "oui", "vendor_class")
WAN_KEYS = ("name", "rate")
TARGET_KEYS = ("address", "name", "services")

# Names that end up in dnsmasq tags, Kea classes, nft sets and link names.
IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
IDENT_HINT = "a name of letters, digits, '_' and '-', starting with a letter (at most 32)"
WAN_NAME = re.compile(r"^[a-z][a-z0-9-]{0,9}$")
WAN_HINT = "a WAN name of lower-case letters, digits and '-' (at most 10, it names links)"
DNS_NAME = re.compile(r"^(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}"
                      r"(?<!-))*\.?$")
DNS_HINT = "a DNS name such as cloud.axis.example"

MIN_LEASE = {"dnsmasq": 120.0, "kea": 10.0}
MAX_LEASE = 0xFFFFFFFE


def _one_or_many(check: Checker, node: Node, path: str, reader: Any) -> tuple | Any:
    items = node.value if node.is_seq() else [node]
    if node.is_seq() and not items:
        return check.error(node, path, "expected a value or a non-empty list, got an empty list")
    values = []
    for i, item in enumerate(items):
        values.append(reader(item, join(path, i) if node.is_seq() else path))
    return BAD if BAD in values else tuple(values)


def check_match(check: Checker, node: Node, path: str, profiles: Any) -> Match | Any:
    """A pool's ``match:``; group references are checked later, once groups are known."""
    if not check.mapping(node, path, "a match mapping", MATCH_KEYS):
        return BAD
    if not node.value:
        return check.error(node, path, "empty match: remove `match:` to make this the "
                           "catch-all pool, or give it keys such as {class: camera}")
    fields: dict[str, Any] = {}
    if "class" in node.value:
        fields["classes"] = _one_or_many(check, node.value["class"], join(path, "class"),
                                         lambda n, p: check.choice(n, p, DEVICE_CLASSES))
    if "profile" in node.value:
        fields["profiles"] = _one_or_many(
            check, node.value["profile"], join(path, "profile"),
            lambda n, p: check.reference(n, p, "profile", profiles, list_known=False,
                                         fix="`iotemu profiles` lists them"))
    if "group" in node.value:
        fields["groups"] = _one_or_many(
            check, node.value["group"], join(path, "group"),
            lambda n, p: check.string(n, p, "the name of a device group"))
    if "oui" in node.value:
        fields["ouis"] = _one_or_many(check, node.value["oui"], join(path, "oui"),
                                      lambda n, p: check.parse(n, p, parse_oui_prefix))
    if "vendor_class" in node.value:
        fields["vendor_classes"] = _one_or_many(
            check, node.value["vendor_class"], join(path, "vendor_class"),
            lambda n, p: check.string(n, p, "a prefix of the vendor class (option 60)"))
    if BAD in fields.values():
        return BAD
    return Match(**fields)


def _hosts(lan: ipaddress.IPv4Network) -> AddressRange:
    return AddressRange(lan.network_address + 1, lan.broadcast_address - 1)


def default_pool(lan: ipaddress.IPv4Network, gateway: ipaddress.IPv4Address) -> Pool:
    """The longest run of host addresses that does not hold the gateway."""
    hosts = _hosts(lan)
    below = AddressRange(hosts.first, gateway - 1) if gateway > hosts.first else None
    above = AddressRange(gateway + 1, hosts.last) if gateway < hosts.last else None
    runs = [r for r in (above, below) if r is not None]
    return Pool("default", max(runs, key=lambda r: r.size), None)


def check_pools(check: Checker, node: Node, path: str, lan: Any, gateway: Any,
                profiles: Any) -> tuple[tuple[Pool, ...], dict[str, Node]] | Any:
    if not node.is_map():
        return check.expected(node, path, "a mapping of pool names to {range, match}")
    if not node.value:
        return check.error(node, path, "expected at least one pool, got an empty mapping; "
                           "remove `pools:` to use one pool spanning the LAN")
    pools: list[Pool] = []
    nodes: dict[str, Node] = {}
    ok = True
    catch_all: str | None = None
    for name, pnode in node.items():
        ppath = join(path, name)
        if not IDENT.match(name):
            check.error(node.keys[name], ppath, f"expected {IDENT_HINT}, got {name!r}")
            ok = False
            continue
        if not check.mapping(pnode, ppath, "a pool mapping", POOL_KEYS, ("range",)):
            ok = False
            continue
        rng = check.parse(pnode.get("range"), join(ppath, "range"), parse_range)
        match = None
        if "match" in pnode.value:
            match = check_match(check, pnode.value["match"], join(ppath, "match"), profiles)
        if rng is BAD or match is BAD or rng is None:
            ok = False
            continue
        rnode = pnode.value["range"]
        if lan is not BAD and lan is not None:
            hosts = _hosts(lan)
            if not (rng.first in hosts and rng.last in hosts):
                check.error(rnode, join(ppath, "range"),
                            f"range {rng} is not inside the LAN's host addresses "
                            f"({hosts.first}-{hosts.last})")
                ok = False
            elif gateway is not BAD and gateway in rng:
                check.error(rnode, join(ppath, "range"),
                            f"range {rng} holds the gateway {gateway}; start or end it "
                            "beside the gateway")
                ok = False
        for other in pools:
            if other.range.overlaps(rng):
                onode = nodes[other.name].value["range"]
                check.error(rnode, join(ppath, "range"),
                            f"range {rng} overlaps pool {other.name!r} ({other.range}, line "
                            f"{onode.line}); pools must not share addresses")
                ok = False
        if match is None:
            if catch_all is not None:
                check.error(pnode, ppath, f"pools {catch_all!r} and {name!r} both lack "
                            "`match:`; only one pool can take the devices no other pool "
                            "matched: give this one a match")
                ok = False
            catch_all = name
        pools.append(Pool(name, rng, match))
        nodes[name] = pnode
    return (tuple(pools), nodes) if ok else BAD


def check_wans(check: Checker, node: Node, path: str) -> tuple[Wan, ...] | Any:
    items = check.sequence(node, path, "a list of WANs such as [{name: mpls, rate: 50mbit}]")
    if node.is_seq() and not items:
        return check.error(node, path, "expected at least one WAN, got an empty list; remove "
                           "`wan:` for the default WAN `internet`")
    wans: list[Wan] = []
    ok = node.is_seq()
    lines: dict[str, int] = {}
    for i, item in enumerate(items):
        ipath = join(path, i)
        if item.kind == "scalar":
            name, rate, name_node = check.string(item, ipath, WAN_HINT, WAN_NAME), None, item
        elif check.mapping(item, ipath, "a WAN mapping", WAN_KEYS, ("name",)):
            name_node = item.value.get("name", item)
            name = check.string(item.get("name"), join(ipath, "name"), WAN_HINT, WAN_NAME)
            rate = check.parse(item.get("rate"), join(ipath, "rate"), parse_rate)
            if rate is not BAD and rate is not None and rate < 8000:
                rate = check.expected(item.value["rate"], join(ipath, "rate"),
                                      "a rate of at least 8kbps")
        else:
            ok = False
            continue
        if name is BAD or rate is BAD or name is None:
            ok = False
            continue
        if name in lines:
            check.error(name_node, join(ipath, "name"), f"WAN {name!r} is listed twice (first "
                        f"at line {lines[name]}); WAN names must be unique")
            ok = False
            continue
        lines[name] = name_node.line
        wans.append(Wan(name, rate))
    return tuple(wans) if ok else BAD


def check_lab_basics(check: Checker, node: Node, path: str) -> dict[str, Any]:
    """lan, gateway, dhcp_server, lease_time, domain (BAD where invalid)."""
    out: dict[str, Any] = {}
    lan = check.parse(node.get("lan"), join(path, "lan"), parse_network)
    if lan is not BAD and lan is not None and lan.prefixlen > 30:
        lan = check.expected(node.value["lan"], join(path, "lan"),
                             "a LAN of at least 4 addresses (a /30 or larger)")
    out["lan"] = lan
    gateway = check.parse(node.get("gateway"), join(path, "gateway"), parse_ipv4)
    if gateway is None and lan not in (BAD, None):
        gateway = lan.network_address + 1
    elif gateway not in (BAD, None) and lan not in (BAD, None):
        if gateway not in _hosts(lan):
            gateway = check.error(node.value["gateway"], join(path, "gateway"),
                                  f"gateway {gateway} is not a host address of the LAN {lan}")
    out["gateway"] = gateway
    server = check.choice(node.get("dhcp_server"), join(path, "dhcp_server"), DHCP_SERVERS,
                          "dnsmasq")
    out["dhcp_server"] = server
    lease = check.parse(node.get("lease_time"), join(path, "lease_time"), parse_duration, 3600.0)
    if lease is not BAD and server is not BAD:
        minimum = MIN_LEASE[server]
        if lease < minimum:
            fix = " (use dhcp_server: kea for shorter leases)" if server == "dnsmasq" else ""
            lease = check.error(node.value["lease_time"], join(path, "lease_time"),
                                f"expected at least {minimum:g}s for {server}, got "
                                f"{node.value['lease_time'].describe()}{fix}")
        elif lease > MAX_LEASE:
            lease = check.expected(node.value["lease_time"], join(path, "lease_time"),
                                   "a lease time below 136 years")
    out["lease_time"] = lease
    out["domain"] = check.string(node.get("domain"), join(path, "domain"), DNS_HINT, DNS_NAME)
    if isinstance(out["domain"], str):
        out["domain"] = out["domain"].rstrip(".").lower()
    return out


def check_targets(check: Checker, node: Node | None, path: str, lan: Any,
                  gateway: Any, in_lab: bool) -> tuple[tuple[Target, ...], dict[str, Node]] | Any:
    if node is None:
        return (), {}
    if not node.is_map():
        return check.expected(node, path, "a mapping of target names to {address, services}")
    targets: list[Target] = []
    nodes: dict[str, Node] = {}
    ok = True
    seen_address: dict[ipaddress.IPv4Address, str] = {}
    for name, tnode in node.items():
        tpath = join(path, name)
        if not IDENT.match(name) or name == "any":
            check.error(node.keys[name], tpath, f"expected {IDENT_HINT} other than 'any', "
                        f"got {name!r}")
            ok = False
            continue
        if not check.mapping(tnode, tpath, "a target mapping", TARGET_KEYS, ("address",)):
            ok = False
            continue
        address = check.parse(tnode.get("address"), join(tpath, "address"), parse_ipv4)
        dns_name = check.string(tnode.get("name"), join(tpath, "name"), DNS_HINT, DNS_NAME)
        services: list[Any] = []
        snode = tnode.get("services")
        for i, item in enumerate(check.sequence(snode, join(tpath, "services"),
                                                "a list of services such as [443/tcp]")):
            service = check.parse(item, join(tpath, f"services[{i}]"), parse_service)
            if service is not BAD and service in services:
                service = check.error(item, join(tpath, f"services[{i}]"),
                                      f"service {service} is listed twice")
            services.append(service)
        if snode is not None and not snode.is_seq():
            ok = False
        if address is BAD or dns_name is BAD or BAD in services or address is None:
            ok = False
            continue
        anode = tnode.value["address"]
        problem = _target_address_problem(address, lan, gateway, in_lab)
        if problem:
            check.error(anode, join(tpath, "address"), problem)
            ok = False
        elif in_lab and address in seen_address:
            check.error(anode, join(tpath, "address"), f"address {address} is already target "
                        f"{seen_address[address]!r}; in the lab each target has its own "
                        "address (its responders count per target)")
            ok = False
        seen_address.setdefault(address, name)
        targets.append(Target(name, address, dns_name.rstrip(".").lower() if dns_name else None,
                              tuple(services)))
        nodes[name] = tnode
    return (tuple(targets), nodes) if ok else BAD


def _target_address_problem(address: ipaddress.IPv4Address, lan: Any, gateway: Any,
                            in_lab: bool) -> str | None:
    if address.is_loopback or address.is_multicast or address.is_unspecified \
            or address.is_link_local or address == ipaddress.IPv4Address("255.255.255.255"):
        return f"address {address} cannot be a target (loopback, multicast, link-local or " \
               "broadcast); use a unicast address"
    if in_lab and lan not in (BAD, None) and address in lan:
        return f"address {address} is inside the LAN {lan}; in the lab targets sit behind " \
               "the WANs: pick an address outside the LAN"
    return None

