r"""Trains a model and reports its test metrics (docs/protocol.md).

    python train.py                       # DisMIR on the built-in synthetic set
    python train.py --dataset gowalla     # downloads Gowalla first if needed
    python train.py --dataset_file ../shared/data/beauty/Beauty.txt.gz \
        --dataset_format seq_lines --model mir

Running the same command again resumes an interrupted run (--resume, the
default; --noresume refuses a directory that already holds a run).  With
--export_dir the best model is then exported for TensorFlow Serving to
EXPORT_DIR/<version>/ (docs/serving.md).
"""

import json
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from absl import flags  # noqa: E402

from dismir_tf import cli  # noqa: E402

cli.define_data_flags()
cli.define_model_flags()
cli.define_train_flags()
flags.DEFINE_string(
    "export_dir",
    None,
    "After training, export the best "
    "model as a SavedModel for TensorFlow Serving to "
    "EXPORT_DIR/<version>/ (docs/serving.md).",
)
flags.DEFINE_bool(
    "resume",
    True,
    "Continue the run already in --output_dir "
    "(the default, so rerunning a killed command resumes it); "
    "--noresume makes an existing run an error instead. "
    "Nothing is ever deleted (docs/reliability.md).",
)


def _finished(output_dir):
    """Whether output_dir holds a finished run (its data is not needed)."""
    try:
        with open(os.path.join(output_dir, "state.json")) as f:
            finished = json.load(f).get("finished") is True
    except (OSError, ValueError, AttributeError):
        return False
    return finished and os.path.exists(os.path.join(output_dir, "metrics.json"))


def main(argv):
    del argv
    # Flags, then the data, are checked before TensorFlow starts: a bad
    # flag or a bad line of a data file is reported in a second, and
    # nothing has been written (docs/reliability.md).
    train_config = cli.check_flags()
    from dismir_tf.stages import StageClock

    clock = StageClock()
    dataset = None
    if not _finished(train_config.output_dir):
        from dismir_tf.data import load_dataset

        with clock("load"):
            dataset = load_dataset(
                cli.data_config_from_flags(),
                log=lambda m: print(m, file=sys.stderr, flush=True),
            )
    config = cli.run_config_from_flags()
    from dismir_tf import training

    metrics = training.run(
        config, resume=flags.FLAGS.resume, dataset=dataset, clock=clock
    )
    print(training.describe_metrics(metrics["test"]))
    # On a cluster only the chief exports (docs/multi_worker.md).
    if flags.FLAGS.export_dir and metrics.get("chief", True):
        from dismir_tf import export

        export.export_run(
            config.train.output_dir,
            flags.FLAGS.export_dir,
            log=lambda m: print(m, file=sys.stderr, flush=True),
        )


def run() -> None:
    """The ``train.py`` / ``dismir-train`` command."""
    cli.run_app(main, doc=__doc__)


if __name__ == "__main__":
    run()
