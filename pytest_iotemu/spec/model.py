"""The validated fleet spec: frozen dataclasses, expanded to one record per device."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Union

from ..profiles.model import DhcpFingerprint, Profile, ProtocolHabit
from .units import AddressRange, Service, format_duration, format_rate

THREATS = ("dns_flood", "port_scan", "beacon", "data_exfil", "pan_test_domains", "random")
DHCP_SERVERS = ("dnsmasq", "kea")
LAB_INTERFACE = "lab"


@dataclass(frozen=True)
class Match:
    """A pool's ``match:``; each key lists accepted values, all keys must hold."""

    classes: tuple[str, ...] = ()
    profiles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    ouis: tuple[str, ...] = ()  # hex-digit prefixes, lower case
    vendor_classes: tuple[str, ...] = ()  # prefixes of option 60


@dataclass(frozen=True)
class Pool:
    name: str
    range: AddressRange
    match: Match | None  # None: the catch-all pool


@dataclass(frozen=True)
class Wan:
    name: str
    rate: float | None = None  # bit/s


@dataclass(frozen=True)
class PolicyRule:
    action: str  # allow | block | reject
    from_pool: str | None = None
    from_group: str | None = None
    to: str | None = None  # target name; None: any destination
    service: Service | None = None
    via: str | None = None  # WAN name


@dataclass(frozen=True)
class Policy:
    default: str = "allow"
    rules: tuple[PolicyRule, ...] = ()


@dataclass(frozen=True)
class LabSpec:
    lan: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    dhcp_server: str = "dnsmasq"
    lease_time: float = 3600.0
    domain: str | None = None
    pools: tuple[Pool, ...] = ()
    wans: tuple[Wan, ...] = (Wan("internet"),)
    policy: Policy = Policy()

    def pool(self, name: str) -> Pool:
        return next(p for p in self.pools if p.name == name)

    def wan(self, name: str) -> Wan:
        return next(w for w in self.wans if w.name == name)


@dataclass(frozen=True)
class Target:
    name: str
    address: ipaddress.IPv4Address
    dns_name: str | None = None
    services: tuple[Service, ...] = ()


@dataclass(frozen=True)
class Group:
    """A device group as written, resolved against its profile."""

    name: str
    profile: Profile
    count: int
    enabled: bool = True
    hostname: str | None = None  # pattern; None: the device sends no option 12
    static_ip: ipaddress.IPv4Address | None = None  # first address; then consecutive
    macs: tuple[str, ...] = ()  # explicit MACs, one per device
    threats: tuple[str, ...] = ()
    dhcp: DhcpFingerprint = field(default=None)  # type: ignore[assignment]
    protocols: tuple[ProtocolHabit, ...] = ()  # the profile's unless the group overrides
    vendor: str = ""  # the profile's unless the group names the maker
    request_ip: ipaddress.IPv4Address | None = None  # option 50 asked for; consecutive

    @property
    def uses_dhcp(self) -> bool:
        return self.static_ip is None


@dataclass(frozen=True)
class Device:
    name: str
    group: str
    index: int  # from 1
    mac: str
    profile: str
    cls: str
    vendor: str
    hostname: str | None
    dhcp: DhcpFingerprint
    static_ip: ipaddress.IPv4Address | None
    enabled: bool
    pool: str | None  # from the one classification function
    threats: tuple[str, ...] = ()
    protocols: tuple[ProtocolHabit, ...] = ()
    request_ip: ipaddress.IPv4Address | None = None  # option 50 in DISCOVER

    @property
    def vendor_class(self) -> str | None:
        return self.dhcp.vendor_class

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "group": self.group, "index": self.index, "mac": self.mac,
            "vendor": self.vendor, "profile": self.profile, "class": self.cls,
            "hostname": self.hostname, "vendor_class": self.vendor_class,
            "pool": self.pool, "static_ip": str(self.static_ip) if self.static_ip else None,
            "request_ip": str(self.request_ip) if self.request_ip else None,
            "enabled": self.enabled, "threats": list(self.threats),
            "protocols": [p.as_dict() for p in self.protocols],
        }


# --- expectations ----------------------------------------------------------------------

