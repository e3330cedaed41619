"""Shared pieces of the load suites (tests/load): sizes, the out-of-process sampler of /healthz
latency and obmend's RSS, percentiles, and the report (printed, and written as JSON to
$OBMEN_REPORT_DIR/<suite>.json when that is set).

Sizes: CTest runs the CI sizes (each suite ≤ 3 minutes on 2 cores); ``OBMEN_LOAD_SIZE=long``
(what ``scripts/load`` sets) selects the full sizes of issues 9 and 7. Single figures can be
overridden with the environment variables named in ``SIZES``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "e2e"))
sys.path.insert(0, str(HERE.parent / "fakes" / "moysklad"))

# name → (environment variable, CI size, long size)
SIZES = {
    "sessions": ("OBMEN_LOAD_SESSIONS", 50, 50),
    "sale_clients": ("OBMEN_LOAD_SALE_CLIENTS", 10, 10),
    "big_products": ("OBMEN_LOAD_BIG_PRODUCTS", 20000, 100000),
    "webhook_rate": ("OBMEN_LOAD_WEBHOOK_RATE", 1000, 1000),
    "webhook_seconds": ("OBMEN_LOAD_WEBHOOK_SECONDS", 10, 60),
    "webhook_products": ("OBMEN_LOAD_WEBHOOK_PRODUCTS", 20, 20),
    "webhook_auth_weight": ("OBMEN_LOAD_AUTH_WEIGHT", 1, 4),
}


def long_run() -> bool:
    return os.environ.get("OBMEN_LOAD_SIZE", "ci") == "long"


def size(name: str) -> int:
    env, ci, full = SIZES[name]
    value = os.environ.get(env)
    return int(value) if value else (full if long_run() else ci)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(p / 100.0 * len(s)) - 1))
    return s[k]


def latency_summary(values: list[float]) -> dict:
    return {"count": len(values), "p50_ms": round(percentile(values, 50), 2), "p99_ms": round(percentile(values, 99), 2),
            "max_ms": round(max(values), 2) if values else 0.0}


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


class Sampler:
    """sampler.py in its own process, sampling /healthz and VmRSS of obmend every interval."""

    def __init__(self, port: int, pid: int, interval: float = 0.02):
        fd, self.out = tempfile.mkstemp(prefix="obmen-load-sampler-", suffix=".json")
        os.close(fd)
        os.unlink(self.out)
        self.proc = subprocess.Popen([sys.executable, str(HERE / "sampler.py"), "--port", str(port), "--pid", str(pid),
                                      "--interval", str(interval), "--out", self.out], stdin=subprocess.PIPE)
        self.result: dict | None = None

    def stop(self) -> dict:
        if self.result is None:
            self.proc.stdin.close()
            self.proc.wait(60)
            with open(self.out, encoding="utf-8") as f:
                self.result = json.load(f)
            os.unlink(self.out)
        return self.result

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.stop()
            except Exception:
                self.proc.kill()
                self.proc.wait()


class Report:
    """Figures of one suite: ``add(key, value)``; ``print()`` writes them as aligned lines to stderr
    and, when $OBMEN_REPORT_DIR is set, as JSON to <dir>/<name>.json."""

    def __init__(self, name: str, title: str):
        self.name, self.title = name, title
        self.values: dict = {"suite": name, "size": "long" if long_run() else "ci",
                             "load_average_start": load_average()}
        self.lines: list[tuple[str, str]] = []
        self.started = time.monotonic()

    def add(self, key: str, value, text: str | None = None) -> None:
        self.values[key] = value
        self.lines.append((key, text if text is not None else str(value)))

    def latency(self, key: str, values: list[float]) -> dict:
        s = latency_summary(values)
        self.add(key, s, f"p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms, max {s['max_ms']:.1f} ms "
                         f"({s['count']} samples)")
        return s

    def print(self) -> None:
        self.values["load_average_end"] = load_average()
        self.values["wall_seconds"] = round(time.monotonic() - self.started, 1)
        width = max([len(k) for k, _ in self.lines] + [12])
        out = [f"\n=== load report: {self.title} ({self.values['size']} size) ==="]
        out += [f"  {k.ljust(width)}  {v}" for k, v in self.lines]
        out.append(f"  {'load average'.ljust(width)}  {self.values['load_average_start']} → "
                   f"{self.values['load_average_end']} (1/5/15 min, 2 cores), wall {self.values['wall_seconds']} s")
        sys.stderr.write("\n".join(out) + "\n")
        sys.stderr.flush()
        directory = os.environ.get("OBMEN_REPORT_DIR")
        if directory:
            Path(directory).mkdir(parents=True, exist_ok=True)
            Path(directory, f"{self.name}.json").write_text(json.dumps(self.values, ensure_ascii=False, indent=2) + "\n",
                                                              encoding="utf-8")


def rss_summary(report: Report, key: str, samples_kib: list[int]) -> dict:
    if not samples_kib:
        report.add(key, None, "no samples")
        return {}
    n = len(samples_kib)
    first = samples_kib[: max(1, n // 10)]
    last = samples_kib[-max(1, n // 10):]
    s = {"start_mib": round(samples_kib[0] / 1024, 1), "peak_mib": round(max(samples_kib) / 1024, 1),
         "end_mib": round(samples_kib[-1] / 1024, 1), "first_tenth_max_mib": round(max(first) / 1024, 1),
         "last_tenth_max_mib": round(max(last) / 1024, 1), "samples": n}
    report.add(key, s, f"start {s['start_mib']} MiB, peak {s['peak_mib']} MiB, end {s['end_mib']} MiB ({n} samples)")
    return s
