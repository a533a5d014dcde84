"""Validation of profile files (built-in and the user's), with the spec's precise errors."""
from __future__ import annotations

import re
from typing import Any

from ..spec.check import BAD, Checker, join
from ..spec.naming import PatternError, pattern_fields
from ..spec.source import Node
from ..spec.units import parse_duration, parse_percent, parse_rate, parse_size
from .model import (CLIENT_ID_TYPES, DEVICE_CLASSES, DSCP_NAMES, PROTOCOLS, DhcpFingerprint,
                    ProtocolHabit, Profile)

PROFILE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,47}$")
PROFILE_NAME_HINT = "a profile name of lower-case letters, digits and '-' (e.g. axis-camera)"
_OUI = re.compile(r"^[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}$")

PROFILE_KEYS = ("name", "vendor", "class", "model", "description", "ouis", "oui_owner",
                "dhcp", "protocols", "source")
DHCP_KEYS = ("param_request_list", "vendor_class", "client_id", "max_message_size",
             "hostname", "fqdn", "broadcast", "arp_probe")
PROTOCOL_KEYS = ("name", "interval", "size", "to", "rate", "jitter", "dscp")


def check_hostname_pattern(check: Checker, node: Node | None, path: str) -> Any:
    """A hostname pattern, ``None`` for "send no option 12", or BAD."""
    if node is None or (node.kind == "scalar" and node.value is None):
        return None
    text = check.string(node, path, "a hostname pattern such as cam-{n:02}")
    if text is BAD:
        return BAD
    try:
        pattern_fields(text)
    except PatternError as exc:
        return check.expected(node, path, str(exc))
    return text


def check_fingerprint(check: Checker, node: Node | None, path: str,
                      partial: bool) -> dict[str, Any] | Any:
    """The fields of a ``dhcp:`` block; every field required unless ``partial``."""
    required = () if partial else ("param_request_list",)
    if not check.mapping(node, path, "a dhcp fingerprint mapping", DHCP_KEYS, required):
        return BAD
    assert node is not None
    out: dict[str, Any] = {}
    ok = True

    prl = node.get("param_request_list")
    if prl is not None:
        items = check.sequence(prl, join(path, "param_request_list"),
                               "a list of DHCP option codes (option 55, in the order sent)")
        codes = [check.integer(item, join(path, f"param_request_list[{i}]"), 1, 254,
                               what="a DHCP option code")
                 for i, item in enumerate(items)]
        if prl.is_seq() and not items:
            check.error(prl, join(path, "param_request_list"),
                        "expected at least one option code, got an empty list")
            ok = False
        elif BAD in codes or not prl.is_seq():
            ok = False
        else:
            seen: set[int] = set()
            for i, code in enumerate(codes):
                if code in seen:
                    check.error(items[i], join(path, f"param_request_list[{i}]"),
                                f"option {code} is listed twice; a client requests it once")
                    ok = False
                seen.add(code)
            out["param_request_list"] = tuple(codes)

    if "vendor_class" in node.value:
        vc_node = node.value["vendor_class"]
        if vc_node.kind == "scalar" and vc_node.value is None:
            out["vendor_class"] = None
        else:
            vc = check.string(vc_node, join(path, "vendor_class"),
                              "a vendor class string (option 60) or null", max_len=255)
            if vc is BAD:
                ok = False
            elif not vc.isascii():
                check.error(vc_node, join(path, "vendor_class"),
                            "expected plain ASCII text (option 60 is sent as bytes)")
                ok = False
            else:
                out["vendor_class"] = vc

    simple = {
        "client_id": lambda n, p: check.choice(n, p, CLIENT_ID_TYPES),
        "fqdn": check.boolean,
        "broadcast": check.boolean,
        "arp_probe": check.boolean,
    }
    for key, reader in simple.items():
        if key in node.value:
            value = reader(node.value[key], join(path, key))
            ok = ok and value is not BAD
            out[key] = value

    if "max_message_size" in node.value:
        mms = node.value["max_message_size"]
        if mms.kind == "scalar" and mms.value is None:
            out["max_message_size"] = None
        else:
            value = check.integer(mms, join(path, "max_message_size"), 576, 65535,
                                  what="a maximum DHCP message size (option 57)")
            ok = ok and value is not BAD
            out["max_message_size"] = value

    if "hostname" in node.value:
        value = check_hostname_pattern(check, node.value["hostname"], join(path, "hostname"))
        ok = ok and value is not BAD
        out["hostname"] = value
    return out if ok else BAD


