"""A small DHCP server for tests, in memory, built with scapy: an independent encoder
and decoder to pair our client with (h11's ConnectionPair idea)."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether

SERVER_MAC = "02:00:00:00:00:fe"


def dhcp_options(pkt) -> dict:
    out = {}
    for opt in pkt[DHCP].options:
        if isinstance(opt, tuple):
            out[opt[0]] = opt[1] if len(opt) == 2 else opt[1:]
    return out


def message_type(pkt) -> int:
    return dhcp_options(pkt)["message-type"]


@dataclass
class FakeServer:
    server_ip: str = "10.0.0.1"
    mac: str = SERVER_MAC
    pool: list[str] = field(default_factory=lambda: [f"10.0.0.{i}" for i in range(10, 60)])
    mask: str = "255.255.255.0"
    lease: int = 600
    t1: int | None = None
    t2: int | None = None
    nak_requests: bool = False  # answer every REQUEST with a NAK
    naks_left: int = 0  # answer the next N REQUESTs with a NAK
    silent: bool = False  # answer nothing
    leases: dict[str, str] = field(default_factory=dict)  # client MAC -> IP
    seen: list = field(default_factory=list)  # every client message, decoded

    def handle(self, frame: bytes) -> list[bytes]:
        pkt = Ether(frame)
        if DHCP not in pkt:
            return []
        self.seen.append(pkt)
        if self.silent:
            return []
        kind = message_type(pkt)
        mac = pkt[Ether].src
        opts = dhcp_options(pkt)
        if kind == 1:  # DISCOVER
            address = self.leases.get(mac) or self.pool[len(self.leases)]
            self.leases[mac] = address
            return [self.reply(pkt, 2, address)]
        if kind == 3:  # REQUEST
            wanted = opts.get("requested_addr") or (pkt[BOOTP].ciaddr
                                                   if pkt[BOOTP].ciaddr != "0.0.0.0" else None)
            if "server_id" in opts and opts["server_id"] != self.server_ip:
                return []  # the client chose another server
            if self.naks_left > 0 or self.nak_requests or wanted is None \
                    or self.leases.get(mac) not in (None, wanted):
                self.naks_left = max(0, self.naks_left - 1)
                return [self.reply(pkt, 6, "0.0.0.0")]
            self.leases[mac] = wanted
            return [self.reply(pkt, 5, wanted)]
        if kind in (4, 7):  # DECLINE, RELEASE
            self.leases.pop(mac, None)
        return []

    def reply(self, request, kind: int, address: str) -> bytes:
        bootp = request[BOOTP]
        options = [("message-type", kind), ("server_id", self.server_ip)]
        if kind != 6:
            options += [("lease_time", self.lease), ("subnet_mask", self.mask),
                        ("router", self.server_ip), ("name_server", self.server_ip),
                        ("domain", b"branch.lab")]
            if self.t1 is not None:
                options.append(("renewal_time", self.t1))
            if self.t2 is not None:
                options.append(("rebinding_time", self.t2))
        else:
            options.append(("error_message", b"address not available"))
        options.append("end")
        unicast = bootp.flags & 0x8000 == 0 and kind != 6
        dst_mac = request[Ether].src if unicast else "ff:ff:ff:ff:ff:ff"
        dst_ip = address if unicast and kind != 6 else "255.255.255.255"
        if bootp.ciaddr != "0.0.0.0":
            dst_ip = bootp.ciaddr
        pkt = (Ether(src=self.mac, dst=dst_mac) /
               IP(src=self.server_ip, dst=dst_ip) / UDP(sport=67, dport=68) /
               BOOTP(op=2, xid=bootp.xid, yiaddr=address, chaddr=bootp.chaddr,
                     flags=bootp.flags, ciaddr=bootp.ciaddr) / DHCP(options=options))
        return bytes(pkt)


def arp_from(mac: str, sender_ip: str, target_ip: str, op: int = 1) -> bytes:
    return bytes(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") /
                 ARP(op=op, hwsrc=mac, psrc=sender_ip, pdst=target_ip))


def network(address: str, mask: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(f"{address}/{mask}", strict=False)
