"""`pytest --iot-fleet=…` for real: the lab, the engine, the items and their failures.
Root only (CI runs as root); run in subprocesses, as users run them."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BRANCH = (ROOT / "scenarios" / "branch.yaml").read_text()

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces); "
                                 "run the suite as root, as CI does")]

SABOTAGED = """
fleet: sabotaged
seed: 3
lab:
  lan: 10.44.0.0/24
  pools:
    cameras: {range: 10.44.0.10-10.44.0.50, match: {class: camera}}
    default: {range: 10.44.0.100-10.44.0.200}
devices:
  - {profile: axis-camera, count: 4}
  - {profile: hp-printer, count: 2}
expect:
  - dhcp: {group: hp-printer, pool: cameras}
  - dhcp: {group: axis-camera, within: 1ms}
  - dhcp: {group: axis-camera, pool: cameras, within: 5s}
  - resources: {engine_rss: 1MB}
  - resources: {engine_rss: 500MB, server_rss: 500MB}
"""


def test_the_contract_branch_end_to_end(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makefile(".yaml", branch=BRANCH)
    metrics = tmp_path / "metrics.json"
    result = pytester.runpytest_subprocess("--iot-fleet=branch.yaml", "-v", "-rs",
                                           f"--iot-metrics={metrics}", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=7)
    result.stdout.fnmatch_lines([
        "*branch.yaml::branch-paris-01::dhcp?all? PASSED*",
        "*branch.yaml::branch-paris-01::dhcp?axis-camera? PASSED*",
        "*::policy?axis-camera->corp-files:445/tcp=block? PASSED*",
        "*::policy?axis-camera->camera-cloud:443/tcp=allow? PASSED*",
        "*::throughput?axis-camera->camera-cloud:554/udp@2mbps? PASSED*",
        # the failover changes the lab: after the others, before the resources
        "*::path?cisco-ip-phone->sip-core:5060/udp@mpls,failover:mpls<=3s? PASSED*",
        "*branch.yaml::branch-paris-01::resources PASSED*",
        "*iotemu metrics*",
        "*GROUP*DEVICES*BOUND*DORA p50*",
        "*axis-camera*12*12*",
        "*engine: CPU peak*RSS peak*",
    ])
    data = json.loads(metrics.read_text())
    (site,) = data["sites"]
    assert site["site"] == "branch-paris-01" and site["groups"]["axis-camera"]["bound"] == 12
    assert site["peaks"]["engine_rss"] > 0 and site["stats"]
    engine = site["processes"]["engine"]
    assert engine["columns"][0] == "mono" and engine["samples"]
    assert site["processes"]["dhcp"]["samples"]


def test_sabotaged_expectations_fail_with_precise_messages(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", sab=SABOTAGED)
    result = pytester.runpytest_subprocess("--iot-fleet=sab.yaml", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=3)
    result.stdout.fnmatch_lines([
        "*sabotaged::dhcp?hp-printer?*",
        "0/2 of hp-printer bound within 10s in pool cameras (expected at least 2, bound: 100%)",
        "got 10.44.0.*, outside pool cameras (10.44.0.10-10.44.0.50): hp-printer-1 *",
        "*sabotaged::dhcp?axis-camera?*",
        "0/4 of axis-camera bound within 1ms (expected at least 4, bound: 100%)",
        "bound after *s, later than 1ms: axis-camera-1 *",
        "*sabotaged::resources*",
        "engine_rss peaked at *MB (above 1.0MB)",
    ])
    assert "Traceback" not in result.stdout.str()


def test_fixtures_and_the_python_api(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", branch=BRANCH)
    pytester.makepyfile("""
        import pytest
        from pytest_iotemu.checks import ExpectationFailed

        pytestmark = pytest.mark.iot_fleet("branch.yaml")

        def test_api(iot_fleet, iot_lab, iot_engine, iot_metrics):
            iot_fleet.wait_bound("axis-camera", timeout=30)
            assert iot_fleet.group("axis-camera").bound_fraction == 1.0
            assert 0 < iot_fleet.dhcp_latency(p=95, group="cisco-ip-phone") < 5
            lease = iot_fleet.device("axis-camera-03").lease
            assert lease["router"] == ["10.20.0.1"] and lease["ip"].startswith("10.20.1.")
            assert iot_fleet.events(type="device.dhcp.bound")
            assert {l.mac for l in iot_lab.leases()} >= {"ac:cc:8e:db:9b:09"}
            assert iot_engine.call("stats")["devices"] == 36
            iot_fleet.assert_dhcp("axis-camera", pool="cameras", within="5s")
            with pytest.raises(ExpectationFailed, match="0/3 of hp-printer bound within 5s "
                                                        "in pool cameras"):
                iot_fleet.assert_dhcp("hp-printer", pool="cameras", within="5s")
            # traffic from Python: the same probes, flows and messages as the items
            results = iot_fleet.probe("hp-printer", "corp-files", "445/tcp")
            assert {r["result"] for r in results.values()} == {"connected"}
            iot_fleet.assert_policy("axis-camera", "corp-files", "445/tcp", "block")
            with pytest.raises(ExpectationFailed, match="0/12 probes of axis-camera to "
                                                        "corp-files 445/tcp agree with allow"):
                iot_fleet.assert_policy("axis-camera", "corp-files", verdict="allow")
            iot_fleet.assert_path("cisco-ip-phone", "sip-core", via="mpls")
            with pytest.raises(ExpectationFailed, match="arrived only over internet"):
                iot_fleet.assert_path("cisco-ip-phone", "sip-core", via="internet")
            iot_fleet.assert_throughput("axis-camera", "camera-cloud", "554/udp",
                                        rate="1mbps", min="900kbps", duration="2s")
            iot_metrics.add("custom-check", "ok")
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*custom-check: ok*"])


