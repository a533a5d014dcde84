"""The report's pure parts: failure categories match the judges' own messages, the
per-device CSV, and the session files written by the controller only."""
from __future__ import annotations

import json
import re
from types import SimpleNamespace

from pytest_iotemu import report
from pytest_iotemu.checks import judge_path, judge_policy, judge_throughput
from pytest_iotemu.spec.model import Failover, PathExpect, PolicyExpect, ThroughputExpect
from pytest_iotemu.spec.schema import parse_spec
from pytest_iotemu.spec.units import Service

SPEC = """
fleet: r
lab: {lan: 10.9.0.0/24, wan: [{name: a}, {name: b}]}
targets: {t: {address: 10.99.0.1, services: [80/tcp, 5000/udp]}}
devices: [{profile: axis-camera, count: 2}]
"""


def category(message: str, status: str = "failed") -> list[str]:
    return [c["name"] for c in report.CATEGORIES
            if status in c["matchedStatuses"] and re.match(c["messageRegex"], message)]


def test_each_failure_lands_in_its_category() -> None:
    site = parse_spec(SPEC, "r.yaml", env={}).sites[0]
    devices = site.devices_of("axis-camera")
    policy = judge_policy(PolicyExpect("axis-camera", "t", Service("tcp", 80), "block"),
                          devices, {d.name: {"result": "connected"} for d in devices}, {})
    assert category(policy.message()) == ["Policy mismatch"]
    row = {"ip": "10.9.0.5", "sent": 100, "received": 50, "bytes": 5000, "by_wan": {"a": 50},
           "outage": 2.0, "loss": 0.5, "achieved": 1e5}
    rows = {d.name: dict(row) for d in devices}
    path = judge_path(PathExpect("axis-camera", "t", Service("udp", 5000), "a",
                                 Failover("a", 0.5)), rows)
    assert not path.passed and category(path.message()) == ["Path failover"]
    slow = judge_throughput(ThroughputExpect("axis-camera", "t", Service("udp", 5000), 1e6,
                                             9e5), rows)
    assert category(slow.message()) == ["Throughput shortfall"]
    assert category("0/2 of all bound within 5s (expected at least 2, bound: 100%)") == \
        ["DHCP timeout"]
    assert category("the engine failed: engine exited with status -9", "broken") == \
        ["Engine crash"]
    assert category("the fleet of site x could not run: dnsmasq did not become ready",
                    "broken") == ["Lab failure"]
    # rows say which devices disagree (the capture is cut to those)
    assert [r["agrees"] for r in policy.rows] == [False, False]
    assert {r["device"] for r in path.rows} == {d.name for d in devices}


def test_device_csv_has_every_column_once() -> None:
    text = report._csv([{"device": "a", "ip": "1.2.3.4"},
                        {"device": "b", "by_wan": {"x": 1}, "ip": None}])
    lines = text.splitlines()
    assert lines[0] == "device,ip,by_wan"
    assert lines[2] == 'b,,"{""x"": 1}"'


def test_session_files_come_from_the_controller_only(tmp_path) -> None:
    spec = parse_spec(SPEC, "r.yaml", env={})
    config = SimpleNamespace(option=SimpleNamespace(allure_report_dir=str(tmp_path / "w")),
                             workerinput={"workerid": "gw0"})
    report.write_session_files(config, [spec])
    assert not (tmp_path / "w").exists()
    config = SimpleNamespace(option=SimpleNamespace(allure_report_dir=str(tmp_path / "c")))
    report.write_session_files(config, [spec])
    env = (tmp_path / "c" / "environment.properties").read_text()
    assert "fleets=r" in env and "devices=2" in env and "interfaces=lab" in env
    assert {c["name"] for c in json.loads((tmp_path / "c" / "categories.json").read_text())} \
        >= {"DHCP timeout", "Policy mismatch", "Path failover", "Engine crash", "Lab failure"}


def test_nothing_happens_without_alluredir() -> None:
    config = SimpleNamespace(option=SimpleNamespace(allure_report_dir=None))
    assert not report.enabled(config)
    with report.step(config, "a step"):
        pass
