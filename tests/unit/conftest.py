from __future__ import annotations

import textwrap

import pytest

from pytest_iotemu.spec.errors import SpecError
from pytest_iotemu.spec.schema import parse_spec

MINIMAL = """\
fleet: test
lab:
  lan: 10.0.0.0/24
devices:
  - {profile: axis-camera, count: 2}
"""


def errors_of(text: str, env: dict | None = None) -> list[str]:
    """The rendered error lines of a spec that must not validate."""
    with pytest.raises(SpecError) as info:
        parse_spec(textwrap.dedent(text), "spec.yaml", env=env or {})
    return [str(issue) for issue in info.value.issues]


def spec_of(text: str, env: dict | None = None):
    return parse_spec(textwrap.dedent(text), "spec.yaml", env=env or {})
