"""One emulated device's protocol stack: DHCP client, ARP, ICMP, behind one
``receive(frame, now)`` as the engine sees it."""
from __future__ import annotations

import random

from ..profiles.model import DhcpFingerprint
from . import arp
from .core import Counters, Outbox
from .dhcp import BOUND_STATES, DhcpClient, State
from .frames import (ETH_P_ARP, ETH_P_IP, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, Malformed,
                     ethertype_of, parse_arp, parse_icmp_error, parse_ipv4, parse_tcp,
                     parse_udp)
from .icmp import Pinger, echo_reply_for
from .dhcp_wire import CLIENT_PORT, reply_from_packet
from .traffic import Traffic


class DeviceCore:
    def __init__(self, mac: bytes, fingerprint: DhcpFingerprint, *, outbox: Outbox | None = None,
                 hostname: str | None = None, request_ip: bytes | None = None,
                 rng: random.Random | None = None, time_scale: float = 1.0,
                 arp_cache: arp.ArpCache | None = None, name: str = "",
                 counters: Counters | None = None, device_id: int = 0):
        self.mac = mac
        self.out = outbox or Outbox()
        self.rng = rng or random.Random()
        self.dhcp = DhcpClient(mac, fingerprint, self.out, hostname=hostname,
                               request_ip=request_ip, rng=self.rng, time_scale=time_scale,
                               name=name)
        self._pinger: Pinger | None = None  # made on first use: most devices never ping
        self._traffic: Traffic | None = None  # likewise: probes and flows
        self.apps = None  # generators.Apps, when the device has habits or threats
        self.device_id = device_id
        self.arp_cache = arp_cache if arp_cache is not None else arp.ArpCache()
        # what was accepted or ignored and why; the engine passes one shared by the fleet
        self.counters = counters if counters is not None else Counters()

    @property
    def pinger(self) -> Pinger:
        if self._pinger is None:
            self._pinger = Pinger(self.mac, self.out, ident=self.rng.getrandbits(16))
        return self._pinger

    @property
    def traffic(self) -> Traffic:
        if self._traffic is None:
            self._traffic = Traffic(self.mac, self.out, self.arp_cache, self.rng,
                                    device_id=self.device_id)
        return self._traffic

    @property
    def address(self) -> bytes | None:
        """The bound address, or None."""
        return self.dhcp.address if self.dhcp.state in BOUND_STATES else None

    def receive(self, frame: bytes | memoryview, now: float,
                checksum_unfilled: bool = False) -> None:
        reason = self._handle(frame, now, checksum_unfilled)
        if reason is None:
            self.counters.accepted()
        else:
            self.counters.ignored(reason)

    def _handle(self, frame: bytes | memoryview, now: float,
                checksum_unfilled: bool) -> str | None:
        try:
            ethertype, _ = ethertype_of(frame)
            if ethertype == ETH_P_ARP:
                packet = parse_arp(frame)
                self.arp_cache.learn(packet, now)
                if self._traffic:
                    self._traffic.on_arp(now)
                if self.dhcp.state is State.PROBING:
                    return self.dhcp.handle_arp(packet, now)
                address = self.address
                if address is None:
                    return "arp_not_bound"
                reply = arp.reply_for(packet, self.mac, address)
                if reply is None:
                    return "arp_not_for_us"
                self.out.send(reply)
                return None
            if ethertype != ETH_P_IP:
                return "unknown_ethertype"
            packet = parse_ipv4(frame)
            if packet.proto == IPPROTO_UDP:
                if len(packet.payload) >= 4 and \
                        ((packet.payload[2] << 8) | packet.payload[3]) == CLIENT_PORT:
                    return self.dhcp.handle_reply(reply_from_packet(packet, checksum_unfilled),
                                                  now)
                if self._traffic and packet.dst == self.address:
                    return self._traffic.handle_udp(parse_udp(packet, checksum_unfilled), now)
                return "udp_not_handled"
            if packet.proto == IPPROTO_TCP:
                if not self._traffic or packet.dst != self.address:
                    return "tcp_no_connection"
                return self._traffic.handle_tcp(parse_tcp(packet, checksum_unfilled), now)
            if packet.proto == IPPROTO_ICMP:
                kind = packet.payload[0] if len(packet.payload) else -1
                if kind in (3, 11):
                    if not self._traffic:
                        return "icmp_error_not_ours"
                    return self._traffic.handle_icmp_error(parse_icmp_error(packet), now)
                if kind == 0 and self._traffic:
                    reason = self._traffic.handle_echo_reply(packet, now)
                    if reason != "unknown_echo_reply" or self._pinger is None:
                        return reason
                address = self.address
                if address is not None:
                    reply = echo_reply_for(packet, self.mac, address)
                    if reply is not None:
                        self.out.send(reply)
                        return None
                if self._pinger is None:
                    return "not_echo_reply" if len(packet.payload) < 1 or \
                        packet.payload[0] != 0 else "unknown_echo_reply"
                return self._pinger.handle(packet, now)
            return "protocol_not_handled"
        except Malformed as exc:
            return exc.reason

    def next_timer(self) -> float | None:
        best = self.dhcp.next_timer()
        for core in (self._pinger, self._traffic, self.apps):
            if core is not None:
                when = core.next_timer()
                if when is not None and (best is None or when < best):
                    best = when
        return best

    def on_timer(self, now: float) -> None:
        self.dhcp.on_timer(now)
        if self._pinger is not None:
            self._pinger.on_timer(now)
        if self._traffic:
            self._traffic.on_timer(now)
        if self.apps is not None:
            self.apps.on_timer(now)
