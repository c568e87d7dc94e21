"""Side-by-side comparison tables (the paper's Tables 2, 3 and 5).

Three shapes (``MODES``):

* ``table2`` -- metrics as rows, models as columns, improvement of the
  proposed model over the best baseline (Table 2).
* ``ablation`` -- methods as rows, metrics as columns (Table 3).
* ``plugin`` -- each backbone with and without the item-partition task,
  side by side, with the improvement the task brings (Table 5).

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
from typing import Any

import numpy as np
from scipy import stats

from dismir_tf.config import ModelConfig, RunConfig, config_differences
from dismir_tf.errors import ConfigError
from dismir_tf.io_utils import atomic_write_text, read_json

MODES = ("table2", "ablation", "plugin")
# Models of each table when --models is not given (the paper's choices).
DEFAULT_MODELS = {
    "table2": ("dnn", "mir", "dismir"),
    "ablation": ("mir", "mir-rv", "mir-bf", "dismir-wo-dpi", "dismir"),
    "plugin": ("mind", "comirec-sa", "remi"),
}
METRIC_ORDER = ("recall@20", "hr@20", "ndcg@20", "recall@50", "hr@50", "ndcg@50")
# Collapse figures of the test users (metrics.json "collapse", written by
# training.run; dismir_tf/diagnostics.py) shown beside the metrics.
COLLAPSE_ORDER = ("interest_cosine", "query_history_cosine", "top_k_interests")
COLLAPSE_SHORT = {
    "interest_cosine": "interest cos",
    "query_history_cosine": "query~hist cos",
    "top_k_interests": "interests in top-50",
}
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


def run_grid(
    base: RunConfig,
    variants: Sequence[Variant],
    seeds: Sequence[int],
    out_dir: str,
    train: Callable[[RunConfig], dict],
    log: Callable[[str], None],
    model_base: Callable[[str], ModelConfig] | None = None,
    tables_only: bool = False,
) -> dict[str, list[dict]]:
    """Trains every (variant, seed); returns label -> list of metrics.

    Args:
      model_base: optional model name -> that model's base config (e.g.
        the CLI's per-model defaults, where baselines take lambda = 0);
        by default ``base.model`` with the name replaced.  The variant's
        overrides are applied on top.
      tables_only: read the finished runs and train nothing; a run whose
        config.json differs from the grid's is tabulated as it is, with a
        note naming the differences through ``log`` (a table of runs made
        on older code, whose defaults have changed since, is rendered
        again; each run's config.json stays its record).

    Raises:
      ConfigError: a finished run holds another configuration than the
        one asked for (unless ``tables_only``), or, with ``tables_only``, a
        run of the grid has not finished.
    """
    jobs = [(v, s) for v in variants for s in seeds]
    results: dict[str, list[dict]] = {v.label: [] for v in variants}
    for n, (variant, seed) in enumerate(jobs, 1):
        path = run_dir_of(out_dir, variant, seed)
        model_cfg = model_base(variant.model) if model_base is not None else base.model
        model = model_cfg.with_model(variant.model, **dict(variant.overrides))
        config = dataclasses.replace(
            base,
            model=model,
            train=dataclasses.replace(base.train, seed=seed, output_dir=path),
        )
        metrics_path = os.path.join(path, "metrics.json")
        config_path = os.path.join(path, "config.json")
        if tables_only and not os.path.exists(metrics_path):
            raise ConfigError(
                f"{path} has not finished (no metrics.json); --tables_only "
                "trains nothing: run the grid without it first"
            )
        if os.path.exists(metrics_path) and os.path.exists(config_path):
            # A finished run is reused only if it is the run asked for.
            from dismir_tf.models import resolve_config

            wanted = dataclasses.replace(
                config, model=resolve_config(config.model)
            ).to_dict()
            # Parsing fills fields added since the run with their defaults.
            # XLA compilation is a speed knob (the same maths, tested), not
            # part of a run's identity.
            found = RunConfig.from_dict(read_json(config_path)).to_dict()
            for d in (found, wanted):
                d["train"].pop("jit_compile", None)
            diff = config_differences(found, wanted)
            if diff and tables_only:
                log(
                    f"note: {path} was run with another configuration than "
                    f"the flags ask for ({', '.join(diff)}); tabulated as it is"
                )
            elif diff:
                raise ConfigError(
                    f"{path} holds a finished run with a different "
                    f"configuration ({', '.join(diff)}); use another "
                    "--out_dir (or --tables_only to tabulate it as it is)"
                )
        if os.path.exists(metrics_path):
            log(
                f"[{n}/{len(jobs)}] {variant.label} seed {seed}: done "
                f"before, read {metrics_path}"
            )
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
    # label -> collapse figure -> Cell, or None (runs from before the
    # diagnostics, or a figure the model does not have).
    collapse: dict[str, dict[str, Cell | None]] = dataclasses.field(
        default_factory=dict
    )

    def best(self, metric: str) -> str:
        return max(self.labels, key=lambda lab: self.cells[lab][metric].mean)

    def is_best(self, label: str, metric: str) -> bool:
        """True for every label whose mean ties the best (a model that
        scores exactly as another, e.g. w/o DPI under the max readout,
        is bold with it)."""
        return (
            self.cells[label][metric].mean == self.cells[self.best(metric)][metric].mean
        )

    def p_text(self, metric: str) -> str:
        """The p-value cell: 'identical' when the proposed model's values
        equal the best baseline's seed for seed (no test to run), else the
        paired t-test's p ('n/a' where there is no test to run: one seed,
        or the two models have different numbers of seeds)."""
        bb = self.best_baseline.get(metric)
        if bb is not None and self.proposed in self.cells:
            a = self.cells[self.proposed][metric].values
            if len(a) > 1 and a == self.cells[bb][metric].values:
                return "identical"
        p = self.p_value.get(metric, float("nan"))
        return "n/a" if np.isnan(p) else f"{p:.3g}"


def summarize(
    results: dict[str, list[dict]],
    proposed: str | None,
    baselines: Sequence[str] | None = None,
    split: str = "test",
) -> Table:
    """Mean +- std per metric, best baseline, improvement and t-test."""
    labels = list(results)
    cells: dict[str, dict[str, Cell]] = {}
    for lab in labels:
        cells[lab] = {}
        for m in METRIC_ORDER:
            vals = [float(r[split][m]) for r in results[lab]]
            cells[lab][m] = Cell(
                float(np.mean(vals)),
                float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
                vals,
            )
    base_labels = [
        lab
        for lab in labels
        if lab != proposed and (baselines is None or lab in baselines)
    ]
    best_baseline, improvement, p_value = {}, {}, {}
    if proposed in cells and base_labels:
        for m in METRIC_ORDER:
            bb = max(base_labels, key=lambda lab: cells[lab][m].mean)
            best_baseline[m] = bb
            ref = cells[bb][m].mean
            improvement[m] = (
                (cells[proposed][m].mean - ref) / ref if ref > 0 else float("nan")
            )
            a, b = cells[proposed][m].values, cells[bb][m].values
            if (
                len(a) > 1
                and len(a) == len(b)
                and np.any(np.asarray(a) != np.asarray(b))
            ):
                p_value[m] = float(stats.ttest_rel(a, b).pvalue)
            else:
                p_value[m] = float("nan")
    collapse = {
        lab: {k: _collapse_cell(results[lab], split, k) for k in COLLAPSE_ORDER}
        for lab in labels
    }
    return Table(
        labels,
        cells,
        proposed,
        best_baseline,
        improvement,
        p_value,
        max(len(r) for r in results.values()),
        collapse,
    )


def _collapse_cell(runs: list[dict], split: str, key: str) -> Cell | None:
    found = [((r.get("collapse") or {}).get(split) or {}).get(key) for r in runs]
    if not found or any(v is None for v in found):
        return None
    vals = [float(v) for v in found if v is not None]
    return Cell(
        float(np.mean(vals)),
        float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
        vals,
    )


def _fmt(cell: Cell, digits: int = 4) -> str:
    """'mean ± sample std', or the mean alone for one seed (no spread)."""
    if len(cell.values) < 2:
        return f"{cell.mean:.{digits}f}"
    return f"{cell.mean:.{digits}f} ± {cell.std:.{digits}f}"


def _fmt_collapse(cell: Cell | None) -> str:
    return "n/a" if cell is None else _fmt(cell, 3)


def _spread_note(seeds: int) -> str:
    """The footnote's first sentence."""
    if seeds == 1:
        return "\nOne seed, test users. "
    return f"\nMean ± sample std over {seeds} seeds, test users. "


