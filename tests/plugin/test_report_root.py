"""The Allure report for real: result files with labels, steps and attachments, the
failing item's capture read back by tshark, the session's environment and categories,
and the single-file HTML report rendered in headless Chromium. Root only."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".tools"
BRANCH = (ROOT / "scenarios" / "branch.yaml").read_text()

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces); "
                                 "run the suite as root, as CI does")]

# the contract branch with the cameras' block rule flipped: the block item must fail
FLIPPED = BRANCH.replace("{from: {pool: cameras}, to: corp-files, action: block}",
                         "{from: {pool: cameras}, to: corp-files, action: allow}")
SPEC = FLIPPED[:FLIPPED.index("expect:")] + """expect:
  - dhcp: {group: all, bound: 100%, within: 5s}
  - policy: {from: axis-camera, to: corp-files, service: 445/tcp, verdict: block}
  - policy: {from: axis-camera, to: camera-cloud, service: 443/tcp, verdict: allow}
  - throughput: {from: axis-camera, to: camera-cloud, service: 554/udp, rate: 500kbps, duration: 2s}
  - resources: {engine_rss: 150MB}
"""


def _tools() -> Path:
    allure = TOOLS / "node_modules" / ".bin" / "allure"
    if not allure.exists() or shutil.which("chromium") is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install the report tools: `make report-tools` and Debian's "
                        "chromium (scripts/install-deps.sh)")
        pytest.skip("the report tools are not installed: run `make deps report-tools`")
    return allure


def test_results_attachments_capture_and_the_rendered_report(pytester: pytest.Pytester,
                                                             tmp_path: Path) -> None:
    allure = _tools()
    pytester.makefile(".yaml", branch=SPEC)
    results = tmp_path / "results"
    run = pytester.runpytest_subprocess("--iot-fleet=branch.yaml", "-p", "no:cacheprovider",
                                        f"--alluredir={results}", "--iot-pcap=on-failure")
    run.assert_outcomes(passed=4, failed=1)
    found = {}
    for path in results.glob("*-result.json"):
        data = json.loads(path.read_text())
        found[data["name"]] = data
    assert set(found) == {"dhcp[all]", "policy[axis-camera->corp-files:445/tcp=block]",
                          "policy[axis-camera->camera-cloud:443/tcp=allow]",
                          "throughput[axis-camera->camera-cloud:554/udp@500kbps]", "resources"}
    for name, data in found.items():
        labels = {(l["name"], l["value"]) for l in data["labels"]}
        kind = name.split("[")[0]
        assert ("epic", "branch-paris-01") in labels and ("tag", "branch-paris-01") in labels
        assert ("feature", {"dhcp": "DHCP", "policy": "Policy", "throughput": "Throughput",
                            "resources": "Resources"}[kind]) in labels
        params = {p["name"]: p for p in data["parameters"]}
        assert params["expectation"]["value"].strip("'") == name
        assert params["engine pid"].get("excluded") is True  # run-specific: not in history
        attachments = {a["name"]: a for a in data["attachments"]}
        for wanted in ("spec fragment", "expected vs observed"):
            assert wanted in attachments, (name, list(attachments))
        for attachment in attachments.values():
            assert (results / attachment["source"]).stat().st_size > 0
        observed = json.loads((results / attachments["expected vs observed"]["source"])
                              .read_text())
        assert observed["observed"]["passed"] is (data["status"] == "passed")
    steps = [s["name"] for data in found.values() for s in data.get("steps", [])]
    assert any(s.startswith("lab up:") for s in steps)
    assert any(s.startswith("fleet start:") for s in steps)
    assert any(s.startswith("probe 445/tcp on corp-files") for s in steps)
    assert any(s.startswith("UDP flow to camera-cloud 554/udp") for s in steps)
    # per-device CSV and plots where they mean something
    dhcp = {a["name"]: a for a in found["dhcp[all]"]["attachments"]}
    assert {"devices", "DORA latency", "devices bound over time"} <= set(dhcp)
    csv_text = (results / dhcp["devices"]["source"]).read_text().splitlines()
    assert csv_text[0].startswith("device,mac,state,ip,bound_after") and len(csv_text) == 37
    svg = (results / dhcp["DORA latency"]["source"]).read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "CPU and RSS" in {a["name"] for a in found["resources"]["attachments"]}
    # only the failing item carries a capture, and tshark reads it: the cameras' SYNs
    failing = found["policy[axis-camera->corp-files:445/tcp=block]"]
    assert failing["status"] == "failed"
    captures = [a for d in found.values() for a in d["attachments"]
                if a["type"] == "application/vnd.tcpdump.pcap"]
    assert len(captures) == 1 and captures[0] in failing["attachments"]
    decoded = subprocess.run(["tshark", "-r", str(results / captures[0]["source"]), "-Y",
                              "tcp.flags.syn == 1 && tcp.dstport == 445"],
                             capture_output=True, text=True)
    assert decoded.returncode == 0 and len(decoded.stdout.splitlines()) >= 12
    # the session's files, from the controller
    env = (results / "environment.properties").read_text()
    assert re.search(r"^kernel=\S+", env, re.M) and "dnsmasq.version=Dnsmasq version" in env
    assert "devices=36" in env and "pytest-iotemu=" in env
    categories = json.loads((results / "categories.json").read_text())
    policy = next(c for c in categories if c["name"] == "Policy mismatch")
    assert re.match(policy["messageRegex"], failing["statusDetails"]["message"])
    # the single-file HTML report, rendered in Chromium with its items and a plot
    report = tmp_path / "report"
    made = subprocess.run([str(allure), "awesome", str(results), "--single-file", "-o",
                           str(report)], capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    checked = subprocess.run(["node", str(ROOT / "scripts" / "check_report.mjs"), str(report),
                              "DORA latency", "dhcp["], capture_output=True, text=True,
                             timeout=300, env={**os.environ, "IOTEMU_TOOLS": str(TOOLS)})
    assert checked.returncode == 0, checked.stderr
    assert "5 items shown" in checked.stdout and (report / "check.png").stat().st_size > 0
