"""What a device profile is: vendor, class, OUIs, DHCP fingerprint, traffic habits."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

# The closed list of device classes (CONTRACT.md); pools match on these.
DEVICE_CLASSES = (
    "camera", "nvr", "lighting", "plug", "thermostat", "speaker", "printer", "phone",
    "access-control", "plc", "medical", "pos", "tv", "sbc", "workstation", "mobile",
)

# Option 61 forms: none; ``mac`` = type 1 (Ethernet) + the MAC; ``duid`` = RFC 4361
# type 255 + IAID + DUID-LL, as dhcpcd and systemd-networkd send it.
CLIENT_ID_TYPES = ("none", "mac", "duid")

# Traffic a profile can declare (the previous emulator's set, plus a few the lab serves).
PROTOCOLS = (
    "dns", "ntp", "http", "https", "cloud", "mqtt", "rtsp", "rtp", "mdns", "ssdp", "lldp",
    "snmp", "coap", "syslog", "udp", "tcp", "sip",
)


@dataclass(frozen=True)
class DhcpFingerprint:
    """Exactly what a device puts in its DHCP messages."""

    param_request_list: tuple[int, ...]  # option 55, order matters
    vendor_class: str | None = None  # option 60
    client_id: str = "mac"  # option 61 form
    max_message_size: int | None = None  # option 57
    hostname: str | None = None  # option 12 pattern ({n}, {group}, {mac}, {mac6} …)
    fqdn: bool = False  # option 81 carrying the hostname
    broadcast: bool = False  # BROADCAST flag in DISCOVER/REQUEST
    arp_probe: bool = False  # ARP probe of the offered address before using it

    def merged(self, overrides: dict[str, Any]) -> "DhcpFingerprint":
        return replace(self, **overrides) if overrides else self

    def as_dict(self) -> dict[str, Any]:
        return {
            "param_request_list": list(self.param_request_list),
            "vendor_class": self.vendor_class,
            "client_id": self.client_id,
            "max_message_size": self.max_message_size,
            "hostname": self.hostname,
            "fqdn": self.fqdn,
            "broadcast": self.broadcast,
            "arp_probe": self.arp_probe,
        }


@dataclass(frozen=True)
class ProtocolHabit:
    """A protocol a device speaks, with its default interval, size and destination."""

    name: str
    interval: float | None = None  # seconds
    size: int | None = None  # bytes per message
    to: str | None = None  # a named destination (target name or DNS name)
    rate: float | None = None  # bit/s for streams (rtp, udp)
    jitter: float | None = None  # fraction of the interval, each way (default 10%)
    dscp: int | None = None  # DiffServ code point of the packets (0-63)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in (("name", self.name), ("interval", self.interval),
                                  ("size", self.size), ("to", self.to),
                                  ("rate", self.rate), ("jitter", self.jitter),
                                  ("dscp", self.dscp)) if v is not None}


# DSCP names (RFC 2474, 2597, 3246) and their code points
DSCP_NAMES = {"default": 0, "ef": 46, "voice-admit": 44,
              **{f"cs{i}": i * 8 for i in range(8)},
              **{f"af{c}{d}": c * 8 + d * 2 for c in range(1, 5) for d in range(1, 4)}}


@dataclass(frozen=True)
class Profile:
    name: str
    vendor: str
    cls: str
    ouis: tuple[str, ...]  # "00:40:8c" form
    dhcp: DhcpFingerprint
    source: str  # where the fingerprint came from, or "unverified"
    model: str | None = None
    description: str | None = None
    protocols: tuple[ProtocolHabit, ...] = ()
    # who the OUIs are registered to, when not the vendor (a radio module's maker, a
    # former company name): the registry check compares against this
    oui_owner: str | None = None
    origin: str = field(default="", compare=False)  # file it was read from

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "vendor": self.vendor,
            "class": self.cls,
            "model": self.model,
            "ouis": list(self.ouis),
            "oui_owner": self.oui_owner,
            "dhcp": self.dhcp.as_dict(),
            "protocols": [p.as_dict() for p in self.protocols],
            "source": self.source,
            "description": self.description,
            "origin": self.origin,
        }