def _collapse_rows(table: Table, out: io.StringIO, extra: int) -> None:
    """Rows of collapse figures under a metrics-as-rows table."""
    if not any(
        c is not None
        for lab in table.labels
        for c in table.collapse.get(lab, {}).values()
    ):
        return
    for k in COLLAPSE_ORDER:
        row = (
            [COLLAPSE_SHORT[k]]
            + [
                _fmt_collapse(table.collapse.get(lab, {}).get(k))
                for lab in table.labels
            ]
            + [""] * extra
        )
        out.write("| " + " | ".join(row) + " |\n")


COLLAPSE_NOTE = (
    "Collapse rows (where the runs have them; dismir_tf/diagnostics.py): "
    "mean pairwise cosine of a user's interests, cosine of the retrieval "
    "query (each merged query) with the history mean (1: mean pooling), "
    "interests contributing to the merged top-50. "
)


def _markdown_head(title: str, head: list[str]) -> io.StringIO:
    """A buffer holding the optional title and a table's header rows."""
    out = io.StringIO()
    if title:
        out.write(f"{title}\n\n")
    out.write("| " + " | ".join(head) + " |\n")
    out.write("|" + "---|" * len(head) + "\n")
    return out


def to_markdown(table: Table, title: str = "") -> str:
    """Metrics as rows, models as columns (the shape of the paper's Table 2)."""
    head = ["metric"] + table.labels
    # The improvement columns need a baseline: a table of the proposed
    # model alone (e.g. one screening variant) has none.
    compared = bool(table.proposed and table.best_baseline)
    if compared:
        head += ["improve.", "p (paired t)"]
    out = _markdown_head(title, head)
    for m in METRIC_ORDER:
        row = [short_name(m)]
        for lab in table.labels:
            text = _fmt(table.cells[lab][m])
            if table.is_best(lab, m):
                text = f"**{text}**"
            if table.best_baseline.get(m) == lab:
                text = f"<u>{text}</u>"
            row.append(text)
        if compared:
            imp = table.improvement.get(m, float("nan"))
            row += [f"{100 * imp:+.2f}%", table.p_text(m)]
        out.write("| " + " | ".join(row) + " |\n")
    _collapse_rows(table, out, 2 if compared else 0)
    out.write(
        _spread_note(table.seeds)
        + f"{COLLAPSE_NOTE}Bold: best"
        + (
            "; underlined: best baseline; improve.: proposed "
            f"({table.proposed}) over the best baseline.\n"
            if compared
            else ".\n"
        )
    )
    return out.getvalue()