@dataclass(frozen=True)
class Bound:
    """``bound:``: a fraction of the group (``95%``) or a count of devices."""

    fraction: float | None = None
    count: int | None = None

    def required(self, size: int) -> int:
        if self.count is not None:
            return self.count
        import math
        return math.ceil(round((self.fraction or 0.0) * size, 9))

    def __str__(self) -> str:
        return f"{self.count}" if self.count is not None else f"{(self.fraction or 0) * 100:g}%"


@dataclass(frozen=True)
class DhcpExpect:
    group: str  # a group name or "all"
    bound: Bound = Bound(fraction=1.0)
    within: float = 10.0
    pool: str | None = None
    subnet: ipaddress.IPv4Network | None = None
    options: tuple[tuple[str, Any], ...] = ()
    kind = "dhcp"

    @property
    def id(self) -> str:
        return f"dhcp[{self.group}]"


@dataclass(frozen=True)
class PolicyExpect:
    group: str
    target: str
    service: Service
    verdict: str  # allow | block
    sample: int | None = None
    kind = "policy"

    @property
    def id(self) -> str:
        return f"policy[{self.group}->{self.target}:{self.service}={self.verdict}]"


@dataclass(frozen=True)
class Failover:
    fail: str
    within: float


@dataclass(frozen=True)
class PathExpect:
    group: str
    target: str
    service: Service
    via: str
    failover: Failover | None = None
    kind = "path"

    @property
    def id(self) -> str:
        tail = ""
        if self.failover:
            tail = f",failover:{self.failover.fail}<={format_duration(self.failover.within)}"
        return f"path[{self.group}->{self.target}:{self.service}@{self.via}{tail}]"


@dataclass(frozen=True)
class ThroughputExpect:
    group: str
    target: str
    service: Service
    rate: float
    min: float | None = None
    max_loss: float | None = None
    duration: float = 10.0
    kind = "throughput"

    @property
    def id(self) -> str:
        return f"throughput[{self.group}->{self.target}:{self.service}@{format_rate(self.rate)}]"


@dataclass(frozen=True)
class ResourcesExpect:
    engine_rss: int | None = None  # bytes
    engine_cpu: float | None = None  # % of one core
    server_rss: int | None = None
    server_cpu: float | None = None
    kind = "resources"

    @property
    def id(self) -> str:
        return "resources"


Expectation = Union[DhcpExpect, PolicyExpect, PathExpect, ThroughputExpect, ResourcesExpect]


@dataclass(frozen=True)
class ExpectEntry:
    """An expectation with where it was written and the fragment the user wrote."""

    expect: Expectation
    index: int
    line: int
    fragment: Any = field(compare=False, default=None)

    @property
    def id(self) -> str:
        return self.expect.id


@dataclass(frozen=True)
class Pacing:
    """How the engine starts DHCP: a closed-loop window of outstanding acquisitions,
    optionally capped in starts per second and spaced by ``stagger``."""

    window: int = 32
    rate: float | None = None
    stagger: float = 0.0

    def hello(self) -> dict[str, Any]:
        return {"window": self.window, "rate": self.rate, "stagger": self.stagger}


@dataclass(frozen=True)
class Site:
    name: str
    interface: str
    lab: LabSpec | None
    targets: tuple[Target, ...]
    groups: tuple[Group, ...]
    devices: tuple[Device, ...]
    expectations: tuple[ExpectEntry, ...]
    allow_live: bool = False
    pacing: Pacing = Pacing()
    engines: int = 1  # engine processes the devices are split across

    @property
    def is_lab(self) -> bool:
        return self.interface == LAB_INTERFACE

    def group(self, name: str) -> Group:
        return next(g for g in self.groups if g.name == name)

    def target(self, name: str) -> Target:
        return next(t for t in self.targets if t.name == name)

    def devices_of(self, group: str) -> tuple[Device, ...]:
        """Devices an expectation on ``group`` covers; ``all``: every enabled DHCP device."""
        if group == "all":
            return tuple(d for d in self.devices if d.enabled and d.static_ip is None)
        return tuple(d for d in self.devices if d.group == group)


@dataclass(frozen=True)
class FleetSpec:
    name: str
    seed: int
    sites: tuple[Site, ...]
    source: str  # file it was read from
    profile_files: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()  # notes that did not stop validation (imports)

    @property
    def devices(self) -> tuple[Device, ...]:
        return tuple(d for site in self.sites for d in site.devices)

    def site(self, name: str) -> Site:
        return next(s for s in self.sites if s.name == name)
