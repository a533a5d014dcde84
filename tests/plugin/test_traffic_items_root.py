"""policy, path and throughput items for real, and their sabotaged variants: each fails
alone, with the devices that disagree and the counters that show why. Root only."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BRANCH = (ROOT / "scenarios" / "branch.yaml").read_text()

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces); "
                                 "run the suite as root, as CI does")]


def _expect(spec: str, lines: str) -> str:
    return spec[:spec.index("expect:")] + "expect:\n" + lines


def test_a_flipped_policy_rule_fails_the_block_item_alone(pytester: pytest.Pytester) -> None:
    flipped = BRANCH.replace("{from: {pool: cameras}, to: corp-files, action: block}",
                             "{from: {pool: cameras}, to: corp-files, action: allow}")
    assert flipped != BRANCH
    pytester.makefile(".yaml", flipped=flipped)
    result = pytester.runpytest_subprocess("--iot-fleet=flipped.yaml", "-k", "policy", "-v",
                                           "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*policy?axis-camera->corp-files:445/tcp=block? FAILED*",
        "*policy?axis-camera->camera-cloud:443/tcp=allow? PASSED*",
        "0/12 probes of axis-camera to corp-files 445/tcp agree with block (12 connected)",
        "axis-camera-01 *: connected in * ms",
        "rule counters (packets):",
        "  rule_0: 12  (pool cameras -> corp-files: allow)",
        "(spec line *: *'verdict': 'block'*",
    ])


KEA_BRANCH = _expect(BRANCH.replace("dhcp_server: dnsmasq", "dhcp_server: kea"), """\
  - path: {from: cisco-ip-phone, to: sip-core, via: mpls}
  - path: {from: cisco-ip-phone, to: sip-core, via: internet}
  - throughput: {from: cisco-ip-phone, to: sip-core, rate: 1mbps, min: 900kbps, duration: 3s}
  - throughput: {from: cisco-ip-phone, to: sip-core, rate: 8mbps, min: 7mbps, duration: 3s}
  - path: {from: cisco-ip-phone, to: sip-core, via: mpls, failover: {fail: mpls, within: 3s}}
  - path: {from: cisco-ip-phone, to: sip-core, via: mpls, failover: {fail: mpls, within: 200ms}}
""")


def test_path_and_throughput_pass_and_their_sabotaged_twins_fail_on_kea(
        pytester: pytest.Pytester) -> None:
    """The voice WAN (mpls, 50 mbit, path monitor probing every 0.2 s, 3 misses): the right
    WAN passes and the wrong one fails; 10 phones at 1 mbps fit and at 8 mbps (80 mbit)
    do not; a 3 s failover bound holds and a 200 ms one cannot."""
    assert "dhcp_server: kea" in KEA_BRANCH
    pytester.makefile(".yaml", kea=KEA_BRANCH)
    result = pytester.runpytest_subprocess("--iot-fleet=kea.yaml", "-v", "-p",
                                           "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=3)
    out = result.stdout
    out.fnmatch_lines([
        "*path?cisco-ip-phone->sip-core:5060/udp@mpls? PASSED*",
        "*path?cisco-ip-phone->sip-core:5060/udp@internet? FAILED*",
        "*throughput?cisco-ip-phone->sip-core:5060/udp@1mbps? PASSED*",
        "*throughput?cisco-ip-phone->sip-core:5060/udp@8mbps? FAILED*",
        "*path?*@mpls,failover:mpls<=3s? PASSED*",
        "*path?*@mpls,failover:mpls<=200ms? FAILED*",
    ])
    out.fnmatch_lines([
        # the wrong WAN: every flow arrived over mpls
        "0/10 flows of cisco-ip-phone to sip-core 5060/udp arrived only over internet "
        "(datagrams per WAN: mpls *)",
        "cisco-ip-phone-01 10.20.2.*: arrived over mpls *, expected all over internet",
        "path monitor: primary mpls (was mpls); mpls up, internet up",
    ])
    out.fnmatch_lines([
        # above the WAN's token bucket: the slowest devices and the loss
        "cisco-ip-phone to sip-core 5060/udp: offered 8mbps per device; slowest *mbps "
        "(min 7mbps, */10 devices reached it); loss *% over the group",
        "slowest devices:",
        "  cisco-ip-phone-* 10.20.2.*: *mbps (loss *%)",
        "datagrams per WAN: mpls *",
    ])
    out.fnmatch_lines([
        # tighter than the monitor allows: 3 probes of 0.2 s cannot fail over in 200 ms
        "0/10 flows of cisco-ip-phone moved off mpls within 200ms; largest outage *s "
        "(datagrams per WAN: internet *, mpls *)",
        "cisco-ip-phone-01 10.20.2.*: outage *s, above 200ms (arrived over internet *, mpls *)",
        "path monitor: primary internet (was mpls); mpls down, internet up",
    ])
    text = "\n".join(out.lines)
    outages = [float(x) for x in re.findall(r"largest outage (\d+\.\d+)s", text)]
    assert outages and all(0.2 < o < 3.0 for o in outages), outages
    slowest = re.search(r"offered 8mbps per device; slowest ([\d.]+)mbps", text)
    assert slowest and float(slowest.group(1)) < 7.0


def test_iot_traffic_runs_the_devices_own_traffic_beside_the_items(
        pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", small="""
fleet: small
lab: {lan: 10.71.0.0/24}
targets:
  web: {address: 10.91.0.20, services: [443/tcp]}
devices:
  - {profile: axis-camera, count: 2, protocols: [{name: dns, interval: 1s}, {name: mqtt, interval: 1s}]}
  - {profile: windows-10, count: 1, name: pc, threats: [beacon, port_scan]}
expect:
  - dhcp: {group: all}
  - policy: {from: axis-camera, to: web, verdict: allow}
""")
    pytester.makepyfile("""
        import time

        def ran(stats):
            apps, threats = stats["apps"], stats["threats"]
            return (apps.get("dns.answered", 0) >= 4 and apps.get("mqtt.connected", 0) >= 2
                    and threats.get("beacon", 0) >= 1 and threats.get("port_scan", 0) >= 1)

        def test_traffic_flows(iot_fleet, iot_lab):
            # every habit and behaviour runs within 10 s of the start (docs/traffic.md)
            deadline = time.monotonic() + 15
            while not ran(iot_fleet.engine.call("stats")) and time.monotonic() < deadline:
                time.sleep(0.5)
            stats = iot_fleet.engine.call("stats")
            assert ran(stats), (stats["apps"], stats["threats"])
            seen = iot_lab.app_counters()
            assert sum(e["publishes"] for e in seen["mqtt"].values()) >= 2
    """)
    result = pytester.runpytest_subprocess("--iot-fleet=small.yaml", "--iot-traffic", "-v",
                                           "-p", "no:cacheprovider", "small.yaml",
                                           "test_iot_traffic_runs_the_devices_own_traffic"
                                           "_beside_the_items.py")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*apps: dns * ok*mqtt * ok*| threats: beacon *, port_scan *"])
