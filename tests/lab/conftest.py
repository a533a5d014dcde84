"""Lab tests need root and the lab's binaries; elsewhere they are skipped with the reason."""
from __future__ import annotations

import os
import shutil

import pytest

MISSING = [b for b in ("dnsmasq", "kea-dhcp4", "ethtool", "dhclient")
           if shutil.which(b) is None and not os.path.exists(f"/usr/sbin/{b}")]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/lab/" not in str(item.fspath).replace(os.sep, "/"):
            continue
        if item.get_closest_marker("root") is None:
            continue
        if os.geteuid() != 0:
            item.add_marker(pytest.mark.skip(reason="needs root (network namespaces); "
                                             "run the suite as root, as CI does"))
        elif MISSING:
            item.add_marker(pytest.mark.skip(reason="missing " + ", ".join(MISSING)
                                             + ": run `make deps` as root"))
