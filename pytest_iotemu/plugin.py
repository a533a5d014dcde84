"""pytest entry point: options, ini twins, fixtures.  Inert without ``--iot-fleet``."""
from __future__ import annotations

from pathlib import Path

import pytest

from .config import ConfigError, IotConfig, resolve
from .session import IotSession, open_session
from .spec.errors import SpecError
from .spec.model import FleetSpec

SESSION_KEY = pytest.StashKey[IotSession]()

_OPTIONS = (
    # (option, ini name, ini type, help)
    ("--iot-fleet", "iot_fleet", "paths",
     "fleet spec file (YAML); repeatable. Without it the plugin does nothing."),
    ("--iot-iface", "iot_iface", "linelist",
     "interface for the fleet instead of the spec's `interface:`: IFACE for every site or "
     "SITE=IFACE; repeatable. `lab` is the built-in virtual branch."),
    ("--iot-profiles", "iot_profiles", "paths",
     "extra device profile file (adds or overrides profiles); repeatable."),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("iotemu", "emulated IoT fleets (pytest-iotemu)")
    for option, ini, ini_type, text in _OPTIONS:
        group.addoption(option, action="append", dest=ini, metavar="VALUE", default=[],
                        help=text)
        parser.addini(ini, f"{text} (ini twin of {option})", type=ini_type)


def pytest_configure(config: pytest.Config) -> None:
    options = {ini: config.getoption(ini) for _o, ini, _t, _h in _OPTIONS}
    ini_values = {ini: config.getini(ini) for _o, ini, _t, _h in _OPTIONS}
    ini_dir = Path(config.inipath).parent if config.inipath else Path(config.rootpath)
    try:
        iot_config = resolve(options, ini_values, Path(config.invocation_params.dir), ini_dir)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    if not iot_config.active:
        config.stash[SESSION_KEY] = IotSession(iot_config, ())
        return
    try:
        config.stash[SESSION_KEY] = open_session(iot_config)
    except SpecError as exc:
        raise pytest.UsageError(exc.render()) from None


def pytest_report_header(config: pytest.Config) -> list[str]:
    session = config.stash.get(SESSION_KEY, None)
    if session is None or not session.specs:
        return []
    lines = []
    for spec in session.specs:
        sites = ", ".join(f"{s.name} on {s.interface}" for s in spec.sites)
        lines.append(f"iotemu: fleet {spec.name} from {spec.source}: {len(spec.devices)} "
                     f"devices; {sites}")
        lines.extend(f"iotemu: warning: {w}" for w in spec.warnings)
    return lines


def _session(config: pytest.Config) -> IotSession:
    return config.stash[SESSION_KEY]


@pytest.fixture(scope="session")
def iot_config(pytestconfig: pytest.Config) -> IotConfig:
    """The resolved ``--iot-*`` configuration."""
    return _session(pytestconfig).config


@pytest.fixture(scope="session")
def iot_fleet_specs(pytestconfig: pytest.Config) -> tuple[FleetSpec, ...]:
    """Every validated fleet spec given with ``--iot-fleet`` (empty without one)."""
    return _session(pytestconfig).specs


@pytest.fixture(scope="session")
def iot_fleet_spec(iot_fleet_specs: tuple[FleetSpec, ...]) -> FleetSpec:
    """The validated fleet spec; the test is skipped when no ``--iot-fleet`` was given."""
    if not iot_fleet_specs:
        pytest.skip("no fleet: run with --iot-fleet=FILE (or set iot_fleet in the ini file)")
    if len(iot_fleet_specs) > 1:
        pytest.fail(f"{len(iot_fleet_specs)} fleets were given; iot_fleet_spec holds one: "
                    "use the iot_fleet_specs fixture to get them all", pytrace=False)
    return iot_fleet_specs[0]
