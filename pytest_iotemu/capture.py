"""Packet captures for reports: one bounded ring capture (tcpdump) per site for the
whole session, on the lab's LAN bridge or the real interface, cut per item to the
devices involved and the item's time window (tshark), so a failing item carries the
frames that show why.

The ring holds ``files`` × ``size_mb`` MB at most; older frames are overwritten, so a
long session keeps its last minutes (enough for the item that just ran).
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from .lab.daemons import Daemon, LabError, file_contains, require

MAX_DEVICES = 64  # devices named in one cut (the filter stays short)
MAX_BYTES = 16_000_000  # a bigger cut (a throughput flow) keeps its headers only
TRIM_SNAPLEN, TRIM_FRAMES = 128, 50_000


class Capture:
    def __init__(self, directory: Path, iface: str, namespace: str | None = None,
                 files: int = 8, size_mb: int = 32):
        self.directory = Path(directory)
        self.iface = iface
        self.namespace = namespace
        self.files = files
        self.size_mb = size_mb
        self.daemon: Daemon | None = None
        self._trimmed: set[Path] = set()

    @property
    def base(self) -> Path:
        return self.directory / "capture.pcap"

    def daemon_for(self) -> Daemon:
        """The tcpdump executor: immediate mode (libpcap otherwise hands frames over in
        blocks up to a second late) and packet-buffered (-U), so a cut sees every frame at
        once; as root (-Z root) so it can write into the run directory."""
        log = self.directory / "capture.out"
        self.daemon = Daemon("capture", self.namespace,
                             [require("tcpdump"), "-i", self.iface, "-n", "--immediate-mode", "-U",
                              "-Z", "root",
                              "-s", "0", "-C", str(self.size_mb), "-W", str(self.files),
                              "-w", str(self.base)],
                             log, file_contains(log, "listening on"))
        return self.daemon

    def ring(self) -> list[Path]:
        files = [p for p in self.directory.glob("capture.pcap*") if p.stat().st_size > 24]
        return sorted(files, key=lambda p: p.stat().st_mtime)

    def cut(self, macs: list[str], start: float, end: float, out: Path) -> Path | None:
        """Frames to or from ``macs`` between ``start`` and ``end`` (wall-clock seconds)
        into ``out`` (pcap); None when there were none."""
        ring = self.ring()
        if not ring or not macs:
            return None
        merged = out.with_suffix(".ring.pcap")
        result = subprocess.run([require("mergecap"), "-F", "pcap", "-w", str(merged),
                                 *map(str, ring)], capture_output=True, text=True)
        if result.returncode != 0:
            raise LabError(f"cannot merge the capture ring: {result.stderr.strip()}")
        chosen = " || ".join(f"eth.addr == {mac}" for mac in macs[:MAX_DEVICES])
        window = f"frame.time_epoch >= {start:.6f} && frame.time_epoch <= {end:.6f}"
        result = subprocess.run([require("tshark"), "-r", str(merged), "-Y",
                                 f"({chosen}) && {window}", "-F", "pcap", "-w", str(out)],
                                capture_output=True, text=True)
        merged.unlink(missing_ok=True)
        if result.returncode != 0:
            raise LabError(f"cannot cut the capture: {result.stderr.strip()}")
        if not out.exists() or out.stat().st_size <= 24:  # a pcap header and no frame
            out.unlink(missing_ok=True)
            return None
        if out.stat().st_size > MAX_BYTES:
            trimmed = out.with_suffix(".trim.pcap")
            result = subprocess.run([require("editcap"), "-F", "pcap", "-s", str(TRIM_SNAPLEN),
                                     "-r", str(out), str(trimmed), f"1-{TRIM_FRAMES}"],
                                    capture_output=True, text=True)
            if result.returncode == 0:
                trimmed.replace(out)
                self._trimmed.add(out)
        return out

    def trimmed(self, cut: Path) -> bool:
        """The cut kept headers only (it was too big to attach whole)."""
        return cut in self._trimmed
