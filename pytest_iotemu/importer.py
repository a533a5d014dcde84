"""Import the previous emulator's device file (``iot-devices.json``) as a fleet spec.

Each device becomes its own group with its exact MAC, host name, option 55 list, vendor
class and behaviours; its vendor and type pick the closest built-in profile for the rest.
The spec is built as a located tree whose positions are those of the JSON file, so
every error — from the import or from the spec validation after it — cites the line
and column of the JSON the user wrote.
"""
from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from .profiles.library import ProfileLibrary
from .profiles.model import Profile
from .spec.check import BAD, Checker, join
from .spec.errors import ErrorCollector
from .spec.source import Node, load_yaml
from .spec.units import parse_mac

LEGACY_PROTOCOLS = ("dhcp", "arp", "dns", "cloud", "ntp", "lldp", "snmp", "http", "mqtt",
                    "rtsp", "mdns")
LEGACY_BEHAVIOURS = ("dns_flood", "port_scan", "beacon", "data_exfil", "pan_test_domains",
                     "random")
DEVICE_KEYS = ("id", "name", "vendor", "type", "mac", "protocols", "enabled",
               "traffic_interval", "ip_start", "gateway", "fingerprint", "security")
# Keys the old web UI left in the file; read past without a word.
UI_LEFTOVERS = ("running", "status", "description", "mqtt_topic", "ip", "current_ip",
                "last_seen", "created_at", "updated_at", "pid", "stats", "location", "model")

# legacy `type` -> the class of device it means
TYPE_CLASS = {
    "security_camera": "camera", "camera": "camera", "ip_camera": "camera",
    "nvr": "nvr", "dvr": "nvr",
    "smart_bulb": "lighting", "bulb": "lighting", "light": "lighting",
    "lighting": "lighting", "smart_light": "lighting",
    "smart_plug": "plug", "plug": "plug", "smart_switch": "plug", "switch": "plug",
    "thermostat": "thermostat", "temperature_sensor": "thermostat",
    "smart_speaker": "speaker", "speaker": "speaker", "voice_assistant": "speaker",
    "printer": "printer",
    "ip_phone": "phone", "voip_phone": "phone", "phone": "phone",
    "badge_reader": "access-control", "access_control": "access-control",
    "door_controller": "access-control",
    "plc": "plc", "industrial_controller": "plc",
    "medical_device": "medical", "infusion_pump": "medical", "patient_monitor": "medical",
    "pos": "pos", "pos_terminal": "pos", "payment_terminal": "pos",
    "smart_tv": "tv", "tv": "tv",
    "raspberry_pi": "sbc", "sbc": "sbc",
    "workstation": "workstation", "laptop": "workstation", "computer": "workstation",
    "pc": "workstation", "desktop": "workstation",
    "smartphone": "mobile", "mobile": "mobile", "tablet": "mobile",
    # sensors have no class of their own: a generic Wi-Fi IoT module is closest
    "motion_sensor": "plug", "door_sensor": "plug", "sensor": "plug",
    "smoke_detector": "plug", "water_sensor": "plug",
}
# the profile taken for a class when no profile of the device's vendor has it
CLASS_DEFAULT = {
    "camera": "axis-camera", "nvr": "hikvision-nvr", "lighting": "lifx-bulb",
    "plug": "sonoff-switch", "thermostat": "ecobee-thermostat", "speaker": "amazon-echo",
    "printer": "hp-printer", "phone": "cisco-ip-phone", "access-control": "hid-badge-reader",
    "plc": "siemens-plc", "medical": "infusion-pump", "pos": "verifone-pos",
    "tv": "samsung-tv", "sbc": "raspberry-pi", "workstation": "windows-10",
    "mobile": "android",
}
# vendor names the old tool used -> words that appear in our profiles
VENDOR_ALIASES = {"google": ("google", "nest"), "philips": ("philips", "signify"),
                  "tp-link": ("tp-link", "kasa"), "tplink": ("tp-link", "kasa"),
                  "apple": ("apple",), "hp": ("hp",), "sonoff": ("sonoff", "itead")}
