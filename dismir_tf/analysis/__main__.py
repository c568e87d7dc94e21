"""See the interests: collapse statistics, t-SNE pictures, sweep curves.

Usage (``python -m dismir_tf.analysis COMMAND --flags``):

  collapse   --run_dirs A,B,.. [--labels a,b,..] --out results/x/collapse
             Table 4 (section 5.3.3) for each finished run, side by side:
             writes OUT.json and OUT.md (a trailing .json/.md is dropped).
             --num_users 100 --sample_seed 0 --split test; --min_history
             N draws only among users with >= N history items.
  tsne       --run_dirs A,B,.. [--labels ..] --out PNG [--user_index I]
             Figure 3: one test user's history items in 2-D (t-SNE), one
             panel per run, coloured by interest.  --user_index is the
             user's position in the split (default: drawn with
             --sample_seed among the users with a full history).
  catalogue  --run_dirs A[,B..] --out PNG [--catalogue_sample 2000]
             [--clusters K]
             Item embeddings in 2-D (t-SNE of a seeded sample of items),
             one row per run, coloured by spherical k-means clusters of the
             partition weights, by argmax_k w_ik, and on the synthetic set
             by the planted groups.
  diagnose   --run_dirs A,B,.. [--split test] [--update_metrics]
             The collapse diagnostics (dismir_tf/diagnostics.py) of each
             run's best checkpoint over all users of the split: one line
             each (and the JSON), or written into metrics.json.
  variants   [--variants_root results/capsules] [--out STEM]
             The capsule study (results/capsules/screen.sh): per data set,
             variant and model (MIR, MIR-RV, MIR-BF, DisMIR, w/o DPI), valid and test
             Recall@50, test collapse figures and DisMIR / MIR, to
             STEM.json and STEM.md (default ROOT/summary).
  sweep      <data/model/train flags as train.py> [--lambdas ..]
             [--interests ..] [--negatives ..] [--dims ..] [--seeds 1]
             [--out_dir results/<data>-sweep] [--out PNG] [--plot_only]
             Section 5.5 / Figure 4: trains one parameter at a time around
             the flags' configuration (resumable; finished runs are read),
             then writes OUT_DIR/sweep.{json,md} and the figure (test
             metrics, as the paper; default OUT_DIR/sweep.png).
             --plot_only reads the finished runs and trains nothing.

Errors in the input print ``error: <message>`` and exit with status 2.
"""

from __future__ import annotations

import os
import sys

from absl import flags

import dismir_tf  # noqa: F401  (legacy Keras before TensorFlow)
from dismir_tf import cli
from dismir_tf.errors import ConfigError

COMMANDS = ("collapse", "diagnose", "tsne", "catalogue", "sweep", "variants")
FLAGS = flags.FLAGS


# The flags each command acts on; any other flag given is refused
# (cli.refuse_inactive_flags).  The shared run flags act only in sweep.
_RUNS = frozenset({"run_dirs", "run_dir"})
ACTING = {
    "collapse": _RUNS
    | {"labels", "out", "num_users", "min_history", "sample_seed", "split"},
    "diagnose": _RUNS | {"split", "update_metrics"},
    "tsne": _RUNS | {"labels", "out", "user_index", "sample_seed", "split"},
    "catalogue": _RUNS
    | {"labels", "out", "clusters", "catalogue_sample", "sample_seed"},
    "variants": frozenset({"variants_root", "out"}),
    "sweep": frozenset(
        {
            "lambdas",
            "interests",
            "negatives",
            "dims",
            "seeds",
            "out_dir",
            "out",
            "plot_only",
            "split",
        }
    ),
}
# Shared run flags that sweep sets itself for every point and seed.
SWEEP_HINTS = {"output_dir": "--out_dir", "seed": "--seeds N"}
_SHARED: set[str] = set()


