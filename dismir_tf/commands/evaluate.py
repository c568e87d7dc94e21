"""Recomputes a finished run's metrics from its best checkpoint.

    python evaluate.py --run_dir runs/synthetic-dismir-seed0 [--split test]
        [--dump_topk PATH] [--dump_partition PATH]

--dump_topk writes JSON lines, one object per evaluated user:
  {"user": raw id, "top50": [raw item ids, best first], "targets": [...]}
--dump_partition writes one line per item:
  item_raw_id<TAB>argmax_k w_ik (0-based)<TAB>w_i1 ... w_iK
Raw ids may contain spaces: both files give every id back exactly
(dismir_tf.reports.read_topk_dump / read_partition_dump).
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import json  # noqa: E402

from absl import flags  # noqa: E402

from dismir_tf import cli  # noqa: E402

flags.DEFINE_string("run_dir", None, "A run directory written by train.py.")
flags.DEFINE_enum("split", "test", ["test", "valid"], "Users to evaluate.")
flags.DEFINE_string(
    "dump_topk",
    None,
    "Write each user's top-50 here (JSON lines; a bare file name goes into --run_dir).",
)
flags.DEFINE_string(
    "dump_partition",
    None,
    "Write each item's partition weights here (0-based "
    "argmax; a bare file name goes into --run_dir).",
)
flags.DEFINE_enum(
    "backend",
    "exact",
    ["exact", "tfrs"],
    "Retrieval: exact (the project's vectorised evaluator, "
    "train.py's) or tfrs (model.evaluate() with a TFRS "
    "BruteForce index, dismir_tf.tfrs_metrics; the same "
    "metrics). ScaNN is not offered: scann 1.4.2's TF ops do "
    "not load with TensorFlow 2.21 (README).",
)
flags.mark_flag_as_required("run_dir")
FLAGS = flags.FLAGS


def _check_paths() -> None:
    """Flag paths checked before TensorFlow starts; nothing is written yet."""
    from dismir_tf.errors import ConfigError
    from dismir_tf.runs import require_checkpoint

    require_checkpoint(FLAGS.run_dir)
    own = {
        os.path.realpath(os.path.join(FLAGS.run_dir, name))
        for name in ("config.json", "state.json", "metrics.json")
    }
    for flag in ("dump_topk", "dump_partition"):
        path = getattr(FLAGS, flag)
        if path is None:
            continue
        if not os.path.dirname(path):
            # A bare file name goes into the run directory (git-ignored
            # runs/ by default), not wherever the command was started.
            path = os.path.join(FLAGS.run_dir, path)
            setattr(FLAGS, flag, path)
        if os.path.isdir(path):
            raise ConfigError(
                f"--{flag} is a directory, expected a file name", path=path
            )
        if os.path.realpath(path) in own:
            raise ConfigError(f"--{flag} would overwrite the run's own file", path=path)
        parent = os.path.dirname(os.path.abspath(path))
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
            raise ConfigError(
                f"--{flag} cannot be written: {parent} is not a writable directory",
                path=path,
            )


def main(argv):
    del argv
    _check_paths()
    from dismir_tf import reports, runs

    if FLAGS.backend == "tfrs" and FLAGS.dump_topk:
        from dismir_tf.errors import ConfigError

        raise ConfigError(
            "--dump_topk needs --backend exact (the TFRS "
            "metric keeps the metrics, not the lists)"
        )
    config, ds, model = runs.load_run(FLAGS.run_dir)
    if FLAGS.backend == "tfrs":
        from dismir_tf import pipeline, tfrs_metrics
        from dismir_tf.models import time_unit

        examples = pipeline.eval_examples(
            ds, FLAGS.split, config.model.max_len, time_unit(config.model)
        )
        metrics = tfrs_metrics.evaluate_with_tfrs(
            model,
            examples,
            config.train.eval_batch_size,
            exclude_history=config.train.exclude_history,
        )
    else:
        metrics = reports.evaluate_split(
            config, ds, model, FLAGS.split, dump_topk=FLAGS.dump_topk
        )
    if FLAGS.dump_partition:
        reports.dump_partition(ds, model, FLAGS.dump_partition)
    print(json.dumps({FLAGS.split: metrics}, sort_keys=True))


def run() -> None:
    """The ``evaluate.py`` / ``dismir-evaluate`` command."""
    cli.run_app(main, doc=__doc__)


if __name__ == "__main__":
    run()
