"""pytest entry point: options, ini twins, items from fleet specs, fixtures, the summary.
Inert without ``--iot-fleet`` (and without an ``iot_fleet`` marker in use)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from . import report
from .config import ConfigError, IotConfig, resolve
from .fleet import FleetFactory, FleetHandle
from .items import ExpectationItem, RunError, SpecFile
from .metrics import summary_lines
from .run import RunUnavailable, SiteRun
from .session import IotSession, load_specs, open_session
from .spec.errors import SpecError
from .spec.model import FleetSpec

SESSION_KEY = pytest.StashKey[IotSession]()

# (option, ini name, ini type, action, help)
_OPTIONS = (
    ("--iot-fleet", "iot_fleet", "paths", "append",
     "fleet spec file (YAML, or the previous emulator's JSON); repeatable. Its expectations "
     "become test items. Without it the plugin does nothing."),
    ("--iot-iface", "iot_iface", "linelist", "append",
     "interface for the fleet instead of the spec's `interface:`: IFACE for every site or "
     "SITE=IFACE; repeatable. `lab` is the built-in virtual branch."),
    ("--iot-profiles", "iot_profiles", "paths", "append",
     "extra device profile file (adds or overrides profiles); repeatable."),
    ("--iot-engines", "iot_engines", "string", "store",
     "engine processes per site (overrides the spec's engines:)."),
    ("--iot-metrics", "iot_metrics", "string", "store",
     "write the run's metrics (with time series) to this JSON file."),
    ("--iot-allow-live", "iot_allow_live", "bool", "store_true",
     "allow sending on real interfaces and to real targets."),
    ("--iot-scale", "iot_scale", "string", "store",
     "multiply every device count by this factor (e.g. 0.1 or 10)."),
    ("--iot-keep-lab", "iot_keep_lab", "bool", "store_true",
     "leave the virtual branch up after the session (detached; `iotemu lab down` ends it)."),
    ("--iot-baseline", "iot_baseline", "string", "store",
     "compare this run's metrics with a saved baseline and fail the session on regressions."),
    ("--iot-tolerance", "iot_tolerance", "string", "store",
     "how much worse a metric may be than the baseline before it counts, as a percentage "
     "(default: 10 percent)."),
    ("--iot-save-baseline", "iot_save_baseline", "string", "store",
     "save this run's metrics as a baseline file."),
    ("--iot-traffic", "iot_traffic", "bool", "store_true",
     "start the devices' own traffic (their profiles' protocols) and threat behaviours "
     "once they are bound; counts per protocol and behaviour join the metrics."),
    ("--iot-pcap", "iot_pcap", "string", "store",
     "capture the fleet's traffic (a ring on the lab's LAN bridge or the interface) and "
     "attach each item's devices' share to the Allure report: off (default), on-failure "
     "or always. Needs --alluredir."),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("iotemu", "emulated IoT fleets (pytest-iotemu)")
    for option, ini, ini_type, action, text in _OPTIONS:
        kwargs: dict[str, Any] = {"action": action, "dest": ini, "help": text}
        if action == "append":
            kwargs.update(metavar="VALUE", default=[])
        elif action == "store":
            kwargs.update(metavar="VALUE", default=None)
        group.addoption(option, **kwargs)
        parser.addini(ini, f"{text} (ini twin of {option})", type=ini_type)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "iot_fleet(path): run this test against the fleet "
                            "of a spec file (relative to the test file)")
    config.addinivalue_line("markers", "iot_expectation(kind): an item made from a fleet "
                            "spec's expectation")
    options = {ini: config.getoption(ini) for _o, ini, _t, _a, _h in _OPTIONS}
    ini_values = {ini: config.getini(ini) for _o, ini, _t, _a, _h in _OPTIONS}
    ini_dir = Path(config.inipath).parent if config.inipath else Path(config.rootpath)
    try:
        iot_config = resolve(options, ini_values, Path(config.invocation_params.dir), ini_dir)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    if iot_config.pcap != "off" and not report.enabled(config):
        raise pytest.UsageError(f"--iot-pcap={iot_config.pcap}: captures are attached to the "
                                "Allure report; add --alluredir=DIR")
    if not iot_config.active:
        config.stash[SESSION_KEY] = IotSession(iot_config, ())
        return
    try:
        config.stash[SESSION_KEY] = open_session(iot_config)
    except SpecError as exc:
        raise pytest.UsageError(exc.render()) from None
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:  # long waits report progress on the terminal
        config.stash[SESSION_KEY].progress = lambda line: reporter.write_line(line)
    # pytest-xdist: a multi-site spec keeps each site's items on one worker (xdist_group
    # marks, honoured by --dist loadgroup, which becomes the default then)
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and workerinput.get("iotemu_dist") == "loadgroup":
        config.option.loadgroup = True  # the worker tags its items with their group
    elif any(len(spec.sites) > 1 for spec in config.stash[SESSION_KEY].specs) \
            and getattr(config.option, "dist", None) == "load":
        config.option.dist = "loadgroup"
    # With no test paths on the command line, the fleets are the tests; with some, the
    # fleets' items run beside them.
    fleets = [str(path) for path in iot_config.fleets]
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args[:] = fleets
    else:
        config.args.extend(f for f in fleets if f not in config.args)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    session = parent.config.stash.get(SESSION_KEY, None)
    if session is not None and session.specs and session.spec_for(file_path) is not None:
        rootpath = Path(parent.config.rootpath)
        try:
            nodeid = file_path.resolve().relative_to(rootpath.resolve()).as_posix()
        except ValueError:  # outside the rootdir: its name
            nodeid = file_path.name
        return SpecFile.from_parent(parent, path=file_path, nodeid=nodeid)
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Items that change the lab (path failover) run after the others, and resource peaks,
    judged over the whole run, last of all."""
    items.sort(key=_order)


