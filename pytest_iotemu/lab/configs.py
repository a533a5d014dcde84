"""Daemon configurations generated from a lab plan (pure: text and argument lists).

Both DHCP servers get the same pools from the one classification function: every fleet
MAC carries its pool's tag (dnsmasq ``dhcp-host=MAC,set:TAG``; Kea host reservations
with a client class), and each pool only serves its tag, so both servers put the same
device in the same pool.
"""
from __future__ import annotations

import json
from pathlib import Path

from .plan import LabPlan


def dnsmasq_dhcp_args(plan: LabPlan, run_dir: Path) -> list[str]:
    """dnsmasq as the DHCP server only (DNS is a separate instance): no ping before
    offering (``--no-ping``), no system config (``-C /dev/null``), per-run files."""
    hosts = run_dir / "dnsmasq-hosts"  # a directory: dnsmasq watches it (inotify)
    args = [
        "dnsmasq", "--keep-in-foreground", "-C", "/dev/null", "--no-resolv", "--no-hosts",
        "--port=0", "--no-ping", "--dhcp-authoritative", "--interface=lan0",
        "--bind-interfaces", "--log-dhcp", "--quiet-dhcp",
        f"--dhcp-leasefile={run_dir / 'dnsmasq.leases'}",
        f"--pid-file={run_dir / 'dnsmasq.pid'}",
        f"--log-facility={run_dir / 'dnsmasq.log'}",
        f"--dhcp-hostsdir={hosts}",
        f"--dhcp-option=option:router,{plan.gateway}",
        f"--dhcp-option=option:dns-server,{plan.gateway}",
        f"--dhcp-option=option:ntp-server,{plan.gateway}",
        f"--dhcp-lease-max={max(1000, 2 * sum(len(p.macs) for p in plan.pools))}",
    ]
    if plan.domain:
        args.append(f"--domain={plan.domain}")
    mask = plan.lan.netmask
    for pool in plan.pools:
        tag = "" if _serves_everyone(plan, pool) else f"tag:{pool.tag},"
        args.append(f"--dhcp-range={tag}{pool.first},{pool.last},{mask},{plan.lease_time}s")
    return args


def _serves_everyone(plan: LabPlan, pool) -> bool:
    """A site whose only pool is the catch-all needs no classification: that pool also
    serves MACs outside the fleet (a reference load generator such as perfdhcp)."""
    return len(plan.pools) == 1 and pool.catch_all


def dnsmasq_hosts(plan: LabPlan, only: set[str] | None = None) -> str:
    """A hosts file: each fleet MAC tagged with its pool (``only``: just these MACs);
    static devices reserved."""
    lines = [f"{mac},set:{pool.tag}" for pool in plan.pools for mac in pool.macs
             if only is None or mac in only]
    if only is not None:
        return "\n".join(lines) + "\n"
    for res in plan.reservations:
        name = f",{res.hostname}" if res.hostname else ""
        lines.append(f"{res.mac},{res.address}{name},infinite")
    return "\n".join(lines) + "\n"


# Palo Alto Networks' published test domains (DNS Security) and the URL-filtering test
# site: the lab answers them with its sinkhole host, so the requests that follow have
# somewhere to go (and a branch's DNS security can be seen to intercept them)
PAN_TEST_DOMAINS = (
    "test-malware.testpanw.com", "test-phishing.testpanw.com", "test-c2.testpanw.com",
    "test-dnstun.testpanw.com", "test-dga.testpanw.com", "test-ddns.testpanw.com",
    "test-nrd.testpanw.com", "test-grayware.testpanw.com", "test-parked.testpanw.com",
    "test-proxy.testpanw.com",
)
PAN_TEST_URLS = tuple(f"http://urlfiltering.paloaltonetworks.com/{path}" for path in (
    "test-malware", "test-phishing", "test-command-and-control", "test-grayware",
    "test-proxy-avoidance"))
SINKHOLED = ("testpanw.com", "urlfiltering.paloaltonetworks.com")


def dnsmasq_dns_args(plan: LabPlan, run_dir: Path) -> list[str]:
    """dnsmasq as the lab's resolver: the lab's names (targets, the gateway); the
    security-test domains to the sinkhole host; every other name to the cloud's services
    host (so a device's `ntp.example` or `mqtt.vendor.example` reaches a real peer).
    It never forwards (``--no-resolv``) and logs every query with its source."""
    args = [
        "dnsmasq", "--keep-in-foreground", "-C", "/dev/null", "--no-resolv", "--no-hosts",
        f"--listen-address={plan.gateway}", "--bind-interfaces",
        "--local=/#/", f"--pid-file={run_dir / 'dns.pid'}",
        f"--log-facility={run_dir / 'dns.log'}", "--log-queries",
    ]
    for name, address in plan.dns_records:
        args.append(f"--host-record={name},{address}")
    if plan.sinkhole is not None:
        args += [f"--address=/{domain}/{plan.sinkhole}" for domain in SINKHOLED]
    if plan.services is not None:
        args.append(f"--address=/#/{plan.services}")
    return args


