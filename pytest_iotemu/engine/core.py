"""The engine's logic without I/O: a fleet of device cores, a timer heap, closed-loop
DHCP pacing, frame demultiplexing, commands and events. ``engine/main.py`` puts the raw
socket, stdin/stdout and the clock around it."""
from __future__ import annotations

import heapq
import random
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..profiles.model import CLIENT_ID_TYPES, DhcpFingerprint
from ..protocols import ArpCache, Counters, DeviceCore, LocalProtocolError, State
from ..protocols.dhcp_wire import peek_chaddr
from ..protocols.traffic import next_hop
from ..protocols.frames import BROADCAST_MAC, ip_bytes, ip_text, mac_bytes, mac_text
from ..spec.units import UnitError, parse_mac

VERSION = "0.1.0"
ACQUIRING = (State.SELECTING, State.REQUESTING, State.PROBING, State.REBOOTING, State.INIT)
# per-packet phases: reported only with verbosity >= 1 (kept off at scale)
PHASES = {"dhcp.discover", "dhcp.offer", "dhcp.request", "dhcp.ack", "dhcp.release",
          "dhcp.decline"}


class CommandError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Dev:
    name: str
    group: str
    mac: bytes
    core: DeviceCore
    started: float | None = None
    bound_at: float | None = None
    scheduled: float | None = None  # the deadline in the heap for this device
    ip: bytes | None = None  # its key in Engine.by_ip
    probe_ip: bytes | None = None  # its key in Engine.probing
    index: int = 0  # the device id carried in its flows' datagrams
    habits: list = field(default_factory=list)  # its traffic habits (profile protocols)
    threats: list = field(default_factory=list)  # its threat behaviours
    description: str = ""


@dataclass
class PendingFlow:
    """A flow command: its devices with their next hops, then its schedule."""

    job: int
    target: bytes
    port: int
    rate: float
    size: int
    duration: float
    tos: int
    created: float
    devices: list = field(default_factory=list)  # (Dev, hop address, source port)
    schedule: Any = None
    by_sender: dict = field(default_factory=dict)


# how many probes and flows keep their results for *_results (the oldest go first)
KEEP_RESULTS = 64
PROBE_PROTOS = ("tcp", "udp", "icmp")


@dataclass
class Pacer:
    """A window of outstanding DHCP acquisitions that grows while replies come back and
    halves on timeouts, under an optional rate cap (starts per second)."""

    window: float = 32.0
    minimum: float = 4.0
    maximum: float = 2048.0
    rate: float | None = None
    stagger: float = 0.0  # at least this long between two starts
    _tokens: float = 0.0
    _last: float | None = None
    _last_start: float | None = None

    ssthresh: float = 64.0  # slow start ends here (a DHCP server's socket holds ~100 frames)

    def grow(self) -> None:
        """One more per answer until the first loss (slow start), then one more per
        window's worth of answers (congestion avoidance), as TCP does."""
        step = 1.0 if self.window < self.ssthresh else 1.0 / self.window
        self.window = min(self.maximum, self.window + step)

    def shrink(self) -> None:
        self.ssthresh = max(self.minimum, self.window / 2.0)
        self.window = self.ssthresh

    def allowance(self, outstanding: int, now: float) -> int:
        room = int(self.window) - outstanding
        if self.stagger > 0:
            if self._last_start is not None and now - self._last_start < self.stagger:
                return 0
            room = min(room, 1)
        if self.rate is None:
            return max(room, 0)
        if self._last is None:
            self._last = now
            self._tokens = 1.0
        self._tokens = min(self.rate, self._tokens + (now - self._last) * self.rate)
        self._last = now
        return max(0, min(room, int(self._tokens)))

    def spend(self, count: int, now: float) -> None:
        if count:
            self._last_start = now
        if self.rate is not None:
            self._tokens -= count

    def next_start(self, now: float) -> float | None:
        """When a start may next be allowed by the rate cap or the stagger."""
        times = []
        if self.stagger > 0 and self._last_start is not None:
            times.append(self._last_start + self.stagger)
        if self.rate is not None and self._tokens < 1:
            times.append(now + (1 - self._tokens) / self.rate)
        return max(times) if times else None


