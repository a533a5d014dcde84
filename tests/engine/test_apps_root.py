"""The devices' own traffic against the lab's real peers: every generator and every
threat behaviour, what each peer counted per source, and a capture of all of it that
tshark dissects without one malformed packet. Root only."""
from __future__ import annotations

import collections
import os
import subprocess
import time

import pytest

from pytest_iotemu.engine import EngineClient
from pytest_iotemu.engine.client import targets_entry
from pytest_iotemu.lab import Lab
from pytest_iotemu.spec.schema import parse_spec

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)")]

EVERY = ["dns", "ntp", "http", "mqtt", "rtsp", "coap", "syslog", "sip", "snmp", "udp", "tcp",
         "mdns", "ssdp", "lldp"]
SPEC = """
fleet: apps
lab: {{lan: 10.66.0.0/24, domain: branch.lab, dhcp_server: {server}}}
targets:
  camera-cloud: {{address: 198.51.100.10, name: cloud.axis.example, services: [443/tcp, 554/udp]}}
devices:
  - name: talker
    profile: axis-camera
    count: 2
    protocols:
{protocols}
      - {{name: https, interval: 2s, to: camera-cloud, dscp: af41}}
      - {{name: rtp, rate: 100kbps, size: 500B, to: camera-cloud, dscp: ef}}
  - {{profile: windows-10, count: 1, name: bad, protocols: [],
      threats: [dns_flood, port_scan, beacon, data_exfil, pan_test_domains]}}
"""
OK = {"dns": "answered", "ntp": "answered", "http": "connected", "https": "connected",
      "mqtt": "connected", "rtsp": "connected", "coap": "answered", "syslog": "sent",
      "sip": "answered", "snmp": "sent", "udp": "answered", "tcp": "connected",
      "mdns": "sent", "ssdp": "sent", "lldp": "sent", "rtp": "streaming", "cloud": "connected"}
DETAIL = {"http": "HTTP/1.1 200 OK", "rtsp": "RTSP/1.0 200 OK", "mqtt": "CONNACK accepted",
          "https": "TLS record"}


