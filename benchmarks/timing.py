"""What every benchmark here shares: interleaved timing, the machine's load, the printed table and header.

    times = interleave({"ours": f, "reference": g}, rounds=5)   # seconds per call, warm-up excluded
    ratio(times["reference"], times["ours"])                   # "1.93× (2.01×)": median (best)

`interleave` warms every contender up once, then runs `rounds` rounds in which each contender runs once,
in an order rotating from round to round, so load from other processes falls on all of them alike.
`Load` measures that load (the CPU time other processes used while a block ran).
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rsd_sci.engine.precision import cpu_bf16_flags


# ---- timing ------------------------------------------------------------------------------------------
def make_sync(device: torch.device):
    """A function that waits for queued GPU work (a no-op on the CPU)."""
    if device.type == "cuda":
        return torch.cuda.synchronize
    return lambda: None


def interleave(contenders: dict, rounds: int, syncs: dict | None = None) -> dict[str, list[float]]:
    """Seconds per call of each contender: a warm-up call each, then `rounds` rotating rounds."""
    syncs = syncs or {}
    names = list(contenders)
    for name in names:
        contenders[name]()
        syncs.get(name, lambda: None)()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            sync = syncs.get(name, lambda: None)
            sync()
            start = time.perf_counter()
            contenders[name]()
            sync()
            times[name].append(time.perf_counter() - start)
    return times


class Load:
    """CPU time other processes used while a block ran, as a fraction of all CPUs (from /proc/stat).

    busy = all non-idle jiffies of the machine minus this process's own CPU time; Linux only.
    """

    def __enter__(self):
        self.start = self._sample()
        return self

    def __exit__(self, *exc):
        self.end = self._sample()

    @staticmethod
    def _sample():
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except (OSError, ValueError):
            return None
        hz = os.sysconf("SC_CLK_TCK")
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / hz  # everything but idle and iowait
        own = sum(os.times()[:4])
        return time.perf_counter(), busy, own

    def others(self) -> str:
        if self.start is None or self.end is None:
            return "n/a"
        wall, busy, own = (e - s for s, e in zip(self.start, self.end))
        return f"{max(0.0, busy - own) / (wall * (os.cpu_count() or 1)):.0%}"


def best(ts: list[float]) -> float:
    return min(ts)


def median(ts: list[float]) -> float:
    return statistics.median(ts)


# ---- the table ---------------------------------------------------------------------------------------
@dataclass
class Row:
    section: str
    operation: str
    implementation: str
    n: str = ""
    best: str = ""
    median: str = ""
    rate: str = ""
    ratio: str = ""
    goal: str = ""


def ms(seconds: float) -> str:
    value = seconds * 1e3
    return f"{value:.3g} ms" if value < 1000 else f"{value:,.0f} ms"


def num(value: float) -> str:
    return f"{value:.3g}" if value < 1000 else f"{value:,.0f}"


def sec(seconds: float) -> str:
    return f"{seconds:.3g} s"


def ratio(numerator: list[float], denominator: list[float]) -> str:
    """Median-based time ratio, with the best-based one in brackets (a speed-up when the numerator is
    the reference's times)."""
    return f"{median(numerator) / median(denominator):.2f}× ({best(numerator) / best(denominator):.2f}×)"


def timed(section: str, what: str, impl: str, ts: list[float], per: int = 1, fmt=ms, rate: str = "",
          ratio: str = "", goal: str = "") -> Row:
    """A table row from a list of per-call times (divided by `per`: per image, per sample)."""
    return Row(section, what, impl, str(len(ts)), fmt(best(ts) / per), fmt(median(ts) / per), rate, ratio, goal)


def goal_text(value: float, target: float, above: bool, label: str) -> str:
    met = value >= target if above else value <= target
    return f"{label}: {'met' if met else 'NOT met'}"


def print_table(header, rows: list) -> None:
    """A markdown table of dataclass rows (every field a string), the header a row of the same class."""
    fields = list(type(header).__dataclass_fields__)
    cells = [[getattr(r, f) for f in fields] for r in [header] + rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(fields))]
    line = lambda c: "| " + " | ".join(s.ljust(w) for s, w in zip(c, widths)) + " |"  # noqa: E731
    print(line(cells[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for c in cells[1:]:
        print(line(c))


def bf16_support() -> str:
    """What the CPU offers bf16 autocast, from /proc/cpuinfo's flags (`rsd_sci.engine.precision`)."""
    return ", ".join(cpu_bf16_flags()) or "neither AVX512-BF16 nor AMX (or no /proc/cpuinfo)"


def environment(device: torch.device, libraries: dict[str, str] | None = None,
                threads_note: str = "(torch default, not changed)") -> list[str]:
    """The header every benchmark prints: date, command, versions, CPU, threads and device.

    libraries: extra "name: version" pairs to report beside python, torch and numpy.
    """
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none used"
    versions = ", ".join(f"{name} {version}" for name, version in (libraries or {}).items())
    return [
        f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"command: {' '.join([sys.executable] + sys.argv)} (in {Path.cwd()})",
        f"python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}"
        + (f", {versions}" if versions else ""),
        f"CPU: {cpu}, {os.cpu_count()} logical CPUs, bf16: {bf16_support()}; "
        f"torch threads: {torch.get_num_threads()} {threads_note}",
        f"device: {device}; GPU: {gpu}",
    ]