# legacy protocol -> the profile protocol it becomes (dhcp and arp are the DHCP/ARP cores)
PROTOCOL_MAP = {"dns": "dns", "cloud": "cloud", "ntp": "ntp", "lldp": "lldp", "snmp": "snmp",
                "http": "http", "mqtt": "mqtt", "rtsp": "rtsp", "mdns": "mdns"}
CLIENT_ID_TYPES = {0: "none", 1: "mac", 255: "duid"}

_GROUP_BAD_CHARS = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass
class ImportResult:
    root: Node  # the spec as a located tree (positions from the JSON file)
    warnings: list[str] = field(default_factory=list)
    comments: dict[int, list[str]] = field(default_factory=dict)  # device index -> notes

    def to_yaml(self, source: str) -> str:
        """The spec as YAML text, with the import's notes as comments."""
        data = self.root.plain()
        devices = data.pop("devices")
        head = yaml.safe_dump(data, sort_keys=False, width=100).rstrip()
        lines = [f"# Imported by `iotemu import` from {source}.",
                 "# Each device of the file is its own group; see docs/profiles.md.", head,
                 "devices:"]
        for index, group in enumerate(devices):
            for note in self.comments.get(index, []):
                lines.append(f"  # {note}")
            lines.append("  - " + json.dumps(group, ensure_ascii=False))
        return "\n".join(lines) + "\n"


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9][a-z0-9-]*", text.lower()))


def closest_profile(vendor: str, cls: str | None, profiles: ProfileLibrary) -> Profile | None:
    """A profile of ``cls`` made by ``vendor``, else the class's default, else any profile
    by that vendor."""
    words = set()
    for word in _words(vendor):
        words.update(VENDOR_ALIASES.get(word, (word,)))

    def by_vendor(p: Profile) -> bool:
        text = _words(f"{p.vendor} {p.name} {p.oui_owner or ''}")
        return bool(words & text)

    if cls is not None:
        same_class = [profiles[n] for n in profiles if profiles[n].cls == cls]
        for profile in same_class:
            if by_vendor(profile):
                return profile
        default = CLASS_DEFAULT.get(cls)
        if default in profiles:
            return profiles[default]
        if same_class:
            return same_class[0]
    for name in profiles:
        if by_vendor(profiles[name]):
            return profiles[name]
    return None


