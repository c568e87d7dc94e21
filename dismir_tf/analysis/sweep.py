"""Hyper-parameter sweep (the paper's section 5.5 and Figure 4).

One parameter at a time around a base configuration: lambda
(``partition_weight``), F (``num_interests``), N_o
(``partition_negatives``) and K = d (``embedding_dim``; the paper's number
of partition groups, since e_i = w_i).  Every point is a
:class:`dismir_tf.compare.Variant` trained by :func:`compare.run_grid`, so
a sweep resumes like a comparison: finished runs (a metrics.json in
OUT_DIR/runs/<slug>-seed<s>/) are read, not retrained.  A point equal to
the base configuration has no override, so the base run is trained once
and shared by the four curves.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from dismir_tf import compare
from dismir_tf.config import RunConfig
from dismir_tf.io_utils import atomic_write_json, atomic_write_text, read_json

# Display name -> ModelConfig field, in the order of the figure's panels.
PARAMS = {
    "lambda": "partition_weight",
    "F": "num_interests",
    "N_o": "partition_negatives",
    "K": "embedding_dim",
}
CURVE_METRICS = ("recall@20", "ndcg@20")
TABLE_METRICS = ("recall@20", "ndcg@20", "recall@50", "ndcg@50")


@dataclasses.dataclass(frozen=True)
class SweepPoint:
    param: str  # display name, a key of PARAMS
    value: object
    variant: compare.Variant


def sweep_points(base: RunConfig, grid: Mapping[str, Sequence]) -> list[SweepPoint]:
    """The sweep's points; a value equal to the base one has no override."""
    points = []
    for param, values in grid.items():
        if param not in PARAMS:
            raise ValueError(
                f"unknown sweep parameter {param!r}; expected "
                f"one of {', '.join(PARAMS)}"
            )
        field = PARAMS[param]
        for v in values:
            same = v == getattr(base.model, field)
            overrides = () if same else ((field, v),)
            variant = compare.Variant(
                label="", model=base.model.name, overrides=overrides
            )
            variant = dataclasses.replace(variant, label=variant.slug)
            points.append(SweepPoint(param, v, variant))
    return points


def unique_variants(points: Sequence[SweepPoint]) -> list[compare.Variant]:
    seen: dict[str, compare.Variant] = {}
    for p in points:
        seen.setdefault(p.variant.slug, p.variant)
    return list(seen.values())


def _finished(
    out_dir: str, variants: Sequence[compare.Variant], seeds: Sequence[int]
) -> dict[str, list[dict]]:
    """label -> metrics of the finished runs only (no training)."""
    results: dict[str, list[dict]] = {}
    for v in variants:
        for s in seeds:
            path = os.path.join(compare.run_dir_of(out_dir, v, s), "metrics.json")
            if os.path.exists(path):
                results.setdefault(v.label, []).append(read_json(path))
    return results


@dataclasses.dataclass
class SweepResult:
    points: list[SweepPoint]
    results: dict[str, list[dict]]  # variant label -> metrics per seed
    base: RunConfig

    def mean(self, label: str, split: str, metric: str) -> float:
        runs = self.results.get(label, [])
        if not runs:
            return math.nan
        return float(np.mean([r[split][metric] for r in runs]))

    def curves(self, split: str = "test", metrics: Sequence[str] = CURVE_METRICS):
        from dismir_tf.analysis.plots import SweepCurve

        out = []
        for param in dict.fromkeys(p.param for p in self.points):
            pts = [p for p in self.points if p.param == param]
            out.append(
                SweepCurve(
                    name=param,
                    values=[p.value for p in pts],
                    metrics={
                        m: [self.mean(p.variant.label, split, m) for p in pts]
                        for m in metrics
                    },
                    base=getattr(self.base.model, PARAMS[param]),
                )
            )
        return out

    def to_dict(self, split: str = "test") -> dict:
        return {
            "base": {p: getattr(self.base.model, f) for p, f in PARAMS.items()},
            "split": split,
            "points": [
                {
                    "param": p.param,
                    "value": p.value,
                    "run": p.variant.slug,
                    "seeds": len(self.results.get(p.variant.label, [])),
                    split: {
                        m: self.mean(p.variant.label, split, m) for m in TABLE_METRICS
                    },
                }
                for p in self.points
            ],
        }

    def to_markdown(self, title: str = "", split: str = "test") -> str:
        out = io.StringIO()
        if title:
            out.write(f"{title}\n\n")
        head = ["parameter", "value", "run", "seeds"] + [
            compare.short_name(m) for m in TABLE_METRICS
        ]
        out.write("| " + " | ".join(head) + " |\n")
        out.write("|" + "---|" * len(head) + "\n")
        for p in self.points:
            n = len(self.results.get(p.variant.label, []))
            vals = [self.mean(p.variant.label, split, m) for m in TABLE_METRICS]
            out.write(
                "| "
                + " | ".join(
                    [
                        p.param,
                        f"{p.value:g}" if isinstance(p.value, float) else str(p.value),
                        p.variant.slug,
                        str(n),
                    ]
                    + ["n/a" if math.isnan(v) else f"{v:.4f}" for v in vals]
                )
                + " |\n"
            )
        base = ", ".join(
            f"{p} = {getattr(self.base.model, f):g}" for p, f in PARAMS.items()
        )
        out.write(
            f"\n{split} users, mean over seeds; one parameter varies "
            f"at a time, the others stay at the base ({base}).\n"
        )
        return out.getvalue()


def run_sweep(
    base: RunConfig,
    grid: Mapping[str, Sequence],
    seeds: Sequence[int],
    out_dir: str,
    train: Callable[[RunConfig], dict],
    log: Callable[[str], None],
    plot_only: bool = False,
    model_base=None,
) -> SweepResult:
    """Trains (or, with ``plot_only``, only reads) every point of the grid."""
    points = sweep_points(base, grid)
    variants = unique_variants(points)
    log(
        f"sweep: {len(points)} points, {len(variants)} distinct runs x "
        f"{len(seeds)} seed(s) in {out_dir}/runs"
    )
    if plot_only:
        results = _finished(out_dir, variants, seeds)
    else:
        results = compare.run_grid(
            base, variants, seeds, out_dir, train, log, model_base=model_base
        )
    return SweepResult(points, results, base)


def write_outputs(
    result: SweepResult, out_dir: str, png: str, title: str, split: str = "test"
) -> list[str]:
    """OUT_DIR/sweep.json, OUT_DIR/sweep.md and the figure."""
    from dismir_tf.analysis import plots

    js = os.path.join(out_dir, "sweep.json")
    md = os.path.join(out_dir, "sweep.md")
    atomic_write_json(js, result.to_dict(split))
    atomic_write_text(md, result.to_markdown(title, split))
    plots.plot_sweep(result.curves(split), png, title, ylabel=split)
    return [js, md, png]
