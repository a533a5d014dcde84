"""The profile library: built-in data files plus the user's own, by name.

A profile file holds one profile mapping, or ``profiles: [...]`` with several.  Files the
user adds (``profiles:`` in a spec, ``--iot-profiles``) add profiles or override built-in
ones of the same name; they are validated with the same precise errors as a spec.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from ..spec.check import BAD, Checker, join
from ..spec.errors import ErrorCollector, SpecError, did_you_mean
from ..spec.source import load_yaml
from .model import Profile
from .schema import check_profile


class ProfileLibrary(Mapping[str, Profile]):
    def __init__(self, profiles: Iterable[Profile] = ()):
        self._profiles: dict[str, Profile] = {}
        for profile in profiles:
            self._profiles[profile.name] = profile

    def __getitem__(self, name: str) -> Profile:
        return self._profiles[name]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._profiles))

    def __len__(self) -> int:
        return len(self._profiles)

    def suggest(self, name: str) -> str:
        return did_you_mean(name, self._profiles)

    def with_profiles(self, profiles: Iterable[Profile]) -> "ProfileLibrary":
        return ProfileLibrary([*self._profiles.values(), *profiles])

    def with_files(self, paths: Iterable[str | Path]) -> "ProfileLibrary":
        """A copy with the profiles of ``paths`` added; raises ``SpecError``."""
        found: list[Profile] = []
        issues = []
        for path in paths:
            try:
                found.extend(read_profile_file(path))
            except SpecError as exc:
                issues.extend(exc.issues)
        if issues:
            raise SpecError(issues)
        return self.with_profiles(found)


def parse_profiles(text: str, origin: str, errors: ErrorCollector) -> list[Profile]:
    check = Checker(errors)
    root = load_yaml(text, errors, env={})
    if root is None:
        return []
    if root.is_map() and "profiles" in root.value and "name" not in root.value:
        check.mapping(root, "", "a profile file", ("profiles",))
        nodes = [(join("profiles", i), n) for i, n in
                 enumerate(check.sequence(root.value["profiles"], "profiles",
                                          "a list of profile mappings"))]
    else:
        nodes = [("", root)]
    out: list[Profile] = []
    seen: dict[str, str] = {}
    for path, node in nodes:
        profile = check_profile(check, node, path, origin)
        if profile is BAD:
            continue
        if profile.name in seen:
            check.error(node.get("name") or node, join(path, "name"),
                        f"profile {profile.name!r} is defined twice in this file "
                        f"(first at {seen[profile.name]}); keep one")
            continue
        seen[profile.name] = path or "the top"
        out.append(profile)
    return out


def read_profile_file(path: str | Path) -> list[Profile]:
    path = Path(path)
    errors = ErrorCollector(str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        errors.add((1, 1), "(file)", "profile file not found; check the path")
        raise SpecError(errors.issues) from None
    except (OSError, UnicodeDecodeError) as exc:
        errors.add((1, 1), "(file)", f"cannot read the profile file: {exc}")
        raise SpecError(errors.issues) from None
    profiles = parse_profiles(text, str(path), errors)
    errors.raise_if_any()
    return profiles


_BUILTIN: ProfileLibrary | None = None


def builtin_profiles() -> ProfileLibrary:
    """The profiles shipped in ``pytest_iotemu/profiles/data`` (read once)."""
    global _BUILTIN
    if _BUILTIN is None:
        found: list[Profile] = []
        issues = []
        data = resources.files(__package__).joinpath("data")
        for entry in sorted(data.iterdir(), key=lambda e: e.name):
            if not entry.name.endswith((".yaml", ".yml")):
                continue
            origin = f"builtin:{entry.name}"
            errors = ErrorCollector(origin)
            found.extend(parse_profiles(entry.read_text(encoding="utf-8"), origin, errors))
            issues.extend(errors.issues)
        if issues:  # a broken built-in file is our bug: say so loudly
            raise SpecError(issues)
        _BUILTIN = ProfileLibrary(found)
    return _BUILTIN