def test_keep_lab_leaves_it_up_until_lab_down(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", branch=BRANCH)
    result = pytester.runpytest_subprocess("--iot-fleet=branch.yaml", "--iot-keep-lab",
                                           "-k", "dhcp", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, deselected=5)
    line = next(l for l in result.stdout.lines if "kept up" in l)
    run = line.split("lab ")[1].split()[0]
    import subprocess
    import sys
    assert os.path.exists(f"/run/netns/iotemu-{run}-gw")
    down = subprocess.run([sys.executable, "-m", "pytest_iotemu.cli", "lab", "down", run],
                          capture_output=True, text=True)
    assert down.returncode == 0, down.stderr
    assert not os.path.exists(f"/run/netns/iotemu-{run}-gw")


@pytest.mark.parametrize("server", ["dnsmasq", "kea"])
def test_adhoc_fleets_from_the_factory(pytester: pytest.Pytester, server: str) -> None:
    pytester.makefile(".yaml", branch=BRANCH.replace("dhcp_server: dnsmasq",
                                                     f"dhcp_server: {server}"))
    pytester.makefile(".yaml", extra="devices:\n  - {profile: hp-printer, count: 2, name: "
                                     "extra-printers}\n")
    pytester.makepyfile("""
        import pytest
        pytestmark = pytest.mark.iot_fleet("branch.yaml")

        def test_factory(iot_fleet, iot_fleet_factory):
            iot_fleet.wait_bound(timeout=30)
            before = {d.mac for d in iot_fleet.group("all").devices}
            cams = iot_fleet_factory(profile="axis-camera", count=3)
            cams.wait_bound(timeout=30)
            group = cams.group("adhoc1-axis-camera")
            assert group.bound_fraction == 1.0
            assert all(d.ip.startswith("10.20.1.") for d in group.devices)  # cameras pool
            assert not {d.mac for d in group.devices} & before
            printers = iot_fleet_factory({"devices": [{"profile": "hp-printer", "count": 2,
                                                      "name": "lab-printers"}]})
            printers.wait_bound(timeout=30)
            assert all(d.ip.startswith("10.20.3.") for d in printers.group("lab-printers").devices)
            from_file = iot_fleet_factory("extra.yaml")
            from_file.wait_bound(timeout=30)
            with pytest.raises(ValueError, match="already runs"):
                iot_fleet_factory(profile="axis-camera", count=12, name="axis-camera")

        def test_after(iot_engine):
            assert iot_engine.call("stats")["devices"] == 36  # the ad-hoc ones were removed
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=2)


def test_a_lab_that_cannot_start_is_an_error_with_its_cause(pytester: pytest.Pytester) -> None:
    import json as _json
    import subprocess
    routes = _json.loads(subprocess.run(["ip", "-j", "-4", "route"], capture_output=True,
                                        text=True).stdout or "[]")
    connected = next((r["dst"] for r in routes if r.get("dst", "default") != "default"
                      and "/" in r["dst"]), None)
    if connected is None:
        pytest.skip("the host has no connected IPv4 route to clash with")
    pytester.makefile(".yaml", clash=f"fleet: clash\nlab: {{lan: {connected}}}\n"
                                     "devices: [{profile: axis-camera}]\nexpect: [{dhcp: {}}]\n")
    result = pytester.runpytest_subprocess("--iot-fleet=clash.yaml", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([
        f"the fleet of site clash could not run: site clash: lab.lan {connected} overlaps the "
        f"host's route {connected}; pick another LAN*",
        "clash / clash: did not run*",
    ])
    assert "Traceback" not in result.stdout.str()


def _two_sites() -> str:
    return """
fleet: pair
sites:
  - name: north
    lab: {lan: 10.81.0.0/24}
    devices: [{profile: axis-camera, count: 3}, {profile: ecobee-thermostat, count: 2}]
    expect: [{dhcp: {group: all}}, {dhcp: {group: axis-camera}}, {resources: {engine_rss: 500MB}}]
  - name: south
    lab: {lan: 10.82.0.0/24, dhcp_server: kea}
    devices: [{profile: hp-printer, count: 2}]
    expect: [{dhcp: {group: all}}, {dhcp: {group: hp-printer}}]
"""


def test_xdist_keeps_each_site_on_one_worker_and_merges_metrics(
        pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makefile(".yaml", pair=_two_sites())
    metrics = tmp_path / "m.json"
    result = pytester.runpytest_subprocess("--iot-fleet=pair.yaml", "-n", "2", "-v",
                                           f"--iot-metrics={metrics}", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)
    workers: dict[str, set[str]] = {}
    for line in result.stdout.lines:
        if line.startswith("[gw") and "PASSED" in line:
            worker = line[1:4]
            site = "north" if "::north::" in line else "south"
            workers.setdefault(site, set()).add(worker)
    assert all(len(w) == 1 for w in workers.values()), workers
    result.stdout.fnmatch_lines(["*iotemu metrics*", "pair / * (worker gw*):*",
                                 "pair / * (worker gw*):*"])
    data = json.loads(metrics.read_text())
    assert {s["site"] for s in data["sites"]} == {"north", "south"}
    assert all(s["worker"].startswith("gw") for s in data["sites"])


def test_one_site_is_spread_and_each_worker_brings_up_its_own_fleet(
        pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", branch=BRANCH)
    result = pytester.runpytest_subprocess("--iot-fleet=branch.yaml", "-n", "2", "-v",
                                           "-k", "dhcp or resources", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    used = {line[1:4] for line in result.stdout.lines if line.startswith("[gw")}
    assert used == {"gw0", "gw1"}


def test_baselines_pass_and_fail_with_the_regressions(pytester: pytest.Pytester,
                                                      tmp_path: Path) -> None:
    pytester.makefile(".yaml", branch=BRANCH)
    saved = tmp_path / "base.json"
    first = pytester.runpytest_subprocess("--iot-fleet=branch.yaml", "-p", "no:cacheprovider",
                                          "-k", "dhcp or resources",
                                          f"--iot-save-baseline={saved}")
    first.assert_outcomes(passed=3)
    same = pytester.runpytest_subprocess("--iot-fleet=branch.yaml", "-p", "no:cacheprovider",
                                         "-k", "dhcp or resources",
                                         f"--iot-baseline={saved}", "--iot-tolerance=400%")
    assert same.ret == 0
    same.stdout.fnmatch_lines([f"no regression against {saved} (tolerance 400%)"])
    data = json.loads(saved.read_text())
    strict = tmp_path / "strict.json"
    data["metrics"] = {k: (v * 100 if k.endswith("bind_rate") else v / 100)
                       for k, v in data["metrics"].items()
                       if k.endswith(("bind_rate", "dora_p95", "engine_rss"))}
    strict.write_text(json.dumps(data))
    worse = pytester.runpytest_subprocess("--iot-fleet=branch.yaml", "-p", "no:cacheprovider",
                                          "-k", "dhcp or resources", f"--iot-baseline={strict}")
    assert worse.ret == pytest.ExitCode.TESTS_FAILED
    worse.stdout.fnmatch_lines([
        "* metric(s) regressed beyond 10%:",
        "METRIC*BASELINE*NOW*CHANGE*LIMIT",
        "branch-paris-01/branch-paris-01/axis-camera:dora_p95 *",
    ])
    assert any(l.startswith("branch-paris-01/branch-paris-01:bind_rate") for l in
               worse.stdout.lines)
    assert any(l.startswith("branch-paris-01/branch-paris-01:engine_rss") for l in
               worse.stdout.lines)
    missing = pytester.runpytest_subprocess("--iot-fleet=branch.yaml", "-p", "no:cacheprovider",
                                            "-k", "dhcp or resources",
                                            f"--iot-baseline={tmp_path / 'nope.json'}")
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    missing.stdout.fnmatch_lines(["*nope.json: baseline not found; write one with "
                                  "--iot-save-baseline*"])
