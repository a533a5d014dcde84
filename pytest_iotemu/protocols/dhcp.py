"""The DHCP client of one emulated device (RFC 2131), sans-I/O.

    client = DhcpClient(mac, fingerprint, outbox, rng=random.Random(1))
    client.start(now)                  # DISCOVER goes to outbox.frames
    client.receive(frame, now)         # OFFER -> REQUEST, ACK -> (probe) -> BOUND
    client.next_timer() / client.on_timer(now)

States (RFC 2131 figure 5, plus PROBING for the ARP check of an offered address and
STOPPED after a graceful stop):

    INIT -start-> SELECTING -offer-> REQUESTING -ack-> [PROBING] -> BOUND
    BOUND -T1-> RENEWING -T2-> REBINDING -expiry-> INIT (and SELECTING again)
    RENEWING/REBINDING -ack-> BOUND;  -nak-> INIT -> SELECTING
    any bound state -reboot-> REBOOTING (REQUEST with option 50) -ack-> BOUND
    PROBING -conflict-> DECLINE, INIT, SELECTING after 10 s
    bound states -release/stop-> STOPPED (RELEASE sent)

Every timer is divided by ``time_scale`` so that tests can run lease cycles in seconds.
"""
from __future__ import annotations

import enum
import ipaddress
import random
import struct
from typing import Callable

from ..profiles.model import DhcpFingerprint
from . import dhcp_wire as w
from .core import Counters, LocalProtocolError, Outbox
from .frames import (BROADCAST_MAC, ETH_P_ARP, Malformed, ArpPacket, arp_frame, ethertype_of,
                     ip_text, mac_text, parse_arp)

ZERO_IP = b"\x00" * 4
BROADCAST_IP = b"\xff" * 4


class State(enum.Enum):
    INIT = "INIT"
    SELECTING = "SELECTING"
    REQUESTING = "REQUESTING"
    PROBING = "PROBING"
    BOUND = "BOUND"
    RENEWING = "RENEWING"
    REBINDING = "REBINDING"
    REBOOTING = "REBOOTING"
    STOPPED = "STOPPED"


BOUND_STATES = (State.BOUND, State.RENEWING, State.REBINDING)

# RFC 2131 4.1: retransmit after 4 s, doubling to 64 s, each randomised by ±1 s.
BACKOFF_START, BACKOFF_MAX, BACKOFF_JITTER = 4.0, 64.0, 1.0
REQUEST_TRIES = 4  # REQUESTING/REBOOTING: then start over with a DISCOVER
RENEW_MIN_WAIT = 60.0  # RFC 2131 4.4.5
DECLINE_WAIT = 10.0  # RFC 2131 3.1.5: wait before starting over after a DECLINE
# After a NAK the client starts over at once; after NAKs in a row it waits 1, 2, 4 … 64 s
# (as dhcpcd does), so a misconfigured server does not get a DISCOVER/NAK storm.
NAK_BACKOFF_MAX = 64.0
# The ARP check before using an address, kept short as Windows and dhcpcd's fast
# paths do (RFC 5227's full 3 probes over ~7 s would dominate a bind time):
PROBE_COUNT, PROBE_INTERVAL, PROBE_WAIT = 2, 0.5, 0.5


def _lease_times(lease: int, t1: int | None, t2: int | None) -> tuple[float, float, float]:
    """T1, T2 and lease in seconds, defaults 0.5 and 0.875 of the lease (RFC 2131 4.4.5);
    server values that break T1 < T2 < lease are replaced by the defaults."""
    d1, d2 = lease * 0.5, lease * 0.875
    t1v = float(t1) if t1 is not None and 0 < t1 < lease else d1
    t2v = float(t2) if t2 is not None and t1v < t2 < lease else max(d2, t1v)
    return t1v, t2v, float(lease)


