r"""Trains several models over several seeds and writes a comparison table.

    python compare.py --dataset_file ../shared/data/beauty/Beauty.txt.gz \
        --dataset_format seq_lines --models dnn,mir,dismir --seeds 3

Writes OUT_DIR/<table>.md and .csv (mean ± std over seeds, best in bold,
best baseline underlined, improvement of --proposed over the best baseline
and a paired t-test).  OUT_DIR defaults to runs/compare-<dataset>; with
--out_dir results/beauty, where the committed runs are, the example reads
them instead of training.  Each (model, seed) trains in OUT_DIR/runs/...; an
interrupted comparison resumes: finished runs are read, not retrained.
--tables_only writes the tables from the finished runs and trains nothing.

--mode picks the table's shape (and, without --models, its models):

    table2    metrics x models (Table 2); default models dnn,mir,dismir
    ablation  methods x metrics (Table 3); default
              mir,mir-rv,mir-bf,dismir-wo-dpi,dismir
    plugin    each backbone of --models with and without the item-partition
              task (Table 5); default mind,comirec-sa,remi; lambda is
              --partition_weight, else DisMIR's default

In the table2 and ablation grids --partition_weight sets lambda for the
models that take the partition task by default (dismir, dismir-wo-dpi;
default: their own, dismir_tf/model_specs.py); the baselines run without
it, as their papers do.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import sys  # noqa: E402

from absl import flags  # noqa: E402

from dismir_tf import cli  # noqa: E402

cli.define_data_flags()
cli.define_model_flags()
cli.define_train_flags()
flags.DEFINE_enum(
    "mode",
    "table2",
    ["table2", "ablation", "plugin"],
    "Table shape: table2 (metrics x models), ablation "
    "(methods x metrics) or plugin (backbones with/without the "
    "partition task).",
)
flags.DEFINE_list(
    "models",
    None,
    "Models to compare (default: the mode's models; table2: dnn,mir,dismir; "
    "ablation: mir,mir-rv,mir-bf,dismir-wo-dpi,dismir; plugin: "
    "mind,comirec-sa,remi).",
)
flags.DEFINE_integer("seeds", 3, "Seeds 0..N-1 per model.")
flags.DEFINE_string(
    "out_dir",
    None,
    "Where runs and tables go (default "
    "runs/compare-<dataset>; the committed tables use "
    "results/<dataset>).",
)
flags.DEFINE_string(
    "proposed",
    "dismir",
    "The model compared against the best of the others (table2 and "
    "ablation; one of --models).",
)
flags.DEFINE_string(
    "table_name",
    None,
    "File name of the table (default: table, ablation or plugin by --mode).",
)
flags.DEFINE_bool(
    "tables_only",
    False,
    "Write the tables from the finished runs in --out_dir and train nothing; "
    "a run whose config.json differs from the flags is tabulated as it is, "
    "with a note naming the differences (to render again a table of runs "
    "made on older code whose defaults have changed since). Every (model, "
    "seed) of the grid must have finished; the flags are checked as for a "
    "run (the data file must be readable).",
)
FLAGS = flags.FLAGS

# Shared run flags that compare.py sets itself for every (model, seed).
IGNORED = {
    "output_dir": "--out_dir; each run goes to OUT_DIR/runs/",
    "seed": "--seeds N for seeds 0..N-1",
    "model": "--models",
}


def main(argv):
    del argv
    cli.refuse_inactive_flags(cli.project_flags() - set(IGNORED), "compare.py", IGNORED)
    from dismir_tf.errors import ConfigError

    if FLAGS.seeds < 1:
        raise ConfigError("--seeds must be >= 1")
    from dismir_tf import compare

    mode = FLAGS.mode
    models = list(FLAGS.models or compare.DEFAULT_MODELS[mode])
    if FLAGS["proposed"].present:
        if mode == "plugin":
            raise ConfigError(
                "--proposed does not act in --mode plugin (each backbone is "
                "compared with itself plus the partition task); remove it"
            )
        if FLAGS.proposed not in models:
            raise ConfigError(
                f"--proposed {FLAGS.proposed} is not one of the compared "
                f"models ({','.join(models)}); add it to --models or name one "
                "of them"
            )
    # Flags, data file and the grid's models before TensorFlow starts.
    cli.check_flags(models)
    from dismir_tf import model_specs, training

    # A model's own flag that no model of the grid takes would be ignored.
    cli.check_grid_param_flags(models)
    base = cli.run_config_from_flags()
    # Not results/: committed tables live there, and a default must never
    # mix a user's runs into them.
    out_dir = FLAGS.out_dir or os.path.join("runs", f"compare-{base.data.display_name}")
    table_name = (
        FLAGS.table_name
        or {"table2": "table", "ablation": "ablation", "plugin": "plugin"}[mode]
    )

    def model_base(name):
        return cli.model_config_from_flags(base.data, model=name, grid=True)

    if mode == "plugin":
        fixed = [m for m in models if model_specs.get(m).partition == "never"]
        if fixed:
            raise ConfigError(
                f"{', '.join(fixed)} never "
                f"{'takes' if len(fixed) == 1 else 'take'} the partition "
                "task; the plugin table needs multi-interest "
                "backbones such as mind, comirec-sa, remi"
            )
        lam = (
            FLAGS.partition_weight
            if FLAGS.partition_weight is not None
            else model_specs.get("dismir").default_partition_weight
        )
        if lam <= 0:
            raise ConfigError("the plugin table needs --partition_weight > 0")
        variants = compare.plugin_variants(models, lam)
    else:
        variants = [compare.Variant(label=m, model=m) for m in models]

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    def train(config):
        import tensorflow as tf

        tf.keras.backend.clear_session()
        metrics = training.run(config, log=log, verbose=0)
        log("test " + training.describe_metrics(metrics["test"]))
        return metrics

    results = compare.run_grid(
        base,
        variants,
        range(FLAGS.seeds),
        out_dir,
        train,
        log,
        model_base=model_base,
        tables_only=FLAGS.tables_only,
    )
    title = f"{base.data.display_name}: {', '.join(models)}"
    if mode == "plugin":
        plugin = compare.summarize_plugin(results, models)
        md, cs = compare.write_text(
            out_dir,
            table_name,
            compare.plugin_to_markdown(
                plugin, title + f" (with/without the partition task, lambda = {lam})"
            ),
            compare.plugin_to_csv(plugin),
        )
    else:
        proposed = FLAGS.proposed if FLAGS.proposed in models else None
        table = compare.summarize(results, proposed)
        md, cs = compare.write_table(
            table,
            out_dir,
            table_name,
            title=title,
            markdown=(
                compare.to_markdown_ablation
                if mode == "ablation"
                else compare.to_markdown
            ),
        )
    print(open(md).read())
    log(f"wrote {md} and {cs}")


def run() -> None:
    """The ``compare.py`` / ``dismir-compare`` command."""
    cli.run_app(main, doc=__doc__, refused=IGNORED)


if __name__ == "__main__":
    run()
