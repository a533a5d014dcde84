"""Reading YAML with positions, substitution and refusal of tags."""
from __future__ import annotations

from pytest_iotemu.spec.errors import ErrorCollector
from pytest_iotemu.spec.source import load_yaml


def read(text: str, env: dict | None = None):
    errors = ErrorCollector("f.yaml")
    return load_yaml(text, errors, env or {}), [str(i) for i in errors.issues]


def test_positions_are_one_based_line_and_column() -> None:
    root, errors = read("a:\n  b: [1, two]\n")
    assert errors == []
    b = root.get("a").get("b")
    assert (b.line, b.col) == (2, 6)
    assert (b.value[1].line, b.value[1].col, b.value[1].value) == (2, 10, "two")
    assert root.get("a").keys["b"] == (2, 3)


def test_variables_are_substituted_in_values_only() -> None:
    root, errors = read("n: ${N}\nq: '${N}'\nd: ${MISSING:-7}\nlit: $${N}\nmix: a-${N}-b\n",
                        {"N": "12"})
    assert errors == []
    assert root.get("n").value == 12  # a plain scalar takes the type of its value
    assert root.get("q").value == "12"  # a quoted one stays text
    assert root.get("d").value == 7
    assert root.get("lit").value == "${N}"
    assert root.get("mix").value == "a-12-b"


def test_a_variable_cannot_inject_structure() -> None:
    root, errors = read("a: ${V}\n", {"V": "{b: 1}\nc: 2"})
    assert errors == []
    assert root.kind == "map" and list(root.value) == ["a"]
    assert root.get("a").value == "{b: 1}\nc: 2"


def test_unset_and_malformed_variables_are_errors() -> None:
    _root, errors = read("a: ${NOPE}\nb: ${bad-name}\n")
    assert errors == [
        "f.yaml:1:4: a: environment variable NOPE is not set: export it or give a default, "
        "${NOPE:-value}",
        "f.yaml:2:4: b: malformed variable '${bad-name}': write ${NAME} or ${NAME:-default} "
        "(NAME of letters, digits and _)",
    ]


def test_merge_keys_work_and_own_keys_win() -> None:
    root, errors = read("base: &b {count: 2, enabled: true}\ng: {<<: *b, count: 5}\n")
    assert errors == []
    assert root.get("g").plain() == {"count": 5, "enabled": True}


def test_timestamps_stay_text() -> None:
    root, _ = read("when: 2026-01-01\n")
    assert root.get("when").value == "2026-01-01"


def test_non_scalar_keys_are_refused() -> None:
    _root, errors = read("? [a, b]\n: 1\n")
    assert errors == ["f.yaml:1:3: (document): expected a plain key, got a list used as a key"]
