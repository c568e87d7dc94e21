"""Side-by-side comparison tables (the paper's Tables 2, 3 and 5).

:func:`run_grid` trains every (model, seed) into its own run directory; a
finished run is found there and not trained again, so an interrupted
comparison restarts where it stopped.  :func:`summarize` turns the runs'
metrics.json files into mean +- std per metric, marks the best model (bold)
and the best baseline (underlined), and gives the relative improvement of
the proposed model over the best baseline with a paired t-test over seeds.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

from dismir_tf.config import RunConfig
from dismir_tf.io_utils import atomic_write_text, read_json

METRIC_ORDER = ("recall@20", "hr@20", "ndcg@20", "recall@50", "hr@50",
                "ndcg@50")
SHORT = {"recall": "R", "hr": "HR", "ndcg": "ND"}


def short_name(metric: str) -> str:
    name, k = metric.split("@")
    return f"{SHORT[name]}@{k}"


@dataclasses.dataclass(frozen=True)
class Variant:
    """One column of a table: a label and how it changes the base config."""

    label: str
    model: str
    overrides: tuple[tuple[str, object], ...] = ()

    @property
    def slug(self) -> str:
        extra = "".join(f"-{k}{v}" for k, v in self.overrides)
        return f"{self.model}{extra}"


def run_dir_of(out_dir: str, variant: Variant, seed: int) -> str:
    return os.path.join(out_dir, "runs", f"{variant.slug}-seed{seed}")


def run_grid(base: RunConfig, variants: Sequence[Variant],
             seeds: Sequence[int], out_dir: str,
             train: Callable[[RunConfig], dict],
             log: Callable[[str], None]) -> dict[str, list[dict]]:
    """Trains every (variant, seed); returns label -> list of metrics."""
    jobs = [(v, s) for v in variants for s in seeds]
    results: dict[str, list[dict]] = {v.label: [] for v in variants}
    for n, (variant, seed) in enumerate(jobs, 1):
        path = run_dir_of(out_dir, variant, seed)
        model = dataclasses.replace(base.model, name=variant.model,
                                    **dict(variant.overrides))
        config = dataclasses.replace(
            base, model=model,
            train=dataclasses.replace(base.train, seed=seed,
                                      output_dir=path))
        metrics_path = os.path.join(path, "metrics.json")
        if os.path.exists(metrics_path):
            log(f"[{n}/{len(jobs)}] {variant.label} seed {seed}: done "
                f"before, read {metrics_path}")
            metrics = read_json(metrics_path)
        else:
            log(f"[{n}/{len(jobs)}] {variant.label} seed {seed} -> {path}")
            metrics = train(config)
        results[variant.label].append(metrics)
    return results


@dataclasses.dataclass
class Cell:
    mean: float
    std: float
    values: list[float]


@dataclasses.dataclass
class Table:
    """Summary of a grid: label -> metric -> Cell, plus the comparison."""

    labels: list[str]
    cells: dict[str, dict[str, Cell]]
    proposed: str | None
    best_baseline: dict[str, str]
    improvement: dict[str, float]
    p_value: dict[str, float]
    seeds: int

    def best(self, metric: str) -> str:
        return max(self.labels, key=lambda lab: self.cells[lab][metric].mean)


def summarize(results: dict[str, list[dict]], proposed: str | None,
              baselines: Sequence[str] | None = None,
              split: str = "test") -> Table:
    """Mean +- std per metric, best baseline, improvement and t-test."""
    labels = list(results)
    cells = {}
    for lab in labels:
        cells[lab] = {}
        for m in METRIC_ORDER:
            vals = [float(r[split][m]) for r in results[lab]]
            cells[lab][m] = Cell(float(np.mean(vals)),
                                 float(np.std(vals, ddof=1))
                                 if len(vals) > 1 else 0.0, vals)
    base_labels = [lab for lab in labels if lab != proposed and (
        baselines is None or lab in baselines)]
    best_baseline, improvement, p_value = {}, {}, {}
    if proposed in cells and base_labels:
        for m in METRIC_ORDER:
            bb = max(base_labels, key=lambda lab: cells[lab][m].mean)
            best_baseline[m] = bb
            ref = cells[bb][m].mean
            improvement[m] = ((cells[proposed][m].mean - ref) / ref
                              if ref > 0 else float("nan"))
            a, b = cells[proposed][m].values, cells[bb][m].values
            if len(a) > 1 and len(a) == len(b) and np.any(
                    np.asarray(a) != np.asarray(b)):
                p_value[m] = float(stats.ttest_rel(a, b).pvalue)
            else:
                p_value[m] = float("nan")
    return Table(labels, cells, proposed, best_baseline, improvement,
                 p_value, max(len(r) for r in results.values()))


def _fmt(cell: Cell) -> str:
    return f"{cell.mean:.4f} ± {cell.std:.4f}"


def to_markdown(table: Table, title: str = "") -> str:
    """Metrics as rows, models as columns (the shape of the paper's Table 2)."""
    head = ["metric"] + table.labels
    if table.proposed:
        head += ["improve.", "p (paired t)"]
    out = io.StringIO()
    if title:
        out.write(f"{title}\n\n")
    out.write("| " + " | ".join(head) + " |\n")
    out.write("|" + "---|" * len(head) + "\n")
    for m in METRIC_ORDER:
        row = [short_name(m)]
        best = table.best(m)
        for lab in table.labels:
            text = _fmt(table.cells[lab][m])
            if lab == best:
                text = f"**{text}**"
            if table.best_baseline.get(m) == lab:
                text = f"<u>{text}</u>"
            row.append(text)
        if table.proposed:
            imp = table.improvement.get(m, float("nan"))
            p = table.p_value.get(m, float("nan"))
            row += [f"{100 * imp:+.2f}%", f"{p:.3g}"]
        out.write("| " + " | ".join(row) + " |\n")
    out.write(f"\nMean ± sample std over {table.seeds} seed(s), test users. "
              "Bold: best; underlined: best baseline; improve.: proposed "
              f"({table.proposed}) over the best baseline.\n"
              if table.proposed else
              f"\nMean ± sample std over {table.seeds} seed(s), test users."
              " Bold: best.\n")
    return out.getvalue()


def to_csv(table: Table) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["model", "metric", "mean", "std", "n", "values",
                "best_baseline", "improvement", "p_value"])
    for lab in table.labels:
        for m in METRIC_ORDER:
            c = table.cells[lab][m]
            is_prop = lab == table.proposed
            w.writerow([lab, m, f"{c.mean:.6f}", f"{c.std:.6f}",
                        len(c.values), " ".join(f"{v:.6f}" for v in c.values),
                        table.best_baseline.get(m, "") if is_prop else "",
                        f"{table.improvement.get(m, float('nan')):.6f}"
                        if is_prop else "",
                        f"{table.p_value.get(m, float('nan')):.6g}"
                        if is_prop else ""])
    return out.getvalue()


def write_table(table: Table, out_dir: str, name: str,
                title: str = "") -> tuple[str, str]:
    md = os.path.join(out_dir, f"{name}.md")
    cs = os.path.join(out_dir, f"{name}.csv")
    atomic_write_text(md, to_markdown(table, title))
    atomic_write_text(cs, to_csv(table))
    return md, cs