def to_csv(table: Table) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(
        [
            "model",
            "metric",
            "mean",
            "std",
            "n",
            "values",
            "best_baseline",
            "improvement",
            "p_value",
        ]
    )
    for lab in table.labels:
        for m in METRIC_ORDER:
            c = table.cells[lab][m]
            is_prop = lab == table.proposed
            w.writerow(
                [
                    lab,
                    m,
                    f"{c.mean:.6f}",
                    f"{c.std:.6f}",
                    len(c.values),
                    " ".join(f"{v:.6f}" for v in c.values),
                    table.best_baseline.get(m, "") if is_prop else "",
                    f"{table.improvement.get(m, float('nan')):.6f}" if is_prop else "",
                    f"{table.p_value.get(m, float('nan')):.6g}" if is_prop else "",
                ]
            )
    return out.getvalue()


def write_table(
    table: Table,
    out_dir: str,
    name: str,
    title: str = "",
    markdown: Callable[[Table, str], str] | None = None,
) -> tuple[str, str]:
    """Writes OUT_DIR/NAME.md (``markdown``, default :func:`to_markdown`)
    and OUT_DIR/NAME.csv."""
    return write_text(
        out_dir, name, (markdown or to_markdown)(table, title), to_csv(table)
    )


def write_text(
    out_dir: str, name: str, markdown: str, csv_text: str
) -> tuple[str, str]:
    md = os.path.join(out_dir, f"{name}.md")
    cs = os.path.join(out_dir, f"{name}.csv")
    atomic_write_text(md, markdown)
    atomic_write_text(cs, csv_text)
    return md, cs