def define_flags() -> None:
    cli.define_data_flags()
    cli.define_model_flags()
    cli.define_train_flags()
    _SHARED.update(FLAGS)
    flags.DEFINE_list("run_dirs", [], "Finished run directories.")
    flags.DEFINE_alias("run_dir", "run_dirs")
    flags.DEFINE_list("labels", [], "A label per run (default: the model name).")
    flags.DEFINE_string(
        "out",
        None,
        "Output: a path stem for collapse (.json and .md), a PNG for the pictures.",
    )
    flags.DEFINE_integer("num_users", 100, "collapse: users sampled.")
    flags.DEFINE_integer(
        "min_history",
        0,
        "collapse: sample only users with at least this many history items (0: all).",
    )
    flags.DEFINE_integer(
        "sample_seed", 0, "Seed of the user and item samples and of t-SNE."
    )
    flags.DEFINE_enum(
        "split",
        "test",
        ["valid", "test"],
        "Users of this split (collapse, tsne) or metrics of it (sweep).",
    )
    flags.DEFINE_integer(
        "user_index", None, "tsne: position of the user in the split's user list."
    )
    flags.DEFINE_integer(
        "catalogue_sample",
        2000,
        "catalogue: items drawn for the t-SNE when the catalogue is larger.",
    )
    flags.DEFINE_integer(
        "clusters",
        None,
        "catalogue: k of the spherical "
        "k-means of the partition weights (default: the "
        "planted groups on the synthetic set, else 10).",
    )
    flags.DEFINE_list(
        "lambdas",
        ["0", "0.01", "0.1", "1"],
        "sweep: lambda values (empty: do not sweep lambda).",
    )
    flags.DEFINE_list("interests", ["2", "4", "8"], "sweep: F values.")
    flags.DEFINE_list("negatives", ["10", "100"], "sweep: N_o values.")
    flags.DEFINE_list("dims", ["16", "32", "64"], "sweep: K = d values.")
    flags.DEFINE_integer("seeds", 1, "sweep: seeds 0..N-1 per point.")
    flags.DEFINE_string(
        "out_dir", None, "sweep: runs and tables (default runs/sweep-<dataset>)."
    )
    flags.DEFINE_bool(
        "update_metrics",
        False,
        "diagnose: write the figures into each run's metrics.json (collapse.<split>).",
    )
    flags.DEFINE_string(
        "variants_root",
        "results/capsules",
        "variants: the DATA/VARIANT/runs tree of a capsule study.",
    )
    flags.DEFINE_bool("plot_only", False, "sweep: read finished runs, train nothing.")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _runs_and_labels() -> list[tuple[str, str | None]]:
    runs = list(FLAGS.run_dirs)
    if not runs:
        raise ConfigError("give --run_dirs DIR[,DIR..]")
    labels = list(FLAGS.labels)
    if labels and len(labels) != len(runs):
        raise ConfigError(
            f"--labels has {len(labels)} names for {len(runs)} --run_dirs"
        )
    return list(zip(runs, labels or [None] * len(runs)))


def _out(required_ext: str | None = None) -> str:
    if not FLAGS.out:
        raise ConfigError("give --out")
    if required_ext and not FLAGS.out.lower().endswith(required_ext):
        raise ConfigError(f"--out must name a {required_ext} file")
    return FLAGS.out


# ------------------------------------------------------------------ collapse
def cmd_collapse() -> None:
    from dismir_tf.analysis import collapse
    from dismir_tf.io_utils import atomic_write_json, atomic_write_text

    stem = _out()
    for ext in (".json", ".md"):
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
    results = []
    for run_dir, label in _runs_and_labels():
        _log(f"collapse: {run_dir}")
        r = collapse.run_collapse(
            run_dir,
            FLAGS.num_users,
            FLAGS.sample_seed,
            FLAGS.split,
            label,
            min_history=FLAGS.min_history,
        )
        results.append(r)
    datasets = sorted({r["dataset"] for r in results})
    title = f"Interest collapse (Table 4) on {', '.join(datasets)}: " + ", ".join(
        r["label"] for r in results
    )
    atomic_write_json(stem + ".json", {"runs": results})
    md = collapse.to_markdown(results, title)
    atomic_write_text(stem + ".md", md)
    print(md)
    _log(f"wrote {stem}.json and {stem}.md")


# ------------------------------------------------------------------ diagnose
def cmd_diagnose() -> None:
    import json

    from dismir_tf import pipeline
    from dismir_tf.diagnostics import collapse_diagnostics
    from dismir_tf.io_utils import atomic_write_json, read_json
    from dismir_tf.models import time_unit
    from dismir_tf.runs import load_run

    for run_dir, _ in _runs_and_labels():
        config, ds, model = load_run(run_dir, log=lambda m: None)
        ex = pipeline.eval_examples(
            ds, FLAGS.split, config.model.max_len, time_unit(config.model)
        )
        diag = collapse_diagnostics(model, ex, config.train.eval_batch_size)
        print(f"{run_dir} ({FLAGS.split}): {diag.summary()}", flush=True)
        path = os.path.join(run_dir, "metrics.json")
        if FLAGS.update_metrics and os.path.exists(path):
            metrics = read_json(path)
            metrics.setdefault("collapse", {})[FLAGS.split] = diag.to_dict()
            atomic_write_json(path, metrics)
        elif not FLAGS.update_metrics:
            print(json.dumps(diag.to_dict()))


