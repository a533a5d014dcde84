"""Small helpers the validators share: typed reads of located values, key checks.

Each helper reports a problem to the collector and returns ``BAD`` instead of raising, so
that validation goes on and the user sees every error in one run.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Iterable, TypeVar

from .errors import ErrorCollector, did_you_mean, one_of
from .source import Node
from .units import UnitError


class _Bad:
    def __repr__(self) -> str:
        return "BAD"

    def __bool__(self) -> bool:
        return False


BAD: Any = _Bad()
T = TypeVar("T")

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class Checker:
    def __init__(self, errors: ErrorCollector):
        self.errors = errors

    def error(self, where: Any, path: str, message: str) -> Any:
        self.errors.add(where, path, message)
        return BAD

    def expected(self, node: Node, path: str, what: str) -> Any:
        if node.bad:  # its problem was reported when the file was read
            return BAD
        return self.error(node, path, f"expected {what}, got {node.describe()}")

    # structure -----------------------------------------------------------------------
    def mapping(self, node: Node | None, path: str, what: str, allowed: Iterable[str],
                required: Iterable[str] = ()) -> bool:
        """True when ``node`` is a mapping; reports unknown and missing keys."""
        if node is None or node.bad:
            return False
        if not node.is_map():
            self.expected(node, path, what)
            return False
        allowed = list(allowed)
        for key in node.value:
            if key not in allowed:
                self.error(node.keys.get(key, node), join(path, key),
                           f"unknown key {key!r}{did_you_mean(key, allowed)}; "
                           f"{what} takes: {', '.join(allowed)}")
        for key in required:
            if key not in node.value:
                self.error(node, join(path, key), f"required key {key!r} is missing from {what}")
        return True

    def sequence(self, node: Node | None, path: str, what: str) -> list[Node]:
        if node is None or node.bad:
            return []
        if not node.is_seq():
            self.expected(node, path, what)
            return []
        return list(node.value)

    # scalars -------------------------------------------------------------------------
    def parse(self, node: Node | None, path: str, parser: Callable[[Any], T],
              default: Any = None) -> T | Any:
        """Apply a units parser; its ``UnitError`` text says what was expected."""
        if node is None:
            return default
        if node.kind != "scalar":
            try:
                parser(None)
            except UnitError as exc:
                return self.expected(node, path, str(exc))
            return self.expected(node, path, "a single value")
        try:
            return parser(node.value)
        except UnitError as exc:
            return self.expected(node, path, str(exc))

    def string(self, node: Node | None, path: str, what: str = "a string",
               pattern: re.Pattern[str] | None = None, default: Any = None,
               max_len: int | None = None) -> str | Any:
        if node is None:
            return default
        value = node.value
        if node.kind != "scalar" or value is None or isinstance(value, (bool, dict, list)):
            return self.expected(node, path, what)
        text = value if isinstance(value, str) else node.text
        if (pattern is not None and not pattern.match(text)) or text == "":
            return self.expected(node, path, what)
        if max_len is not None and len(text) > max_len:
            return self.error(node, path, f"expected {what} of at most {max_len} characters, "
                              f"got {len(text)} characters")
        return text

    def integer(self, node: Node | None, path: str, minimum: int | None = None,
                maximum: int | None = None, default: Any = None,
                what: str = "a whole number") -> int | Any:
        if node is None:
            return default
        value = node.value
        if node.kind != "scalar" or isinstance(value, bool) or not isinstance(value, int):
            return self.expected(node, path, what)
        if minimum is not None and value < minimum:
            bound = f"at least {minimum}" if maximum is None else f"{minimum} to {maximum}"
            return self.expected(node, path, f"{what} {bound}")
        if maximum is not None and value > maximum:
            bound = f"at most {maximum}" if minimum is None else f"{minimum} to {maximum}"
            return self.expected(node, path, f"{what} {bound}")
        return value

    def boolean(self, node: Node | None, path: str, default: Any = None) -> bool | Any:
        if node is None:
            return default
        if node.kind != "scalar" or not isinstance(node.value, bool):
            return self.expected(node, path, "true or false")
        return node.value

    def choice(self, node: Node | None, path: str, choices: Iterable[str],
               default: Any = None) -> str | Any:
        if node is None:
            return default
        choices = list(choices)
        if node.bad:
            return BAD
        if node.kind != "scalar" or node.value not in choices:
            hint = did_you_mean(node.text, choices) if node.kind == "scalar" else ""
            return self.expected(node, path, f"one of {one_of(choices)}") if not hint else \
                self.error(node, path, f"expected one of {one_of(choices)}, "
                           f"got {node.describe()}{hint}")
        return node.value

    def reference(self, node: Node | None, path: str, kind: str, names: Iterable[str],
                  extra: Iterable[str] = (), fix: str = "", list_known: bool = True) -> str | Any:
        """A name that must exist among ``names`` (a group, pool, target, WAN …)."""
        if node is None:
            return None
        names = list(names)
        text = self.string(node, path, f"the name of a {kind}")
        if text is BAD:
            return BAD
        if text in names or text in extra:
            return text
        known = one_of(list(names) + list(extra)) if names or extra else "none are defined"
        hint = did_you_mean(text, list(names) + list(extra))
        message = f"unknown {kind} {text!r}{hint}"
        if list_known:
            message += f"; known: {known}"
        return self.error(node, path, message + (f"; {fix}" if fix else ""))
