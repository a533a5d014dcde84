"""Protocol cores without I/O: DHCP client, ARP, ICMP (see docs/protocols.md).

They take frames and the current time and give back frames to send and events; the
engine owns the socket and the clock. No scapy here: frames are built with ``struct``.
"""
from __future__ import annotations

from .arp import ArpCache
from .core import Counters, Event, LocalProtocolError, Outbox
from .device import DeviceCore
from .dhcp import DhcpClient, State

__all__ = ["ArpCache", "Counters", "DeviceCore", "DhcpClient", "Event", "LocalProtocolError",
           "Outbox", "State"]
