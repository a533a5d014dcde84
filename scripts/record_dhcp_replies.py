#!/usr/bin/env python3
"""Record real dnsmasq and Kea replies to our DHCP client, as test fixtures.

Builds two namespaces of its own (`iotemu-rec<pid>-srv`, `-cli`) joined by a veth, starts
the server in one, drives one `DeviceCore` over a raw socket in the other (DORA, a
renewal, and an INIT-REBOOT for an address outside the pool, which earns a NAK), and
writes every reply frame to tests/data/dhcp-replies/<server>.json. Everything it made is
removed on the way out. Needs root, iproute2, ethtool, dnsmasq and kea-dhcp4.

    sudo .venv/bin/python scripts/record_dhcp_replies.py
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_iotemu.profiles import builtin_profiles  # noqa: E402
from pytest_iotemu.protocols import DeviceCore, State  # noqa: E402
from pytest_iotemu.protocols.frames import mac_bytes  # noqa: E402

MAC = "00:40:8c:5a:5b:5c"
SEED = 20261204
RUN = f"iotemu-rec{os.getpid()}"
SRV, CLI = f"{RUN}-srv", f"{RUN}-cli"
OUT = ROOT / "tests" / "data" / "dhcp-replies"


def sh(*argv: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs)


def netns_exec(ns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def build() -> None:
    sh("ip", "netns", "add", SRV)
    sh("ip", "netns", "add", CLI)
    sh("ip", "link", "add", "rec-s", "netns", SRV, "type", "veth", "peer", "name", "rec-c",
       "netns", CLI)
    sh(*netns_exec(SRV, "ip", "addr", "add", "10.77.0.1/24", "dev", "rec-s"))
    for ns, dev in ((SRV, "rec-s"), (CLI, "rec-c")):
        sh(*netns_exec(ns, "ip", "link", "set", "lo", "up"))
        sh(*netns_exec(ns, "ip", "link", "set", dev, "up"))
        # full checksums in the recorded bytes (no CHECKSUM_PARTIAL from the veth)
        sh(*netns_exec(ns, "ethtool", "-K", dev, "tx", "off"))


def teardown() -> None:
    for ns in (SRV, CLI):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def start_dnsmasq(tmp: Path) -> subprocess.Popen:
    return subprocess.Popen(netns_exec(SRV, "dnsmasq", "--keep-in-foreground", "-C",
                                       "/dev/null", "--no-resolv", "--no-ping", "--port=0",
                                       "--interface=rec-s", "--bind-interfaces",
                                       "--dhcp-range=10.77.0.50,10.77.0.99,255.255.255.0,10m",
                                       "--dhcp-option=option:router,10.77.0.1",
                                       "--dhcp-option=option:dns-server,10.77.0.1",
                                       "--domain=branch.lab", "--dhcp-authoritative",
                                       f"--dhcp-leasefile={tmp}/leases",
                                       f"--pid-file={tmp}/dnsmasq.pid", "--log-dhcp",
                                       f"--log-facility={tmp}/dnsmasq.log"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def start_kea(tmp: Path) -> subprocess.Popen:
    config = {"Dhcp4": {
        "interfaces-config": {"interfaces": ["rec-s"], "dhcp-socket-type": "raw"},
        "lease-database": {"type": "memfile", "persist": False},
        "valid-lifetime": 600, "renew-timer": 300, "rebind-timer": 525,
        "authoritative": True,
        "subnet4": [{"id": 1, "subnet": "10.77.0.0/24",
                     "pools": [{"pool": "10.77.0.50 - 10.77.0.99"}],
                     "option-data": [{"name": "routers", "data": "10.77.0.1"},
                                     {"name": "domain-name-servers", "data": "10.77.0.1"},
                                     {"name": "domain-name", "data": "branch.lab"}]}],
        "loggers": [{"name": "kea-dhcp4", "severity": "INFO",
                     "output_options": [{"output": f"{tmp}/kea.log"}]}],
    }}
    path = tmp / "kea.json"
    path.write_text(json.dumps(config))
    env = dict(os.environ, KEA_PIDFILE_DIR=str(tmp), KEA_LOCKFILE_DIR=str(tmp))
    return subprocess.Popen(netns_exec(SRV, "kea-dhcp4", "-c", str(path)), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def raw_socket() -> socket.socket:
    """A raw socket on rec-c inside the client namespace (created there by a child)."""
    code = ("import socket,sys,array;"
            "s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW,socket.htons(3));"
            "s.bind(('rec-c',0));"
            "u=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM);"
            "u.sendmsg([b'x'],[(socket.SOL_SOCKET,socket.SCM_RIGHTS,array.array('i',[s.fileno()]))],0,sys.argv[1])")
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/fd.sock"
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        receiver.bind(path)
        sh(*netns_exec(CLI, sys.executable, "-c", code, path))
        _msg, ancdata, _flags, _addr = receiver.recvmsg(1, socket.CMSG_LEN(4))
        fd = int.from_bytes(ancdata[0][2][:4], sys.byteorder)
        receiver.close()
    sock = socket.socket(fileno=fd)
    sock.settimeout(0.05)
    return sock


def drive(server: str) -> dict:
    sock = raw_socket()
    fp = builtin_profiles()["axis-camera"].dhcp.merged({"arp_probe": False})
    device = DeviceCore(mac_bytes(MAC), fp, hostname="axis-recorded", rng=random.Random(SEED))
    replies: list[dict] = []
    t0 = time.monotonic()

    def now() -> float:
        return time.monotonic() - t0

    def run(until_state, limit: float) -> None:
        deadline = now() + limit
        while now() < deadline:
            for frame in device.out.take_frames():
                sock.send(frame)
            try:
                frame, addr = sock.recvfrom(4096)
            except socket.timeout:
                frame = None
            if frame is not None and addr[2] != socket.PACKET_OUTGOING and \
                    frame[12:14] == b"\x08\x00" and len(frame) > 42 and frame[23] == 17 and \
                    frame[36:38] == b"\x00\x44":
                replies.append({"phase": device.dhcp.state.value, "frame": frame.hex()})
                device.receive(frame, now())
            timer = device.next_timer()
            if timer is not None and now() >= timer:
                device.on_timer(now())
            if device.dhcp.state is until_state and not device.out.frames:
                return
        raise SystemExit(f"{server}: stuck in {device.dhcp.state.value}")

    device.dhcp.start(now())
    run(State.BOUND, 10)
    device.dhcp.renew(now())
    run(State.BOUND, 10)
    device.dhcp.address = bytes([10, 77, 0, 200])  # outside the pool: the server NAKs
    device.dhcp.reboot(now())
    run(State.BOUND, 15)
    sock.close()
    return {"server": server, "mac": MAC, "seed": SEED, "profile": "axis-camera",
            "hostname": "axis-recorded", "replies": replies}


def record(server: str) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=f"{RUN}-"))
    proc = None
    try:
        build()
        proc = start_dnsmasq(tmp) if server == "dnsmasq" else start_kea(tmp)
        time.sleep(1.5)
        if proc.poll() is not None:
            raise SystemExit(f"{server} did not start: {proc.stderr.read().decode()}")
        data = drive(server)
        version = sh("dnsmasq", "--version").stdout.split("\n")[0] if server == "dnsmasq" \
            else "kea-dhcp4 " + sh("kea-dhcp4", "-v").stdout.strip()
        data["version"] = version
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / f"{server}.json").write_text(json.dumps(data, indent=1) + "\n")
        print(f"{server}: {len(data['replies'])} replies recorded ({version})")
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        teardown()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if os.geteuid() != 0:
        raise SystemExit("run as root: it builds network namespaces")
    for name in sys.argv[1:] or ["dnsmasq", "kea"]:
        record(name)
