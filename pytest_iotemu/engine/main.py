"""The engine process: ``iotemu engine --iface IF``.

Commands arrive on stdin as JSON lines, each with an ``id``, and get exactly one reply
with that ``id``; events go to stdout as JSON lines with a strictly increasing ``seq``,
a wall-clock ``ts`` and a monotonic ``mono``; logs go to stderr as JSON lines. The engine
exits on stdin EOF, on SIGTERM (after releasing its leases) and when its parent dies.
See docs/protocol.md.
"""
from __future__ import annotations

import argparse
import ctypes
import errno
import json
import os
import selectors
import signal
import sys
import time
from typing import Any

from .core import VERSION, CommandError, Engine
from .rawsock import RawSocket, interface_problem

MAX_LINE = 64 << 20  # add_devices for a large fleet is one long line


class EngineProcess:
    def __init__(self, engine: Engine, sock: Any, stats_interval: float = 1.0,
                 heartbeat: float = 1.0):
        self.engine = engine
        self.sock = sock
        self.seq = 0
        self.stats_interval = stats_interval
        self.heartbeat = heartbeat
        self.out = sys.stdout.buffer
        self.inbuf = b""
        self.stop_reason: str | None = None
        self.pending_frames: list[bytes] = []
        if hasattr(sock, "bulk_sender"):  # flow datagrams straight out (False: socket full)
            engine.flow_sink = sock.bulk_sender()
            engine.on_flow_sent = sock.count_sent

    # --- output -------------------------------------------------------------------------
    def emit(self, kind: str, **fields: Any) -> None:
        self.seq += 1
        record = {"seq": self.seq, "ts": round(time.time(), 6),
                  "mono": round(time.monotonic(), 6), "type": kind, **fields}
        self.out.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")

    def reply(self, ident: Any, ok: bool, **fields: Any) -> None:
        record = {"id": ident, "ok": ok, **fields}
        self.out.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")

    def log(self, level: str, message: str, **fields: Any) -> None:
        record = {"ts": round(time.time(), 3), "level": level, "msg": message, **fields}
        sys.stderr.write(json.dumps(record) + "\n")
        sys.stderr.flush()

    # --- input --------------------------------------------------------------------------
    def on_stdin(self) -> bool:
        """Read what is there; returns False on EOF."""
        try:
            chunk = os.read(0, 1 << 20)
        except BlockingIOError:
            return True
        if not chunk:
            return False
        self.inbuf += chunk
        while b"\n" in self.inbuf:
            line, self.inbuf = self.inbuf.split(b"\n", 1)
            if line.strip():
                self.handle_line(line)
        if len(self.inbuf) > MAX_LINE:
            self.inbuf = b""
            self.reply(None, False, error={"code": "line_too_long",
                                           "message": f"a command line is at most {MAX_LINE} bytes"})
        return True

    def handle_line(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError as exc:
            self.reply(None, False, error={"code": "bad_json", "message": f"not JSON: {exc}"})
            return
        if not isinstance(message, dict):
            self.reply(None, False, error={"code": "bad_command",
                                           "message": "a command is a JSON object"})
            return
        ident = message.get("id")
        cmd = message.get("cmd")
        if ident is None or not isinstance(ident, (str, int)) or isinstance(ident, bool):
            self.reply(None, False, error={"code": "bad_command",
                                           "message": "every command needs an id (text or number)"})
            return
        if not isinstance(cmd, str):
            self.reply(ident, False, error={"code": "bad_command", "message": "cmd: text"})
            return
        args = message.get("args") or {}
        if not isinstance(args, dict):
            self.reply(ident, False, error={"code": "bad_command", "message": "args: an object"})
            return
        try:
            result = self.engine.command(cmd, args, time.monotonic())
        except CommandError as exc:
            self.reply(ident, False, error={"code": exc.code, "message": exc.message})
            return
        except Exception as exc:  # noqa: BLE001 - an engine bug must not kill the fleet
            self.log("error", "command failed", cmd=cmd, error=repr(exc))
            self.emit("engine.error", message=f"{cmd}: {exc!r}")
            self.reply(ident, False, error={"code": "internal", "message": repr(exc)})
            return
        self.reply(ident, True, **result)
        if self.engine.stopping:
            self.stop_reason = "shutdown"

    # --- the loop -----------------------------------------------------------------------
    def flush_frames(self) -> None:
        frames = self.pending_frames + self.engine.take_frames()
        self.pending_frames = []
        for i, frame in enumerate(frames):
            if not self.sock.send(frame):
                self.pending_frames = frames[i:]
                break

    def flush_events(self) -> None:
        for event in self.engine.take_events():
            kind = event.pop("type")
            self.emit(kind, **event)
        self.out.flush()

    def stats_event(self) -> None:
        stats = self.engine.stats()
        stats["socket"] = {"rx": self.sock.rx, "tx": self.sock.tx,
                           "rx_bytes": self.sock.rx_bytes, "tx_bytes": self.sock.tx_bytes,
                           **_socket_stats(self.sock)}
        self.emit("engine.stats", pid=os.getpid(), **stats)

    def run(self) -> int:
        os.set_blocking(0, False)
        selector = selectors.DefaultSelector()
        selector.register(0, selectors.EVENT_READ, "stdin")
        selector.register(self.sock.fileno(), selectors.EVENT_READ, "sock")
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        os.set_blocking(wake_r, False)
        signal.set_wakeup_fd(wake_w)
        selector.register(wake_r, selectors.EVENT_READ, "signal")

        def on_term(_signum: int, _frame: Any) -> None:
            self.stop_reason = "SIGTERM"

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        self.emit("engine.ready", engine=VERSION, pid=os.getpid(), iface=self.engine.iface)
        self.out.flush()
        next_stats = next_beat = time.monotonic()
        while self.stop_reason is None:
            now = time.monotonic()
            deadline = min(filter(None, (self.engine.next_deadline(), next_stats, next_beat)))
            timeout = max(0.0, deadline - now)
            if self.pending_frames:
                timeout = min(timeout, 0.001)
            for key, _ in selector.select(timeout):
                if key.data == "stdin":
                    if not self.on_stdin():
                        self.stop_reason = "stdin closed"
                elif key.data == "sock":
                    now = time.monotonic()
                    for frame, unfilled in self.sock.recv_batch():
                        self.engine.on_frame(frame, unfilled, now)
                else:
                    try:
                        os.read(wake_r, 512)
                    except BlockingIOError:
                        pass
            now = time.monotonic()
            self.engine.on_timers(now)
            self.flush_frames()
            if now >= next_stats:
                self.stats_event()
                next_stats = now + self.stats_interval
            if now >= next_beat:
                self.emit("engine.heartbeat")
                next_beat = now + self.heartbeat
            self.flush_events()
        return self.finish()

    def finish(self) -> int:
        """Release leases, send the RELEASEs, final stats, ``engine.stopped``."""
        now = time.monotonic()
        released = self.engine.release_all(now)
        # RELEASEs paced at ~2,000/s: a burst of thousands overflows the server's socket
        self.pending_frames += self.engine.take_frames()
        deadline = time.monotonic() + 10.0
        frames, self.pending_frames = self.pending_frames, []
        for start in range(0, len(frames), 20):
            if time.monotonic() > deadline:
                break
            for frame in frames[start:start + 20]:
                while not self.sock.send(frame) and time.monotonic() < deadline:
                    time.sleep(0.001)
            time.sleep(0.01)
        self.flush_events()
        self.stats_event()
        self.emit("engine.stopped", reason=self.stop_reason, released=released)
        self.out.flush()
        return 0


def _socket_stats(sock: Any) -> dict:
    try:
        stats = sock.statistics()
        return {"drops": sock.drops, "kernel_packets": stats["packets"]}
    except (OSError, AttributeError):
        return {"drops": None}


def die_with_parent() -> None:
    """PR_SET_PDEATHSIG: SIGTERM when the parent dies, so no engine outlives pytest."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="iotemu engine",
                                     description="Drive a fleet on one interface; JSON lines on "
                                     "stdin/stdout (docs/protocol.md).")
    parser.add_argument("--iface", required=True, help="the interface to send and receive on")
    parser.add_argument("--allow-live", action="store_true",
                        help="allow an interface that carries the host's traffic")
    parser.add_argument("--stats-interval", type=float, default=1.0, metavar="SECONDS",
                        help="stats snapshot interval (0.1 s or more; default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed for xids and jitter")
    args = parser.parse_args(argv)
    ppid = os.getppid()
    die_with_parent()
    if os.getppid() != ppid:  # the parent died before prctl
        return 1
    if args.stats_interval < 0.1:
        parser.error("--stats-interval: at least 0.1")
    problem = interface_problem(args.iface)
    if problem and not args.allow_live:
        print(json.dumps({"level": "error", "msg": f"refusing {args.iface}: {problem}; "
                          "pass --allow-live (--iot-allow-live in pytest) to use it anyway"}),
              file=sys.stderr)
        return 3
    try:
        sock = RawSocket(args.iface)
    except PermissionError:
        print(json.dumps({"level": "error", "msg": "a raw socket needs root or CAP_NET_RAW"}),
              file=sys.stderr)
        return 3
    except OSError as exc:
        reason = "no such interface" if exc.errno in (errno.ENODEV, errno.ENXIO) else str(exc)
        print(json.dumps({"level": "error", "msg": f"cannot open {args.iface}: {reason}"}),
              file=sys.stderr)
        return 3
    engine = Engine(iface=args.iface, seed=args.seed)
    process = EngineProcess(engine, sock, stats_interval=args.stats_interval)
    profile_to = os.environ.get("IOTEMU_ENGINE_PROFILE")  # where the time goes (cProfile)
    try:
        if profile_to:
            import cProfile
            profiler = cProfile.Profile()
            try:
                return profiler.runcall(process.run)
            finally:
                profiler.dump_stats(profile_to)
        return process.run()
    except BrokenPipeError:
        return 0
    finally:
        sock.close()


if __name__ == "__main__":
    sys.exit(main())
