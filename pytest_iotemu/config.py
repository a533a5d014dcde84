"""One frozen configuration object, resolved once from ``--iot-*`` options and their
``iot_*`` ini twins (the command line wins)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from .spec.schema import IFACE, IFACE_HINT


class ConfigError(ValueError):
    """A bad option value; the plugin turns it into ``pytest.UsageError``."""


@dataclass(frozen=True)
class IotConfig:
    fleets: tuple[Path, ...] = ()
    interfaces: Mapping[str, str] = field(default_factory=dict)  # site or "*" -> interface
    profile_files: tuple[Path, ...] = ()
    engines: int | None = None  # overrides each site's `engines:`
    metrics: Path | None = None
    allow_live: bool = False
    scale: float = 1.0
    keep_lab: bool = False
    baseline: Path | None = None
    save_baseline: Path | None = None
    tolerance: float = 0.10
    pcap: str = "off"  # off | on-failure | always
    traffic: bool = False

    @property
    def active(self) -> bool:
        return bool(self.fleets)


PCAP_MODES = ("off", "on-failure", "always")


def parse_interfaces(values: Iterable[str], source: str) -> dict[str, str]:
    """``IFACE`` (every site) or ``SITE=IFACE`` entries, checked."""
    out: dict[str, str] = {}
    for raw in values:
        value = raw.strip()
        if not value:
            continue
        site, sep, iface = value.rpartition("=")
        key = site if sep else "*"
        if sep and not site:
            raise ConfigError(f"{source}: {raw!r} names no site; write SITE=IFACE or IFACE")
        if not IFACE.match(iface):
            raise ConfigError(f"{source}: expected {IFACE_HINT}, got {iface!r}")
        if key in out and out[key] != iface:
            what = "every site" if key == "*" else f"site {key!r}"
            raise ConfigError(f"{source}: two interfaces for {what} ({out[key]!r} and "
                              f"{iface!r}); give one, or SITE=IFACE per site")
        out[key] = iface
    return out


def _paths(values: Iterable[Any], base: Path) -> tuple[Path, ...]:
    """Absolute paths, shown relative to the working directory when under it (so that
    error messages cite the file as the user knows it)."""
    out = []
    cwd = Path.cwd()
    for value in values:
        path = Path(os.path.expanduser(str(value)))
        path = path if path.is_absolute() else base / path
        try:
            path = path.relative_to(cwd)
        except ValueError:
            pass
        out.append(path)
    return tuple(out)


def resolve(options: Mapping[str, Any], ini: Mapping[str, Any], invocation_dir: Path,
            ini_dir: Path) -> IotConfig:
    """Options win over ini values; relative paths are taken from where each was given."""
    if options.get("iot_fleet"):
        fleets = _paths(options["iot_fleet"], invocation_dir)
    else:
        fleets = _paths(ini.get("iot_fleet") or (), ini_dir)
    if options.get("iot_iface"):
        interfaces = parse_interfaces(options["iot_iface"], "--iot-iface")
    else:
        interfaces = parse_interfaces(ini.get("iot_iface") or (), "iot_iface (ini)")
    if options.get("iot_profiles"):
        profiles = _paths(options["iot_profiles"], invocation_dir)
    else:
        profiles = _paths(ini.get("iot_profiles") or (), ini_dir)
    engines = _number(options.get("iot_engines"), ini.get("iot_engines"), "--iot-engines",
                      int, None)
    if engines is not None and not 1 <= engines <= 64:
        raise ConfigError(f"--iot-engines: expected 1 to 64 engines per site, got {engines}")
    scale = _number(options.get("iot_scale"), ini.get("iot_scale"), "--iot-scale", float, 1.0)
    if not 0 < scale <= 1000:
        raise ConfigError(f"--iot-scale: expected a factor above 0 (at most 1000), got {scale}")
    def one_path(name: str) -> Path | None:
        value = options.get(name) or ini.get(name) or None
        if not value:
            return None
        return _paths([value], invocation_dir if options.get(name) else ini_dir)[0]

    metrics = one_path("iot_metrics")
    tolerance_text = options.get("iot_tolerance") or ini.get("iot_tolerance") or "10%"
    import re
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*%\s*", str(tolerance_text))
    if not match:  # above 100% is fine: CPU peaks are noisy on small machines
        raise ConfigError(f"--iot-tolerance: expected a percentage such as 10%, got "
                          f"{tolerance_text!r}")
    tolerance = float(match.group(1)) / 100
    pcap = str(options.get("iot_pcap") or ini.get("iot_pcap") or "off").strip().lower()
    if pcap not in PCAP_MODES:
        raise ConfigError(f"--iot-pcap: expected one of {', '.join(PCAP_MODES)}, got {pcap!r}")
    return IotConfig(fleets=fleets, interfaces=interfaces, profile_files=profiles,
                     engines=engines, metrics=metrics,
                     allow_live=bool(options.get("iot_allow_live") or ini.get("iot_allow_live")),
                     scale=scale,
                     keep_lab=bool(options.get("iot_keep_lab") or ini.get("iot_keep_lab")),
                     baseline=one_path("iot_baseline"), save_baseline=one_path("iot_save_baseline"),
                     tolerance=tolerance, pcap=pcap,
                     traffic=bool(options.get("iot_traffic") or ini.get("iot_traffic")))


def _number(option: Any, ini: Any, name: str, kind: type, default: Any) -> Any:
    value = option if option not in (None, "") else (ini if ini not in (None, "") else None)
    if value is None:
        return default
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected a number, got {value!r}") from None
