"""Baseline comparison: tolerance, direction of each metric, the noise floor."""
from __future__ import annotations

from pytest_iotemu.baseline import compare, flatten

SITE = {"fleet": "f", "site": "s", "bind_rate": 1000.0,
        "peaks": {"engine_rss": 100e6, "engine_cpu": 50.0, "server_rss": None},
        "groups": {"cams": {"dora_p95": 0.5}}}


def test_flatten_names_every_metric() -> None:
    assert flatten([SITE]) == {"f/s:bind_rate": 1000.0, "f/s:engine_rss": 100e6,
                               "f/s:engine_cpu": 50.0, "f/s/cams:dora_p95": 0.5}


def test_directions_tolerance_and_floor() -> None:
    base = flatten([SITE])
    same = compare(base, [SITE], 0.1)
    assert same == []
    worse = dict(SITE, bind_rate=850.0, peaks={"engine_rss": 125e6, "engine_cpu": 70.0},
                 groups={"cams": {"dora_p95": 0.6}})
    keys = [r.key for r in compare(base, [worse], 0.1)]
    # bind rate -15% and RSS +25%, p95 +20% regress; CPU +20 points is inside the floor
    assert keys == ["f/s/cams:dora_p95", "f/s:bind_rate", "f/s:engine_rss"]
    better = dict(SITE, bind_rate=2000.0, peaks={"engine_rss": 50e6, "engine_cpu": 5.0})
    assert compare(base, [better], 0.1) == []
    tiny = {"f/s:engine_cpu": 2.0}
    assert compare(tiny, [dict(SITE, peaks={"engine_cpu": 16.7})], 4.0) == []
    assert [r.key for r in compare(tiny, [dict(SITE, peaks={"engine_cpu": 40.0})], 4.0)] == \
        ["f/s:engine_cpu"]