class LegacyImporter(Checker):
    def __init__(self, errors: ErrorCollector, profiles: ProfileLibrary, interface: str):
        super().__init__(errors)
        self.profiles = profiles
        self.interface = interface
        self.warnings: list[str] = []
        self.comments: dict[int, list[str]] = {}

    def warn(self, where: Node, path: str, message: str, index: int | None = None) -> None:
        self.warnings.append(f"{self.errors.file}:{where.line}:{where.col}: {path}: {message}")
        if index is not None:
            self.comments.setdefault(index, []).append(message)

    def convert(self, root: Node, fleet: str) -> Node | Any:
        if not self.mapping(root, "", "a device file mapping ({\"devices\": [...]})",
                            ("devices", "network"), ("devices",)):
            return BAD
        lan, gateway, iface = self._network(root.get("network"))
        devices_node = root.value.get("devices")
        items = self.sequence(devices_node, "devices", "a list of devices")
        if devices_node is not None and devices_node.is_seq() and not items:
            self.error(devices_node, "devices", "expected at least one device, got an empty list")
        groups: list[Node] = []
        statics: list[ipaddress.IPv4Address] = []
        seen_ids: dict[str, int] = {}
        for index, node in enumerate(items):
            group = self._device(node, join("devices", index), index, seen_ids, statics)
            if group is not BAD:
                groups.append(group)
        if self.errors:
            return BAD
        if lan is None:
            lan, gateway = self._infer_lan(statics, root)
        lab: dict[str, Node] = {"lan": _scalar(str(lan), root), "gateway": _scalar(str(gateway), root)}
        pool = _free_run(lan, gateway, statics)
        if statics and pool is not None:
            lab["pools"] = _map({"default": _map({"range": _scalar(pool, root)}, root)}, root)
        site: dict[str, Node] = {"fleet": _scalar(fleet, root)}
        interface = self.interface if self.interface != "keep" else (iface or "lab")
        site["interface"] = _scalar(interface, root)
        if interface != "lab" and iface and interface == iface:
            self.warnings.append(f"{self.errors.file}: network.interface {iface!r} kept: "
                                 "traffic on a real interface needs --iot-allow-live")
        site["lab"] = _map(lab, root)
        site["devices"] = Node(groups, devices_node.line, devices_node.col, "seq")
        return _map(site, root)

    def _network(self, node: Node | None) -> tuple[Any, Any, str | None]:
        if node is None:
            return None, None, None
        if not self.mapping(node, "network", "a network mapping",
                            ("interface", "gateway", "dhcp_server", "subnet_mask")):
            return None, None, None
        iface = self.string(node.get("interface"), "network.interface", "an interface name")
        gw_text = self.string(node.get("gateway"), "network.gateway", "an IPv4 address")
        mask = self.string(node.get("subnet_mask"), "network.subnet_mask",
                           "a subnet mask such as 255.255.255.0", default="255.255.255.0")
        if BAD in (iface, gw_text, mask) or gw_text is None:
            return None, None, iface if iface is not BAD else None
        try:
            gateway = ipaddress.IPv4Address(gw_text)
            lan = ipaddress.IPv4Network(f"{gateway}/{mask}", strict=False)
        except ValueError:
            self.error(node, "network", f"gateway {gw_text!r} with mask {mask!r} is not an "
                       "IPv4 network; fix network.gateway and network.subnet_mask")
            return None, None, iface
        return lan, gateway, iface

    def _infer_lan(self, statics: list, root: Node) -> tuple[Any, Any]:
        if statics:
            lan = ipaddress.IPv4Network(f"{statics[0]}/24", strict=False)
        else:
            lan = ipaddress.IPv4Network("10.99.0.0/24")
        self.warnings.append(f"{self.errors.file}: no `network` block: using the LAN {lan} for "
                             "the lab; edit lab.lan if that is not what you want")
        return lan, lan.network_address + 1

    def _device(self, node: Node, path: str, index: int, seen_ids: dict[str, int],
                statics: list) -> Node | Any:
        if not node.is_map():
            return self.expected(node, path, "a device mapping")
        for key in node.value:
            if key not in DEVICE_KEYS and key not in UI_LEFTOVERS:
                self.mapping(Node({key: node.value[key]}, node.line, node.col, "map",
                                  keys={key: node.keys[key]}), path, "a device",
                             DEVICE_KEYS)
        for key in ("id", "vendor", "type", "mac"):
            if key not in node.value:
                self.error(node, join(path, key), f"required key {key!r} is missing from the "
                           "device")
        dev_id = self.string(node.get("id"), join(path, "id"), "a device id")
        vendor = self.string(node.get("vendor"), join(path, "vendor"), "the vendor's name")
        dtype = self.string(node.get("type"), join(path, "type"), "a device type")
        mac_node = node.get("mac")
        mac = self.parse(mac_node, join(path, "mac"), parse_mac)
        protocols = self._protocols(node.get("protocols"), join(path, "protocols"), index)
        enabled = self.boolean(node.get("enabled"), join(path, "enabled"), default=True)
        interval = None
        inode = node.get("traffic_interval")
        if inode is not None:
            if isinstance(inode.value, (int, float)) and not isinstance(inode.value, bool) \
                    and inode.value > 0:
                interval = inode.value
            else:
                self.expected(inode, join(path, "traffic_interval"),
                              "a number of seconds above zero")
                interval = BAD
        ip_start = self.string(node.get("ip_start"), join(path, "ip_start"), "an IPv4 address")
        if isinstance(ip_start, str):
            try:
                ip_start = ipaddress.IPv4Address(ip_start)
            except ValueError:
                ip_start = self.expected(node.value["ip_start"], join(path, "ip_start"),
                                         "an IPv4 address such as 192.168.1.10")
        fingerprint = self._fingerprint(node.get("fingerprint"), join(path, "fingerprint"))
        threats = self._security(node.get("security"), join(path, "security"))
        values = (dev_id, vendor, dtype, mac, protocols, enabled, interval, ip_start,
                  fingerprint, threats)
        if protocols is not BAD and "dhcp" not in protocols and ip_start is None:
            return self.error(node, path, "the device has neither 'dhcp' in protocols nor "
                              "an ip_start: it would have no address; add one of them")
        if BAD in values or None in (dev_id, vendor, dtype) or mac_node is None:
            return BAD
        if dev_id in seen_ids:
            return self.error(node.value["id"], join(path, "id"), f"id {dev_id!r} is used "
                              f"twice (first by devices[{seen_ids[dev_id]}]); ids must be unique")
        seen_ids[dev_id] = index
        cls = TYPE_CLASS.get(dtype.lower())
        profile = closest_profile(vendor, cls, self.profiles)
        if profile is None:
            return self.error(node.value["type"], join(path, "type"),
                              f"no profile fits vendor {vendor!r} and type {dtype!r}; use one "
                              f"of the types {', '.join(sorted(TYPE_CLASS))}")
        if cls is None:
            self.warn(node.value["type"], join(path, "type"), f"unknown type {dtype!r}: using "
                      f"profile {profile.name} (by vendor)", index)
        group_name = _GROUP_BAD_CHARS.sub("-", dev_id).strip("-_")[:48] or f"device-{index + 1}"
        if group_name != dev_id:
            self.warn(node.value["id"], join(path, "id"), f"id {dev_id!r} named the group "
                      f"{group_name!r} (group names are letters, digits, '_' and '-')", index)
        group: dict[str, Node] = {
            "name": _scalar(group_name, node.value["id"]),
            "profile": _scalar(profile.name, node.value["type"]),
            "vendor": node.value["vendor"],
            "mac": mac_node,
        }
        model = node.get("name")
        if model is not None and isinstance(model.value, str):
            self.comments.setdefault(index, []).insert(0, f"{dev_id}: {model.value}")
        if profile.ouis:
            if mac[:8] not in profile.ouis:
                self.warn(mac_node, join(path, "mac"), f"MAC {mac_node.value} is not one of "
                          f"{profile.name}'s OUIs ({', '.join(o.upper() for o in profile.ouis)}); "
                          "kept as given", index)
        if not enabled:
            group["enabled"] = node.value["enabled"]
        uses_dhcp = "dhcp" in protocols
        if not uses_dhcp:
            group["static_ip"] = node.value["ip_start"]
            statics.append(ip_start)
        elif ip_start is not None:
            group["request_ip"] = node.value["ip_start"]  # asked for with option 50
        dhcp: dict[str, Node] = fingerprint or {}
        if "hostname" in dhcp:
            group["hostname"] = dhcp.pop("hostname")
        if dhcp:
            group["dhcp"] = _map(dhcp, node.value["fingerprint"])
        if threats:
            group["threats"] = Node(threats, node.value["security"].line,
                                    node.value["security"].col, "seq")
        habits = []
        for name, pnode in protocols.items():
            if name in PROTOCOL_MAP:
                habit = {"name": _scalar(PROTOCOL_MAP[name], pnode)}
                if interval is not None:
                    habit["interval"] = _scalar(f"{interval:g}s", inode)
                habits.append(_map(habit, pnode))
        if protocols:
            pnodes = node.value["protocols"]
            group["protocols"] = Node(habits, pnodes.line, pnodes.col, "seq")
        return _map(group, node)

    def _protocols(self, node: Node | None, path: str, index: int) -> dict[str, Node] | Any:
        if node is None:
            return {}
        out: dict[str, Node] = {}
        for i, item in enumerate(self.sequence(node, path, "a list of protocols")):
            name = self.choice(item, join(path, i), LEGACY_PROTOCOLS)
            if name is BAD:
                return BAD
            if name == "snmp":
                self.warn(item, join(path, i), "snmp: the device answers no SNMP queries; only "
                          "its SNMP traffic is emulated", index)
            out[name] = item
        return out if node.is_seq() else BAD

    def _fingerprint(self, node: Node | None, path: str) -> dict[str, Node] | Any:
        if node is None:
            return None
        if not self.mapping(node, path, "a fingerprint mapping", ("dhcp",)):
            return BAD
        dnode = node.get("dhcp")
        if dnode is None:
            return None
        dpath = join(path, "dhcp")
        if not self.mapping(dnode, dpath, "a DHCP fingerprint mapping",
                            ("hostname", "vendor_class_id", "param_req_list", "client_id_type")):
            return BAD
        out: dict[str, Node] = {}
        host = dnode.get("hostname")
        if host is not None:
            text = self.string(host, join(dpath, "hostname"), "a host name")
            if text is BAD:
                return BAD
            # a literal host name: braces would read as pattern fields
            out["hostname"] = _scalar(text.replace("{", "{{").replace("}", "}}"), host)
        if dnode.get("vendor_class_id") is not None:
            out["vendor_class"] = dnode.value["vendor_class_id"]
        prl = dnode.get("param_req_list")
        if prl is not None:
            if prl.kind == "scalar" and isinstance(prl.value, str):  # "1,3,6,15"
                try:
                    codes = [int(c) for c in prl.value.replace(" ", "").split(",") if c]
                except ValueError:
                    return self.expected(prl, join(dpath, "param_req_list"),
                                         "a list of option codes such as [1, 3, 6]")
                prl = Node([_scalar(c, prl) for c in codes], prl.line, prl.col, "seq")
            out["param_request_list"] = prl
        cid = dnode.get("client_id_type")
        if cid is not None:
            if cid.value not in CLIENT_ID_TYPES or isinstance(cid.value, bool):
                return self.expected(cid, join(dpath, "client_id_type"),
                                     "0 (none), 1 (Ethernet MAC) or 255 (DUID)")
            out["client_id"] = _scalar(CLIENT_ID_TYPES[cid.value], cid)
        return out

    def _security(self, node: Node | None, path: str) -> list[Node] | Any:
        if node is None:
            return []
        if not self.mapping(node, path, "a security mapping", ("bad_behavior", "behavior_type")):
            return BAD
        bad = self.boolean(node.get("bad_behavior"), join(path, "bad_behavior"), default=False)
        tnode = node.get("behavior_type")
        if bad is BAD:
            return BAD
        if tnode is None or not bad:
            return []
        items = tnode.value if tnode.is_seq() else [tnode]
        out = []
        for i, item in enumerate(items):
            ipath = join(join(path, "behavior_type"), i) if tnode.is_seq() \
                else join(path, "behavior_type")
            if self.choice(item, ipath, LEGACY_BEHAVIOURS) is BAD:
                return BAD
            out.append(item)
        return out


