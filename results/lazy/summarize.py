"""Lazy against dense Adam for the embedding tables: DisMIR with the shipped
defaults, 3 seeds each, the README commands (results/defaults/run.sh) with
``--embedding_update lazy`` against the same commands' dense runs (the
tables' runs, results/DATA/runs/dismir-seed*, and the reruns of
results/defaults/DATA/dismir-seed*).  Paired t-tests over seeds.

    python results/lazy/summarize.py     # -> results/lazy/summary.md
"""

from __future__ import annotations

import json
import os

import numpy as np
from scipy import stats

ROOT = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.dirname(ROOT)


def _get(path_prefix):
    out = []
    for s in (0, 1, 2):
        with open(f"{path_prefix}-seed{s}/metrics.json") as f:
            out.append(json.load(f))
    return out


def main():
    lines = [
        "| data set | split | lazy R@50 | dense R@50 (tables) | p | dense "
        "R@50 (rerun) | p | lazy interest cos | dense interest cos |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for d in ("beauty", "ml-1m-odd", "gowalla-lbsn"):
        lazy = _get(os.path.join(ROOT, d, "dismir-lazy"))
        table = _get(os.path.join(RESULTS, d, "runs", "dismir"))
        rerun = _get(os.path.join(RESULTS, "defaults", d, "dismir"))
        for split in ("valid", "test"):
            a = [r[split]["recall@50"] for r in lazy]
            b = [r[split]["recall@50"] for r in table]
            c = [r[split]["recall@50"] for r in rerun]

            def cosine(runs):
                return np.mean([r["collapse"]["test"]["interest_cosine"] for r in runs])

            cos = (
                f"{cosine(lazy):.3f} | {cosine(table):.3f}"
                if split == "test"
                else " | "
            )
            lines.append(
                f"| {d} | {split} | {np.mean(a):.4f} ± {np.std(a, ddof=1):.4f}"
                f" | {np.mean(b):.4f} ± {np.std(b, ddof=1):.4f} | "
                f"{stats.ttest_rel(a, b).pvalue:.3f} | {np.mean(c):.4f} ± "
                f"{np.std(c, ddof=1):.4f} | {stats.ttest_rel(a, c).pvalue:.3f}"
                f" | {cos} |"
            )
    text = (
        "DisMIR, shipped defaults, 3 seeds; lazy against dense Adam "
        "(paired t over seeds).\n\n" + "\n".join(lines) + "\n"
    )
    with open(os.path.join(ROOT, "summary.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
