"""The plugin's options, ini twins, fixtures and usage errors (pytester runs)."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BRANCH = (ROOT / "scenarios" / "branch.yaml").read_text()

SHOW_SPEC = """
def test_spec(iot_fleet_spec):
    site = iot_fleet_spec.sites[0]
    print("FLEET", iot_fleet_spec.name, site.interface, len(iot_fleet_spec.devices))
"""


def test_inert_without_a_fleet(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        def test_plain():
            assert 1 + 1 == 2

        def test_needs_fleet(iot_fleet_spec):
            pass

        def test_specs_empty(iot_fleet_specs):
            assert iot_fleet_specs == ()
    """)
    result = pytester.runpytest("-rs")
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["*no fleet: run with --iot-fleet=FILE*"])


def test_fleet_option_loads_the_spec(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", branch=BRANCH)
    pytester.makepyfile(SHOW_SPEC)
    result = pytester.runpytest("--iot-fleet=branch.yaml", "-s", ".", "-k", "test_")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*FLEET branch-paris-01 lab 36"])


def test_bad_spec_is_a_usage_error_with_every_message(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", bad="fleet: x\nlab: {lan: 10.0.0.0/33}\n"
                                   "devices: [{profile: axis-camra}]\n")
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--iot-fleet=bad.yaml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        "ERROR: bad.yaml:2:12: lab.lan: expected an IPv4 network such as 10.20.0.0/22, "
        "got '10.0.0.0/33'",
        "bad.yaml:3:21: devices?0?.profile: unknown profile 'axis-camra' (did you mean "
        "'axis-camera'?)*",
        "2 errors found; nothing was started",
    ])
    assert "Traceback" not in result.stderr.str()


