"""The fair tables from results/fair/DATA: each model's tuning (trials,
pruned, best parameters, best valid Recall@50) and its tuned configuration's
3 seeds (valid and test), DisMIR against the best of the others (paired t);
the ablation (DisMIR's tuned configuration as MIR, MIR-RV, MIR-BF and w/o
DPI) and the plugin table (each tuned backbone with and without the
partition task at DisMIR's tuned lambda), from the runs that have finished.

    python results/fair/summarize.py DATA
        # writes results/fair/DATA/table2.md (and ablation.md, plugin.md),
        # and each study's trials.csv / .json again from its journal
    python results/fair/summarize.py --best_flags DATA MODEL
        # train.py flags of the best trial
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
from scipy import stats

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from dismir_tf.config import RunConfig  # noqa: E402
from dismir_tf.tuning import (  # noqa: E402
    JOURNAL,
    TrialRecord,
    best_record,
    flags_of,
    params_of,
    read_records,
    study_records,
    write_records,
)

MODELS = (
    "dnn",
    "gru4rec",
    "sasrec",
    "mind",
    "comirec-dr",
    "comirec-sa",
    "re4",
    "umi",
    "pimirec",
    "remi",
    "dismir",
)
METRIC = "recall@50"


def trials(data: str, model: str) -> list[TrialRecord]:
    """The study's record (trials.json, as dismir_tf.tuning wrote it)."""
    return read_records(os.path.join(HERE, data, model))


def seed_runs(data: str, model: str) -> list[dict] | None:
    """The 3 seeds' metrics of runs/MODEL-seedS, or None until all exist."""
    out = []
    for s in range(3):
        path = os.path.join(HERE, data, "runs", f"{model}-seed{s}", "metrics.json")
        if not os.path.exists(path):
            return None
        with open(path) as f:
            out.append(json.load(f))
    return out


def check_seeds(data: str, model: str, best: TrialRecord) -> None:
    """Refuses seed runs trained with other parameters than the best trial's
    (a study that gained trials and changed its best after its seeds ran):
    floats agree to the 6 significant digits the seeds were given.

    Raises:
      SystemExit: the run, the parameter, both values and what to do.
    """
    for s in range(3):
        run = os.path.join(HERE, data, "runs", f"{model}-seed{s}")
        with open(os.path.join(run, "config.json")) as f:
            config = RunConfig.from_dict(json.load(f))
        held = params_of(config, best.params)
        for k, want in best.params.items():
            got = held[k]
            same = (
                bool(np.isclose(got, want, rtol=1e-5, atol=0))
                if isinstance(want, float)
                else got == want
            )
            if not same:
                raise SystemExit(
                    f"{os.path.relpath(run)} was trained with {k} {got}, the "
                    f"best trial of its study has {want}: remove the seeds and "
                    f"run bash results/fair/run.sh seeds {data} {model}"
                )


def _ms(values) -> str:
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"


def table(data: str) -> str:
    lines = [
        f"# {data}: every model tuned alike (valid users only)",
        "",
        "| model | trials (pruned) | best trial's parameters | best "
        "trial valid R@50 | tuned, 3 seeds: valid R@50 | test R@50 |",
        "|---|---|---|---|---|---|",
    ]
    tests = {}
    for m in MODELS:
        rows = trials(data, m)
        if not rows:
            continue
        best = best_record(rows)
        runs = seed_runs(data, m)
        pruned = sum(r.state == "PRUNED" for r in rows)
        finished = sum(r.state in ("COMPLETE", "PRUNED") for r in rows)
        params = (
            ", ".join(
                f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                for k, v in sorted(best.params.items())
            )
            if best
            else "-"
        )
        cells = ["-", "-"]
        if runs and best:
            check_seeds(data, m, best)
            tests[m] = [r["test"][METRIC] for r in runs]
            cells = [_ms([r["valid"][METRIC] for r in runs]), _ms(tests[m])]
        lines.append(
            f"| {m} | {finished} ({pruned}) | {params} | "
            f"{best.value:.4f} | "
            f"{cells[0]} | {cells[1]} |"
            if best
            else f"| {m} | {finished} ({pruned}) | - | - | - | - |"
        )
    if "dismir" in tests and len(tests) > 1:
        others = {m: v for m, v in tests.items() if m != "dismir"}
        best_other = max(others, key=lambda m: np.mean(others[m]))
        ratio = np.mean(tests["dismir"]) / np.mean(others[best_other])
        p = stats.ttest_rel(tests["dismir"], others[best_other]).pvalue
        lines += [
            "",
            f"DisMIR against the best other tuned model "
            f"({best_other}) on test Recall@50: {ratio:.3f}x "
            f"(paired t over seeds, p = {p:.3f}).",
        ]
    return "\n".join(lines) + "\n"


