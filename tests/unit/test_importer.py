"""Import of the previous emulator's device files."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_iotemu.cli import main
from pytest_iotemu.spec.errors import SpecError
from pytest_iotemu.spec.schema import load_spec, parse_legacy

DATA = Path(__file__).resolve().parents[1] / "data"
SAMPLE = DATA / "legacy-devices.json"
SHIPPED = DATA / "previous-emulator" / "iot_devices.json"


def by_group(spec):
    return {d.group: d for d in spec.devices}


def test_sample_file_loads_directly_with_nothing_lost() -> None:
    spec = load_spec(SAMPLE)
    source = json.loads(SAMPLE.read_text())["devices"]
    devices = by_group(spec)
    assert len(devices) == len(source)
    cam = devices["cam_lobby"]
    assert cam.name == "cam_lobby-1" and cam.mac == "00:40:8c:11:22:33"
    assert cam.profile == "axis-camera" and cam.vendor == "Axis"
    assert cam.hostname == "lobby-cam"
    assert cam.dhcp.vendor_class == "AXIS,Network Camera,M3045-V"
    assert cam.dhcp.param_request_list == (1, 3, 6, 12, 15, 28, 42)
    assert cam.dhcp.client_id == "mac"
    assert str(cam.request_ip) == "192.168.50.120"  # asked for with option 50
    assert [(p.name, p.interval) for p in cam.protocols] == [
        ("rtsp", 30), ("dns", 30), ("ntp", 30)]
    printer = devices["printer-2f"]
    assert str(printer.static_ip) == "192.168.50.20" and printer.pool is None
    pc = devices["infected-pc"]
    assert not pc.enabled and pc.threats == ("port_scan", "beacon")
    assert pc.dhcp.param_request_list == (1, 3, 6, 15, 31, 33, 43, 44, 46, 47, 119, 121, 249, 252)
    assert pc.profile == "windows-10"
    assert devices["echo_kitchen"].threats == ("dns_flood",)
    assert devices["quiet-sensor"].threats == ()  # bad_behavior false
    (site,) = spec.sites
    assert site.interface == "lab"  # never a real NIC unless asked
    assert str(site.lab.lan) == "192.168.50.0/24" and str(site.lab.gateway) == "192.168.50.1"
    # the static printer is carved out of the DHCP pool
    assert all(printer.static_ip not in p.range for p in site.lab.pools)


def test_warnings_cite_the_json_lines() -> None:
    spec = load_spec(SAMPLE)
    warnings = "\n".join(spec.warnings)
    assert f"{SAMPLE}:15:56: devices[1].protocols[1]: snmp: the device answers no SNMP " \
           "queries" in warnings
    assert "door_sensor" not in warnings  # a known type: no warning
    assert "MAC 02:00:00:00:00:09 is not one of" not in warnings  # windows: no OUIs


def test_round_trip_import_validate_show(tmp_path: Path, capsys) -> None:
    out = tmp_path / "fleet.yaml"
    assert main(["import", str(SAMPLE), "-o", str(out)]) == 0
    imported = load_spec(out)
    direct = load_spec(SAMPLE)
    assert [d.as_dict() for d in imported.devices] == [d.as_dict() for d in direct.devices]
    capsys.readouterr()
    assert main(["show", "--json", str(out)]) == 0
    shown = json.loads(capsys.readouterr().out)["sites"][0]["devices"]
    assert [d["mac"] for d in shown] == [d.mac for d in direct.devices]
    # an existing output is never overwritten by accident
    assert main(["import", str(SAMPLE), "-o", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(["import", str(SAMPLE), "-o", str(out), "--force"]) == 0


def test_keep_interface_option(tmp_path: Path, capsys) -> None:
    assert main(["import", str(SAMPLE), "--interface", "keep"]) == 0
    assert "interface: ens4" in capsys.readouterr().out


def test_the_previous_emulators_own_file() -> None:
    spec = load_spec(SHIPPED)
    assert len(spec.devices) == 10
    cam = by_group(spec)["camera_01"]
    assert cam.profile == "hikvision-camera" and cam.mac == "00:12:34:56:78:01"
    assert any("00:12:34:56:78:01 is not one of hikvision-camera's OUIs" in w
               for w in spec.warnings)


BAD = {
    "json_syntax": ('{"devices": [\n  {"id": "a",}\n]}', ["f.json:2:14: (document): not valid "
                                                          "JSON: Expecting property name "
                                                          "enclosed in double quotes"]),
    "no_devices": ('{"network": {}}', ["f.json:1:1: devices: required key 'devices' is missing "
                                       "from a device file mapping ({\"devices\": [...]})"]),
    "missing_mac": ('{"devices": [\n {"id": "a", "vendor": "Axis", "type": "camera"}\n]}',
                    ["f.json:2:2: devices[0].mac: required key 'mac' is missing from the "
                     "device",
                     "f.json:2:2: devices[0]: the device has neither 'dhcp' in protocols nor "
                     "an ip_start: it would have no address; add one of them"]),
    "bad_mac": ('{"devices": [\n {"id": "a", "vendor": "Axis", "type": "camera",\n'
                '  "mac": "00:40:8c:zz:00:01", "protocols": ["dhcp"]}\n]}',
                ["f.json:3:10: devices[0].mac: expected a MAC address such as "
                 "00:40:8c:12:34:56, got '00:40:8c:zz:00:01'"]),
    "bad_protocol": ('{"devices": [\n {"id": "a", "vendor": "Axis", "type": "camera",\n'
                     '  "mac": "00:40:8c:00:00:01", "protocols": ["dhcp", "telnet"]}\n]}',
                     ["f.json:3:53: devices[0].protocols[1]: expected one of arp, cloud, dhcp, "
                      "dns, http, lldp, mdns, mqtt, ntp, rtsp, snmp, got 'telnet'"]),
    "dup_id": ('{"devices": [\n {"id": "a", "vendor": "Axis", "type": "camera", '
               '"mac": "00:40:8c:00:00:01", "protocols": ["dhcp"]},\n'
               ' {"id": "a", "vendor": "Axis", "type": "camera", "mac": "00:40:8c:00:00:02", '
               '"protocols": ["dhcp"]}\n]}',
               ["f.json:3:9: devices[1].id: id 'a' is used twice (first by devices[0]); ids "
                "must be unique"]),
    "dup_mac": ('{"devices": [\n {"id": "a", "vendor": "Axis", "type": "camera", '
                '"mac": "00:40:8c:00:00:01", "protocols": ["dhcp"]},\n'
                ' {"id": "b", "vendor": "Axis", "type": "camera", "mac": "00:40:8C:00:00:01", '
                '"protocols": ["dhcp"]}\n]}',
                ["f.json:3:57: devices[1].mac: MAC 00:40:8c:00:00:01 is already used by "
                 "f/a-1; every device needs its own MAC"]),
    "no_address": ('{"devices": [\n {"id": "a", "vendor": "Axis", "type": "camera", '
                   '"mac": "00:40:8c:00:00:01", "protocols": ["arp"]}\n]}',
                   ["f.json:2:2: devices[0]: the device has neither 'dhcp' in protocols nor "
                    "an ip_start: it would have no address; add one of them"]),
    "bad_behaviour": ('{"devices": [\n {"id": "a", "vendor": "Axis", "type": "camera", '
                      '"mac": "00:40:8c:00:00:01", "protocols": ["dhcp"],\n'
                      '  "security": {"bad_behavior": true, "behavior_type": "ddos"}}\n]}',
                      ["f.json:3:55: devices[0].security.behavior_type: expected one of beacon, "
                       "data_exfil, dns_flood, pan_test_domains, port_scan, random, got 'ddos'"]),
    "unknown_key": ('{"devices": [\n {"id": "a", "vendor": "Axis", "type": "camera", '
                    '"mac": "00:40:8c:00:00:01", "protocol": ["dhcp"]}\n]}',
                    ["f.json:2:78: devices[0].protocol: unknown key 'protocol' (did you mean "
                     "'protocols'?); a device takes: id, name, vendor, type, mac, protocols, "
                     "enabled, traffic_interval, ip_start, gateway, fingerprint, security",
                     "f.json:2:2: devices[0]: the device has neither 'dhcp' in protocols nor "
                     "an ip_start: it would have no address; add one of them"]),
    "unfit": ('{"devices": [\n {"id": "a", "vendor": "Nobody", "type": "toaster", '
              '"mac": "00:40:8c:00:00:01", "protocols": ["dhcp"]}\n]}',
              ["f.json:2:42: devices[0].type: no profile fits vendor 'Nobody' and type "
               "'toaster'; use one of the types*"]),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_device_files(name: str) -> None:
    text, expected = BAD[name]
    with pytest.raises(SpecError) as info:
        parse_legacy(text, "f.json")
    got = [str(i) for i in info.value.issues]
    assert len(got) == len(expected), got
    for line, want in zip(sorted(got), sorted(expected)):
        if want.endswith("*"):
            assert line.startswith(want[:-1])
        else:
            assert line == want


def test_tabs_keep_their_columns() -> None:
    text = '{"devices": [\n\t{"id": "a", "vendor": "Axis", "type": "camera", "mac": "zz"}\n]}'
    with pytest.raises(SpecError) as info:
        parse_legacy(text, "f.json")
    assert [str(i) for i in info.value.issues] == [
        "f.json:2:2: devices[0]: the device has neither 'dhcp' in protocols nor an ip_start: "
        "it would have no address; add one of them",
        "f.json:2:57: devices[0].mac: expected a MAC address such as 00:40:8c:12:34:56, "
        "got 'zz'",
    ]
