"""Device names, hostname patterns and MAC derivation.

Hostname patterns are rendered by our own reading of ``str.format`` syntax: only the
fields below, no attribute or index access, no conversions, no nested fields, so a
pattern from a spec can never reach into Python objects.
"""
from __future__ import annotations

import hashlib
import re
import string
from typing import Iterable

# field -> (example value used to check the pattern, is it a number)
PATTERN_FIELDS = {
    "n": (1, True),  # index in the group, from 1
    "group": ("group", False),
    "mac": ("00408c0a0b0c", False),  # the MAC, 12 lower-case hex digits
    "mac6": ("0a0b0c", False),  # its last 6 hex digits
    "MAC": ("00408C0A0B0C", False),
    "MAC6": ("0A0B0C", False),
}
UNIQUE_FIELDS = ("n", "mac", "mac6", "MAC", "MAC6")

# Option 12 is a string, and real devices send '_' (ESP_0A0B0C, Polycom_…): allowed here.
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")


class PatternError(ValueError):
    pass


def pattern_fields(pattern: str) -> list[str]:
    """The fields a pattern uses; raises ``PatternError`` saying what is wrong."""
    fields = []
    try:
        parsed = list(string.Formatter().parse(pattern))
    except ValueError as exc:
        raise PatternError(f"a hostname pattern such as cam-{{n:02}} ({exc}; write {{{{ "
                           "for a literal brace)") from None
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in PATTERN_FIELDS:
            raise PatternError(f"a pattern using only {{n}}, {{group}}, {{mac}}, {{mac6}}, "
                               f"{{MAC}} or {{MAC6}} (found {{{name}}})")
        if conversion is not None or (spec and "{" in spec):
            raise PatternError(f"a plain field such as {{n:02}} (found a conversion or a "
                               f"nested field in {{{name}}})")
        example, _ = PATTERN_FIELDS[name]
        try:
            format(example, spec or "")
        except (ValueError, TypeError):
            raise PatternError(f"a valid format for {{{name}}} such as {{n:02}} "
                               f"(got {{{name}:{spec}}})") from None
        fields.append(name)
    return fields


def render(pattern: str, *, n: int, group: str, mac: str) -> str:
    digits = mac.replace(":", "").lower()
    values = {"n": n, "group": group, "mac": digits, "mac6": digits[6:],
              "MAC": digits.upper(), "MAC6": digits[6:].upper()}
    out = []
    for literal, name, spec, _conversion in string.Formatter().parse(pattern):
        out.append(literal)
        if name is not None:
            out.append(format(values[name], spec or ""))
    return "".join(out)


def hostname_problem(hostname: str) -> str | None:
    """Why ``hostname`` cannot go in option 12, or None."""
    if len(hostname) > 253:
        return "longer than 253 characters"
    for label in hostname.split("."):
        if not _LABEL.match(label):
            return ("not a valid host name (letters, digits, '-' and '_' in labels of at "
                    "most 63 characters, not starting or ending with '-')")
    return None


def device_name(group: str, index: int, count: int) -> str:
    """``<group>-<n>``, n zero-padded to the width of the group's count."""
    return f"{group}-{index:0{len(str(count))}d}"


def derive_mac(seed: int, site: str, group: str, index: int, ouis: Iterable[str],
               taken: set[str]) -> str:
    """A MAC from a keyed hash of (seed, site, group, index) over the profile's OUIs.

    The same inputs give the same MAC on every run and every machine (no ``hash()``).
    Without OUIs the MAC is locally administered, as phones and laptops that randomise
    their address send.  ``taken`` holds MACs already used in the fleet; a collision
    hashes again with an attempt counter, so the result stays deterministic.
    """
    ouis = [o.replace(":", "").lower() for o in ouis]
    key = seed.to_bytes(8, "big")
    attempt = 0
    while True:
        message = f"{site}\x00{group}\x00{index}\x00{attempt}".encode()
        digest = hashlib.blake2b(message, key=key, digest_size=16).digest()
        if ouis:
            oui = ouis[int.from_bytes(digest[:4], "big") % len(ouis)]
            nic = digest[4:7].hex()
            hexmac = oui + nic
        else:
            first = (digest[0] & 0xFC) | 0x02  # unicast, locally administered
            hexmac = f"{first:02x}" + digest[1:6].hex()
        mac = ":".join(hexmac[i:i + 2] for i in range(0, 12, 2))
        if mac not in taken:
            taken.add(mac)
            return mac
        attempt += 1