def kea_config(plan: LabPlan, run_dir: Path) -> dict:
    """Kea DHCPv4: one subnet, one pool per lab pool restricted to its class, classes
    given to each fleet MAC by a host reservation (per-run lease file and logs)."""
    reservations = []
    for pool in plan.pools:
        for mac in pool.macs:
            reservations.append({"hw-address": mac, "client-classes": [pool.tag]})
    for res in plan.reservations:
        entry = {"hw-address": res.mac, "ip-address": str(res.address)}
        if res.hostname:
            entry["hostname"] = res.hostname
        reservations.append(entry)
    options = [
        {"name": "routers", "data": str(plan.gateway)},
        {"name": "domain-name-servers", "data": str(plan.gateway)},
        {"name": "ntp-servers", "data": str(plan.gateway)},
    ]
    if plan.domain:
        options.append({"name": "domain-name", "data": plan.domain})
    return {"Dhcp4": {
        "interfaces-config": {"interfaces": ["lan0"], "dhcp-socket-type": "raw"},
        "lease-database": {"type": "memfile", "persist": True, "lfc-interval": 0,
                           "name": str(run_dir / "kea-leases.csv")},
        "valid-lifetime": plan.lease_time,
        "renew-timer": plan.lease_time // 2,
        "rebind-timer": plan.lease_time * 7 // 8,
        "authoritative": True,
        "host-reservation-identifiers": ["hw-address"],
        "client-classes": [{"name": pool.tag} for pool in plan.pools],
        "subnet4": [{
            "id": 1, "subnet": str(plan.lan),
            "pools": [{"pool": f"{pool.first} - {pool.last}"}
                      if _serves_everyone(plan, pool) else
                      {"pool": f"{pool.first} - {pool.last}", "client-class": pool.tag}
                      for pool in plan.pools],
            "option-data": options,
            "reservations": reservations,
        }],
        "loggers": [{"name": "kea-dhcp4", "severity": "INFO",
                     "output_options": [{"output": str(run_dir / "kea.log")}]}],
    }}


def kea_config_text(plan: LabPlan, run_dir: Path) -> str:
    return json.dumps(kea_config(plan, run_dir), indent=2) + "\n"


# the cloud's services host: one peer per application protocol the devices speak
SERVICE_PEERS = (("http", "tcp", 80), ("tls", "tcp", 443), ("rtsp", "tcp", 554),
                 ("ntp", "udp", 123), ("sink", "udp", 5004), ("sink", "udp", 514),
                 ("coap", "udp", 5683), ("sip", "udp", 5060), ("sink", "udp", 162),
                 ("echo", "udp", 7), ("echo", "tcp", 7))
SINKHOLE_PEERS = (("http", "tcp", 80), ("tls", "tcp", 443))
MQTT_PORT = 1883


def responder_config(plan: LabPlan, run_dir: Path) -> dict:
    services = [{"target": r.target, "address": str(r.address), "proto": r.proto,
                 "port": r.port, "kind": "echo"} for r in plan.responders]
    for name, address, peers in (("services", plan.services, SERVICE_PEERS),
                                 ("sinkhole", plan.sinkhole, SINKHOLE_PEERS)):
        if address is not None:
            services += [{"target": name, "address": str(address), "proto": proto,
                          "port": port, "kind": kind} for kind, proto, port in peers]
    return {
        "control": str(run_dir / "responder.sock"),
        "dump": str(run_dir / "counters.json"),
        "services": services,
        # the cloud's end of each WAN, so flows can say which WAN they arrived on
        "interfaces": {w.cloud_if: w.name for w in plan.wans},
    }


def gateway_peers_config(plan: LabPlan, run_dir: Path) -> dict:
    """The gateway's own peers: NTP on its LAN address (the lab's DHCP hands the gateway
    out as the NTP server), and a watch on the LAN for the devices' link-local
    announcements (mDNS, SSDP, LLDP), counted per source MAC."""
    return {
        "control": str(run_dir / "gwpeers.sock"), "dump": str(run_dir / "gwpeers.json"),
        "services": [{"target": "gateway", "address": str(plan.gateway), "proto": "udp",
                      "port": 123, "kind": "ntp"}],
        "watch": "lan0",
    }


def mosquitto_config(plan: LabPlan, run_dir: Path) -> str:
    """The MQTT broker on the services host: anonymous, logging every connection and
    message (the lab counts per source from its log), nothing persisted."""
    return "\n".join([
        f"listener {MQTT_PORT} {plan.services}", "allow_anonymous true", "persistence false",
        "user root", f"pid_file {run_dir / 'mosquitto.pid'}",
        f"log_dest file {run_dir / 'mosquitto.log'}", "log_type all",
        "connection_messages true", "log_timestamp false", ""])
