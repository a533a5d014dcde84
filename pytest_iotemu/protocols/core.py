"""What every protocol core shares: frames out, events out, counters, typed misuse.

Cores are sans-I/O (h11, aioquic): they take frames and the current time and return
frames to send and events; the socket and the clock live in the engine.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


class LocalProtocolError(Exception):
    """Our own misuse of a core (a call the current state does not allow): a bug in the
    caller, raised at once. What the network sends never raises; it is counted."""


@dataclass(frozen=True)
class Event:
    """Something a core wants the engine to report, e.g. ``dhcp.bound``."""

    type: str
    time: float
    data: dict[str, Any] = field(default_factory=dict)


class Outbox:
    """Frames and events produced by one or more cores, drained by the engine."""

    __slots__ = ("frames", "events")

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.events: list[Event] = []

    def send(self, frame: bytes) -> None:
        self.frames.append(frame)

    def emit(self, kind: str, now: float, **data: Any) -> None:
        self.events.append(Event(kind, now, data))

    def take_frames(self) -> list[bytes]:
        frames, self.frames = self.frames, []
        return frames

    def take_events(self) -> list[Event]:
        events, self.events = self.events, []
        return events


class Counters(Counter):
    """``received`` always equals ``accepted`` plus every ``ignored.<reason>``."""

    def accepted(self) -> None:
        self["received"] += 1
        self["accepted"] += 1

    def ignored(self, reason: str) -> None:
        self["received"] += 1
        self[f"ignored.{reason}"] += 1

    def ignored_total(self) -> int:
        return sum(v for k, v in self.items() if k.startswith("ignored."))