class DhcpClient:
    """One device's DHCP client. All frames and events go to ``outbox``."""

    # (state, input) -> handler name: the transition table. An input missing here is,
    # from the user, a LocalProtocolError; from the network, counted and ignored.
    TRANSITIONS: dict[tuple[State, str], str] = {
        (State.INIT, "start"): "_begin",
        (State.STOPPED, "start"): "_begin",
        (State.SELECTING, "offer"): "_on_offer",
        (State.SELECTING, "timer"): "_retransmit_discover",
        (State.REQUESTING, "ack"): "_on_ack",
        (State.REQUESTING, "nak"): "_on_nak",
        (State.REQUESTING, "timer"): "_retransmit_request",
        (State.REBOOTING, "ack"): "_on_ack",
        (State.REBOOTING, "nak"): "_on_nak",
        (State.REBOOTING, "timer"): "_retransmit_request",
        (State.PROBING, "arp"): "_on_probe_arp",
        (State.PROBING, "timer"): "_probe_step",
        (State.BOUND, "timer"): "_bound_timer",
        (State.BOUND, "renew"): "_enter_renewing",
        (State.RENEWING, "ack"): "_on_ack",
        (State.RENEWING, "nak"): "_on_nak",
        (State.RENEWING, "timer"): "_bound_timer",
        (State.RENEWING, "renew"): "_enter_renewing",
        (State.REBINDING, "ack"): "_on_ack",
        (State.REBINDING, "nak"): "_on_nak",
        (State.REBINDING, "timer"): "_bound_timer",
        (State.INIT, "timer"): "_begin",  # the wait after a DECLINE
    }
    for _s in BOUND_STATES:
        TRANSITIONS[(_s, "release")] = "_release"
        TRANSITIONS[(_s, "reboot")] = "_reboot"
    TRANSITIONS[(State.STOPPED, "reboot")] = "_reboot"
    del _s

    def __init__(self, mac: bytes, fingerprint: DhcpFingerprint, outbox: Outbox, *,
                 hostname: str | None = None, request_ip: bytes | None = None,
                 rng: random.Random | None = None, time_scale: float = 1.0,
                 name: str = ""):
        if len(mac) != 6:
            raise LocalProtocolError("a MAC is 6 bytes")
        if time_scale <= 0:
            raise LocalProtocolError("time_scale must be above zero")
        self.mac = mac
        self.name = name or mac_text(mac)
        self.fingerprint = fingerprint
        self.hostname = hostname if hostname is not None else fingerprint.hostname
        self.request_ip = request_ip
        self.out = outbox
        self.rng = rng or random.Random()
        self.scale = time_scale
        self.counters = Counters()
        self.state = State.INIT
        self.last_seen = "nothing"  # what the client last received, for failure reports
        # the transaction
        self.xid = 0
        self._timer: float | None = None
        self._tries = 0
        self._started = 0.0  # first DISCOVER of this acquisition
        self._sent_request = 0.0
        self._offer_time: float | None = None
        self.retransmits = 0
        self._templates: dict[tuple, w.ClientTemplate] = {}
        # the offer being requested, then the lease
        self.offered: bytes | None = None
        self.server_id: bytes | None = None
        self.server_mac: bytes = BROADCAST_MAC
        self.address: bytes | None = None  # the bound address
        self.lease: dict = {}
        self._t1 = self._t2 = self._expiry = 0.0
        self._probes_sent = 0
        self._pending_ack: w.DhcpReply | None = None
        self._rebooting = False
        self._naks = 0  # NAKs in a row

    # --- the user's side ------------------------------------------------------------
    def start(self, now: float) -> None:
        self._dispatch("start", now)

    def release(self, now: float) -> None:
        """Give the lease back (RELEASE) and stop."""
        self._dispatch("release", now)

    def stop(self, now: float) -> None:
        """Graceful stop: RELEASE when holding a lease, then STOPPED."""
        if self.state in BOUND_STATES:
            self._release(now)
        else:
            self._set_state(State.STOPPED, now)
            self._timer = None

    def renew(self, now: float) -> None:
        """Renew now, as if T1 had come."""
        self._dispatch("renew", now)

    def reboot(self, now: float) -> None:
        """INIT-REBOOT: ask for the previous address again (REQUEST with option 50)."""
        if self.address is None:
            raise LocalProtocolError(f"{self.name}: reboot needs a previous lease; "
                                     f"state is {self.state.value}")
        self._dispatch("reboot", now)

    def next_timer(self) -> float | None:
        return self._timer

    def on_timer(self, now: float) -> None:
        if self._timer is not None and now >= self._timer:
            self._timer = None
            self._dispatch("timer", now)

    def _dispatch(self, event: str, now: float, *args: object) -> None:
        handler = self.TRANSITIONS.get((self.state, event))
        if handler is None:
            raise LocalProtocolError(f"{self.name}: {event} is not allowed in state "
                                     f"{self.state.value}")
        getattr(self, handler)(now, *args)

    # --- the network's side ----------------------------------------------------------
    def receive(self, frame: bytes, now: float, checksum_unfilled: bool = False) -> None:
        """Take one frame addressed to this device; anything unusable is counted."""
        reason = self.handle(frame, now, checksum_unfilled)
        if reason is None:
            self.counters.accepted()
        else:
            self.counters.ignored(reason)

    def handle(self, frame: bytes | memoryview, now: float,
               checksum_unfilled: bool = False) -> str | None:
        """Process a frame; returns None when used, else why it was ignored."""
        try:
            ethertype, _ = ethertype_of(frame)
            if ethertype == ETH_P_ARP:
                return self.handle_arp(parse_arp(frame), now)
            reply = w.parse_reply(frame, checksum_unfilled)
        except Malformed as exc:
            return exc.reason
        return self.handle_reply(reply, now)

    def handle_reply(self, reply: w.DhcpReply, now: float) -> str | None:
        if reply.chaddr != self.mac:
            return "wrong_chaddr"
        if reply.xid != self.xid or self.state in (State.INIT, State.STOPPED, State.BOUND,
                                                   State.PROBING):
            return "wrong_xid" if reply.xid != self.xid else "unexpected_in_state"
        kind = {w.OFFER: "offer", w.ACK: "ack", w.NAK: "nak"}.get(reply.msg_type)
        if kind is None:
            return "not_a_server_message"
        handler = self.TRANSITIONS.get((self.state, kind))
        if handler is None:
            return f"{kind}_in_{self.state.value.lower()}"
        return getattr(self, handler)(now, reply)

    def handle_arp(self, packet: ArpPacket, now: float) -> str | None:
        if self.state is not State.PROBING:
            return "arp_not_probing"
        return self._on_probe_arp(now, packet)

    # --- frames -----------------------------------------------------------------------
    def _options(self, msg_type: int, *, requested: bytes | None = None,
                 server: bytes | None = None, fingerprint: bool = True) -> bytes:
        fp = self.fingerprint
        opts: list[tuple[int, bytes]] = [(w.OPT_MESSAGE_TYPE, bytes((msg_type,)))]
        if fp.client_id == "mac":
            opts.append((w.OPT_CLIENT_ID, b"\x01" + self.mac))
        elif fp.client_id == "duid":  # RFC 4361: type 255, IAID, DUID-LL
            opts.append((w.OPT_CLIENT_ID, b"\xff" + self.mac[2:] + b"\x00\x03\x00\x01"
                         + self.mac))
        if fingerprint and fp.max_message_size:
            opts.append((w.OPT_MAX_SIZE, struct.pack("!H", fp.max_message_size)))
        if requested is not None:
            opts.append((w.OPT_REQUESTED_IP, requested))
        if server is not None:
            opts.append((w.OPT_SERVER_ID, server))
        if fingerprint:
            if self.hostname:
                opts.append((w.OPT_HOSTNAME, self.hostname.encode("ascii", "replace")))
                if fp.fqdn:  # RFC 4702: flags 0 (client updates A), ASCII name
                    opts.append((w.OPT_FQDN, b"\x00\x00\x00" + self.hostname.encode(
                        "ascii", "replace")))
            if fp.vendor_class:
                opts.append((w.OPT_VENDOR_CLASS, fp.vendor_class.encode("ascii")))
            opts.append((w.OPT_PARAM_LIST, bytes(fp.param_request_list)))
        return w.encode_options(opts)

    def _send(self, key: tuple, now: float, build: Callable[[], w.ClientTemplate]) -> None:
        template = self._templates.get(key)
        if template is None:
            template = self._templates[key] = build()
        self.out.send(template.render(self.xid, int(now - self._started)))

    def _broadcast(self, kind: str, msg_type: int, now: float, *,
                   ciaddr: bytes = ZERO_IP, requested: bytes | None = None,
                   server: bytes | None = None, fingerprint: bool = True) -> None:
        flag = self.fingerprint.broadcast and ciaddr == ZERO_IP  # RFC 2131 4.1
        key = (kind, ciaddr, requested, server)
        self._send(key, now, lambda: w.ClientTemplate(
            self.mac, BROADCAST_MAC, ciaddr, BROADCAST_IP,
            w.bootp_request(self.mac, 0, self._options(msg_type, requested=requested,
                                                       server=server,
                                                       fingerprint=fingerprint),
                            broadcast=flag, ciaddr=ciaddr)))
        self.out.emit(f"dhcp.{kind}", now, xid=self.xid)

    def _unicast(self, kind: str, msg_type: int, now: float, *, server: bytes | None = None,
                 fingerprint: bool = True) -> None:
        assert self.address is not None and self.server_id is not None
        key = (kind, self.address, self.server_id, self.server_mac, server)
        self._send(key, now, lambda: w.ClientTemplate(
            self.mac, self.server_mac, self.address, self.server_id,  # type: ignore[arg-type]
            w.bootp_request(self.mac, 0, self._options(msg_type, server=server,
                                                       fingerprint=fingerprint),
                            ciaddr=self.address)))  # type: ignore[arg-type]
        self.out.emit(f"dhcp.{kind}", now, xid=self.xid)

    # --- timers -------------------------------------------------------------------------
    def _backoff(self, now: float, attempt: int) -> None:
        delay = min(BACKOFF_START * (2 ** attempt), BACKOFF_MAX)
        delay += self.rng.uniform(-BACKOFF_JITTER, BACKOFF_JITTER)
        self._timer = now + delay / self.scale

    def _set_state(self, state: State, now: float) -> None:
        if state is not self.state:
            old, self.state = self.state, state
            self.out.emit("dhcp.state", now, old=old.value, new=state.value)

    # --- acquisition ---------------------------------------------------------------------
    def _begin(self, now: float) -> None:
        self._rebooting = False
        self.xid = self.rng.getrandbits(32)
        self._started = now
        self._tries = 0
        self.retransmits = 0
        self._offer_time = None
        self.offered = self.server_id = None
        self.server_mac = BROADCAST_MAC
        self._set_state(State.SELECTING, now)
        self._broadcast("discover", w.DISCOVER, now, requested=self.request_ip)
        self._backoff(now, 0)

    def _retransmit_discover(self, now: float) -> None:
        self._tries += 1
        self.retransmits += 1
        self._broadcast("discover", w.DISCOVER, now, requested=self.request_ip)
        self._backoff(now, self._tries)

    def _on_offer(self, now: float, reply: w.DhcpReply) -> str | None:
        offered = reply.yiaddr
        if offered in (ZERO_IP, BROADCAST_IP) or offered[0] >= 224:
            return "offer_bad_address"
        if reply.server_id is None:
            return "offer_without_server_id"
        self.last_seen = f"OFFER {ip_text(offered)} from {ip_text(reply.server_id)}"
        self._offer_time = now
        self.offered, self.server_id = offered, reply.server_id
        self.out.emit("dhcp.offer", now, ip=ip_text(offered), server=ip_text(reply.server_id))
        self._set_state(State.REQUESTING, now)
        self._tries = 0
        self._send_selecting_request(now)
        return None

    def _send_selecting_request(self, now: float) -> None:
        self._sent_request = now if self._tries == 0 else self._sent_request
        self._broadcast("request", w.REQUEST, now, requested=self.offered,
                        server=self.server_id)
        self._backoff(now, self._tries)

    def _retransmit_request(self, now: float) -> None:
        self._tries += 1
        self.retransmits += 1
        if self._tries >= REQUEST_TRIES:
            self.last_seen = "no ACK to REQUEST"
            self._set_state(State.INIT, now)
            self._begin(now)
            return
        if self.state is State.REBOOTING:
            self._broadcast("request", w.REQUEST, now, requested=self.address)
            self._backoff(now, self._tries)
        else:
            self._send_selecting_request(now)

    def _on_ack(self, now: float, reply: w.DhcpReply) -> str | None:
        if self.state is State.REQUESTING and reply.server_id not in (None, self.server_id):
            return "ack_from_other_server"
        lease = reply.u32(w.OPT_LEASE_TIME)
        if lease is None:
            return "ack_without_lease_time"
        if reply.yiaddr in (ZERO_IP, BROADCAST_IP):
            return "ack_bad_address"
        if self.state is State.REQUESTING and reply.yiaddr != self.offered:
            return "ack_for_other_address"
        self.last_seen = f"ACK {ip_text(reply.yiaddr)}"
        self.out.emit("dhcp.ack", now, ip=ip_text(reply.yiaddr))
        renewing = self.state in BOUND_STATES
        if reply.server_id is not None:
            self.server_id = reply.server_id
        elif self.server_id is None:
            self.server_id = reply.ip_src
        self.server_mac = reply.eth_src
        if renewing:
            self._naks = 0
            self._take_lease(reply, now)
            self._set_state(State.BOUND, now)
            self.out.emit("dhcp.renewed", now, ip=ip_text(reply.yiaddr), lease=self.lease["lease"])
            return None
        self._pending_ack = reply
        if self.fingerprint.arp_probe:
            self.offered = reply.yiaddr
            self._set_state(State.PROBING, now)
            self._probes_sent = 0
            self._probe_step(now)
        else:
            self._bind(now)
        return None

    def _take_lease(self, reply: w.DhcpReply, now: float) -> None:
        lease = reply.u32(w.OPT_LEASE_TIME) or 0
        t1, t2, total = _lease_times(lease, reply.u32(w.OPT_T1), reply.u32(w.OPT_T2))
        self.address = reply.yiaddr
        mask = reply.ip_option(w.OPT_SUBNET_MASK)
        self.lease = {
            "ip": ip_text(reply.yiaddr),
            "mask": ip_text(mask) if mask else None,
            "router": reply.ip_list(w.OPT_ROUTER),
            "dns": reply.ip_list(w.OPT_DNS),
            "domain": (reply.option(w.OPT_DOMAIN) or b"").decode("ascii", "replace") or None,
            "lease": lease, "t1": t1, "t2": t2,
            "server": ip_text(self.server_id) if self.server_id else None,
            "options": {code: value.hex() for code, value in sorted(reply.options.items())},
        }
        self._t1, self._t2 = now + t1 / self.scale, now + t2 / self.scale
        self._expiry = now + total / self.scale
        self._timer = self._t1

    def _bind(self, now: float) -> None:
        reply = self._pending_ack
        assert reply is not None
        self._pending_ack = None
        rebooted, self._rebooting = self._rebooting, False
        self._naks = 0
        self._take_lease(reply, now)
        self._set_state(State.BOUND, now)
        timings = {"total": now - self._started, "retransmits": self.retransmits}
        if self._offer_time is not None:
            timings["discover_to_offer"] = self._offer_time - self._started
        timings["request_to_ack"] = now - self._sent_request
        self.out.emit("dhcp.bound", now, rebooted=rebooted, **self.lease, **timings)
        # announce the address (RFC 5227 ARP announcement: sender = target = our IP)
        self.out.send(arp_frame(1, self.mac, reply.yiaddr, b"\x00" * 6, reply.yiaddr))

    # --- ARP check of the offered address ------------------------------------------------
    def _probe_step(self, now: float) -> None:
        if self._probes_sent < PROBE_COUNT:
            assert self.offered is not None
            self.out.send(arp_frame(1, self.mac, ZERO_IP, b"\x00" * 6, self.offered))
            self._probes_sent += 1
            wait = PROBE_INTERVAL if self._probes_sent < PROBE_COUNT else PROBE_WAIT
            self._timer = now + wait / self.scale
        else:
            self._bind(now)

    def _on_probe_arp(self, now: float, packet: ArpPacket) -> str | None:
        candidate = self.offered
        if packet.sender_mac == self.mac or packet.eth_src == self.mac:
            return "own_arp"
        in_use = packet.sender_ip == candidate or (
            packet.op == 1 and packet.sender_ip == ZERO_IP and packet.target_ip == candidate)
        if not in_use:
            return "arp_unrelated"
        assert candidate is not None and self.server_id is not None
        self.last_seen = f"ARP conflict on {ip_text(candidate)} with {mac_text(packet.sender_mac)}"
        self.out.emit("arp.conflict", now, ip=ip_text(candidate),
                      mac=mac_text(packet.sender_mac))
        self._broadcast("decline", w.DECLINE, now, requested=candidate, server=self.server_id,
                        fingerprint=False)
        self.out.emit("dhcp.declined", now, ip=ip_text(candidate))
        self._pending_ack = None
        self.offered = None
        self._set_state(State.INIT, now)
        self._timer = now + DECLINE_WAIT / self.scale
        return None

    # --- the lease's life -------------------------------------------------------------------
    def _bound_timer(self, now: float) -> None:
        if now >= self._expiry:
            self.out.emit("dhcp.expired", now, ip=self.lease.get("ip"))
            self.last_seen = "lease expired"
            self.address = None
            self._set_state(State.INIT, now)
            self._begin(now)
        elif now >= self._t2 and self.state is not State.REBINDING:
            self.xid = self.rng.getrandbits(32)
            self._set_state(State.REBINDING, now)
            self.out.emit("dhcp.rebinding", now, ip=self.lease.get("ip"))
            self._rebind_request(now)
        elif self.state is State.REBINDING:
            self._rebind_request(now)
        elif now >= self._t1:
            self._enter_renewing(now)

    def _enter_renewing(self, now: float) -> None:
        self.xid = self.rng.getrandbits(32)
        self._started = now
        self._set_state(State.RENEWING, now)
        self._unicast("request", w.REQUEST, now)
        wait = max((self._t2 - now) / 2, RENEW_MIN_WAIT / self.scale)
        self._timer = min(now + wait, self._t2)

    def _rebind_request(self, now: float) -> None:
        assert self.address is not None
        self._broadcast("request", w.REQUEST, now, ciaddr=self.address)
        wait = max((self._expiry - now) / 2, RENEW_MIN_WAIT / self.scale)
        self._timer = min(now + wait, self._expiry)

    def _on_nak(self, now: float, reply: w.DhcpReply) -> str | None:
        if self.state is State.REQUESTING and reply.server_id not in (None, self.server_id):
            return "nak_from_other_server"
        message = (reply.option(w.OPT_MESSAGE) or b"").decode("ascii", "replace")
        self.last_seen = "NAK" + (f" ({message})" if message else "")
        self.out.emit("dhcp.nak", now, message=message,
                      server=ip_text(reply.server_id) if reply.server_id else None)
        self.address = None
        self._set_state(State.INIT, now)
        self._naks += 1
        if self._naks == 1:
            self._begin(now)
        else:
            wait = min(2.0 ** (self._naks - 2), NAK_BACKOFF_MAX)
            self._timer = now + wait / self.scale
        return None

    def _release(self, now: float) -> None:
        self._unicast("release", w.RELEASE, now, server=self.server_id, fingerprint=False)
        self.out.emit("dhcp.released", now, ip=self.lease.get("ip"))
        self._set_state(State.STOPPED, now)
        self._timer = None

    def _reboot(self, now: float) -> None:
        self.xid = self.rng.getrandbits(32)
        self._started = now
        self._tries = 0
        self.retransmits = 0
        self._offer_time = None
        self._sent_request = now
        self._rebooting = True
        self._set_state(State.REBOOTING, now)
        self._broadcast("request", w.REQUEST, now, requested=self.address)
        self._backoff(now, 0)

    # --- for reports ------------------------------------------------------------------------
    def summary(self) -> dict:
        bound = self.state in BOUND_STATES
        return {"state": self.state.value, "ip": self.lease.get("ip") if bound else None,
                "last_seen": self.last_seen, "xid": self.xid}


def network_of(lease: dict) -> ipaddress.IPv4Network | None:
    if not lease.get("ip") or not lease.get("mask"):
        return None
    return ipaddress.IPv4Network(f"{lease['ip']}/{lease['mask']}", strict=False)
