"""The branch's policy as an nftables ruleset in the gateway's namespace (pure: text).

Only **forwarded** traffic that enters from the LAN is judged, so DHCP, DNS and the
gateway's own services keep working under ``default: block``. Zones come from the pools
(address ranges, the classification's result) and groups (their MACs); rules are
checked in file order, first match wins, and each has a named counter (``rule_<n>``; the
default verdict's is ``default``). ``block`` drops silently; ``reject`` answers with a TCP
reset (TCP) or an ICMP administratively-prohibited (the rest).
"""
from __future__ import annotations

from ..spec.model import LabSpec, PolicyRule, Site
from ..spec.units import Service

TABLE = "iotemu"


def _service_match(service: Service | None) -> str:
    if service is None:
        return ""
    if service.proto == "icmp":
        return " ip protocol icmp"
    return f" {service.proto} dport {service.port}"


def _verdicts(rule: PolicyRule) -> list[str]:
    if rule.action == "allow":
        return ["accept"]
    if rule.action == "block":
        return ["drop"]
    if rule.service is not None and rule.service.proto == "tcp":
        return ["reject with tcp reset"]
    if rule.service is not None:
        return ["reject with icmp type admin-prohibited"]
    return ["meta l4proto tcp reject with tcp reset",  # TCP gets a reset,
            "reject with icmp type admin-prohibited"]   # the rest an ICMP error


def describe_rule(rule: PolicyRule) -> str:
    source = f"pool {rule.from_pool}" if rule.from_pool else (
        f"group {rule.from_group}" if rule.from_group else "any")
    target = rule.to or "any"
    service = f" {rule.service}" if rule.service else ""
    via = f" via {rule.via}" if rule.via else ""
    return f"{source} -> {target}{service}: {rule.action}{via}"


def _source(rule: PolicyRule, lan_if: str) -> str:
    match = f'iifname "{lan_if}"'
    if rule.from_pool:
        match += f" ip saddr @pool_{_ident(rule.from_pool)}"
    elif rule.from_group:
        match += f" ether saddr @group_{_ident(rule.from_group)}"
    return match


def ruleset(site: Site, lan_if: str = "lan0") -> str:
    lab: LabSpec | None = site.lab
    assert lab is not None
    wan_mark = {w.name: i + 1 for i, w in enumerate(lab.wans)}
    lines = [f"table inet {TABLE} {{"]
    rules = lab.policy.rules
    for index in range(len(rules)):
        lines.append(f"  counter rule_{index} {{ }}")
    lines.append("  counter default { }")
    for pool in lab.pools:
        lines.append(f"  set pool_{_ident(pool.name)} {{ type ipv4_addr; flags interval; "
                     f"elements = {{ {pool.range.first}-{pool.range.last} }} }}")
    groups = {rule.from_group for rule in rules if rule.from_group}
    for group in sorted(groups):
        macs = [d.mac for d in site.devices_of(group)]
        elements = f" elements = {{ {', '.join(macs)} }};" if macs else ""
        lines.append(f"  set group_{_ident(group)} {{ type ether_addr;{elements} }}")
    lines.append("  chain forward {")
    lines.append("    type filter hook forward priority 0; policy accept;")
    lines.append("    ct state established,related accept")
    for index, rule in enumerate(rules):
        match = _source(rule, lan_if)
        if rule.to:
            match += f" ip daddr {site.target(rule.to).address}"
        match += _service_match(rule.service)
        for verdict in _verdicts(rule):
            lines.append(f'    {match} counter name "rule_{index}" {verdict}'
                         f"  # {describe_rule(rule)}")
    default = "accept" if lab.policy.default == "allow" else "drop"
    lines.append(f'    iifname "{lan_if}" counter name "default" {default}'
                 f"  # default: {lab.policy.default}")
    lines.append("  }")
    # `via:` picks the WAN: allowed traffic is marked, and the mark selects the WAN's
    # routing table (ip rule fwmark N lookup 100+N-1), which the path monitor keeps current
    lines.append("  chain paths {")
    lines.append("    type filter hook prerouting priority mangle; policy accept;")
    for rule in rules:
        if rule.action == "allow" and rule.via:
            match = _source(rule, lan_if)
            if rule.to:
                match += f" ip daddr {site.target(rule.to).address}"
            match += _service_match(rule.service)
            lines.append(f"    {match} meta mark set {wan_mark[rule.via]}"
                         f"  # {describe_rule(rule)}")
    lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _ident(name: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)


def counter_names(site: Site) -> dict[str, str]:
    """Counter name -> what it counts."""
    assert site.lab is not None
    out = {f"rule_{i}": describe_rule(rule) for i, rule in enumerate(site.lab.policy.rules)}
    out["default"] = f"default: {site.lab.policy.default}"
    return out
