"""The plugin's session object: configuration, the loaded fleet specs, running sites."""
from __future__ import annotations

from pathlib import Path

from .config import IotConfig
from .profiles import builtin_profiles
from .run import RunOptions, SiteRun
from .spec.errors import SpecError
from .spec.model import FleetSpec, Site
from .spec.schema import load_spec


class IotSession:
    def __init__(self, config: IotConfig, specs: tuple[FleetSpec, ...]):
        self.config = config
        self.specs = specs
        self.runs: dict[tuple[str, str], SiteRun] = {}
        self.options = RunOptions(allow_live=config.allow_live, keep_lab=config.keep_lab,
                                  engines=config.engines, capture=config.pcap != "off",
                                  traffic=config.traffic)
        self.progress = None  # the terminal's line writer, set by the plugin
        self.remote_sites: list[dict] = []  # metrics sent by xdist workers
        self.sites: list[dict] = []  # every site's metrics, at the end
        self.regressions: list = []
        self.baseline_error: str | None = None

    def spec_for(self, path: Path) -> FleetSpec | None:
        resolved = path.resolve()
        for spec in self.specs:
            if Path(spec.source).resolve() == resolved:
                return spec
        return None

    def site_run(self, spec: FleetSpec, site: Site) -> SiteRun:
        key = (str(Path(spec.source).resolve()), site.name)
        run = self.runs.get(key)
        if run is None:
            run = self.runs[key] = SiteRun(spec, site, self.options, progress=self.progress)
        return run

    def close(self) -> list[str]:
        problems = []
        for run in self.runs.values():
            try:
                run.close()
            except Exception as exc:  # noqa: BLE001 - close every site, report all
                problems.append(f"{run.site.name}: {exc}")
        return problems


def load_specs(config: IotConfig, paths: tuple[Path, ...] | None = None) -> tuple[FleetSpec, ...]:
    """Load and validate fleets; raises ``SpecError`` with all problems of all files."""
    issues = []
    specs = []
    library = builtin_profiles()
    try:
        library = library.with_files(config.profile_files)
    except SpecError as exc:
        issues.extend(exc.issues)
    else:
        for path in paths if paths is not None else config.fleets:
            try:
                specs.append(load_spec(path, profiles=library, interfaces=config.interfaces,
                                       scale=config.scale))
            except SpecError as exc:
                issues.extend(exc.issues)
    if issues:
        raise SpecError(issues)
    return tuple(specs)


def open_session(config: IotConfig) -> IotSession:
    return IotSession(config, load_specs(config))
