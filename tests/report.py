"""The combined reliability and security report (issue 9): reads what the suites wrote into one
report directory and prints kills survived, faults survived, hostile inputs tried, fuzz executions
per target, load held, and the totals of anything lost, doubled or half applied.

    python3 tests/report.py REPORT_DIR [FUZZ_REPORT]

REPORT_DIR holds reliability_<suite>.json (tests/reliability), load_<suite>.json (tests/load) and
hostile.json (tests/e2e/test_hostile.py); FUZZ_REPORT is scripts/fuzz's fuzz-report.txt. Exit
status 0 when every figure that must be zero is zero and no fuzz target failed, 1 otherwise,
2 when a part is missing. Standard library only.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path


def load(directory: Path, name: str) -> dict | None:
    p = directory / name
    return json.loads(p.read_text(encoding="utf-8")) if p.exists() else None


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    directory = Path(argv[1])
    fuzz = Path(argv[2]) if len(argv) > 2 else None
    lines, missing, bad = [], [], []
    lost = doubled = half = 0

    for suite in ("crash", "db_faults"):
        r = load(directory, f"reliability_{suite}.json")
        if r is None:
            missing.append(f"reliability_{suite}.json")
            continue
        f = r.get("figures", r)
        lost, doubled, half = lost + f.get("lost", 0), doubled + f.get("doubled", 0), half + f.get("half_applied", 0)
        survived = {k: v for k, v in f.items() if k.endswith("_survived")}
        lines.append(f"{suite:<12} " + ", ".join(f"{k} {v}" for k, v in survived.items()))

    h = load(directory, "hostile.json")
    if h is None:
        missing.append("hostile.json")
    else:
        lines.append(f"{'hostile':<12} {h['count']} inputs tried, the daemon serving after each: " + ", ".join(h["tried"]))

    for suite in ("load_onec_sessions", "load_big_import", "load_webhooks"):
        r = load(directory, f"{suite}.json")
        if r is None:
            missing.append(f"{suite}.json")
            continue
        held = {k: v for k, v in r.items() if k in ("sessions", "errors", "sent", "applied", "healthz", "webhook_answer",
                                                      "rss", "drain_rate", "size")}
        lines.append(f"{suite:<12} " + json.dumps(held, ensure_ascii=False))
        if r.get("errors"):
            bad.append(f"{suite}: {r['errors']} errors")

    if fuzz is None or not fuzz.exists():
        missing.append("fuzz-report.txt")
    else:
        for line in fuzz.read_text(encoding="utf-8").splitlines()[1:]:
            m = re.match(r"(\S+)\s+(\S+)\s+(\d+) executions", line)
            if not m:
                continue
            lines.append(f"{'fuzz':<12} {m.group(1)}: {int(m.group(3)):,} executions, {m.group(2)}")
            if m.group(2).lower() != "ok":
                bad.append(f"fuzz {m.group(1)}: {m.group(2)}")

    print("=== obmen reliability and security report ===")
    for line in lines:
        print("  " + line)
    print(f"  {'totals':<12} lost {lost}, doubled {doubled}, half applied {half}, failures {len(bad)}")
    for b in bad:
        print(f"  FAILED       {b}")
    if missing:
        print(f"  missing      {', '.join(missing)} (that part did not run)")
        return 2
    return 0 if lost == doubled == half == 0 and not bad else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
