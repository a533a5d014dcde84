"""Read a YAML file into a tree of located values.

Every value keeps the line and column where the user wrote it, so that each error the
validator finds can cite ``file:line:col``.  Only safe YAML is accepted: the document is
*composed* (never constructed), standard tags are interpreted by hand, and any other
tag (``!!python/object``, ``!include`` …) is refused as an error, never executed.

``${VAR}`` and ``${VAR:-default}`` are substituted in scalar values after parsing, so a
variable can never inject YAML structure; ``$${`` writes a literal ``${``.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Union

import yaml

from .errors import ErrorCollector

_STD = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_STD + t for t in ("str", "int", "float", "bool", "null", "timestamp", "binary")}
_MAP_TAGS = {_STD + "map", _STD + "omap"}
_SEQ_TAGS = {_STD + "seq"}
# Aliases may share nodes; expansion is capped so that a "billion laughs" file is an
# error instead of an out-of-memory.
MAX_NODES = 200_000

_VAR = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{[^}]*\}?")


@dataclass
class Node:
    """A value from the file with its position (1-based line and column)."""

    value: Any
    line: int
    col: int
    kind: str  # "map", "seq" or "scalar"
    text: str = ""  # the scalar as written, for messages
    keys: dict[str, tuple[int, int]] = field(default_factory=dict)  # map: key -> position
    bad: bool = False  # already reported (refused tag, unset variable): checks stay quiet

    # helpers used by the validator -------------------------------------------------
    def is_map(self) -> bool:
        return self.kind == "map"

    def is_seq(self) -> bool:
        return self.kind == "seq"

    def items(self) -> Iterator[tuple[str, "Node"]]:
        assert self.kind == "map"
        return iter(self.value.items())

    def get(self, key: str) -> "Node | None":
        if self.kind != "map":
            return None
        return self.value.get(key)

    def describe(self) -> str:
        """How the value reads in an error message: ``got …``."""
        if self.kind == "map":
            return "a mapping"
        if self.kind == "seq":
            return "a list"
        if self.value is None:
            return "nothing" if self.text in ("", "~") else repr(self.text)
        return repr(self.text) if self.text else repr(self.value)

    def plain(self) -> Any:
        """The value without positions (for JSON output and spec fragments)."""
        if self.kind == "map":
            return {k: v.plain() for k, v in self.value.items()}
        if self.kind == "seq":
            return [v.plain() for v in self.value]
        return self.value


Position = Union[Node, tuple[int, int], None]


class _Builder:
    def __init__(self, errors: ErrorCollector, env: Mapping[str, str]):
        self.errors = errors
        self.env = env
        self.count = 0
        self.too_big = False
        self.loader = yaml.SafeLoader("")

    def build(self, node: yaml.Node, path: str) -> Node:
        self.count += 1
        line, col = node.start_mark.line + 1, node.start_mark.column + 1
        if self.count > MAX_NODES:
            if not self.too_big:
                self.too_big = True
                self.errors.add((line, col), path or "(document)",
                                f"the document expands to more than {MAX_NODES} values "
                                "(aliases nested too deeply?); write it out or split it")
            return Node(None, line, col, "scalar")
        if isinstance(node, yaml.MappingNode):
            return self._map(node, path, line, col)
        if isinstance(node, yaml.SequenceNode):
            if node.tag not in _SEQ_TAGS:
                return self._bad_tag(node, path)
            items = [self.build(child, f"{path}[{i}]") for i, child in enumerate(node.value)]
            return Node(items, line, col, "seq")
        return self._scalar(node, path, line, col)

    def _bad_tag(self, node: yaml.Node, path: str) -> Node:
        self.errors.add(node, path or "(document)",
                        f"YAML tag {node.tag!r} is not allowed: only plain values, lists and "
                        "mappings are read (tags are refused, never executed); remove the tag")
        return Node(None, node.start_mark.line + 1, node.start_mark.column + 1, "scalar",
                    bad=True)

    def _map(self, node: yaml.MappingNode, path: str, line: int, col: int) -> Node:
        if node.tag not in _MAP_TAGS:
            return self._bad_tag(node, path)
        own = sum(1 for k, _ in node.value if k.tag != _STD + "merge")
        try:
            self.loader.flatten_mapping(node)  # resolves `<<: *anchor` merge keys
        except yaml.MarkedYAMLError as exc:
            self.errors.add(exc.problem_mark or node, path or "(document)",
                            f"bad merge key (<<): {exc.problem}")
            node = yaml.MappingNode(node.tag, [(k, v) for k, v in node.value
                                               if k.tag != _STD + "merge"],
                                    node.start_mark, node.end_mark)
        out: dict[str, Node] = {}
        keys: dict[str, tuple[int, int]] = {}
        merged = len(node.value) - own  # merged pairs come first; own keys override them
        own_keys: set[str] = set()
        for index, (knode, vnode) in enumerate(node.value):
            kpos = (knode.start_mark.line + 1, knode.start_mark.column + 1)
            if not isinstance(knode, yaml.ScalarNode):
                self.errors.add(kpos, path or "(document)",
                                "expected a plain key, got a " +
                                ("list" if isinstance(knode, yaml.SequenceNode) else "mapping") +
                                " used as a key")
                continue
            key = knode.value
            child_path = f"{path}.{key}" if path else key
            if index >= merged and key in own_keys:
                first = keys[key]
                self.errors.add(kpos, child_path,
                                f"duplicate key {key!r} (first written at line {first[0]}); "
                                "keep one")
            keys[key] = kpos
            if index >= merged:
                own_keys.add(key)
            out[key] = self.build(vnode, child_path)
        return Node(out, line, col, "map", keys=keys)

    def _scalar(self, node: yaml.ScalarNode, path: str, line: int, col: int) -> Node:
        text = node.value
        if node.tag not in _SCALAR_TAGS:
            return self._bad_tag(node, path)
        if node.tag == _STD + "str" and "$" in text:
            before = len(self.errors.issues)
            substituted = self._substitute(text, node, path)
            if len(self.errors.issues) > before:
                return Node(None, line, col, "scalar", text=text, bad=True)
            if substituted != text:
                if node.style is None:  # plain scalar: re-read its type (never structure)
                    tag = self.loader.resolve(yaml.ScalarNode, substituted, (True, False))
                    node = yaml.ScalarNode(tag, substituted, node.start_mark, node.end_mark)
                else:
                    return Node(substituted, line, col, "scalar", text=substituted)
                text = substituted
        if node.tag in (_STD + "timestamp", _STD + "binary"):
            return Node(text, line, col, "scalar", text=text)  # keep as written
        try:
            value = self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError):
            value = text
        return Node(value, line, col, "scalar", text=text)

    def _substitute(self, text: str, node: yaml.Node, path: str) -> str:
        def repl(match: re.Match[str]) -> str:
            whole = match.group(0)
            if whole == "$${":
                return "${"
            name, default = match.group(1), match.group(2)
            if name is None:
                self.errors.add(node, path, f"malformed variable {whole!r}: write ${{NAME}} "
                                "or ${NAME:-default} (NAME of letters, digits and _)")
                return whole
            if name in self.env:
                return self.env[name]
            if default is not None:
                return default
            self.errors.add(node, path, f"environment variable {name} is not set: export it "
                            f"or give a default, ${{{name}:-value}}")
            return whole

        return _VAR.sub(repl, text)


def load_yaml(text: str, errors: ErrorCollector,
              env: Mapping[str, str] | None = None) -> Node | None:
    """Parse ``text`` into a located tree; report problems to ``errors``.

    Returns None when the file cannot be read as YAML at all (the error says where).
    """
    env = os.environ if env is None else env
    try:
        documents = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or "cannot be read"
        if exc.context:
            problem = f"{exc.context}, {problem}"
        errors.add(pos, "(document)", f"not valid YAML: {problem}")
        return None
    except yaml.YAMLError as exc:
        errors.add((1, 1), "(document)", f"not valid YAML: {exc}")
        return None
    documents = [d for d in documents if d is not None]
    if not documents:
        errors.add((1, 1), "(document)", "the file is empty: a fleet spec needs at least "
                   "`fleet:` and `devices:` (see docs/spec.md)")
        return None
    if len(documents) > 1:
        second = documents[1]
        errors.add(second, "(document)", "the file holds several YAML documents (---); "
                   "keep one fleet per file")
    builder = _Builder(errors, env)
    root = builder.build(documents[0], "")
    return None if builder.too_big else root