# ------------------------------------------------------- Table 3: ablation
def to_markdown_ablation(table: Table, title: str = "") -> str:
    """Methods as rows, metrics as columns (the shape of Table 3).

    Bold: the best method per metric; underlined: the best of the other
    methods (the best variant); the last two rows give the improvement of
    the proposed method over it and the paired t-test p-value.
    """
    with_collapse = any(
        c is not None
        for lab in table.labels
        for c in table.collapse.get(lab, {}).values()
    )
    collapse_keys = COLLAPSE_ORDER if with_collapse else ()
    head = (
        ["method"]
        + [short_name(m) for m in METRIC_ORDER]
        + [COLLAPSE_SHORT[k] for k in collapse_keys]
    )
    out = _markdown_head(title, head)
    for lab in table.labels:
        row = [lab]
        for m in METRIC_ORDER:
            text = _fmt(table.cells[lab][m])
            if table.is_best(lab, m):
                text = f"**{text}**"
            if table.best_baseline.get(m) == lab:
                text = f"<u>{text}</u>"
            row.append(text)
        row += [
            _fmt_collapse(table.collapse.get(lab, {}).get(k)) for k in collapse_keys
        ]
        out.write("| " + " | ".join(row) + " |\n")
    pad = [""] * len(collapse_keys)
    if table.proposed and table.improvement:
        out.write(
            "| improve. | "
            + " | ".join(
                [f"{100 * table.improvement[m]:+.2f}%" for m in METRIC_ORDER] + pad
            )
            + " |\n"
        )
        out.write(
            "| p (paired t) | "
            + " | ".join([table.p_text(m) for m in METRIC_ORDER] + pad)
            + " |\n"
        )
    out.write(
        _spread_note(table.seeds)
        + (COLLAPSE_NOTE if with_collapse else "")
        + "Bold: best; underlined: best of the other methods"
        + (f"; improve.: {table.proposed} over it.\n" if table.proposed else ".\n")
    )
    return out.getvalue()


# --------------------------------------------------------- Table 5: plugin
PLUGIN_SUFFIX = " + partition"


def plugin_variants(backbones: Sequence[str], partition_weight: float) -> list[Variant]:
    """Each backbone without (lambda = 0) and with the partition task.

    A backbone whose default is lambda = 0 (every baseline) runs "without"
    as it is, so that run is its Table 2 run, in the same directory, and is
    trained once for both tables; a backbone that takes the data set's
    lambda by default (DisMIR) gets an explicit ``partition_weight 0``.
    """
    from dismir_tf.model_specs import get

    if partition_weight <= 0:
        raise ValueError("the plugin table needs a partition weight > 0")
    variants = []
    for b in backbones:
        off = (("partition_weight", 0.0),) if get(b).partition == "default" else ()
        variants.append(Variant(b, b, off))
        variants.append(
            Variant(b + PLUGIN_SUFFIX, b, (("partition_weight", partition_weight),))
        )
    return variants


@dataclasses.dataclass
class PluginTable:
    """Per backbone, the two-column summary (with vs without)."""

    backbones: list[str]
    tables: dict[str, Table]

    @property
    def seeds(self) -> int:
        return max(t.seeds for t in self.tables.values())


def summarize_plugin(
    results: dict[str, list[dict]], backbones: Sequence[str], split: str = "test"
) -> PluginTable:
    """For each backbone: with the task (proposed) vs without (baseline)."""
    tables = {}
    for b in backbones:
        with_task = b + PLUGIN_SUFFIX
        tables[b] = summarize(
            {with_task: results[with_task], b: results[b]},
            proposed=with_task,
            split=split,
        )
    return PluginTable(list(backbones), tables)


def plugin_to_markdown(table: PluginTable, title: str = "") -> str:
    """Metrics as rows; per backbone, with / without the partition task,
    the improvement it brings and the paired t-test (shape of Table 5).
    Bold: the better of each pair."""
    head = ["metric"]
    for b in table.backbones:
        head += [b + PLUGIN_SUFFIX, b, "improve.", "p (paired t)"]
    out = _markdown_head(title, head)
    for m in METRIC_ORDER:
        row = [short_name(m)]
        for b in table.backbones:
            t = table.tables[b]
            for lab in (b + PLUGIN_SUFFIX, b):
                text = _fmt(t.cells[lab][m])
                row.append(f"**{text}**" if t.is_best(lab, m) else text)
            row += [f"{100 * t.improvement[m]:+.2f}%", t.p_text(m)]
        out.write("| " + " | ".join(row) + " |\n")
    out.write(
        _spread_note(table.seeds)
        + f"'{PLUGIN_SUFFIX.strip()}': the backbone trained with the "
        "item-partition task (lambda > 0). Bold: the better of each "
        "pair; improve.: with over without.\n"
    )
    return out.getvalue()