def check_dscp(check: Checker, node: Node | None, path: str) -> Any:
    """A DSCP: a code point 0-63 or a name such as ef, af41, cs1."""
    if node is None:
        return None
    value = node.value
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= 63:
            return value
    elif isinstance(value, str) and value.strip().lower() in DSCP_NAMES:
        return DSCP_NAMES[value.strip().lower()]
    return check.expected(node, path, "a DSCP: a code point 0 to 63, or ef, af11-af43, "
                          "cs0-cs7")


def check_protocols(check: Checker, node: Node | None, path: str) -> Any:
    items = check.sequence(node, path, "a list of protocols such as {name: ntp, interval: 1h}")
    out = []
    ok = node is None or node.is_seq()
    for i, item in enumerate(items):
        ipath = join(path, i)
        if item.kind == "scalar":  # shorthand: just the name
            name = check.choice(item, ipath, PROTOCOLS)
            ok = ok and name is not BAD
            if name is not BAD:
                out.append(ProtocolHabit(name))
            continue
        if not check.mapping(item, ipath, "a protocol mapping", PROTOCOL_KEYS, ("name",)):
            ok = False
            continue
        name = check.choice(item.get("name"), join(ipath, "name"), PROTOCOLS)
        interval = check.parse(item.get("interval"), join(ipath, "interval"), parse_duration)
        size = check.parse(item.get("size"), join(ipath, "size"), parse_size)
        rate = check.parse(item.get("rate"), join(ipath, "rate"), parse_rate)
        to = check.string(item.get("to"), join(ipath, "to"),
                          "a destination name (a target or a DNS name)")
        jitter = check.parse(item.get("jitter"), join(ipath, "jitter"), parse_percent)
        dscp = check_dscp(check, item.get("dscp"), join(ipath, "dscp"))
        values = (name, interval, size, rate, to, jitter, dscp)
        if BAD in values or name is None:
            ok = False
            continue
        out.append(ProtocolHabit(name, interval, size, to, rate, jitter, dscp))
    return tuple(out) if ok else BAD


def check_profile(check: Checker, node: Node, path: str, origin: str) -> Profile | Any:
    if not check.mapping(node, path, "a profile mapping", PROFILE_KEYS,
                         ("name", "vendor", "class", "dhcp", "source")):
        return BAD
    name = check.string(node.get("name"), join(path, "name"), PROFILE_NAME_HINT, PROFILE_NAME)
    vendor = check.string(node.get("vendor"), join(path, "vendor"), "the vendor's name")
    cls = check.choice(node.get("class"), join(path, "class"), DEVICE_CLASSES)
    model = check.string(node.get("model"), join(path, "model"), "a model name")
    description = check.string(node.get("description"), join(path, "description"),
                               "a description")
    oui_owner = check.string(node.get("oui_owner"), join(path, "oui_owner"),
                             "the organisation the OUIs are registered to")
    source = check.string(node.get("source"), join(path, "source"),
                          "where the fingerprint comes from, or \"unverified\"")
    ouis: Any = ()
    ouis_node = node.get("ouis")
    if ouis_node is not None:
        items = check.sequence(ouis_node, join(path, "ouis"), "a list of OUIs such as 00:40:8C")
        parsed = []
        for i, item in enumerate(items):
            text = check.string(item, join(path, f"ouis[{i}]"), "an OUI such as 00:40:8C",
                                _OUI)
            if text is not BAD and int(text[:2], 16) & 1:
                text = check.error(item, join(path, f"ouis[{i}]"),
                                   "expected a unicast OUI (the first octet's lowest bit set "
                                   "means multicast)")
            parsed.append(text.lower() if text is not BAD else BAD)
        ouis = tuple(parsed) if BAD not in parsed and ouis_node.is_seq() else BAD
    fields = check_fingerprint(check, node.get("dhcp"), join(path, "dhcp"), partial=False)
    protocols = check_protocols(check, node.get("protocols"), join(path, "protocols"))
    protocols = () if protocols is None else protocols
    values = (name, vendor, cls, model, description, source, ouis, fields, protocols,
              oui_owner)
    if BAD in values or any(v is None for v in (name, vendor, cls, source)) or fields is None:
        return BAD
    return Profile(name=name, vendor=vendor, cls=cls, ouis=ouis,
                   dhcp=DhcpFingerprint(**fields), source=source, model=model,
                   description=description, protocols=protocols, oui_owner=oui_owner,
                   origin=origin)
