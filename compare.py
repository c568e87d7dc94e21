"""Trains several models over several seeds and writes a comparison table.

    python compare.py --dataset_file ../shared/data/beauty/Beauty.txt.gz \
        --dataset_format seq_lines --models dnn,mir,dismir --seeds 3 \
        --out_dir results/beauty

Writes OUT_DIR/<table>.md and .csv (mean ± std over seeds, best in bold,
best baseline underlined, improvement of --proposed over the best baseline
and a paired t-test).  Each (model, seed) trains in OUT_DIR/runs/...; an
interrupted comparison resumes: finished runs are read, not retrained.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import sys  # noqa: E402

from absl import flags  # noqa: E402

from dismir_tf import cli  # noqa: E402

cli.define_data_flags()
cli.define_model_flags()
cli.define_train_flags()
flags.DEFINE_list("models", ["dnn", "mir", "dismir"], "Models to compare.")
flags.DEFINE_integer("seeds", 3, "Seeds 0..N-1 per model.")
flags.DEFINE_string("out_dir", None, "Where runs and tables go (default "
                    "results/<dataset>).")
flags.DEFINE_string("proposed", "dismir", "The model compared against the "
                    "best of the others.")
flags.DEFINE_string("table_name", "table", "File name of the table.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from dismir_tf import compare, training
    from dismir_tf.errors import ConfigError
    from dismir_tf.models import model_names

    if FLAGS.seeds < 1:
        raise ConfigError("--seeds must be >= 1")
    unknown = [m for m in FLAGS.models if m not in model_names()]
    if unknown:
        raise ConfigError(f"unknown model(s) {', '.join(unknown)}; expected "
                          f"some of {', '.join(model_names())}")
    base = cli.run_config_from_flags()
    out_dir = FLAGS.out_dir or os.path.join("results",
                                            base.data.display_name)
    variants = [compare.Variant(label=m, model=m) for m in FLAGS.models]

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    def train(config):
        import tensorflow as tf
        tf.keras.backend.clear_session()
        return training.run(config, log=log, verbose=0)

    results = compare.run_grid(base, variants, range(FLAGS.seeds), out_dir,
                               train, log)
    proposed = FLAGS.proposed if FLAGS.proposed in FLAGS.models else None
    table = compare.summarize(results, proposed)
    md, cs = compare.write_table(
        table, out_dir, FLAGS.table_name,
        title=f"{base.data.display_name}: {', '.join(FLAGS.models)}")
    print(open(md).read())
    log(f"wrote {md} and {cs}")


if __name__ == "__main__":
    cli.run_app(main)