def plugin_to_csv(table: PluginTable) -> str:
    parts = []
    for n, b in enumerate(table.backbones):
        text = to_csv(table.tables[b])
        lines = text.splitlines(keepends=True)
        parts.extend(lines if n == 0 else lines[1:])
    return "".join(parts)


# ------------------------------------------------ capsule variants (issue 13)
def variant_rows(
    root: str,
    models: Sequence[str] = ("mir", "mir-rv", "mir-bf", "dismir", "dismir-wo-dpi"),
) -> list[dict]:
    """One row per (data set, variant, model) of a capsule study.

    ``root`` holds DATA/VARIANT/runs/MODEL-seedS/ directories, as
    results/capsules/screen.sh writes them.  Each row: n seeds, the mean
    best valid Recall@50 (what selection may look at), test Recall@50 and
    HR@50 (mean, std, values), and the test collapse figures.  A run
    without metrics.json (unfinished) is left out.
    """
    rows = []
    for data in sorted(os.listdir(root)):
        ddir = os.path.join(root, data)
        if not os.path.isdir(ddir):
            continue
        for variant in sorted(os.listdir(ddir)):
            runs_dir = os.path.join(ddir, variant, "runs")
            if not os.path.isdir(runs_dir):
                continue
            for model in models:
                found = []
                for name in sorted(os.listdir(runs_dir)):
                    head, _, seed = name.rpartition("-seed")
                    path = os.path.join(runs_dir, name, "metrics.json")
                    if head == model and os.path.exists(path):
                        found.append((int(seed), read_json(path)))
                if not found:
                    continue
                found.sort()
                row: dict[str, Any] = {
                    "data": data,
                    "variant": variant,
                    "model": model,
                    "seeds": [s for s, _ in found],
                }
                for split, key in (
                    ("valid", "recall@50"),
                    ("test", "recall@50"),
                    ("test", "hr@50"),
                ):
                    vals = [float(m[split][key]) for _, m in found]
                    row[f"{split}_{key}"] = vals
                for k in COLLAPSE_ORDER:
                    cell = _collapse_cell([m for _, m in found], "test", k)
                    row[k] = None if cell is None else cell.values
                rows.append(row)
    return rows


def variants_to_markdown(rows: list[dict], title: str = "") -> str:
    """The capsule study as one table per data set, with DisMIR / MIR."""
    out = io.StringIO()
    if title:
        out.write(f"{title}\n\n")

    def mean(v):
        return float(np.mean(v)) if v else float("nan")

    def fmt(v, digits=4):
        if v is None:
            return "n/a"
        if len(v) == 1:
            return f"{v[0]:.{digits}f}"
        return f"{np.mean(v):.{digits}f} ± {np.std(v, ddof=1):.{digits}f}"

    by = {(r["data"], r["variant"], r["model"]): r for r in rows}
    for data in sorted({r["data"] for r in rows}):
        out.write(
            f"**{data}**\n\n| variant | model | seeds | valid R@50 | "
            "test R@50 | test HR@50 | interest cos | query~hist cos "
            "| interests in top-50 | test R@50 / MIR (p) |\n"
        )
        out.write("|" + "---|" * 10 + "\n")
        for r in [r for r in rows if r["data"] == data]:
            mir = by.get((data, r["variant"], "mir"))
            ratio = ""
            if r["model"] != "mir" and mir is not None:
                a, b = r["test_recall@50"], mir["test_recall@50"]
                ratio = f"{mean(a) / mean(b):.3f}"
                if len(a) > 1 and len(a) == len(b) and r["seeds"] == mir["seeds"]:
                    ratio += f" (p {stats.ttest_rel(a, b).pvalue:.3g})"
            out.write(
                f"| {r['variant']} | {r['model']} | {len(r['seeds'])} | "
                f"{fmt(r['valid_recall@50'])} | {fmt(r['test_recall@50'])} | "
                f"{fmt(r['test_hr@50'])} | {fmt(r['interest_cosine'], 3)} | "
                f"{fmt(r['query_history_cosine'], 3)} | "
                f"{fmt(r['top_k_interests'], 2)} | {ratio} |\n"
            )
        out.write("\n")
    out.write(
        "valid R@50: the best validation Recall@50 of each run (the "
        "selection figure); test figures: the best-on-valid "
        "checkpoint; mean ± sample std over the seeds listed. "
        "Collapse columns: test users (dismir_tf/diagnostics.py). "
        "p: paired t-test over seeds.\n"
    )
    return out.getvalue()
