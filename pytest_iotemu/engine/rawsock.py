"""The engine's one raw socket: AF_PACKET with a kernel BPF filter, a large receive
buffer, checksum status per frame, drop counters; and the interface safety check."""
from __future__ import annotations

import ctypes
import json
import socket
import struct
import subprocess

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_STATISTICS = 6
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
TP_STATUS_CSUMNOTREADY = 8
_AUX = struct.Struct("=IIIHHHH")

# Classic BPF, written out (no libpcap needed): drop our own transmissions
# (SKF_AD_PKTTYPE == PACKET_OUTGOING), keep ARP and IPv4, drop the rest.
_FILTER = [
    (0x20, 0, 0, 0xFFFFF004),  # ld  pkttype (SKF_AD_OFF + SKF_AD_PKTTYPE)
    (0x15, 4, 0, 4),           # jeq PACKET_OUTGOING -> drop
    (0x28, 0, 0, 12),          # ldh [12] (ethertype)
    (0x15, 1, 0, 0x0806),      # jeq ARP -> accept
    (0x15, 0, 1, 0x0800),      # jeq IPv4 -> accept, else drop
    (0x06, 0, 0, 0x40000),     # accept (up to 256 KiB)
    (0x06, 0, 0, 0),           # drop
]


class UnsafeInterface(RuntimeError):
    """The interface carries the host's traffic; refused without --allow-live."""


def interface_problem(iface: str) -> str | None:
    """Why sending on ``iface`` could disturb the host, or None. Checks the namespace the
    caller runs in: a default route through it, or any address on it."""
    routes = subprocess.run(["ip", "-j", "route", "show", "default"], capture_output=True,
                            text=True)
    routes6 = subprocess.run(["ip", "-j", "-6", "route", "show", "default"],
                             capture_output=True, text=True)
    for output in (routes.stdout, routes6.stdout):
        try:
            for route in json.loads(output or "[]"):
                if route.get("dev") == iface:
                    return f"{iface} holds the default route (via {route.get('gateway', '?')})"
        except ValueError:
            pass
    addrs = subprocess.run(["ip", "-j", "addr", "show", "dev", iface], capture_output=True,
                           text=True)
    if addrs.returncode != 0:
        return None  # does not exist: reported when the socket binds
    try:
        info = json.loads(addrs.stdout or "[]")
    except ValueError:
        return None
    for entry in info:
        for addr in entry.get("addr_info", []):
            if addr.get("scope") == "link" and addr.get("family") == "inet6":
                continue  # every up interface has one
            return f"{iface} has the address {addr.get('local')}/{addr.get('prefixlen')} " \
                   "(a management or host address)"
    return None


def _attach_filter(sock: socket.socket) -> None:
    program = b"".join(struct.pack("HBBI", *ins) for ins in _FILTER)
    buffer = ctypes.create_string_buffer(program)
    fprog = struct.pack("HL", len(_FILTER), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


class RawSocket:
    def __init__(self, iface: str, rcvbuf: int = 64 << 20):
        self.iface = iface
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            _attach_filter(sock)  # before bind: nothing unfiltered is queued
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
            except PermissionError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            sock.bind((iface, 0))
            # unicast replies to emulated MACs reach a real NIC's socket only in promiscuous
            # mode; a membership is the socket's own and ends when it closes
            ifindex = socket.if_nametoindex(iface)
            sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP,
                            struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b""))
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self.sock = sock
        self.rx = self.tx = self.tx_dropped = 0
        self.rx_bytes = self.tx_bytes = 0
        self.drops = 0
        self._cmsg = socket.CMSG_SPACE(_AUX.size)

    def fileno(self) -> int:
        return self.sock.fileno()

    def recv_batch(self, limit: int = 512) -> list[tuple[bytes, bool]]:
        """Up to ``limit`` frames: (frame, checksum_unfilled)."""
        out = []
        recvmsg = self.sock.recvmsg
        for _ in range(limit):
            try:
                data, ancdata, _flags, _addr = recvmsg(65536, self._cmsg)
            except (BlockingIOError, InterruptedError):
                break
            unfilled = False
            for level, kind, cdata in ancdata:
                if level == SOL_PACKET and kind == PACKET_AUXDATA and len(cdata) >= _AUX.size:
                    unfilled = bool(_AUX.unpack_from(cdata)[0] & TP_STATUS_CSUMNOTREADY)
            out.append((data, unfilled))
            self.rx_bytes += len(data)
        self.rx += len(out)
        return out

    def send(self, frame: bytes) -> bool:
        try:
            self.sock.send(frame)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            if exc.errno == 105:  # ENOBUFS: the queue is full; try again later
                return False
            raise
        self.tx += 1
        self.tx_bytes += len(frame)
        return True

    def bulk_sender(self):
        """A bare ``send(frame) -> bool`` for the flows' hot path: no per-frame counting
        (the flows count what they sent; ``count_sent`` adds it to ``tx``)."""
        send = self.sock.send

        def send_frame(frame: bytes | bytearray) -> bool:
            try:
                send(frame)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError as exc:
                if exc.errno == 105:  # ENOBUFS
                    return False
                raise
            return True
        return send_frame

    def count_sent(self, frames: int, size: int) -> None:
        self.tx += frames
        self.tx_bytes += size

    def statistics(self) -> dict[str, int]:
        """Kernel counters since the last call (PACKET_STATISTICS resets them)."""
        raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        packets, drops = struct.unpack("II", raw)
        self.drops += drops
        return {"packets": packets, "drops": drops}

    def close(self) -> None:
        self.sock.close()