def test_missing_fleet_file(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--iot-fleet=nowhere.yaml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: *nowhere.yaml:1:1: (file): spec file not found*"])


def test_ini_twins_resolve_relative_to_the_ini_file(pytester: pytest.Pytester) -> None:
    pytester.mkdir("specs")
    (pytester.path / "specs" / "branch.yaml").write_text(BRANCH)
    pytester.makeini("""
        [pytest]
        iot_fleet = specs/branch.yaml
        iot_iface = branch-paris-01=ens9
    """)
    pytester.makepyfile(SHOW_SPEC)
    result = pytester.runpytest("-s", ".", "-k", "test_")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*FLEET branch-paris-01 ens9 36"])


def test_command_line_wins_over_ini(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", branch=BRANCH)
    pytester.makeini("""
        [pytest]
        iot_fleet = branch.yaml
        iot_iface = ens9
    """)
    pytester.makepyfile(SHOW_SPEC)
    result = pytester.runpytest("-s", "--iot-iface=ens4", ".", "-k", "test_")
    result.stdout.fnmatch_lines(["*FLEET branch-paris-01 ens4 36"])


@pytest.mark.parametrize("value, message", [
    ("eth0/../x", "--iot-iface: expected `lab` or a network interface name such as ens4*"),
    ("=ens4", "--iot-iface: '=ens4' names no site; write SITE=IFACE or IFACE"),
    ("nosuch=ens4", "*an interface was given for site 'nosuch', which this spec does not "
                    "define*"),
])
def test_bad_interface_option(pytester: pytest.Pytester, value: str, message: str) -> None:
    pytester.makefile(".yaml", branch=BRANCH)
    result = pytester.runpytest("--iot-fleet=branch.yaml", f"--iot-iface={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])


def test_extra_profiles_option(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", mine="""
        name: lab-sensor
        vendor: Example Ltd
        class: plug
        ouis: ["00:11:22"]
        dhcp: {param_request_list: [1, 3, 6], hostname: "sensor-{n}"}
        source: unverified
    """, fleet="""
        fleet: f
        lab: {lan: 10.9.0.0/24}
        devices: [{profile: lab-sensor, count: 2}]
    """)
    pytester.makepyfile("""
        def test_spec(iot_fleet_spec):
            names = [d.hostname for d in iot_fleet_spec.devices]
            assert names == ["sensor-1", "sensor-2"]
    """)
    result = pytester.runpytest("--iot-fleet=fleet.yaml", "--iot-profiles=mine.yaml", ".",
                                "-k", "test_")
    result.assert_outcomes(passed=1)
    result = pytester.runpytest("--iot-fleet=fleet.yaml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown profile 'lab-sensor'*"])


def test_several_fleets(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", a="fleet: a\nlab: {lan: 10.1.0.0/24}\ndevices: [{profile: axis-camera}]\n",
                      b="fleet: b\nlab: {lan: 10.2.0.0/24}\ndevices: [{profile: axis-camera}]\n")
    pytester.makepyfile("""
        def test_all(iot_fleet_specs):
            assert [s.name for s in iot_fleet_specs] == ["a", "b"]

        def test_one(iot_fleet_spec):
            pass
    """)
    result = pytester.runpytest("--iot-fleet=a.yaml", "--iot-fleet=b.yaml", ".", "-k", "test_")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*2 fleets were given; iot_fleet_spec holds one*"])


def test_help_lists_the_options(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*emulated IoT fleets (pytest-iotemu)*", "*--iot-fleet=VALUE*",
                                 "*--iot-iface=VALUE*", "*--iot-profiles=VALUE*",
                                 "*--iot-engines=VALUE*", "*--iot-metrics=VALUE*",
                                 "*--iot-allow-live*", "*--iot-scale=VALUE*",
                                 "*--iot-keep-lab*", "*--iot-baseline=VALUE*",
                                 "*--iot-tolerance=VALUE*", "*--iot-save-baseline=VALUE*",
                                 "*iot_fleet (paths)*"])


@pytest.mark.parametrize("args, message", [
    (["--iot-engines=99"], "--iot-engines: expected 1 to 64 engines per site, got 99"),
    (["--iot-engines=many"], "--iot-engines: expected a number, got 'many'"),
    (["--iot-scale=0"], "--iot-scale: expected a factor above 0 (at most 1000), got 0.0"),
    (["--iot-tolerance=ten"], "--iot-tolerance: expected a percentage such as 10%, got 'ten'"),
    (["--iot-pcap=sometimes", "--alluredir=r"],
     "--iot-pcap: expected one of off, on-failure, always, got 'sometimes'"),
    (["--iot-pcap=always"], "--iot-pcap=always: captures are attached to the Allure report; "
                            "add --alluredir=DIR"),
])
def test_bad_numeric_options(pytester: pytest.Pytester, args: list, message: str) -> None:
    pytester.makefile(".yaml", branch=BRANCH)
    result = pytester.runpytest("--iot-fleet=branch.yaml", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])


def test_fleet_items_are_collected_with_their_ids(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", branch=BRANCH)
    result = pytester.runpytest("--iot-fleet=branch.yaml", "--collect-only", "-q")
    result.stdout.fnmatch_lines([
        "branch.yaml::branch-paris-01::dhcp?all?",
        "branch.yaml::branch-paris-01::dhcp?axis-camera?",
        "branch.yaml::branch-paris-01::policy?axis-camera->corp-files:445/tcp=block?",
        "branch.yaml::branch-paris-01::policy?axis-camera->camera-cloud:443/tcp=allow?",
        "branch.yaml::branch-paris-01::throughput?axis-camera->camera-cloud:554/udp@2mbps?",
        # a failover changes the lab: it runs after the others, and resources last
        "branch.yaml::branch-paris-01::path?cisco-ip-phone->sip-core:5060/udp@mpls,"
        "failover:mpls<=3s?",
        "branch.yaml::branch-paris-01::resources",
        "7 tests collected*",
    ])


def test_scale_multiplies_counts(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", branch=BRANCH)
    pytester.makepyfile(SHOW_SPEC)
    result = pytester.runpytest("--iot-fleet=branch.yaml", "--iot-scale=2", "-s", ".", "-k",
                                "test_")
    result.stdout.fnmatch_lines(["*FLEET branch-paris-01 lab 72"])


def test_items_on_a_real_interface_without_allow_live_are_skipped(
        pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", branch=BRANCH)
    result = pytester.runpytest("--iot-fleet=branch.yaml", "--iot-iface=ens9", "-rs")
    result.assert_outcomes(skipped=7)
    result.stdout.fnmatch_lines(["*runs on the real interface ens9: sending there needs "
                                 "--iot-allow-live*"])
    # path and throughput measure at the lab's targets: not on a real interface
    result.stdout.fnmatch_lines(["*needs the lab's target responders*"])


def test_previous_emulators_file_loads_directly(pytester: pytest.Pytester) -> None:
    data = (ROOT / "tests" / "data" / "legacy-devices.json").read_text()
    pytester.makefile(".json", devices=data)
    pytester.makepyfile(SHOW_SPEC)
    result = pytester.runpytest("--iot-fleet=devices.json", "-s", ".", "-k", "test_")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "iotemu: fleet devices from devices.json: 5 devices; devices on lab",
        "iotemu: warning: devices.json:15:56: devices?1?.protocols?1?: snmp: *",
        "*FLEET devices lab 5",
    ])
