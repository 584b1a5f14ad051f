"""Where a run's CPU goes: this machine's processes grouped by role, read from /proc, and what
py-spy saw each of them do.

Ray names its worker processes after what they run (``ray::ServeReplica:app:Scorer``,
``ray::ProxyActor``, ``ray::Consumer.run``), so a role is read from the process title. Shared by
``serve.py`` and ``stream.py``: each hop's cost is its processes' CPU time over a phase, divided
by the requests or transactions of that phase.
"""

from __future__ import annotations

import collections
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def role(command: str) -> str | None:
    """The role a process plays in a run, from its command line; ``None`` for the rest."""
    if command.startswith("ray::ServeReplica:"):
        return "Serve " + command.split(":")[-1].split()[0]
    if command.startswith("ray::ProxyActor") or command.startswith("ray::ProxyRouter"):
        return "Serve proxy"
    if command.startswith("ray::ServeController"):
        return "Serve controller"
    if command.startswith("ray::Consumer"):
        return "consumer actors"
    if command.startswith("ray::"):
        return "other Ray workers"
    if any(name in command for name in ("raylet", "gcs_server", "dashboard", "ray/_private")):
        return "Ray (raylet, GCS, agents)"
    if "kafka.Kafka" in command or "kafka-server" in command or "kafka_2." in command:
        return "Kafka broker"
    if "haproxy" in command:
        return "HAProxy"
    return None


def command_line(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def cpu_seconds(pid: int) -> float:
    """User and system time of the process so far (its threads included)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def processes(extra: dict[int, str] | None = None, root: int | None = None) -> dict[int, str]:
    """pid -> role for the processes descending from ``root`` (this one by default) that have a
    role, and ``extra``'s: other work on the machine (another Ray, another broker) is left out.
    """
    root = os.getpid() if root is None else root
    found = dict(extra or {})
    parents = {int(entry): parent(int(entry)) for entry in os.listdir("/proc") if entry.isdigit()}
    for pid in parents:
        if pid in found or not _descends(pid, root, parents):
            continue
        if (name := role(command_line(pid))) is not None:
            found[pid] = name
    return found


def _descends(pid: int, root: int, parents: dict[int, int]) -> bool:
    while pid > 1:
        pid = parents.get(pid, 0)
        if pid == root:
            return True
    return False


@dataclass
class CpuMeter:
    """CPU seconds by role between ``start()`` and ``stop()``; processes that start in between
    count from zero."""

    extra: dict[int, str] = field(default_factory=dict)
    _before: dict[int, float] = field(default_factory=dict)

    def start(self) -> None:
        self._before = {pid: cpu_seconds(pid) for pid in processes(self.extra)}

    def stop(self) -> dict[str, float]:
        spent: dict[str, float] = collections.defaultdict(float)
        for pid, name in processes(self.extra).items():
            spent[name] += max(cpu_seconds(pid) - self._before.get(pid, 0.0), 0.0)
        return dict(sorted(spent.items(), key=lambda item: -item[1]))


def cpu_table(spent: dict[str, float], units: int, unit: str) -> list[str]:
    """A Markdown table: each role's CPU microseconds per request or transaction."""
    total = sum(spent.values())
    lines = [
        f"| process | CPU us per {unit} | share |",
        "|---|---|---|",
    ]
    for name, seconds in spent.items():
        share = seconds / total if total else 0.0
        lines.append(f"| {name} | {seconds / units * 1e6:,.0f} | {share:.0%} |")
    lines.append(f"| **total** | **{total / units * 1e6:,.0f}** | |")
    return lines


def profile(pids: dict[int, str], seconds: float, top: int = 6) -> dict[str, list[str]]:
    """py-spy samples each process for ``seconds`` at once; for each role, its ``top`` functions
    by share of the role's busy samples (idle threads left out), as ``share function (file)``."""
    folder = Path(tempfile.mkdtemp(prefix="pyspy-"))
    running = []
    for pid in pids:
        out = folder / f"{pid}.txt"
        command = ["py-spy", "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "50"]
        command += ["-f", "raw", "-o", str(out), "--nonblocking"]
        running.append(
            (
                pid,
                out,
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
            )
        )
    by_role: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for pid, out, process in running:
        process.wait()
        if not out.exists():
            continue
        for line in out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            leaf = stack.rsplit(";", 1)[-1]
            by_role[pids[pid]][_short(leaf)] += int(count)
    return {
        name: [
            f"{count / sum(counter.values()):.0%} {frame}"
            for frame, count in counter.most_common(top)
        ]
        for name, counter in by_role.items()
    }


def _short(frame: str) -> str:
    """``function (package/module.py)`` from py-spy's ``function (path:line)``."""
    function, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    for anchor in ("site-packages", "fraud_ray", "lib"):
        if anchor in parts:
            parts = parts[parts.index(anchor) + 1 :]
            break
    return f"{function} ({'/'.join(parts[-2:])})"
