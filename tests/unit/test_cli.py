"""The iotemu command: exit codes, output, never a traceback."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_iotemu.cli import main

ROOT = Path(__file__).resolve().parents[2]
BRANCH = str(ROOT / "scenarios" / "branch.yaml")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_validate_ok(capsys) -> None:
    code, out, err = run(capsys, "validate", BRANCH)
    assert code == 0 and err == ""
    assert out == f"{BRANCH}: ok: fleet branch-paris-01, 1 site, 36 devices, 7 expectations\n"


def test_validate_reports_every_bad_file_and_exits_2(capsys, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("fleet: x\nlab: {lan: 10.0.0.0/24}\ndevices: [{profile: nope}]\n")
    code, out, err = run(capsys, "validate", BRANCH, str(bad), str(tmp_path / "missing.yaml"))
    assert code == 2
    assert "branch.yaml: ok" in out
    assert f"{bad}:3:21: devices[0].profile: unknown profile 'nope'" in err
    assert f"{tmp_path / 'missing.yaml'}:1:1: (file): spec file not found" in err
    assert "Traceback" not in err


def test_show_table_and_json(capsys) -> None:
    code, out, _ = run(capsys, "show", BRANCH)
    assert code == 0
    header = next(line for line in out.splitlines() if line.startswith("NAME"))
    assert header.split() == ["NAME", "MAC", "VENDOR", "PROFILE", "CLASS", "HOSTNAME", "POOL"]
    assert "prn-02" in out and "cameras" in out
    code, out, _ = run(capsys, "show", "--json", BRANCH)
    data = json.loads(out)
    devices = data["sites"][0]["devices"]
    assert len(devices) == 36
    assert set(devices[0]) >= {"name", "mac", "vendor", "profile", "class", "hostname", "pool"}
    assert devices[0]["name"] == "axis-camera-01" and devices[0]["pool"] == "cameras"
    assert data["sites"][0]["expectations"][0]["id"] == "dhcp[all]"


def test_profiles_list_show_and_unknown(capsys) -> None:
    code, out, _ = run(capsys, "profiles", "--json")
    profiles = json.loads(out)
    assert code == 0
    for entry in profiles:
        assert {"name", "vendor", "class", "ouis"} <= set(entry)
    code, out, _ = run(capsys, "profiles", "show", "cisco-ip-phone")
    assert code == 0 and "vendor_class: Cisco Systems, Inc. IP Phone CP-7960G" in out
    code, out, err = run(capsys, "profiles", "show", "cisco-phone")
    assert code == 2
    assert "unknown profile 'cisco-phone' (did you mean 'cisco-ip-phone'?)" in err


def test_user_profiles_add_and_override(capsys, tmp_path: Path) -> None:
    extra = tmp_path / "mine.yaml"
    extra.write_text("""
profiles:
  - name: axis-camera
    vendor: Axis Communications AB
    class: camera
    ouis: ["00:40:8C"]
    dhcp: {param_request_list: [1, 3, 6]}
    source: unverified
  - name: lab-sensor
    vendor: Example
    class: plug
    dhcp: {param_request_list: [1, 3]}
    source: unverified
""")
    code, out, _ = run(capsys, "profiles", "--json", "--profiles", str(extra))
    by_name = {p["name"]: p for p in json.loads(out)}
    assert by_name["axis-camera"]["dhcp"]["param_request_list"] == [1, 3, 6]
    assert "lab-sensor" in by_name


def test_bad_profile_file_has_precise_errors(capsys, tmp_path: Path) -> None:
    extra = tmp_path / "mine.yaml"
    extra.write_text("name: x\nvendor: V\nclass: toaster\ndhcp: {param_request_list: [1, 300]}\n")
    code, _, err = run(capsys, "profiles", "--profiles", str(extra))
    assert code == 2
    assert f"{extra}:3:8: class: expected one of access-control" in err
    assert f"{extra}:4:32: dhcp.param_request_list[1]: expected a DHCP option code 1 to 254, " \
           "got '300'" in err
    assert f"{extra}:1:1: source: required key 'source' is missing" in err


def test_console_script_help_and_usage_errors() -> None:
    exe = [sys.executable, "-m", "pytest_iotemu.cli"]
    result = subprocess.run(exe + ["--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "validate" in result.stdout and "show" in result.stdout
    result = subprocess.run(exe + ["frobnicate"], capture_output=True, text=True)
    assert result.returncode == 2 and "invalid choice" in result.stderr
    result = subprocess.run(exe + ["validate", "/nonexistent/x.yaml"], capture_output=True,
                            text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr


@pytest.mark.parametrize("content", [b"\xff\xfe\x00bad", b""])
def test_undecodable_or_empty_files(capsys, tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(content)
    code, _, err = run(capsys, "validate", str(path))
    assert code == 2 and err.startswith(f"{path}:1:1:")
