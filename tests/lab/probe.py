"""Run inside a lab namespace (``ip netns exec NS python -m tests.lab.probe ...``):
resolve a name against a DNS server, or connect to a TCP/UDP service. Prints JSON."""
from __future__ import annotations

import json
import random
import socket
import struct
import sys


def resolve(server: str, name: str) -> dict:
    qid = random.getrandbits(16)
    query = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        query += bytes([len(label)]) + label.encode()
    query += b"\x00" + struct.pack("!HH", 1, 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(3)
    sock.sendto(query, (server, 53))
    data = sock.recv(2048)
    rid, flags, _qd, ancount = struct.unpack_from("!HHHH", data)
    answers = []
    at = len(query)
    for _ in range(ancount):
        if data[at] & 0xC0 == 0xC0:
            at += 2
        else:
            while data[at]:
                at += data[at] + 1
            at += 1
        rtype, _cls, _ttl, length = struct.unpack_from("!HHIH", data, at)
        at += 10
        if rtype == 1 and length == 4:
            answers.append(socket.inet_ntoa(data[at:at + 4]))
        at += length
    return {"id_ok": rid == qid, "rcode": flags & 0x0F, "answers": answers}


def tcp(address: str, port: int) -> dict:
    sock = socket.create_connection((address, port), timeout=3)
    sock.sendall(b"hello lab")
    echoed = sock.recv(100)
    local = sock.getsockname()[0]
    sock.close()
    return {"echo": echoed.decode(), "local": local}


def tcp_status(address: str, port: int) -> dict:
    """connected, refused (a reset came back) or timeout (nothing came back)."""
    try:
        sock = socket.create_connection((address, port), timeout=2)
    except ConnectionRefusedError:
        return {"result": "refused"}
    except (TimeoutError, socket.timeout):
        return {"result": "timeout"}
    except OSError as exc:
        return {"result": f"error {exc.errno}"}
    sock.close()
    return {"result": "connected"}


def udp(address: str, port: int) -> dict:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(3)
    sock.connect((address, port))
    sock.send(b"hello udp")
    return {"echo": sock.recv(100).decode(), "local": sock.getsockname()[0]}


def blast(address: str, port: int, rate_bps: float, seconds: float, size: int = 1000) -> dict:
    """UDP datagrams of ``size`` bytes at ``rate_bps`` for ``seconds``; returns how many."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((address, port))
    import time
    interval = size * 8 / rate_bps
    start = time.monotonic()
    sent = 0
    while time.monotonic() - start < seconds:
        try:
            sock.send(b"x" * size)
            sent += 1
        except OSError:
            pass
        next_at = start + sent * interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    return {"sent": sent, "bytes": sent * size}


def udp_status(address: str, port: int) -> dict:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(1.5)
    sock.connect((address, port))
    sock.send(b"ping")
    try:
        sock.recv(100)
        return {"result": "answered"}
    except (TimeoutError, socket.timeout):
        return {"result": "timeout"}
    except OSError as exc:
        return {"result": f"error {exc.errno}"}


def flow(address: str, port: int, pps: float, seconds: float) -> dict:
    """A sequence-numbered UDP flow echoed by the target: the largest gap (s) between
    echoes that came back, how many were sent and how many came back."""
    import struct
    import time
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((address, port))
    sock.setblocking(False)
    start = time.monotonic()
    seq, back = 0, []
    while time.monotonic() - start < seconds:
        if time.monotonic() >= start + seq / pps:
            try:
                sock.send(struct.pack("!I", seq) + b"flow" * 10)
            except OSError:
                pass
            seq += 1
        try:
            while True:
                sock.recv(200)
                back.append(time.monotonic())
        except (BlockingIOError, OSError):
            pass
        time.sleep(0.002)
    gaps = [b - a for a, b in zip(back, back[1:])]
    return {"sent": seq, "back": len(back), "largest_gap": max(gaps) if gaps else None,
            "last_back": (back[-1] - start) if back else None}


if __name__ == "__main__":
    kind, *args = sys.argv[1:]
    if kind == "resolve":
        out = resolve(args[0], args[1])
    elif kind == "tcp":
        out = tcp(args[0], int(args[1]))
    elif kind == "udpstatus":
        out = udp_status(args[0], int(args[1]))
    elif kind == "flow":
        out = flow(args[0], int(args[1]), float(args[2]), float(args[3]))
    elif kind == "blast":
        out = blast(args[0], int(args[1]), float(args[2]), float(args[3]))
    elif kind == "tcpstatus":
        out = tcp_status(args[0], int(args[1]))
    else:
        out = udp(args[0], int(args[1]))
    print(json.dumps(out))
