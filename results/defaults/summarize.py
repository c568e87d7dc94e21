"""Summarises the runs of results/defaults/run.sh: the README's commands
with the shipped defaults (no lambda flag), 3 seeds, against MIR (lambda 0,
the same settings) and the README's DisMIR figure.

    python results/defaults/summarize.py      # -> results/defaults/summary.md

Paired t-tests over seeds (scipy.stats.ttest_rel); MIR runs come from the
tables (results/DATA/runs/mir-seed*) or, for the named data sets' settings,
from this directory.
"""

from __future__ import annotations

import json
import os

import numpy as np
from scipy import stats

ROOT = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.dirname(ROOT)
SEEDS = (0, 1, 2)
# (row, DisMIR runs, MIR runs, README table's DisMIR runs or None)
ROWS = [
    ("beauty", "beauty/dismir", "../beauty/runs/mir", "../beauty/runs/dismir"),
    (
        "ml-1m-odd",
        "ml-1m-odd/dismir",
        "../ml-1m-odd/runs/mir",
        "../ml-1m-odd/runs/dismir",
    ),
    (
        "gowalla-lbsn",
        "gowalla-lbsn/dismir",
        "../gowalla-lbsn/runs/mir",
        "../gowalla-lbsn/runs/dismir",
    ),
    (
        "retailrocket settings (F 8) on beauty",
        "beauty/dismir-retailrocket",
        "beauty/mir-retailrocket",
        None,
    ),
    (
        "books settings (F 6, C 50) on video-games",
        "video-games/dismir-books",
        "video-games/mir-books",
        None,
    ),
]


def _runs(prefix: str) -> list[dict] | None:
    out = []
    for s in SEEDS:
        path = os.path.join(ROOT, f"{prefix}-seed{s}", "metrics.json")
        if not os.path.exists(path):
            return None
        with open(path) as f:
            out.append(json.load(f))
    return out


def _ms(values) -> str:
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"


def main() -> None:
    lines = [
        "| data set | DisMIR valid R@50 | DisMIR test R@50 | MIR test "
        "R@50 | DisMIR / MIR (p) | README's DisMIR test R@50 | this / "
        "README | interest cos | query~hist cos |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, dismir, mir, table in ROWS:
        d, m = _runs(dismir), _runs(mir)
        if d is None:
            continue
        test = [r["test"]["recall@50"] for r in d]
        valid = [r["valid"]["recall@50"] for r in d]
        cos = [r["collapse"]["test"]["interest_cosine"] for r in d]
        qh = [r["collapse"]["test"]["query_history_cosine"] for r in d]
        if m is not None:
            mt = [r["test"]["recall@50"] for r in m]
            p = stats.ttest_rel(test, mt).pvalue
            vs = f"{np.mean(test) / np.mean(mt):.3f} (p = {p:.3f})"
            mir_cell = _ms(mt)
        else:
            vs = mir_cell = "not run"
        t = _runs(table) if table else None
        if t is not None:
            tt = np.mean([r["test"]["recall@50"] for r in t])
            ref, ratio = f"{tt:.4f}", f"{np.mean(test) / tt:.3f}"
        else:
            ref = ratio = "n/a"
        lines.append(
            f"| {name} | {_ms(valid)} | {_ms(test)} | {mir_cell} | "
            f"{vs} | {ref} | {ratio} | {np.mean(cos):.3f} | "
            f"{np.mean(qh):.3f} |"
        )
    text = (
        "Shipped defaults (no lambda flag; dismir_tf/model_specs.py), "
        "3 seeds, test users; paired t-tests over seeds.\n\n" + "\n".join(lines) + "\n"
    )
    with open(os.path.join(ROOT, "summary.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
