"""Test helpers: a raw socket opened inside a namespace, and device cores driven over it
until bound (what the engine will do, minimal, for the lab's tests)."""
from __future__ import annotations

import array
import random
import socket
import subprocess
import sys
import tempfile
import time

from pytest_iotemu.protocols import ArpCache, DeviceCore, State
from pytest_iotemu.protocols.dhcp_wire import peek_chaddr
from pytest_iotemu.protocols.frames import mac_bytes, mac_text

_OPEN = ("import socket,sys,array;"
         "s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW,socket.htons(3));"
         "s.setsockopt(socket.SOL_SOCKET,socket.SO_RCVBUF,8<<20);"
         "s.bind((sys.argv[2],0));"
         "u=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM);"
         "u.sendmsg([b'x'],[(socket.SOL_SOCKET,socket.SCM_RIGHTS,"
         "array.array('i',[s.fileno()]))],0,sys.argv[1])")


def raw_socket(namespace: str, interface: str) -> socket.socket:
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/fd.sock"
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        receiver.bind(path)
        subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-c", _OPEN, path,
                        interface], check=True, capture_output=True)
        _msg, ancdata, _flags, _addr = receiver.recvmsg(1, socket.CMSG_LEN(4))
        receiver.close()
    fd = array.array("i", ancdata[0][2][:4])[0]
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    return sock


def bind_all(namespace: str, interface: str, devices, timeout: float = 30.0,
             seed: int = 1) -> dict[str, DeviceCore]:
    """Drive one DeviceCore per spec device until all are BOUND (or the timeout)."""
    sock = raw_socket(namespace, interface)
    cache = ArpCache()
    rng = random.Random(seed)
    cores = {d.mac: DeviceCore(mac_bytes(d.mac), d.dhcp.merged({"arp_probe": False}),
                               hostname=d.hostname, rng=random.Random(rng.random()),
                               arp_cache=cache, name=d.name)
             for d in devices}
    by_mac = {mac_bytes(m): c for m, c in cores.items()}
    start = time.monotonic()
    for i, core in enumerate(cores.values()):
        core.dhcp.start(time.monotonic() + i * 0.002)
    try:
        while time.monotonic() - start < timeout:
            now = time.monotonic()
            for core in cores.values():
                for frame in core.out.take_frames():
                    try:
                        sock.send(frame)
                    except BlockingIOError:
                        time.sleep(0.001)
                        sock.send(frame)
                core.out.take_events()
                timer = core.next_timer()
                if timer is not None and now >= timer:
                    core.on_timer(now)
            for _ in range(512):
                try:
                    frame, addr = sock.recvfrom(4096)
                except BlockingIOError:
                    break
                if addr[2] == socket.PACKET_OUTGOING:
                    continue
                target = by_mac.get(frame[0:6]) or by_mac.get(peek_chaddr(frame) or b"")
                if target is not None:
                    target.receive(frame, time.monotonic())
            if all(c.dhcp.state is State.BOUND for c in cores.values()):
                break
            time.sleep(0.002)
    finally:
        sock.close()
    return cores


def pools_of(cores: dict[str, DeviceCore], lab) -> dict[str, str | None]:
    """MAC -> the lab pool whose range holds the device's address."""
    import ipaddress
    out = {}
    for mac, core in cores.items():
        ip = core.dhcp.lease.get("ip") if core.dhcp.state is State.BOUND else None
        pool = None
        if ip:
            address = ipaddress.IPv4Address(ip)
            pool = next((p.name for p in lab.plan.pools if p.first <= address <= p.last), None)
        out[mac] = pool
    return out


__all__ = ["bind_all", "mac_text", "pools_of", "raw_socket"]
