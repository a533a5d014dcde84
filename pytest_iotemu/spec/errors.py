"""Spec errors: every problem in a file, each with the place the user wrote it."""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Iterable


@dataclass(frozen=True, order=True)
class SpecIssue:
    file: str
    line: int
    col: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.path}: {self.message}"


class SpecError(Exception):
    """A spec (or profile file) that did not validate; holds every issue found."""

    def __init__(self, issues: Iterable[SpecIssue]):
        self.issues = tuple(sorted(set(issues)))
        super().__init__(self.render())

    def render(self) -> str:
        lines = [str(issue) for issue in self.issues]
        count = len(self.issues)
        lines.append(f"{count} error{'s' if count != 1 else ''} found; nothing was started")
        return "\n".join(lines)


def _position(where: Any) -> tuple[int, int]:
    if where is None:
        return (1, 1)
    if isinstance(where, tuple):
        return where
    line = getattr(where, "line", None)
    col = getattr(where, "col", None)
    if isinstance(line, int) and isinstance(col, int):
        return (line, col)  # a located Node
    mark = getattr(where, "start_mark", None)
    if mark is not None:  # a yaml.Node
        return (mark.line + 1, mark.column + 1)
    if hasattr(where, "line") and hasattr(where, "column"):  # a yaml Mark
        return (where.line + 1, where.column + 1)
    return (1, 1)


class ErrorCollector:
    """Collects issues for one file; validation goes on after each one."""

    def __init__(self, file: str):
        self.file = file
        self.issues: list[SpecIssue] = []

    def add(self, where: Any, path: str, message: str) -> None:
        line, col = _position(where)
        self.issues.append(SpecIssue(self.file, line, col, path or "(document)", message))

    def __bool__(self) -> bool:
        return bool(self.issues)

    def raise_if_any(self) -> None:
        if self.issues:
            raise SpecError(self.issues)


def did_you_mean(word: Any, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for a close match, or ``''``."""
    if not isinstance(word, str):
        word = str(word)
    options = [c for c in choices if isinstance(c, str)]
    lowered = {c.lower(): c for c in options}
    if word.lower() in lowered and lowered[word.lower()] != word:
        return f" (did you mean {lowered[word.lower()]!r}?)"
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if not close:
        close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
        close = [lowered[c] for c in close]
    return f" (did you mean {close[0]!r}?)" if close else ""


def one_of(choices: Iterable[str]) -> str:
    items = sorted(choices)
    if len(items) > 12:
        return ", ".join(items[:12]) + f", … ({len(items)} in all)"
    return ", ".join(items)
