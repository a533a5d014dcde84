"""Device profiles: vendor, class, OUIs and DHCP fingerprint, as data files."""
from __future__ import annotations

from .library import ProfileLibrary, builtin_profiles, read_profile_file
from .model import DEVICE_CLASSES, DhcpFingerprint, Profile, ProtocolHabit

__all__ = ["DEVICE_CLASSES", "DhcpFingerprint", "Profile", "ProfileLibrary", "ProtocolHabit",
           "builtin_profiles", "read_profile_file"]