# ------------------------------------------------------------------ variants
def cmd_variants() -> None:
    from dismir_tf import compare
    from dismir_tf.io_utils import atomic_write_json, atomic_write_text

    root = FLAGS.variants_root
    if not os.path.isdir(root):
        raise ConfigError(
            f"{root} is not a directory (give --variants_root "
            "DIR holding DATA/VARIANT/runs/)"
        )
    rows = compare.variant_rows(root)
    if not rows:
        raise ConfigError(f"no finished runs under {root}/DATA/VARIANT/runs")
    stem = FLAGS.out or os.path.join(root, "summary")
    md = compare.variants_to_markdown(
        rows, "DisMIR capsule variants: MIR, DisMIR, w/o DPI per variant"
    )
    atomic_write_json(stem + ".json", {"rows": rows})
    atomic_write_text(stem + ".md", md)
    print(md)
    _log(f"wrote {stem}.json and {stem}.md")


# ---------------------------------------------------------------------- tsne
def cmd_tsne() -> None:
    import numpy as np

    from dismir_tf import pipeline
    from dismir_tf.analysis import collapse, plots
    from dismir_tf.models import time_unit
    from dismir_tf.runs import load_run

    out = _out(".png")
    loaded = []
    for run_dir, label in _runs_and_labels():
        config, ds, model = load_run(run_dir, log=lambda m: None)
        ex = pipeline.eval_examples(
            ds, FLAGS.split, config.model.max_len, time_unit(config.model)
        )
        loaded.append((label or config.model.name, config, ds, model, ex))
    _, config0, ds0, _, ex0 = loaded[0]
    lengths = (ex0.history > 0).sum(1)
    if FLAGS.user_index is not None:
        if not 0 <= FLAGS.user_index < len(ex0.users):
            raise ConfigError(f"--user_index must be in 0..{len(ex0.users) - 1}")
        pos = FLAGS.user_index
    else:
        full = np.flatnonzero(lengths == lengths.max())
        pos = int(np.random.RandomState(FLAGS.sample_seed).choice(full))
    user = int(ex0.users[pos])
    panels, sources = [], set()
    for label, config, ds, model, ex in loaded:
        if ds.num_items != ds0.num_items or user not in set(ex.users):
            raise ConfigError(
                f"the runs do not share a data set: user "
                f"{ds0.user_ids[user]} is not a {FLAGS.split} "
                f"user of the {label} run"
            )
        row = int(np.flatnonzero(ex.users == user)[0])
        enc = collapse.encode_numpy(model, ex.inputs(slice(row, row + 1)))
        assign, source = collapse.assign_items(
            enc["routing"], enc["mask"], enc["interests"], enc["items"]
        )
        sources.add(source)
        real = assign[0] >= 0
        emb = enc["items"][0][real]
        xy = plots.tsne_2d(emb, seed=FLAGS.sample_seed)
        f = enc["interests"].shape[1]
        cos, _ = collapse.between_similarity(
            emb / (np.linalg.norm(emb, axis=1, keepdims=True) + 1e-12),
            assign[0][real],
            f,
        )
        cos_text = "n/a" if np.isnan(cos) else f"{cos:.2f}"
        how = "" if source == collapse.ROUTING else ", by m_f . e_i"
        panels.append(
            plots.UserPanel(
                title=f"{label} (F = {f}{how})\n"
                f"cosine between interests {cos_text}; items per "
                f"interest {collapse.group_sizes(assign[0], f).tolist()}",
                xy=xy,
                interest=assign[0][real],
                num_interests=f,
            )
        )
    n = int(lengths[pos])
    title = (
        f"{ds0.name}: the {n} history items of {FLAGS.split} user "
        f"{ds0.user_ids[user]}, t-SNE of each run's item embeddings;\n"
        "colour: the interest with the largest routing weight b_if"
        + (
            " (without routing weights: the largest m_f . e_i)"
            if collapse.INTEREST_SCORE in sources
            else ""
        )
    )
    plots.plot_user_interests(panels, out, title)
    _log(f"wrote {out} (user {ds0.user_ids[user]}, position {pos})")


