"""The lab plan: every name, address, route and daemon of a virtual branch, computed from
a site with no side effects (Mininet's Topo, before ``build()``).

    lan   : bridge br0; gw's LAN link; engine ports e<i> (no IP) with bridge sides e<i>-br
    gw    : lan0 = the gateway address; DHCP server and DNS on it; one uplink per WAN
    cloud : every target address (on lo) and its responders; routes back to the LAN
"""
from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field

from ..spec.model import LabSpec, Site, Target

PREFIX = "iotemu"
TRANSFER_SPACE = ipaddress.IPv4Network("100.64.0.0/10")  # shared address space, RFC 6598
ROLES = ("lan", "gw", "cloud")


class PlanError(ValueError):
    """The site cannot be laid out (an address clash); the message says how to fix it."""


def new_run_id() -> str:
    """Unique per pytest session, xdist worker and CLI run: 8 hex digits."""
    return secrets.token_hex(4)


@dataclass(frozen=True)
class WanLink:
    name: str
    gw_if: str  # in gw
    cloud_if: str  # in cloud
    network: ipaddress.IPv4Network
    gw_address: ipaddress.IPv4Address
    cloud_address: ipaddress.IPv4Address
    rate: float | None


@dataclass(frozen=True)
class PoolPlan:
    name: str
    tag: str  # DHCP server tag / class name
    first: ipaddress.IPv4Address
    last: ipaddress.IPv4Address
    catch_all: bool
    macs: tuple[str, ...]  # fleet devices the classification put here


@dataclass(frozen=True)
class Reservation:
    mac: str
    address: ipaddress.IPv4Address
    hostname: str | None


@dataclass(frozen=True)
class ResponderPlan:
    target: str
    address: ipaddress.IPv4Address
    proto: str  # tcp | udp
    port: int


@dataclass(frozen=True)
class LabPlan:
    run: str
    site: str
    lan: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    dhcp_server: str
    lease_time: int
    domain: str | None
    pools: tuple[PoolPlan, ...]
    reservations: tuple[Reservation, ...]
    wans: tuple[WanLink, ...]
    targets: tuple[Target, ...]
    responders: tuple[ResponderPlan, ...]
    dns_records: tuple[tuple[str, ipaddress.IPv4Address], ...]
    engine_ports: int = 1
    namespaces: dict[str, str] = field(default_factory=dict)  # role -> namespace name
    # the cloud's own hosts: every other name the devices look up resolves to `services`
    # (HTTP, TLS, NTP, MQTT, RTSP/RTP, syslog, CoAP peers); the security-test domains
    # resolve to `sinkhole`
    services: ipaddress.IPv4Address | None = None
    sinkhole: ipaddress.IPv4Address | None = None

    @property
    def cloud_hosts(self) -> list[ipaddress.IPv4Address]:
        """Every address the cloud holds on its loopback: targets, services, sinkhole."""
        extra = [a for a in (self.services, self.sinkhole) if a is not None]
        return [t.address for t in self.targets] + extra

    @property
    def prefix(self) -> str:
        return f"{PREFIX}-{self.run}"

    def ns(self, role: str) -> str:
        return self.namespaces[role]

    def engine_interface(self, index: int) -> str:
        return f"e{index}"


def _pool_tag(name: str) -> str:
    return "pool_" + "".join(c if c.isalnum() else "_" for c in name)


def _transfer_networks(count: int, avoid: list[ipaddress.IPv4Network]) -> list:
    """``count`` /30 networks from 100.64.0.0/10 that overlap nothing in ``avoid``."""
    out = []
    for candidate in TRANSFER_SPACE.subnets(new_prefix=30):
        if any(candidate.overlaps(net) for net in avoid):
            continue
        out.append(candidate)
        if len(out) == count:
            return out
    raise PlanError("no room for WAN links in 100.64.0.0/10: the LAN or targets cover it")


