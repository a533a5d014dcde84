"""pytest-iotemu: emulated IoT fleets on test interfaces, DHCP and SD-WAN behaviour
asserted from pytest.  The public API is re-exported here."""
from __future__ import annotations

from .profiles import DhcpFingerprint, Profile, ProfileLibrary, builtin_profiles
from .spec.classify import classify
from .spec.errors import SpecError, SpecIssue
from .spec.model import Device, ExpectEntry, FleetSpec, Group, LabSpec, Site, Target
from .spec.schema import load_spec, parse_spec

__version__ = "0.1.0"

__all__ = [
    "Device", "DhcpFingerprint", "ExpectEntry", "FleetSpec", "Group", "LabSpec", "Profile",
    "ProfileLibrary", "Site", "SpecError", "SpecIssue", "Target", "__version__",
    "builtin_profiles", "classify", "load_spec", "parse_spec",
]