ABLATION = ("mir", "mir-rv", "mir-bf", "dismir-wo-dpi", "dismir")
PLUGIN = ("mind", "comirec-dr", "comirec-sa", "remi")


def _test(runs: list[dict], metric: str = METRIC) -> list[float]:
    return [r["test"][metric] for r in runs]


def _paired(a: list[float], b: list[float]) -> str:
    if list(a) == list(b):
        # Seed for seed the same runs (w/o DPI under the max readout, where
        # the attention changes no score): no test.
        return "1.000x, identical per seed"
    return f"{np.mean(a) / np.mean(b):.3f}x, p = {stats.ttest_rel(a, b).pvalue:.3f}"


def ablation(data: str) -> str | None:
    """DisMIR's tuned configuration and its ablations (3 seeds, test)."""
    runs = {m: seed_runs(data, m) for m in ABLATION}
    done = {m: r for m, r in runs.items() if r}
    if "dismir" not in done or len(done) < 2:
        return None
    lines = [
        f"# {data}: ablation of the tuned DisMIR (3 seeds, test users)",
        "",
        "DisMIR's tuned flags for every column; the columns without the "
        "partition task drop lambda; MIR-RV's and MIR-BF's weights are "
        "their defaults.",
        "",
        "| model | R@20 | R@50 | DisMIR / model (R@50, paired t) |",
        "|---|---|---|---|",
    ]
    dismir = _test(done["dismir"])
    for m, r in done.items():
        vs = "-" if m == "dismir" else _paired(dismir, _test(r))
        lines.append(f"| {m} | {_ms(_test(r, 'recall@20'))} | {_ms(_test(r))} | {vs} |")
    return "\n".join(lines) + "\n"


def plugin(data: str) -> str | None:
    """Each tuned backbone without and with the partition task."""
    rows = []
    for m in PLUGIN:
        off, on = seed_runs(data, m), seed_runs(data, f"{m}-plugin")
        if off and on:
            rows.append(
                f"| {m} | {_ms(_test(off))} | {_ms(_test(on))} | "
                f"{_paired(_test(on), _test(off))} |"
            )
    if not rows:
        return None
    best = best_record(trials(data, "dismir"))
    lam = best.params["partition_weight"] if best else float("nan")
    return (
        "\n".join(
            [
                f"# {data}: the partition task as a plugin of the tuned "
                f"backbones (lambda {lam:.3g}, DisMIR's tuned one; 3 seeds, "
                "test R@50)",
                "",
                "| backbone | without | with | with / without (paired t) |",
                "|---|---|---|---|",
                *rows,
            ]
        )
        + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--best_flags", action="store_true")
    parser.add_argument("data")
    parser.add_argument("model", nargs="?")
    args = parser.parse_args()
    # The studies name their trials' run directories from the repository's
    # root (results/fair/...), where run.sh runs.
    os.chdir(os.path.dirname(os.path.dirname(HERE)))
    if args.best_flags:
        best = best_record(trials(args.data, args.model))
        if best is None:
            raise SystemExit(
                f"no completed trial for {args.model} on "
                f"{args.data}; run the tuning first"
            )
        print(flags_of(best.params))
        return
    # Each study's trials.csv / .json as the package records them now, from
    # its journal and run files (a study run on older code may hold older
    # records: before 2026-12-07 an interrupted trial showed its retry's
    # figures).
    for model in MODELS:
        study_dir = os.path.join(HERE, args.data, model)
        if os.path.exists(os.path.join(study_dir, JOURNAL)):
            write_records(study_dir, study_records(study_dir))
    tables = {
        "table2": table(args.data),
        "ablation": ablation(args.data),
        "plugin": plugin(args.data),
    }
    for name, text in tables.items():
        if text is None:
            continue
        with open(os.path.join(HERE, args.data, f"{name}.md"), "w") as f:
            f.write(text)
        print(text)


if __name__ == "__main__":
    main()
