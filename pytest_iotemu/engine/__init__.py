"""The engine: one process drives a fleet over one raw socket (docs/protocol.md)."""
from __future__ import annotations

from .client import EngineClient, EngineCommandError, EngineError, device_entry

__all__ = ["EngineClient", "EngineCommandError", "EngineError", "device_entry"]