# ----------------------------------------------------------------- catalogue
def cmd_catalogue() -> None:
    import numpy as np

    from dismir_tf.analysis import measures as analysis
    from dismir_tf.analysis import plots
    from dismir_tf.runs import load_run

    out = _out(".png")
    rows = []
    for run_dir, label in _runs_and_labels():
        config, ds, model = load_run(run_dir, log=lambda m: None)
        w = model.item_embedding.embeddings.numpy()[1:]
        planted = None
        if config.data.dataset == "synthetic":
            from dismir_tf.data.synthetic import generate

            syn_ds, groups = generate(config.data.synthetic, config.data.split_seed)
            if np.array_equal(syn_ds.item_ids, ds.item_ids):
                planted = groups[1:]
        k = FLAGS.clusters or (int(planted.max()) + 1 if planted is not None else 10)
        clusters = analysis.spherical_kmeans(w, k, seed=FLAGS.sample_seed)
        argmax = analysis.partition_groups(w)
        n = len(w)
        idx = np.arange(n)
        if n > FLAGS.catalogue_sample:
            idx = np.sort(
                np.random.RandomState(FLAGS.sample_seed).choice(
                    n, FLAGS.catalogue_sample, replace=False
                )
            )
        colourings = [
            (f"spherical k-means of w_i, k = {k}", clusters[idx]),
            (
                f"argmax_k w_ik ({len(np.unique(argmax))} of K = {w.shape[1]} used)",
                argmax[idx],
            ),
        ]
        extra = ""
        if planted is not None:
            colourings.append(("planted group", planted[idx]))
            extra = f"; NMI(k-means, planted) = {analysis.nmi(clusters, planted):.2f}"
        xy = plots.tsne_2d(w[idx], seed=FLAGS.sample_seed)
        name = label or config.model.name
        rows.append(
            plots.CatalogueRow(
                title=f"{name}, lambda = {config.model.partition_weight:g}" + extra,
                xy=xy,
                colourings=colourings,
            )
        )
        _log(f"catalogue: {run_dir}: {len(idx)} of {n} items")
    sample = (
        f"a seeded sample of {len(idx):,} of {n:,} items"
        if len(idx) < n
        else f"all {n:,} items"
    )
    title = f"{ds.name}: item embeddings (t-SNE of {sample})"
    plots.plot_catalogue(rows, out, title)
    _log(f"wrote {out}")


# --------------------------------------------------------------------- sweep
def _grid() -> dict:
    def parse(values, kind, name):
        try:
            return [kind(v) for v in values]
        except ValueError as e:
            raise ConfigError(f"--{name}: {e}") from None

    grid = {
        "lambda": parse(FLAGS.lambdas, float, "lambdas"),
        "F": parse(FLAGS.interests, int, "interests"),
        "N_o": parse(FLAGS.negatives, int, "negatives"),
        "K": parse(FLAGS.dims, int, "dims"),
    }
    return {k: v for k, v in grid.items() if v}


def cmd_sweep() -> None:
    from dismir_tf import training
    from dismir_tf.analysis import sweep

    if FLAGS.seeds < 1:
        raise ConfigError("--seeds must be >= 1")
    base = cli.run_config_from_flags()
    grid = _grid()
    if not grid:
        raise ConfigError("nothing to sweep: every value list is empty")
    from dismir_tf import model_specs

    if model_specs.get(base.model.name).partition == "never" and any(
        v > 0 for v in grid.get("lambda", [])
    ):
        raise ConfigError(
            f"{base.model.name!r} has no partition task, so lambda cannot be "
            "swept for it; give --lambdas '' or a model that takes it "
            "(dismir, or a multi-interest baseline)"
        )
    out_dir = FLAGS.out_dir or os.path.join("runs", f"sweep-{base.data.display_name}")
    png = FLAGS.out or os.path.join(out_dir, "sweep.png")

    def train(config):
        import tensorflow as tf

        tf.keras.backend.clear_session()
        return training.run(config, log=_log, verbose=0)

    result = sweep.run_sweep(
        base, grid, range(FLAGS.seeds), out_dir, train, _log, plot_only=FLAGS.plot_only
    )
    title = (
        f"{base.data.display_name}: {base.model.name} hyper-parameters"
        f" ({base.train.max_steps} steps, {FLAGS.seeds} seed(s), "
        f"{FLAGS.split} users)"
    )
    written = sweep.write_outputs(result, out_dir, png, title, FLAGS.split)
    print(open(written[1], encoding="utf-8").read())
    _log("wrote " + ", ".join(written))


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[1] not in COMMANDS:
        got = " ".join(argv[1:]) or "nothing"
        raise ConfigError(
            f"expected one command, one of {', '.join(COMMANDS)}"
            f"; got {got} (see --help)"
        )
    command = argv[1]
    acting = set(ACTING[command])
    if command == "sweep":
        acting |= _SHARED - set(SWEEP_HINTS)
    cli.refuse_inactive_flags(
        acting, f"analyze {command}", SWEEP_HINTS if command == "sweep" else None
    )
    {
        "collapse": cmd_collapse,
        "tsne": cmd_tsne,
        "catalogue": cmd_catalogue,
        "sweep": cmd_sweep,
        "variants": cmd_variants,
        "diagnose": cmd_diagnose,
    }[argv[1]]()


def run() -> None:
    """The ``python -m dismir_tf.analysis`` / ``dismir-analyze`` command."""
    define_flags()
    cli.run_app(main, doc=__doc__)


if __name__ == "__main__":
    run()