def _order(item: pytest.Item) -> int:
    if not isinstance(item, ExpectationItem):
        return 0
    if item.kind == "resources":
        return 2
    return 1 if getattr(item.entry.expect, "failover", None) is not None else 0


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


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist controller: tell workers when the session switched to loadgroup."""
    if getattr(node.config.option, "dist", None) == "loadgroup":
        node.workerinput["iotemu_dist"] = "loadgroup"


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist controller: collect a worker's site metrics."""
    iot = node.config.stash.get(SESSION_KEY, None)
    sites = getattr(node, "workeroutput", {}).get("iotemu_sites")
    if iot is not None and sites:
        iot.remote_sites.extend(sites)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    from . import baseline
    iot = session.config.stash.get(SESSION_KEY, None)
    if iot is None:
        return
    problems = iot.close()
    for problem in problems:
        session.config.issue_config_time_warning(
            pytest.PytestWarning(f"iotemu teardown: {problem}"), stacklevel=2)
    worker = getattr(session.config, "workerinput", None)
    local = [run.metrics.as_json() | ({"worker": worker["workerid"]} if worker else {})
             for run in iot.runs.values() if run.metrics is not None and run.error is None]
    if worker is not None:  # an xdist worker: the controller reports and judges
        session.config.workeroutput["iotemu_sites"] = local  # type: ignore[attr-defined]
        return
    report.write_session_files(session.config, iot.specs)
    iot.sites = local + iot.remote_sites
    if not iot.sites:
        return
    config = iot.config
    if config.metrics is not None:
        config.metrics.parent.mkdir(parents=True, exist_ok=True)
        config.metrics.write_text(json.dumps({"sites": iot.sites}, indent=1) + "\n")
    if config.save_baseline is not None:
        baseline.save(config.save_baseline, iot.sites)
    if config.baseline is not None:
        try:
            iot.regressions = baseline.compare(baseline.load(config.baseline), iot.sites,
                                               config.tolerance)
        except baseline.BaselineError as exc:
            iot.baseline_error = str(exc)
            session.exitstatus = pytest.ExitCode.USAGE_ERROR
            return
        if iot.regressions:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    from . import baseline
    iot = config.stash.get(SESSION_KEY, None)
    if iot is None or hasattr(config, "workerinput") or not (iot.runs or iot.sites):
        return
    terminalreporter.section("iotemu metrics")
    for site in iot.sites:
        for line in summary_lines(site):
            terminalreporter.write_line(line)
    for run in iot.runs.values():
        if run.error is not None or run.metrics is None:
            terminalreporter.write_line(f"{run.spec.name} / {run.site.name}: did not run "
                                        f"({run.error or 'not started'})")
    if iot.config.metrics is not None:
        terminalreporter.write_line(f"metrics written to {iot.config.metrics}")
    if iot.config.save_baseline is not None:
        terminalreporter.write_line(f"baseline saved to {iot.config.save_baseline}")
    if iot.baseline_error:
        terminalreporter.write_line(f"iotemu: {iot.baseline_error}", red=True)
    elif iot.config.baseline is not None:
        if iot.regressions:
            for line in baseline.table_lines(iot.regressions, iot.config.tolerance):
                terminalreporter.write_line(line, red=True)
        else:
            terminalreporter.write_line(f"no regression against {iot.config.baseline} "
                                        f"(tolerance {iot.config.tolerance:.0%})")
    if iot.config.keep_lab:
        for run in iot.runs.values():
            if run.lab is not None:
                terminalreporter.write_line(f"lab {run.lab.run} kept up: `iotemu lab down "
                                            f"{run.lab.run}` ends it")