def _scalar(value: Any, where: Node) -> Node:
    return Node(value, where.line, where.col, "scalar", text=str(value))


def _map(values: dict[str, Node], where: Node) -> Node:
    return Node(values, where.line, where.col, "map",
                keys={k: (v.line, v.col) for k, v in values.items()})


def _free_run(lan: ipaddress.IPv4Network, gateway: Any,
              statics: list[ipaddress.IPv4Address]) -> str | None:
    """The longest run of LAN hosts holding neither the gateway nor a static address."""
    taken = sorted({int(a) for a in statics if a in lan} | {int(gateway)})
    first, last = int(lan.network_address) + 1, int(lan.broadcast_address) - 1
    best: tuple[int, int] | None = None
    start = first
    for address in taken + [last + 1]:
        end = min(address - 1, last)
        if end >= start and (best is None or end - start > best[1] - best[0]):
            best = (start, end)
        start = max(start, address + 1)
    if best is None:
        return None
    return f"{ipaddress.IPv4Address(best[0])}-{ipaddress.IPv4Address(best[1])}"


def read_legacy(text: str, file: str, profiles: ProfileLibrary,
                interface: str = "lab", fleet: str | None = None) -> tuple[Node | None,
                                                                            ErrorCollector,
                                                                            ImportResult | None]:
    """Parse and convert a legacy JSON device file; errors are left in the collector."""
    errors = ErrorCollector(file)
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        errors.add((exc.lineno, exc.colno), "(document)", f"not valid JSON: {exc.msg}")
        return None, errors, None
    # JSON is YAML; raw tabs can only be whitespace in JSON, so spaces keep every column
    root = load_yaml(text.replace("\t", " "), errors, env={})
    if root is None:
        return None, errors, None
    name = fleet or re.sub(r"[^A-Za-z0-9_.-]+", "-", file.rsplit("/", 1)[-1].rsplit(".", 1)[0])
    importer = LegacyImporter(errors, profiles, interface)
    spec_root = importer.convert(root, name.strip("-._") or "imported")
    if spec_root is BAD:
        return None, errors, None
    return spec_root, errors, ImportResult(spec_root, importer.warnings, importer.comments)