@dataclass
class Engine:
    iface: str = ""
    time_scale: float = 1.0
    verbosity: int = 0
    seed: int = 0
    pacer: Pacer = field(default_factory=Pacer)
    devices: dict[bytes, Dev] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_name: dict[str, Dev] = {}
        self.by_ip: dict[bytes, Dev] = {}
        self.probing: dict[bytes, Dev] = {}
        self.heap: list[tuple[float, int, bytes]] = []
        self._tick = 0
        self.waiting: deque[bytes] = deque()  # started, not yet let through by the pacer
        self.waiting_set: set[bytes] = set()
        self.outstanding: set[bytes] = set()
        self.arp = ArpCache()
        self.frames: list[bytes] = []
        self.events: list[dict[str, Any]] = []
        self.latencies: list[float] = []
        self.counters: Counter = Counter()
        self.frame_counters = Counters()  # every device's accepted/ignored, fleet-wide
        self.state_counts: dict[str, Counter] = {}  # group -> state -> devices, kept current
        self.rng = random.Random(self.seed)
        self.stopping = False
        self._now = 0.0
        self._next_index = 1
        # probe and flow ids start at random, so the flows of two engine runs (or two
        # engines) never share an id at a target
        self._next_job = random.SystemRandom().randrange(1 << 20, 1 << 30)
        # probe or flow id -> {"expected": n, "results": {device: result}}
        self.probes: dict[int, dict[str, Any]] = {}
        self.flows: dict[int, dict[str, Any]] = {}
        # devices whose probes or flows wait for a neighbour's MAC: one ARP answer (to
        # whichever device asked) serves them all
        self.resolving: dict[bytes, Dev] = {}
        self.pending_flows: dict[int, PendingFlow] = {}
        self.app_counts: Counter = Counter()  # "<protocol>.<result>" -> exchanges
        self.threat_counts: Counter = Counter()  # "<behaviour>" -> runs, and per result
        # where flow datagrams go: the engine process sends them straight to its socket
        # (the buffer is reused, so a sink must consume it at once); here, a copy is kept
        self.flow_sink = lambda frame: self.frames.append(bytes(frame))
        self.on_flow_sent = lambda frames, size: None  # told what the flows sent, per wake

    # --- commands -----------------------------------------------------------------------
    def command(self, cmd: str, args: dict[str, Any], now: float) -> dict[str, Any]:
        handler = getattr(self, f"cmd_{cmd}", None)
        if handler is None:
            raise CommandError("unknown_command", f"unknown command {cmd!r}; commands: "
                               + ", ".join(sorted(n[4:] for n in dir(self)
                                                  if n.startswith("cmd_"))))
        return handler(args, now) or {}

    def cmd_hello(self, args: dict, now: float) -> dict:
        if "verbosity" in args:
            self.verbosity = _int(args, "verbosity", 0, 2)
        if "time_scale" in args:
            scale = args["time_scale"]
            if not isinstance(scale, (int, float)) or scale <= 0:
                raise CommandError("bad_argument", "time_scale: a number above zero")
            self.time_scale = float(scale)
        if "window" in args:
            self.pacer.window = float(_int(args, "window", 1, 100000))
        if "stagger" in args:
            stagger = args["stagger"]
            if not isinstance(stagger, (int, float)) or stagger < 0:
                raise CommandError("bad_argument", "stagger: seconds, zero or more")
            self.pacer.stagger = float(stagger)
        if "rate" in args:
            rate = args["rate"]
            if rate is not None and (not isinstance(rate, (int, float)) or rate <= 0):
                raise CommandError("bad_argument", "rate: starts per second above zero, or null")
            self.pacer.rate = rate
        return {"engine": VERSION, "iface": self.iface, "devices": len(self.devices),
                "time_scale": self.time_scale, "verbosity": self.verbosity,
                "window": self.pacer.window, "rate": self.pacer.rate,
                "stagger": self.pacer.stagger}

    def cmd_add_devices(self, args: dict, now: float) -> dict:
        entries = args.get("devices")
        if not isinstance(entries, list) or not entries:
            raise CommandError("bad_argument", "devices: a non-empty list of device objects")
        new: list[Dev] = []
        seen_names = set(self.by_name)
        seen_macs = set(self.devices)
        for i, entry in enumerate(entries):
            dev = self._make_device(entry, i)
            if dev.mac in seen_macs:
                raise CommandError("duplicate", f"devices[{i}]: MAC {mac_text(dev.mac)} is "
                                   "already in the engine")
            if dev.name in seen_names:
                raise CommandError("duplicate", f"devices[{i}]: name {dev.name!r} is already "
                                   "in the engine")
            seen_macs.add(dev.mac)
            seen_names.add(dev.name)
            new.append(dev)
        for dev in new:  # all or nothing
            self.devices[dev.mac] = dev
            self.by_name[dev.name] = dev
            self.state_counts.setdefault(dev.group, Counter())[State.INIT.value] += 1
        return {"added": len(new), "devices": len(self.devices)}

    def _make_device(self, entry: Any, i: int) -> Dev:
        if not isinstance(entry, dict):
            raise CommandError("bad_argument", f"devices[{i}]: an object")
        name, group = entry.get("name"), entry.get("group", "")
        if not isinstance(name, str) or not name or not isinstance(group, str):
            raise CommandError("bad_argument", f"devices[{i}]: name (text) is required")
        try:
            mac = mac_bytes(parse_mac(entry.get("mac")))
        except UnitError as exc:
            raise CommandError("bad_argument", f"devices[{i}].mac: expected {exc}") from None
        dhcp = entry.get("dhcp") or {}
        try:
            prl = tuple(int(c) for c in dhcp.get("param_request_list", (1, 3, 6)))
            if not prl or any(not 1 <= c <= 254 for c in prl):
                raise ValueError
            client_id = dhcp.get("client_id", "mac")
            if client_id not in CLIENT_ID_TYPES:
                raise ValueError
            fingerprint = DhcpFingerprint(
                param_request_list=prl, vendor_class=dhcp.get("vendor_class"),
                client_id=client_id, max_message_size=dhcp.get("max_message_size"),
                fqdn=bool(dhcp.get("fqdn", False)), broadcast=bool(dhcp.get("broadcast", False)),
                arp_probe=bool(dhcp.get("arp_probe", False)))
            request_ip = ip_bytes(entry["request_ip"]) if entry.get("request_ip") else None
        except (TypeError, ValueError, AttributeError):
            raise CommandError("bad_argument", f"devices[{i}].dhcp: a fingerprint object "
                               "(param_request_list of codes 1-254, client_id none|mac|duid)") \
                from None
        hostname = entry.get("hostname")
        # one generator for the whole fleet (a Random per device costs ~3 KB: 30 MB at
        # 10,000 devices); xids and jitter need no per-device stream
        index, self._next_index = self._next_index, self._next_index + 1
        core = DeviceCore(mac, fingerprint, hostname=hostname, request_ip=request_ip,
                          rng=self.rng, time_scale=self.time_scale, arp_cache=self.arp,
                          name=name, counters=self.frame_counters, device_id=index)
        habits = entry.get("protocols") or []
        threats = entry.get("threats") or []
        if not isinstance(habits, list) or not all(isinstance(h, dict) and "name" in h
                                                   for h in habits):
            raise CommandError("bad_argument", f"devices[{i}].protocols: a list of "
                               "{name, interval, to, …} objects")
        from ..protocols.generators import BEHAVIOURS
        if not isinstance(threats, list) or any(t not in BEHAVIOURS + ("random",)
                                                for t in threats):
            raise CommandError("bad_argument", f"devices[{i}].threats: some of "
                               + ", ".join(BEHAVIOURS + ("random",)))
        return Dev(name, group, mac, core, index=index, habits=habits, threats=threats,
                   description=str(entry.get("description") or ""))

    def select(self, args: dict) -> list[Dev]:
        """Devices named by ``devices: [names]``, ``group: name`` or all of them."""
        if "devices" in args:
            names = args["devices"]
            if not isinstance(names, list):
                raise CommandError("bad_argument", "devices: a list of device names")
            missing = [n for n in names if n not in self.by_name]
            if missing:
                raise CommandError("unknown_device", f"unknown devices: {', '.join(map(str, missing[:5]))}")
            return [self.by_name[n] for n in names]
        if "group" in args:
            chosen = [d for d in self.devices.values() if d.group == args["group"]]
            if not chosen:
                raise CommandError("unknown_group", f"no devices in group {args['group']!r}")
            return chosen
        return list(self.devices.values())

    def cmd_start(self, args: dict, now: float) -> dict:
        count = 0
        for dev in self.select(args):
            if dev.core.dhcp.state in (State.INIT, State.STOPPED) and dev.mac not in \
                    self.outstanding and dev.mac not in self.waiting_set:
                self.waiting.append(dev.mac)
                self.waiting_set.add(dev.mac)
                count += 1
        self.pace(now)
        return {"starting": count}

    def cmd_stop(self, args: dict, now: float) -> dict:
        devices = self.select(args)
        for dev in devices:
            self._drop_waiting(dev)
            dev.core.dhcp.stop(now)
            self._after(dev, now)
        return {"stopped": len(devices)}

    def cmd_remove(self, args: dict, now: float) -> dict:
        devices = self.select(args)
        for dev in devices:
            self._drop_waiting(dev)
            dev.core.dhcp.stop(now)
            self._after(dev, now)
            self._forget_address(dev)
            del self.devices[dev.mac]
            del self.by_name[dev.name]
            counts = self.state_counts[dev.group]
            counts[dev.core.dhcp.state.value] -= 1
            if not +counts:
                del self.state_counts[dev.group]
        return {"removed": len(devices), "devices": len(self.devices)}

    def _per_device(self, args: dict, now: float, action: str) -> dict:
        done, errors = 0, []
        for dev in self.select(args):
            try:
                getattr(dev.core.dhcp, action)(now)
                done += 1
            except LocalProtocolError as exc:
                errors.append(str(exc))
            self._after(dev, now)
        if errors and not done:
            raise CommandError("bad_state", "; ".join(errors[:5]))
        return {action: done, "refused": errors[:20]}

    def cmd_renew(self, args: dict, now: float) -> dict:
        return self._per_device(args, now, "renew")

    def cmd_release(self, args: dict, now: float) -> dict:
        return self._per_device(args, now, "release")

    def cmd_reboot(self, args: dict, now: float) -> dict:
        return self._per_device(args, now, "reboot")

    def cmd_ping(self, args: dict, now: float) -> dict:
        dev = self.by_name.get(args.get("device"))
        if dev is None:
            raise CommandError("unknown_device", f"unknown device {args.get('device')!r}")
        try:
            target = ip_bytes(str(args["target"]))
        except (KeyError, ValueError):
            raise CommandError("bad_argument", "target: an IPv4 address") from None
        if dev.core.address is None:
            raise CommandError("bad_state", f"{dev.name} is not bound")
        lease = dev.core.dhcp.lease
        routers = lease.get("router") or []
        hop = target
        import ipaddress
        from ..protocols.dhcp import network_of
        net = network_of(lease)
        if net is None or ipaddress.IPv4Address(target) not in net:
            if not routers:
                raise CommandError("no_route", f"{dev.name} has no router for {ip_text(target)}")
            hop = ip_bytes(routers[0])
        hop_mac = self.arp.lookup(hop, now)
        if hop_mac is None:
            from ..protocols.arp import request_for
            self.frames.append(request_for(dev.mac, dev.core.address, hop))
            raise CommandError("resolving", f"resolving {ip_text(hop)}; try again shortly")
        seq = dev.core.pinger.ping(dev.core.address, target, hop_mac, now)
        self._after(dev, now)
        return {"seq": seq}

    # --- traffic: probes and flows ----------------------------------------------------------
    def _target(self, args: dict) -> tuple[bytes, int]:
        try:
            target = ip_bytes(str(args["target"]))
            if len(target) != 4:
                raise ValueError
        except (KeyError, ValueError):
            raise CommandError("bad_argument", "target: an IPv4 address") from None
        port = args.get("port", 0)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise CommandError("bad_argument", "port: 0 to 65535")
        return target, port

    def _new_job(self, table: dict[int, dict[str, Any]], devices: list[Dev],
                 extra: dict[str, Any]) -> tuple[int, list[Dev], list[str]]:
        self._next_job += 1
        job = self._next_job
        bound = [d for d in devices if d.core.address is not None]
        not_bound = [d.name for d in devices if d.core.address is None]
        table[job] = {"expected": len(bound), "results": {}, **extra}
        while len(table) > KEEP_RESULTS:
            del table[min(table)]
        return job, bound, not_bound

    def cmd_probe(self, args: dict, now: float) -> dict:
        """Probe ``target:port`` over ``proto`` from each selected bound device; results
        come as ``device.probe`` events and from ``probe_results``."""
        target, port = self._target(args)
        proto = args.get("proto", "tcp")
        if proto not in PROBE_PROTOS:
            raise CommandError("bad_argument", "proto: tcp, udp or icmp")
        if proto != "icmp" and not port:
            raise CommandError("bad_argument", f"port: 1 to 65535 for {proto}")
        timeout = args.get("timeout", 3.0)
        if not isinstance(timeout, (int, float)) or not 0.1 <= timeout <= 60:
            raise CommandError("bad_argument", "timeout: 0.1 to 60 seconds")
        job, bound, not_bound = self._new_job(self.probes, self.select(args),
                                              {"target": ip_text(target), "port": port,
                                               "proto": proto})
        for dev in bound:
            dev.core.traffic.probe(job, proto, target, port, dev.core.address,
                                   dev.core.dhcp.lease, now, timeout=float(timeout))
            self._track_resolving(dev)
            self._after(dev, now)
        return {"probe": job, "started": len(bound), "not_bound": not_bound}

    def cmd_flow(self, args: dict, now: float) -> dict:
        """A sequence-numbered UDP flow from each selected bound device to
        ``target:port``: ``rate`` payload bit/s in ``size``-byte datagrams for
        ``duration`` seconds, IP TOS ``tos``; all devices on one schedule."""
        from ..protocols.flows import MAX_SIZE, MIN_SIZE
        target, port = self._target(args)
        if not port:
            raise CommandError("bad_argument", "port: 1 to 65535")
        rate, size, duration = args.get("rate"), args.get("size", 1000), args.get("duration")
        if not isinstance(rate, (int, float)) or not 1000 <= rate <= 10e9:
            raise CommandError("bad_argument", "rate: payload bit/s, 1000 to 10e9")
        if not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
            raise CommandError("bad_argument", f"size: {MIN_SIZE} to {MAX_SIZE} bytes")
        if not isinstance(duration, (int, float)) or not 0 < duration <= 86400:
            raise CommandError("bad_argument", "duration: seconds above zero (a day at most)")
        tos = _int(args, "tos", 0, 255) if "tos" in args else 0
        job, bound, not_bound = self._new_job(self.flows, self.select(args),
                                              {"target": ip_text(target), "port": port})
        flow = PendingFlow(job, target, port, float(rate), size, float(duration), tos, now)
        for dev in bound:
            hop = next_hop(target, dev.core.dhcp.lease)
            if hop is None:
                self.flows[job]["results"][dev.name] = {"sent": 0, "bytes": 0,
                                                        "error": "no_route"}
                continue
            flow.devices.append((dev, hop[0], dev.core.traffic.next_port()))
        self.pending_flows[job] = flow
        self._advance_flows(now)
        return {"flow": job, "started": len(bound), "not_bound": not_bound,
                "devices": {d.name: {"id": d.index, "ip": ip_text(d.core.address)}
                            for d in bound}}

    def _advance_flows(self, now: float) -> None:
        """Start the flows whose next hops are known (asking once a second for the others,
        giving up after 3 s), and drop the finished ones."""
        from ..protocols.arp import request_for
        from ..protocols.flows import FlowSchedule, FlowSender
        for job, flow in list(self.pending_flows.items()):
            if flow.schedule is not None:
                if flow.schedule.done:
                    self._flow_done(flow, now)
                continue
            missing = {}
            for dev, hop, _port in flow.devices:
                if self.arp.lookup(hop, now) is None:
                    missing.setdefault(hop, dev)
            if missing and now - flow.created < 3.0:
                for hop, dev in missing.items():
                    if self.arp.needs_request(hop, now) and dev.core.address is not None:
                        self.frames.append(request_for(dev.mac, dev.core.address, hop))
                continue
            senders = []
            for dev, hop, sport in flow.devices:
                mac = self.arp.lookup(hop, now)
                if mac is None or dev.core.address is None:
                    self.flows.get(job, {"results": {}})["results"][dev.name] = {
                        "sent": 0, "bytes": 0, "error": "unresolved"}
                    continue
                sender = FlowSender(job, dev.index, dev.mac, dev.core.address, sport,
                                    flow.target, flow.port, mac, size=flow.size, tos=flow.tos)
                senders.append(sender)
                flow.by_sender[id(sender)] = dev
            flow.schedule = FlowSchedule(senders, rate=flow.rate, size=flow.size,
                                         duration=flow.duration, start=now)
            if not senders:
                self._flow_done(flow, now)

    def _flow_done(self, flow: "PendingFlow", now: float) -> None:
        del self.pending_flows[flow.job]
        entry = self.flows.get(flow.job)
        schedule = flow.schedule
        # from the first datagram to the last: the rate the engine actually kept
        elapsed = round((schedule.last_sent_at or now) - schedule.start, 6) if schedule else 0
        for sender in schedule.senders if schedule else []:
            dev = flow.by_sender[id(sender)]
            result = {"sent": sender.sent, "bytes": sender.bytes, "elapsed": elapsed}
            if entry is not None:
                entry["results"][dev.name] = result
            self.counters["flow.done"] += 1
            self.events.append({"type": "device.flow", "device": dev.name, "group": dev.group,
                                "flow": flow.job, "target": ip_text(flow.target),
                                "port": flow.port, **result})

    def _run_flows(self, now: float) -> None:
        for flow in list(self.pending_flows.values()):
            schedule = flow.schedule
            if schedule is not None and not schedule.done:
                before = schedule.handed
                schedule.on_timer(now, self.flow_sink)
                sent = schedule.handed - before
                if sent:
                    self.on_flow_sent(sent, sent * (flow.size + 42))
        self._advance_flows(now)

    def _flow_deadline(self) -> float | None:
        best = None
        for flow in self.pending_flows.values():
            when = flow.schedule.next_timer() if flow.schedule is not None else \
                self._now + 0.05  # waiting for ARP: look again shortly
            if when is None:
                when = self._now  # done: to be collected
            if best is None or when < best:
                best = when
        return best

    def _track_resolving(self, dev: Dev) -> None:
        if dev.core.traffic.resolving():
            self.resolving[dev.mac] = dev
        else:
            self.resolving.pop(dev.mac, None)

    def _kick_resolving(self, now: float) -> None:
        for dev in list(self.resolving.values()):
            dev.core.traffic.on_arp(now)
            self._track_resolving(dev)
            self._after(dev, now)

    def _results(self, table: dict[int, dict[str, Any]], args: dict, what: str) -> dict:
        job = args.get(what)
        if job not in table:
            raise CommandError("unknown_" + what, f"no {what} {job!r} (kept: the last "
                               f"{KEEP_RESULTS})")
        entry = table[job]
        return {what: job, "done": len(entry["results"]) >= entry["expected"],
                "results": entry["results"]}

    def cmd_probe_results(self, args: dict, now: float) -> dict:
        return self._results(self.probes, args, "probe")

    def cmd_flow_results(self, args: dict, now: float) -> dict:
        return self._results(self.flows, args, "flow")

    def cmd_apps(self, args: dict, now: float) -> dict:
        """Start (``action: start``, the default) or stop each selected device's traffic
        generators: its habits and threat behaviours. ``targets`` names the site's
        targets: ``{name: {host, tcp, udp}}`` (host: a DNS name or an address)."""
        from ..protocols.generators import Apps
        action = args.get("action", "start")
        if action not in ("start", "stop"):
            raise CommandError("bad_argument", "action: start or stop")
        targets = args.get("targets") or {}
        if not isinstance(targets, dict):
            raise CommandError("bad_argument", "targets: {name: {host, tcp, udp}}")
        count = 0
        for dev in self.select(args):
            if action == "stop":
                if dev.core.apps is not None:
                    dev.core.apps.stop()
                    count += 1
                continue
            if not dev.habits and not dev.threats:
                continue
            if dev.core.apps is None:
                dev.core.apps = Apps(dev.core, dev.habits, dev.threats, targets, self.rng,
                                     hostname=dev.core.dhcp.hostname or dev.name,
                                     description=dev.description)
            dev.core.apps.start(now)
            self._after(dev, now)
            count += 1
        return {action: count}

    def cmd_stats(self, args: dict, now: float) -> dict:
        return self.stats()

    def cmd_devices(self, args: dict, now: float) -> dict:
        self._now = now
        return {"devices": [self.describe(d) for d in self.select(args)]}

    def cmd_shutdown(self, args: dict, now: float) -> dict:
        released = self.release_all(now)
        self.stopping = True
        return {"released": released}

    def release_all(self, now: float) -> int:
        count = 0
        for dev in self.devices.values():
            if dev.core.dhcp.state in (State.BOUND, State.RENEWING, State.REBINDING):
                count += 1
            if dev.core.dhcp.state is not State.STOPPED:
                dev.core.dhcp.stop(now)
                self._after(dev, now)
        self.waiting.clear()
        self.waiting_set.clear()
        return count

    def describe(self, dev: Dev) -> dict:
        summary = dev.core.dhcp.summary()
        bound = summary["ip"] is not None
        return {"name": dev.name, "group": dev.group, "mac": mac_text(dev.mac),
                "state": summary["state"], "ip": summary["ip"],
                "last_seen": summary["last_seen"],
                "retransmits": dev.core.dhcp.retransmits,
                "bound_after": (dev.bound_at - dev.started) if dev.bound_at is not None
                and dev.started is not None else None,
                "started_ago": (self._now - dev.started) if dev.started is not None else None,
                "lease": dict(dev.core.dhcp.lease) if bound else None}

    # --- pacing and timers ----------------------------------------------------------------
    def _drop_waiting(self, dev: Dev) -> None:
        if dev.mac in self.waiting_set:
            self.waiting_set.discard(dev.mac)
            self.waiting.remove(dev.mac)
        self.outstanding.discard(dev.mac)

    def pace(self, now: float) -> None:
        self._now = now
        allowed = self.pacer.allowance(len(self.outstanding), now)
        started = 0
        while self.waiting and started < allowed:
            mac = self.waiting.popleft()
            self.waiting_set.discard(mac)
            dev = self.devices.get(mac)
            if dev is None:
                continue
            dev.started, dev.bound_at = now, None
            self.outstanding.add(dev.mac)
            dev.core.dhcp.start(now)
            self._after(dev, now)
            started += 1
        self.pacer.spend(started, now)

    def next_deadline(self) -> float | None:
        pacing = None
        if self.waiting and len(self.outstanding) < int(self.pacer.window):
            pacing = self.pacer.next_start(self._now)
        device = self._next_device_deadline()
        if self.pending_flows:
            flows = self._flow_deadline()
            device = flows if device is None or (flows is not None and flows < device) \
                else device
        if pacing is None or (device is not None and device < pacing):
            return device
        return pacing

    def _next_device_deadline(self) -> float | None:
        while self.heap:
            deadline, _, mac = self.heap[0]
            dev = self.devices.get(mac)
            if dev is not None and dev.scheduled == deadline:
                return deadline
            heapq.heappop(self.heap)  # stale
        return None

    # devices woken per call at most: an overloaded fleet (streams it cannot keep up
    # with) must still let the engine read its commands and send its heartbeat
    TIMER_BUDGET = 5000

    def on_timers(self, now: float) -> None:
        woken = 0
        while self.heap and self.heap[0][0] <= now and woken < self.TIMER_BUDGET:
            deadline, _, mac = heapq.heappop(self.heap)
            dev = self.devices.get(mac)
            if dev is None or dev.scheduled != deadline:
                continue
            dev.scheduled = None
            woken += 1
            before = dev.core.dhcp.retransmits
            dev.core.on_timer(now)
            if dev.core.dhcp.retransmits > before:
                self.pacer.shrink()
                self.counters["retransmits"] += dev.core.dhcp.retransmits - before
            self._after(dev, now)
        if self.pending_flows:
            self._run_flows(now)
        self.pace(now)

    def _schedule(self, dev: Dev) -> None:
        deadline = dev.core.next_timer()
        if deadline is not None and deadline != dev.scheduled:
            dev.scheduled = deadline
            self._tick += 1
            heapq.heappush(self.heap, (deadline, self._tick, dev.mac))
        elif deadline is None:
            dev.scheduled = None

    # --- frames ----------------------------------------------------------------------------
    def on_frame(self, frame: bytes, unfilled: bool, now: float) -> None:
        self.counters["frames_in"] += 1
        dst = frame[0:6]
        dev = self.devices.get(dst)
        if dev is None and dst == BROADCAST_MAC and len(frame) >= 42:
            if frame[12:14] == b"\x08\x06":  # ARP: for whom?
                self._arp_broadcast(frame, now)
                return
            chaddr = peek_chaddr(frame)
            dev = self.devices.get(chaddr) if chaddr else None
        if dev is None:
            self.counters["frames_not_ours"] += 1
            return
        dev.core.receive(frame, now, unfilled)
        self._after(dev, now)
        if frame[12:14] == b"\x08\x06":
            if self.resolving:
                self._kick_resolving(now)
            if self.pending_flows:
                self._advance_flows(now)

    def _arp_broadcast(self, frame: bytes, now: float) -> None:
        from ..protocols.frames import Malformed, parse_arp
        try:
            packet = parse_arp(frame)
        except Malformed:
            self.counters["arp_malformed"] += 1
            return
        self.arp.learn(packet, now)
        if self.resolving:
            self._kick_resolving(now)
        if self.pending_flows:
            self._advance_flows(now)
        targets = []
        for ip in (packet.target_ip, packet.sender_ip):
            dev = self.probing.get(ip)
            if dev is not None and dev not in targets:
                targets.append(dev)
        dev = self.by_ip.get(packet.target_ip)
        if dev is not None and dev not in targets:
            targets.append(dev)
        for dev in targets:
            if dev.mac == packet.sender_mac:
                continue
            dev.core.receive(frame, now)
            self._after(dev, now)

    # --- bookkeeping after a device acted ----------------------------------------------------
    def _forget_address(self, dev: Dev) -> None:
        self._unindex(dev)
        self._forget_probe(dev)

    def _unindex(self, dev: Dev) -> None:
        if dev.ip is not None and self.by_ip.get(dev.ip) is dev:
            del self.by_ip[dev.ip]
        dev.ip = None

    def _after(self, dev: Dev, now: float) -> None:
        out = dev.core.out
        if out.frames:
            self.frames.extend(out.take_frames())
        for event in out.take_events():
            self._translate(dev, event.type, event.time, event.data)
        self._schedule(dev)

    def _translate(self, dev: Dev, kind: str, when: float, data: dict) -> None:
        if kind == "dhcp.state":
            new = data["new"]
            counts = self.state_counts[dev.group]
            counts[data["old"]] -= 1
            counts[new] += 1
            if new == "PROBING" and dev.core.dhcp.offered:
                self.probing[dev.core.dhcp.offered] = dev
                dev.probe_ip = dev.core.dhcp.offered
                # the server has answered: the probe costs it nothing, free the slot
                if dev.mac in self.outstanding:
                    self.outstanding.discard(dev.mac)
                    self.pacer.grow()
            elif data["old"] == "PROBING":
                self._forget_probe(dev)
            if new in ("INIT", "STOPPED", "SELECTING"):
                self._unindex(dev)
            if new == "STOPPED":
                self.outstanding.discard(dev.mac)
            return
        if kind == "dhcp.bound":
            self._unindex(dev)
            dev.ip = ip_bytes(data["ip"])
            self.by_ip[dev.ip] = dev
            if dev.mac in self.outstanding:
                self.outstanding.discard(dev.mac)
                self.pacer.grow()
            if dev.bound_at is None and dev.started is not None:
                dev.bound_at = when
                self.latencies.append(when - dev.started)
        elif kind in ("app.result", "threat"):
            if kind == "app.result":
                self.app_counts[f"{data['protocol']}.{data['result']}"] += 1
                if data.get("threat"):
                    self.threat_counts[f"{data['threat']}.{data['result']}"] += 1
            else:
                self.threat_counts[data["behaviour"]] += 1
            self.events.append({"type": "device.app" if kind == "app.result"
                                else "device.threat", "device": dev.name, "group": dev.group,
                                **data})
            return
        elif kind == "probe.result":
            entry = self.probes.get(data["probe"])
            if entry is not None:
                entry["results"][dev.name] = {k: v for k, v in data.items() if k != "probe"}
            self.counters[kind] += 1
            self.events.append({"type": "device.probe", "device": dev.name,
                                "group": dev.group, **data})
            return
        elif kind in ("dhcp.expired", "dhcp.nak", "dhcp.declined"):
            if dev.mac not in self.outstanding and kind != "dhcp.declined":
                dev.started, dev.bound_at = when, None
            self.outstanding.add(dev.mac)
        self.counters[kind] += 1
        if kind in PHASES and self.verbosity < 1:
            return
        self.events.append({"type": f"device.{kind}", "device": dev.name,
                            "group": dev.group, **data})

    def _forget_probe(self, dev: Dev) -> None:
        if dev.probe_ip is not None and self.probing.get(dev.probe_ip) is dev:
            del self.probing[dev.probe_ip]
        dev.probe_ip = None

    def take_frames(self) -> list[bytes]:
        frames, self.frames = self.frames, []
        return frames

    def take_events(self) -> list[dict[str, Any]]:
        events, self.events = self.events, []
        return events

    # --- stats ------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Kept current as devices change state, so a snapshot costs the number of groups,
        not the number of devices."""
        groups = {g: {s: n for s, n in c.items() if n} for g, c in self.state_counts.items()}
        states: Counter = Counter()
        for counts in groups.values():
            states.update(counts)
        ignored = {k[8:]: v for k, v in self.frame_counters.items() if k.startswith("ignored.")}
        return {
            "devices": len(self.devices), "states": dict(states), "groups": groups,
            "bound": states.get("BOUND", 0) + states.get("RENEWING", 0)
            + states.get("REBINDING", 0),
            "outstanding": len(self.outstanding), "waiting": len(self.waiting),
            "window": self.pacer.window, "latency": percentiles(self.latencies),
            "counters": dict(self.counters), "ignored": ignored,
            "apps": dict(self.app_counts), "threats": dict(self.threat_counts),
        }


# upper edges (seconds) of the latency histogram's buckets; the last one is open
HISTOGRAM_EDGES = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


def percentiles(values: Iterable[float]) -> dict[str, Any]:
    """Count, p50/p95/p99/max and a histogram (counts per bucket of HISTOGRAM_EDGES, and
    one more for everything above the last edge)."""
    import bisect
    data = sorted(values)
    counts = [0] * (len(HISTOGRAM_EDGES) + 1)
    for value in data:
        counts[bisect.bisect_left(HISTOGRAM_EDGES, value)] += 1
    histogram = {"edges": list(HISTOGRAM_EDGES), "counts": counts}
    if not data:
        return {"count": 0, "p50": None, "p95": None, "p99": None, "max": None,
                "histogram": histogram}

    def pick(q: float) -> float:
        return round(data[min(len(data) - 1, int(q * len(data)))], 6)

    return {"count": len(data), "p50": pick(0.5), "p95": pick(0.95), "p99": pick(0.99),
            "max": round(data[-1], 6), "histogram": histogram}


def _int(args: dict, key: str, low: int, high: int) -> int:
    value = args.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise CommandError("bad_argument", f"{key}: a whole number from {low} to {high}")
    return value