@pytest.mark.parametrize("server", ["dnsmasq", "kea"])
def test_every_generator_and_behaviour_against_its_peer(server: str) -> None:
    protocols = "\n".join(f"      - {{name: {p}, interval: 2s, jitter: 0%}}" for p in EVERY)
    site = parse_spec(SPEC.format(server=server, protocols=protocols), "apps.yaml",
                      env={}).sites[0]
    talkers = {d.name: d for d in site.devices_of("talker")}
    with Lab(site) as lab:
        capture = lab.start_capture()
        ns, port = lab.engine_interfaces()[0]
        with EngineClient(port, netns=ns) as client:
            client.transcript = []
            client.add_devices(site.devices)
            client.call("start")
            client.wait_bound(timeout=30)
            assert client.call("apps", targets=targets_entry(site))["start"] == 3
            time.sleep(12)
            client.call("apps", action="stop")
            time.sleep(1.5)
            events = [e for e in client.events if e["type"] in ("device.app", "device.threat")]
            peers = lab.app_counters()
            leases = {d["name"]: d["ip"] for d in client.call("devices")["devices"]}
        ring = capture.ring()
        merged = ring[0].parent / "all.pcap"  # read before teardown removes the run dir
        subprocess.run(["mergecap", "-w", str(merged), *map(str, ring)], check=True)
        fields = subprocess.run(["tshark", "-r", str(merged), "-d", "udp.port==554,rtp",
                                 "-T", "fields", "-e", "_ws.col.Protocol", "-e",
                                 "_ws.malformed", "-e", "ip.dsfield.dscp", "-e",
                                 "tcp.dstport", "-e", "udp.dstport"],
                                capture_output=True, text=True, check=True)
        # every protocol of every talker reached its peer, with the answer expected
        for name in talkers:
            mine = [e for e in events if e["device"] == name and e["type"] == "device.app"]
            for protocol in EVERY + ["https", "rtp"]:
                result = OK[protocol]
                got = [e for e in mine if e["protocol"] == protocol]
                assert got, (name, protocol)
                assert {e["result"] for e in got} == {result}, (name, protocol, got[:2])
                if protocol in DETAIL:
                    assert all(DETAIL[protocol] in e["detail"] for e in got), got[:2]
        # the peers counted them, per source
        ip = leases["talker-1"]
        svc = peers["services"]
        assert svc["80/tcp"][ip]["requests"][0] == "GET /status"
        assert "DESCRIBE" in svc["554/tcp"][ip]["methods"]
        for key in ("5683/udp", "514/udp", "5060/udp", "162/udp", "7/udp", "7/tcp"):
            assert svc[key][ip]["packets"] >= 3, key
        assert peers["gateway"]["123/udp"][ip]["packets"] >= 3  # NTP: the lease's server
        assert peers["mqtt"][ip]["publishes"] >= 3
        assert "cloud.axis.example" in peers["dns"][ip]["names"]
        mac = talkers["talker-1"].mac
        assert peers["lan"]["lldp"][mac]["system_name"]
        assert peers["lan"]["mdns"][mac]["packets"] >= 3 and peers["lan"]["ssdp"][mac]
        # threat behaviours: announced, tagged, and seen by the peers
        bad = leases["bad-1"]
        threats = collections.Counter(e["behaviour"] for e in events
                                      if e["type"] == "device.threat")
        assert set(threats) == {"dns_flood", "port_scan", "beacon", "data_exfil",
                                "pan_test_domains"}
        tagged = {e["threat"] for e in events if e["type"] == "device.app" and e.get("threat")}
        assert tagged >= {"port_scan", "beacon", "data_exfil", "pan_test_domains"}
        assert peers["dns"][bad]["queries"] >= 100 + 10  # the flood and the test domains
        assert "test-c2.testpanw.com" in peers["dns"][bad]["names"]
        assert "GET /test-malware" in peers["sinkhole"]["80/tcp"][bad]["requests"]
        assert svc["80/tcp"][bad]["uploaded"] >= 1_000_000
        assert "c2-beacon.iot.example" in svc["443/tcp"][bad]["snis"]
        scanned = [e for e in events if e.get("threat") == "port_scan" and
                   e["result"] == "scanned"]
        assert scanned and "refused" in scanned[0]["detail"]
    # every line of the run is valid against the protocol's JSON Schema
    import json
    from pathlib import Path

    import jsonschema
    schema = json.loads((Path(__file__).resolve().parents[2] / "pytest_iotemu" / "engine" /
                         "protocol.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for message in client.transcript:
        errors = list(validator.iter_errors(message))
        assert not errors, (message, errors[0].message)
    # the capture of all of it: tshark finds every protocol, nothing malformed, and the
    # profile's DSCP on the marked traffic
    rows = [line.split("\t") for line in fields.stdout.splitlines()]
    assert not [r for r in rows if r[1]], "malformed frames in the capture"
    seen = {r[0] for r in rows}
    for proto in ("DNS", "NTP", "HTTP", "MQTT", "RTSP", "RTP", "CoAP", "Syslog", "SIP",
                  "SNMP", "MDNS", "SSDP", "LLDP"):
        assert proto in seen, (proto, sorted(seen))
    assert any(p.startswith("TLS") for p in seen)
    # ef on the stream (the echoes coming back from the target carry none)
    assert {r[2] for r in rows if r[0] == "RTP" and r[4] == "554"} == {"46"}
    assert "34" in {r[2] for r in rows if r[3] == "443"}  # af41 on the HTTPS habit


def test_a_fleet_from_the_previous_emulator_runs_its_protocols_and_behaviours() -> None:
    from pathlib import Path

    from pytest_iotemu import load_spec
    sample = Path(__file__).resolve().parents[1] / "data" / "legacy-devices.json"
    site = load_spec(sample).sites[0]
    running = [d for d in site.devices if d.enabled and d.static_ip is None]
    assert {d.group for d in running} >= {"cam_lobby", "echo_kitchen"}
    with Lab(site) as lab:
        ns, port = lab.engine_interfaces()[0]
        with EngineClient(port, netns=ns) as client:
            client.add_devices(running)
            client.call("start")
            client.wait_bound(timeout=30)
            client.call("apps", targets=targets_entry(site))
            time.sleep(11)  # every habit and behaviour runs within its first 10 s
            events = list(client.events)
    for device in running:
        mine = {e["protocol"]: e["result"] for e in events
                if e["type"] == "device.app" and e["device"] == device.name
                and not e.get("threat")}
        for habit in device.protocols:
            assert mine.get(habit.name) == OK[habit.name], (device.name, habit.name, mine)
        behaviours = {e["behaviour"] for e in events
                      if e["type"] == "device.threat" and e["device"] == device.name}
        assert behaviours == set(device.threats), (device.name, behaviours)