def check_host_clash(site: Site, host_routes: list[ipaddress.IPv4Network]) -> None:
    """Refuse a lab whose LAN or a target overlaps a connected or specific route of the
    host (not the default route): inside namespaces it would work, but the user's
    reports, captures and real-interface runs would mix the two networks up."""
    lab = site.lab
    assert lab is not None
    for route in host_routes:
        if route.prefixlen == 0:
            continue
        if lab.lan.overlaps(route):
            raise PlanError(f"site {site.name}: lab.lan {lab.lan} overlaps the host's route "
                            f"{route}; pick another LAN (e.g. 10.20.0.0/22)")
        for target in site.targets:
            if target.address in route:
                raise PlanError(f"site {site.name}: target {target.name} ({target.address}) "
                                f"is inside the host's route {route}; pick another address")


def plan_lab(site: Site, run: str, *, engine_ports: int = 1,
             host_routes: list[ipaddress.IPv4Network] | None = None) -> LabPlan:
    """Lay out the virtual branch for ``site`` (which must be ``interface: lab``)."""
    if site.lab is None:
        raise PlanError(f"site {site.name}: the lab needs a `lab:` block")
    if not 1 <= engine_ports <= 64:
        raise PlanError("engine ports: 1 to 64")
    lab: LabSpec = site.lab
    if host_routes:
        check_host_clash(site, host_routes)
    avoid = [lab.lan] + [ipaddress.IPv4Network(f"{t.address}/32") for t in site.targets]
    avoid += list(host_routes or [])
    # one /30 per WAN, and one more for the cloud's services and sinkhole hosts
    networks = _transfer_networks(len(lab.wans) + 1, [n for n in avoid if n.prefixlen > 0])
    hosts = networks.pop()
    wans = tuple(
        WanLink(name=w.name, gw_if=f"wan-{w.name}"[:15], cloud_if=f"up-{w.name}"[:15],
                network=net, gw_address=net.network_address + 1,
                cloud_address=net.network_address + 2, rate=w.rate)
        for w, net in zip(lab.wans, networks))
    pools = []
    for pool in lab.pools:
        macs = tuple(d.mac for d in site.devices if d.pool == pool.name and d.static_ip is None)
        pools.append(PoolPlan(pool.name, _pool_tag(pool.name), pool.range.first,
                              pool.range.last, pool.match is None, macs))
    reservations = tuple(Reservation(d.mac, d.static_ip, d.hostname)
                         for d in site.devices if d.static_ip is not None)
    responders = tuple(ResponderPlan(t.name, t.address, s.proto, s.port)
                       for t in site.targets for s in t.services if s.port is not None)
    records = [(t.dns_name, t.address) for t in site.targets if t.dns_name]
    if lab.domain:
        records += [(f"{t.name}.{lab.domain}", t.address) for t in site.targets]
        records.append((f"gw.{lab.domain}", lab.gateway))
    namespaces = {role: f"{PREFIX}-{run}-{role}" for role in ROLES}
    return LabPlan(run=run, site=site.name, lan=lab.lan, gateway=lab.gateway,
                   dhcp_server=lab.dhcp_server, lease_time=int(lab.lease_time),
                   domain=lab.domain, pools=tuple(pools), reservations=reservations,
                   wans=wans, targets=site.targets, responders=responders,
                   dns_records=tuple(records), engine_ports=engine_ports,
                   namespaces=namespaces, services=hosts.network_address + 1,
                   sinkhole=hosts.network_address + 2)


def devices_by_pool(plan: LabPlan) -> dict[str, str]:
    """MAC -> pool name, as the plan hands it to the DHCP server."""
    return {mac: pool.name for pool in plan.pools for mac in pool.macs}


def describe(plan: LabPlan) -> list[str]:
    lines = [f"lab {plan.prefix} for site {plan.site}"]
    lines.append(f"  {plan.ns('lan')}: bridge br0, engine ports "
                 + ", ".join(plan.engine_interface(i) for i in range(plan.engine_ports)))
    lines.append(f"  {plan.ns('gw')}: lan0 {plan.gateway}/{plan.lan.prefixlen}, "
                 f"DHCP {plan.dhcp_server}, DNS; "
                 + ", ".join(f"{w.gw_if} {w.gw_address}" for w in plan.wans))
    lines.append(f"  {plan.ns('cloud')}: targets "
                 + (", ".join(f"{t.name} {t.address}" for t in plan.targets) or "none")
                 + f"; services {plan.services}, sinkhole {plan.sinkhole}")
    return lines

