"""Executors for the lab's daemons: start in a namespace, wait for a real readiness
signal, report the daemon's own error when it fails (mirakuru's idea)."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .state import process_start_time

# binary -> the Debian package that brings it
PACKAGES = {
    "ip": "iproute2", "dnsmasq": "dnsmasq-base", "kea-dhcp4": "kea-dhcp4-server",
    "ethtool": "ethtool", "nft": "nftables", "dhclient": "isc-dhcp-client",
    "tc": "iproute2", "tcpdump": "tcpdump", "tshark": "tshark", "mergecap": "tshark",
    "editcap": "tshark", "mosquitto": "mosquitto",
}


class LabError(RuntimeError):
    """The lab could not be built or a daemon could not start; says why and the remedy."""


def require(binary: str) -> str:
    path = shutil.which(binary) or next(
        (str(p) for p in (Path("/usr/sbin") / binary, Path("/sbin") / binary) if p.exists()),
        None)
    if path is None:
        package = PACKAGES.get(binary, binary)
        raise LabError(f"{binary} not found: apt-get install {package} "
                       "(or run `make deps` as root)")
    return path


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Daemon:
    name: str
    namespace: str | None  # None: the caller's own namespace (a real interface)
    argv: list[str]
    log: Path  # the daemon's stdout/stderr
    ready: Callable[[], bool]
    extra_logs: tuple[Path, ...] = ()
    env: dict[str, str] | None = None
    process: subprocess.Popen | None = None
    start_time: int | None = None

    def start(self, timeout: float = 10.0) -> "Daemon":
        require(self.argv[0])
        with open(self.log, "ab") as out:
            prefix = ["ip", "netns", "exec", self.namespace] if self.namespace else []
            self.process = subprocess.Popen(
                [*prefix, *self.argv], stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **(self.env or {})}, start_new_session=True)
        self.start_time = process_start_time(self.process.pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LabError(f"{self.name} exited at start (status {self.process.returncode})"
                               f":\n{self.error_text()}")
            if self.ready():
                return self
            time.sleep(0.02)
        self.stop()
        raise LabError(f"{self.name} did not become ready in {timeout:g}s:\n{self.error_text()}")

    def error_text(self) -> str:
        parts = [tail(self.log)] + [tail(p) for p in self.extra_logs]
        return "\n".join(p for p in parts if p) or "(no output)"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, grace: float = 3.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def file_contains(path: Path, needle: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return needle in path.read_text(errors="replace")
        except OSError:
            return False
    return check


def file_exists(path: Path) -> Callable[[], bool]:
    return path.exists
