"""Probes and flows from the engine through the real lab: the user-space TCP against the
kernel's TCP at the target, nftables verdicts, the responder's flow statistics, and no
answer from the engine namespace's own kernel. Root only."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import jsonschema
import pytest

from pytest_iotemu import traffic
from pytest_iotemu.engine import EngineClient
from pytest_iotemu.lab import Lab
from pytest_iotemu.spec.schema import parse_spec

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)")]
ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "pytest_iotemu" / "engine" / "protocol.schema.json").read_text())

SPEC = """
fleet: probes
lab:
  lan: 10.61.0.0/24
  dhcp_server: {server}
  pools:
    cams: {{range: 10.61.0.10-10.61.0.40, match: {{class: camera}}}}
    default: {{range: 10.61.0.100-10.61.0.200}}
  wan: [{{name: mpls}}, {{name: internet}}]
  policy:
    default: allow
    rules:
      - {{from: {{pool: cams}}, to: files, service: 445/tcp, action: block}}
      - {{from: {{pool: cams}}, to: files, service: 139/tcp, action: reject}}
      - {{from: {{pool: cams}}, to: sip, action: reject}}
      - {{from: {{pool: cams}}, to: web, action: allow, via: internet}}
targets:
  files: {{address: 10.91.0.10, services: [445/tcp, 139/tcp]}}
  web: {{address: 10.91.0.20, services: [443/tcp, 554/udp]}}
  sip: {{address: 10.91.0.30, services: [5060/udp]}}
devices:
  - {{profile: axis-camera, count: 3}}
  - {{profile: hp-printer, count: 2}}
"""


def _snmp(lab: Lab, role: str) -> dict[str, int]:
    """The namespace's own IP stack counters (/proc/net/snmp is per namespace)."""
    text = lab.exec(role, ["cat", "/proc/net/snmp"]).stdout.splitlines()
    out = {}
    for names, values in zip(text[::2], text[1::2]):
        prefix = names.split(":")[0]
        for key, value in zip(names.split()[1:], values.split()[1:]):
            out[f"{prefix}.{key}"] = int(value)
    return out


@pytest.mark.parametrize("server", ["dnsmasq", "kea"])
def test_probe_outcomes_flows_and_a_silent_kernel(server: str) -> None:
    site = parse_spec(SPEC.format(server=server), "probes.yaml", env={}).sites[0]
    cams = [d.name for d in site.devices_of("axis-camera")]
    printers = [d.name for d in site.devices_of("hp-printer")]
    with Lab(site) as lab:
        ns, port = lab.engine_interfaces()[0]
        # the engine's port carries no IPv4 address: the kernel cannot speak for devices
        addrs = json.loads(lab.exec("lan", ["ip", "-j", "addr", "show", "dev", port]).stdout)
        assert not [a for a in addrs[0]["addr_info"] if a["family"] == "inet"]
        before = _snmp(lab, "lan")
        client = EngineClient(port, netns=ns)
        client.transcript = []
        with client:
            client.add_devices(site.devices)
            client.call("start")
            client.wait_bound(timeout=30)

            def outcomes(names, target, proto, port_):
                found = traffic.probe(client, names, target, proto, port_, timeout=2.0)
                return {name: found[name]["result"] for name in names}

            assert set(outcomes(cams, "10.91.0.20", "tcp", 443).values()) == {"connected"}
            assert set(outcomes(cams, "10.91.0.10", "tcp", 445).values()) == {"timeout"}
            rejected = traffic.probe(client, cams, "10.91.0.10", "tcp", 139, timeout=2.0)
            assert {r["result"] for r in rejected.values()} == {"rejected"}
            assert all("next hop" in r["detail"] for r in rejected.values())
            # a port nobody listens on: the target's kernel resets, through the branch
            refused = traffic.probe(client, printers, "10.91.0.20", "tcp", 8080, timeout=2.0)
            assert {r["result"] for r in refused.values()} == {"refused"}
            assert {r["ttl"] for r in refused.values()} == {63}
            assert set(outcomes(printers, "10.91.0.10", "tcp", 445).values()) == {"connected"}
            assert set(outcomes(printers, "10.91.0.30", "udp", 5060).values()) == {"answered"}
            udp_rejected = traffic.probe(client, cams, "10.91.0.30", "udp", 5060, timeout=2.0)
            assert {r["result"] for r in udp_rejected.values()} == {"rejected"}
            assert all("ICMP 3/13" in r["detail"] for r in udp_rejected.values())
            assert set(outcomes(cams, "10.91.0.20", "icmp", 0).values()) == {"answered"}
            # the responder counted each connected probe's data and connection
            served = lab.service_counters("web")["443/tcp"]
            assert len(served) == 3 and all(e["connections"] == 1 for e in served.values())
            # a flow per camera: sequence numbers, rate and WAN seen at the target
            flow = traffic.start_flow(client, cams, "10.91.0.20", 554, rate=400_000,
                                      duration=2.0, size=500)
            sent = flow.wait()
            time.sleep(0.3)
            received = {ident: lab.flow_stats("web", "554/udp", ident) for _, ident in flow.jobs}
            rows = traffic.flow_observations(flow, sent, received)
            for name in cams:
                row = rows[name]
                assert row["sent"] == 200 and row["received"] == 200, row
                assert row["by_wan"] == {"internet": 200}  # via: internet
                assert row["outage"] < 0.1 and row["loss"] == 0
                assert 0.9 * 400_000 < row["achieved"] <= 400_000
            # 64-byte frames: the compact header, still measured per flow at the target
            small = traffic.start_flow(client, printers, "10.91.0.20", 554, rate=50_000,
                                       duration=1.0, size=22)
            sent = small.wait()
            time.sleep(0.3)
            received = {i: lab.flow_stats("web", "554/udp", i) for _, i in small.jobs}
            rows = traffic.flow_observations(small, sent, received)
            assert all(r["sent"] == 284 and r["received"] == 284 for r in rows.values()), rows
            stats = client.call("stats")["counters"]
            assert stats["flow.done"] == 5
        after = _snmp(lab, "lan")
    # the LAN namespace's kernel answered nothing: no TCP (resets above all), no UDP, no
    # ICMP errors (multicast group reports from its bridge are its own business)
    for key in ("Tcp.OutSegs", "Tcp.OutRsts", "Udp.OutDatagrams", "Icmp.OutMsgs"):
        assert after[key] == before[key], key
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for message in client.transcript:
        errors = list(validator.iter_errors(message))
        assert not errors, (message, errors[0].message)
    kinds = [m.get("type") for m in client.transcript]
    assert kinds.count("device.probe") == 5 * 3 + 3 * 2  # every probe reported once
    assert kinds.count("device.flow") == 5
