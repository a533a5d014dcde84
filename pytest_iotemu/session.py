"""The plugin's session object: configuration and the loaded fleet specs."""
from __future__ import annotations

from dataclasses import dataclass

from .config import IotConfig
from .profiles import builtin_profiles
from .spec.errors import SpecError
from .spec.model import FleetSpec
from .spec.schema import load_spec


@dataclass(frozen=True)
class IotSession:
    config: IotConfig
    specs: tuple[FleetSpec, ...]


def open_session(config: IotConfig) -> IotSession:
    """Load and validate every fleet; raises ``SpecError`` with all problems of all files."""
    issues = []
    specs = []
    library = builtin_profiles()
    try:
        library = library.with_files(config.profile_files)
    except SpecError as exc:
        issues.extend(exc.issues)
    else:
        for path in config.fleets:
            try:
                specs.append(load_spec(path, profiles=library, interfaces=config.interfaces))
            except SpecError as exc:
                issues.extend(exc.issues)
    if issues:
        raise SpecError(issues)
    return IotSession(config, tuple(specs))
