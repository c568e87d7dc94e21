r"""Trains a recorded run again from its config.json, into a new directory,
and compares the metrics with the recorded ones.

    python retrain.py results/fair/beauty/runs/dnn-seed0
    python retrain.py RUN --output_dir runs/dnn-again
    python retrain.py RUN --evaluations 1     # a quick check: the first
                                             # evaluation interval only

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

With --evaluations N only the first N evaluation intervals are trained
(N * eval_every steps, at most the run's max_steps; a minute for a run
that takes an hour), without testing, into a new directory
(default runs/retrain-check/RUN-evalN, with RUN's path joined by '_'),
and the valid metrics of each of its evaluations are compared, to the
last bit, with the evaluation RUN's state.json recorded at that step
(test metrics and losses are not compared; a recorded run that stopped
early stops at the same step again if it reproduces).  It is a quick check
that the code at hand still makes the recorded run, so a directory that
already holds a run is refused, never read again: remove it to check
again.  The exit status is 0 either way.
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from absl import flags  # noqa: E402

from dismir_tf import cli  # noqa: E402

flags.DEFINE_string(
    "output_dir",
    None,
    "Where the new run goes (default: RUN-retrain, or "
    "runs/retrain-check/RUN-evalN with --evaluations N).  Without "
    "--evaluations an interrupted retraining there is resumed and a finished "
    "one read again; with it, a directory holding a run is refused.",
)
flags.DEFINE_integer(
    "evaluations",
    None,
    "Train only the first N evaluation intervals (N * eval_every steps, at "
    "most the run's max_steps), without testing, and compare each "
    "evaluation's valid metrics with RUN's state.json, bit for bit.",
    lower_bound=1,
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


def recorded_evaluations(run_dir: str) -> list[dict]:
    """The evaluations of RUN's state.json ([] when absent or unreadable):
    each a dict with 'step' and 'valid' (metric name -> value)."""
    from dismir_tf.io_utils import read_json
    from dismir_tf.runs import RunDirectory

    try:
        state = read_json(RunDirectory(run_dir).state_path)
    except (OSError, ValueError):
        return []
    return list(state.get("evals", []))


def compare_evaluations(old: list[dict], new: list[dict]) -> list[str]:
    """One line per evaluation of ``new``: its step and whether its valid
    metrics equal the recorded evaluation at that step exactly (the same
    names, the same values), or what differs (recorded -> now, every
    digit; a metric on one side only).  Then a verdict: 'identical to the
    recorded evaluations', 'identical at K of M evaluations (the others
    not recorded)', 'first difference at step S' or 'no recorded
    evaluation to compare with'."""
    recorded = {e["step"]: e.get("valid", {}) for e in old}
    lines, first, compared = [], None, 0
    for e in new:
        step, now = e["step"], e.get("valid", {})
        if step not in recorded:
            lines.append(f"step {step}: no recorded evaluation")
            continue
        compared += 1
        was = recorded[step]
        diff = [
            f"{k} {float(was[k])!r} -> {float(now[k])!r}"
            for k in sorted(set(now) & set(was))
            if float(was[k]) != float(now[k])
        ]
        diff += [f"{k} only recorded" for k in sorted(set(was) - set(now))]
        diff += [f"{k} only now" for k in sorted(set(now) - set(was))]
        if not now and not was:
            diff.append("no valid metrics on either side")
        if diff and first is None:
            first = step
        lines.append(
            f"step {step}: " + ("; ".join(diff) if diff else "valid metrics identical")
        )
    if not compared:
        lines.append("no recorded evaluation to compare with")
    elif first is not None:
        lines.append(f"first difference at step {first}")
    elif compared < len(new):
        lines.append(
            f"identical at {compared} of {len(new)} evaluations "
            "(the others not recorded)"
        )
    else:
        lines.append("identical to the recorded evaluations")
    return lines


def check_dir(run_dir: str, evaluations: int) -> str:
    """The default directory of ``--evaluations``: under the git-ignored
    runs/retrain-check/, named after RUN's path ('/' -> '_') and N."""
    name = os.path.normpath(run_dir).strip(os.sep).replace(os.sep, "_")
    return os.path.join("runs", "retrain-check", f"{name}-eval{evaluations}")


def main(argv):
    from dismir_tf.errors import ConfigError

    if len(argv) != 2:
        raise ConfigError("give one run directory: python retrain.py RUN")
    run_dir = argv[1].rstrip("/")
    recorded, old = _recorded(run_dir)
    from dismir_tf import config as config_module

    output_dir = FLAGS.output_dir or (
        check_dir(run_dir, FLAGS.evaluations)
        if FLAGS.evaluations
        else f"{run_dir}-retrain"
    )
    if os.path.realpath(output_dir) == os.path.realpath(run_dir):
        raise ConfigError(
            "--output_dir is the recorded run itself; give a new directory",
            path=output_dir,
        )
    train = config_module.replace(recorded.train, output_dir=output_dir)
    if FLAGS.evaluations:
        from dismir_tf.runs import RunDirectory

        evaluations = recorded_evaluations(run_dir)
        if not evaluations:
            raise ConfigError(
                "no evaluations recorded in state.json to compare with",
                path=run_dir,
            )
        target = RunDirectory(output_dir)
        if os.path.exists(target.config_path) or os.path.exists(target.state_path):
            raise ConfigError(
                "already holds a run: a check is never read again; remove "
                "it to check the code at hand again, or give a new --output_dir",
                path=output_dir,
            )
        steps = FLAGS.evaluations * recorded.train.eval_every
        train = config_module.replace(
            train, max_steps=min(steps, recorded.train.max_steps)
        )
    config = config_module.replace(recorded, train=train)
    print(
        f"retraining {run_dir} into {output_dir}"
        + (f" ({train.max_steps} steps)" if FLAGS.evaluations else ""),
        file=sys.stderr,
        flush=True,
    )
    from dismir_tf import training

    metrics = training.run(config, resume=True, test=not FLAGS.evaluations)
    if FLAGS.evaluations:
        lines = compare_evaluations(evaluations, recorded_evaluations(output_dir))
    else:
        print(training.describe_metrics(metrics["test"]))
        lines = compare_metrics(old, metrics)
    for line in lines:
        print(line)


def run() -> None:
    """The ``retrain.py`` / ``dismir-retrain`` command."""
    cli.run_app(main, doc=__doc__)


if __name__ == "__main__":
    run()
