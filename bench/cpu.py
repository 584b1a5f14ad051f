"""CPU time of the processes a bench runs, read from /proc, grouped by what each process is;
and what py-spy sees each of them do (``profile``).

A throughput figure on a shared 2-core machine moves with whatever else runs; CPU time per
transaction does not, and it says which process a transaction's cost goes to. Ray names its
workers by process title (``ray::Consumer``, ``ray::ServeReplica:app:Ingress``), which is how the
processes of a Ray cluster are told apart here.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
# The environment's own, installed with the dev extras.
PY_SPY = Path(sys.executable).parent / "py-spy"
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Snapshot:
    """Each process's CPU seconds so far (user and system, all its threads) and its group."""

    seconds: dict[int, float]
    groups: dict[int, str]


def cpu_seconds(pid: int) -> float | None:
    """``utime + stime`` of a process, or ``None`` if it has gone."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: the fields start after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def title(pid: int) -> str:
    """The process title: Ray rewrites ``argv`` to name the actor or replica a worker runs."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def descendants(root: int) -> set[int]:
    """Every process below ``root``: the driver started Ray's services, which started the rest."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def group_of(process_title: str) -> str:
    """A short name shared by the processes that do the same job.

    ``ray::ServeReplica:app:Ingress`` is ``Ingress``, ``ray::Consumer.drain`` is ``Consumer``, a
    Ray service binary is its file name, a Python script its script's name.
    """
    first, _, rest = process_title.partition(" ")
    if first.startswith("ray::"):
        name = first.removeprefix("ray::").split(".")[0]
        return name.rsplit(":", 1)[-1] if name.startswith("ServeReplica:") else name
    program = Path(first).name
    if not program.startswith("python"):
        # A binary's arguments may name scripts (the raylet's name the worker's): not its own.
        return program or "unknown"
    script = next((arg for arg in rest.split() if arg.endswith(".py")), None)
    return Path(script or first).name


def snapshot(named: Mapping[int, str], tree_of: int | None = None) -> Snapshot:
    """CPU seconds of the ``named`` processes (pid: group) and of every other process below
    ``tree_of``, grouped by title."""
    seconds: dict[int, float] = {}
    groups: dict[int, str] = {}
    below = descendants(tree_of) if tree_of is not None else set()
    for pid in set(named) | below:
        used = cpu_seconds(pid)
        if used is None:
            continue
        seconds[pid] = used
        groups[pid] = named.get(pid) or group_of(title(pid))
    return Snapshot(seconds, groups)


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds each group used between two snapshots, and how many processes it had."""

    seconds: dict[str, float]
    processes: dict[str, int]

    def total(self, without: tuple[str, ...] = ()) -> float:
        return sum(used for group, used in self.seconds.items() if group not in without)

    def table(self, transactions: int, without: tuple[str, ...] = ()) -> str:
        """A Markdown table of CPU-us per transaction by group, largest first, and the total
        with and without the ``without`` groups (the load generator)."""
        rows = [
            f"| {group} | {self.processes[group]} | {used:,.2f} | {used / transactions * 1e6:,.0f} |"
            for group, used in sorted(self.seconds.items(), key=lambda item: -item[1])
        ]
        total = self.total()
        rows.append(f"| total | | {total:,.2f} | {total / transactions * 1e6:,.0f} |")
        if without:
            kept = self.total(without)
            rows.append(
                f"| total without {', '.join(without)} | | {kept:,.2f} | "
                f"{kept / transactions * 1e6:,.0f} |"
            )
        header = "| process group | processes | CPU s | CPU-us/tx |\n|---|---|---|---|"
        return header + "\n" + "\n".join(rows)


def used_between(before: Snapshot, after: Snapshot) -> CpuUse:
    """What each group used from ``before`` to ``after``; a process started meanwhile counts
    from zero, one that ended meanwhile is missed (so take ``after`` before stopping anything)."""
    seconds: dict[str, float] = {}
    processes: dict[str, int] = {}
    for pid, used in after.seconds.items():
        group = after.groups[pid]
        seconds[group] = seconds.get(group, 0.0) + used - before.seconds.get(pid, 0.0)
        processes[group] = processes.get(group, 0) + 1
    return CpuUse(seconds, processes)


# The frames an inclusive profile names: ours, and the libraries a request passes through. Ray's
# own event loops and worker threads sit under every sample and would name nothing.
NAMED = ("fraud_ray/", "fastapi/", "starlette/", "pydantic/", "sqlalchemy/", "ray/serve/", "bench/")


def profile(pids: dict[int, str], seconds: float, top: int = 8) -> dict[str, list[str]]:
    """py-spy samples each process for ``seconds`` at once; for each role, the ``top`` functions
    of ``NAMED`` by share of the role's busy samples that pass through them (idle threads left
    out), as ``share function (file)``: inclusive, so a handler's share holds what it calls."""
    folder = Path(tempfile.mkdtemp(prefix="pyspy-"))
    running = []
    for pid in pids:
        out = folder / f"{pid}.txt"
        command = [str(PY_SPY), "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "50"]
        command += ["-f", "raw", "-o", str(out), "--nonblocking"]
        running.append(
            (
                pid,
                out,
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
            )
        )
    through: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    busy: collections.Counter[str] = collections.Counter()
    for pid, out, process in running:
        process.wait()
        if not out.exists():
            continue
        role = pids[pid]
        for line in out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            busy[role] += int(count)
            frames = {_short(frame) for frame in stack.split(";") if _named(frame)}
            for frame in frames:
                through[role][frame] += int(count)
    return {
        role: [f"{count / busy[role]:.0%} {frame}" for frame, count in counter.most_common(top)]
        for role, counter in through.items()
    }


def _named(frame: str) -> bool:
    return any(package in frame for package in NAMED)


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