# --- fixtures ---------------------------------------------------------------------------

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


def _marked_spec(request: pytest.FixtureRequest, session: IotSession) -> FleetSpec | None:
    marker = request.node.get_closest_marker("iot_fleet")
    if marker is None or not marker.args:
        return None
    path = Path(str(marker.args[0]))
    if not path.is_absolute():
        path = Path(request.node.path).parent / path
    spec = session.spec_for(path)
    if spec is None:
        try:
            (spec,) = load_specs(session.config, (path,))
        except SpecError as exc:
            pytest.fail(exc.render(), pytrace=False)
        session.specs = (*session.specs, spec)
    return spec


def _site_run(request: pytest.FixtureRequest) -> SiteRun:
    session = _session(request.config)
    spec = _marked_spec(request, session)
    if spec is None:
        if not session.specs:
            pytest.skip("no fleet: run with --iot-fleet=FILE or mark the test with "
                        "@pytest.mark.iot_fleet('fleet.yaml')")
        if len(session.specs) > 1:
            pytest.fail("several fleets were given: mark the test with "
                        "@pytest.mark.iot_fleet('…') to say which", pytrace=False)
        spec = session.specs[0]
    if len(spec.sites) > 1:
        pytest.fail(f"fleet {spec.name} has several sites; the fixtures serve one-site "
                    "fleets (the spec's items cover every site)", pytrace=False)
    run = session.site_run(spec, spec.sites[0])
    try:
        return run.start()
    except RunUnavailable as exc:
        pytest.skip(str(exc))
    except Exception as exc:  # noqa: BLE001 - an error of the test, with its cause
        raise RunError(f"the fleet of {spec.name} could not run: {exc}") from exc
    raise AssertionError("unreachable")


@pytest.fixture
def iot_fleet(request: pytest.FixtureRequest) -> FleetHandle:
    """The running fleet (started once per session): groups, devices, latencies, events."""
    return FleetHandle(_site_run(request))


@pytest.fixture
def iot_lab(request: pytest.FixtureRequest):
    """The fleet's virtual branch (``Lab``); skipped on a real interface."""
    run = _site_run(request)
    if run.lab is None:
        pytest.skip(f"site {run.site.name} runs on {run.site.interface}, not the lab")
    return run.lab


@pytest.fixture
def iot_engine(request: pytest.FixtureRequest):
    """The raw ``EngineClient`` of the fleet."""
    return _site_run(request).engine


@pytest.fixture
def iot_fleet_factory(request: pytest.FixtureRequest):
    """Start ad-hoc fleets inside a test, on the running lab and engine:
    ``iot_fleet_factory(profile="axis-camera", count=3)``, a dict or a YAML file with
    ``devices:``. They are removed (leases released) after the test."""
    factory = FleetFactory(_site_run(request))
    yield factory
    factory.close()


class _Metrics:
    def __init__(self, run: SiteRun):
        self._run = run

    def add(self, name: str, value: Any) -> None:
        """Record a metric of your own: in the summary table and the metrics JSON."""
        assert self._run.metrics is not None
        self._run.metrics.extra[name] = value


@pytest.fixture
def iot_metrics(request: pytest.FixtureRequest) -> _Metrics:
    """Add your own metrics to the run's summary and ``--iot-metrics`` JSON."""
    return _Metrics(_site_run(request))

