r"""Trains a recorded run again from its config.json, into a new directory,
and compares the metrics with the recorded ones.

    python retrain.py results/fair/beauty/runs/dnn-seed0
    python retrain.py RUN --output_dir runs/dnn-again

RUN is any run directory that holds the config.json train.py wrote (the
checkpoints are not needed: results/ keeps only config.json, state.json and
metrics.json).  The run is trained again with exactly that configuration
(model, data, seed, budget) into --output_dir (default: RUN-retrain), from
the directory the run was made in (data paths in config.json are relative
to it: the repository root for results/).  Running the same command again
resumes an interrupted retraining.  At the end the valid and test metrics
are printed beside RUN's metrics.json, with the largest difference; the
exit status is 0 either way (a different figure is a finding, not an
error: on one machine runs are bit-reproducible, across machines they may
differ in the last digits).
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from absl import flags  # noqa: E402

from dismir_tf import cli  # noqa: E402

flags.DEFINE_string(
    "output_dir",
    None,
    "Where the new run goes (default: RUN-retrain).  An existing run there is resumed.",
)
FLAGS = flags.FLAGS


def _recorded(run_dir: str):
    """RUN's configuration (``RunDirectory.read_config``) and its
    metrics.json (None when absent or unreadable).

    Raises:
      ConfigError: no config.json in ``run_dir``, or one that is not a
        run's configuration.
    """
    from dismir_tf.errors import ConfigError
    from dismir_tf.io_utils import read_json
    from dismir_tf.runs import RunDirectory

    directory = RunDirectory(run_dir)
    if not os.path.isfile(directory.config_path):
        raise ConfigError(
            "no config.json: not a run directory written by train.py", path=run_dir
        )
    try:
        metrics = read_json(directory.metrics_path)
    except (OSError, ValueError):
        metrics = None
    return directory.read_config(), metrics


def compare_metrics(old: dict | None, new: dict) -> list[str]:
    """Lines of 'split metric old new difference' for the valid and test
    metrics of two metrics.json dicts, then the largest absolute
    difference ('no recorded metrics' when ``old`` is None)."""
    if not old:
        return ["no recorded metrics.json to compare with"]
    lines, worst = [], 0.0
    for split in ("valid", "test"):
        for name in sorted(new.get(split, {})):
            if name not in old.get(split, {}):
                continue
            a, b = float(old[split][name]), float(new[split][name])
            worst = max(worst, abs(b - a))
            lines.append(
                f"{split} {name}: recorded {a:.4f}, now {b:.4f} ({b - a:+.4f})"
            )
    lines.append(
        "identical to the recorded metrics"
        if worst == 0.0
        else f"largest difference {worst:.4f}"
    )
    return lines


def main(argv):
    from dismir_tf.errors import ConfigError

    if len(argv) != 2:
        raise ConfigError("give one run directory: python retrain.py RUN")
    run_dir = argv[1].rstrip("/")
    recorded, old = _recorded(run_dir)
    from dismir_tf import config as config_module

    output_dir = FLAGS.output_dir or f"{run_dir}-retrain"
    if os.path.realpath(output_dir) == os.path.realpath(run_dir):
        raise ConfigError(
            "--output_dir is the recorded run itself; give a new directory",
            path=output_dir,
        )
    config = config_module.replace(
        recorded, train=config_module.replace(recorded.train, output_dir=output_dir)
    )
    print(f"retraining {run_dir} into {output_dir}", file=sys.stderr, flush=True)
    from dismir_tf import training

    metrics = training.run(config, resume=True)
    print(training.describe_metrics(metrics["test"]))
    for line in compare_metrics(old, metrics):
        print(line)


def run() -> None:
    """The ``retrain.py`` / ``dismir-retrain`` command."""
    cli.run_app(main, doc=__doc__)


if __name__ == "__main__":
    run()
