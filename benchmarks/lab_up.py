#!/usr/bin/env python3
"""Build + teardown of the virtual branch for a spec, median of several runs (root).

    sudo .venv/bin/python benchmarks/lab_up.py [--runs 7] [--spec scenarios/branch.yaml]

Prints build and teardown times per run and their medians, beside the target (< 2 s for
build + teardown here), and the same for Kea in the same run.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--spec", default=str(ROOT / "scenarios" / "branch.yaml"))
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the lab builds network namespaces")
    from pytest_iotemu import load_spec
    from pytest_iotemu.lab import Lab

    site = load_spec(args.spec).sites[0]
    print(f"{'server':<8} {'build s':>9} {'teardown s':>11} {'total s':>8}   (median of "
          f"{args.runs}; target total < 2 s)")
    for server in ("dnsmasq", "kea"):
        variant = replace(site, lab=replace(site.lab, dhcp_server=server))
        builds, downs = [], []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            lab = Lab(variant).build()
            t1 = time.perf_counter()
            lab.teardown()
            t2 = time.perf_counter()
            builds.append(t1 - t0)
            downs.append(t2 - t1)
        b, d = statistics.median(builds), statistics.median(downs)
        print(f"{server:<8} {b:>9.3f} {d:>11.3f} {b + d:>8.3f}")


if __name__ == "__main__":
    main()
