r"""Tunes one model's hyperparameters on the valid users (Optuna).

    python tune.py --model remi --dataset_file ../shared/data/beauty/Beauty.txt.gz \
        --dataset_format seq_lines --max_len 20 --trials 12

Searches the model's declared space (dismir_tf/model_specs.py: the learning
rate and the model's own knobs; --params picks some of them) with Optuna's
TPE sampler; every trial is a training run with the other flags, selected
and scored on the valid users only (the test users are never evaluated),
and trials below the median of the earlier ones at the same step are
pruned.  Writes STUDY_DIR/trials.csv and trials.json (every trial's
parameters, state and valid figures), one run directory per trial under
STUDY_DIR/trials/, and prints the best trial with the train.py command that
reproduces it (into STUDY_DIR/best).  Running the same command again resumes
the study: finished trials are kept, an interrupted one is retried from its
last checkpoint.
"""

import os
import shlex
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from absl import flags  # noqa: E402

from dismir_tf import cli, model_specs  # noqa: E402

cli.define_data_flags()
cli.define_model_flags()
cli.define_train_flags()
_TRAIN_FLAGS = set(flags.FLAGS)  # those of train.py; the rest are tune.py's
flags.DEFINE_integer(
    "trials",
    12,
    "Trials to finish (completed or "
    "pruned), those of an earlier run of the study "
    "included.",
)
flags.DEFINE_string(
    "study_dir", None, "Where the study goes (default runs/tune-<dataset>-<model>)."
)
flags.DEFINE_list(
    "params",
    None,
    "The searched parameters (default: all of the model's declared space).",
)
flags.DEFINE_integer(
    "sampler_seed",
    0,
    "Seed of the TPE sampler of a new study; a resumed study mixes in its "
    "trial count so that it draws new configurations (--seed is every "
    "trial's training seed).",
)
flags.DEFINE_bool(
    "prune",
    True,
    "Stop trials below the median of the earlier trials at the same step.",
)
flags.DEFINE_integer(
    "startup_trials",
    4,
    "Random trials before TPE models the space and before pruning starts.",
)
flags.DEFINE_integer(
    "warmup_evaluations", 2, "Valid evaluations of a trial before it may be pruned."
)
FLAGS = flags.FLAGS

IGNORED = {
    "output_dir": "--study_dir; each trial goes to STUDY_DIR/trials/",
    "exclude_history": None,
    "strategy": None,
    "logical_cpus": None,
}


def main(argv):
    del argv
    from dismir_tf.errors import ConfigError

    cli.refuse_inactive_flags(
        cli.project_flags() - {k for k in IGNORED},
        "tune.py",
        {k: v for k, v in IGNORED.items() if v},
    )
    params = tuple(p.strip() for p in FLAGS.params or () if p.strip())
    if FLAGS["params"].present and not params:
        raise ConfigError(
            "--params is empty; name the searched parameters, or leave the "
            "flag out to search the model's whole space"
        )
    cli.check_flags()
    from dismir_tf import tuning

    base = cli.run_config_from_flags()
    space = tuning.search_space(base.model.name, params or None)
    fixed = sorted(p for p in space if p in FLAGS and FLAGS[p].present)
    if fixed:
        raise ConfigError(
            f"{', '.join('--' + p for p in fixed)} "
            f"{'is' if len(fixed) == 1 else 'are'} searched; remove "
            f"{'it' if len(fixed) == 1 else 'them'}, or leave "
            f"{'it' if len(fixed) == 1 else 'them'} out of --params"
        )
    tuning.check_space(base, space)
    study_dir = FLAGS.study_dir or os.path.join(
        "runs", f"tune-{base.data.display_name}-{base.model.name}"
    )
    tcfg = tuning.TuneConfig(
        study_dir=study_dir,
        trials=FLAGS.trials,
        params=tuple(space),
        sampler_seed=FLAGS.sampler_seed,
        prune=FLAGS.prune,
        startup_trials=FLAGS.startup_trials,
        warmup_evaluations=FLAGS.warmup_evaluations,
    )

    # Another model's study, or one with other settings, before the data.
    tuning.check_study(base, tcfg, space)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    from dismir_tf.data import load_dataset

    dataset = load_dataset(base.data, log=log)  # once for every trial

    def run_trial(config, **kw):
        import tensorflow as tf

        from dismir_tf import training

        tf.keras.backend.clear_session()
        return training.run(config, log=log, dataset=dataset, **kw)

    log(
        f"tuning {base.model.name} on {base.data.display_name}: "
        f"{tcfg.trials} trial{'' if tcfg.trials == 1 else 's'} over "
        + ", ".join(f"{k} {tuning.describe_range(r)}" for k, r in space.items())
        + f"; valid users only; study in {study_dir}"
    )
    best = tuning.tune(base, tcfg, log=log, run_fn=run_trial)
    if best is None:
        print(f"no trial completed (all pruned or failed); see {study_dir}/trials.csv")
        return
    print(
        f"best trial {best.number}: valid {tuning.OBJECTIVE} "
        f"{best.value:.4f} (step {best.best_step}); "
        f"{tuning.flags_of(best.params)}"
    )
    print(f"every trial: {study_dir}/trials.csv; its run: {best.output_dir}")
    # The flags given here that train.py takes, then the best parameters.
    given = []
    for name in sorted(cli.project_flags() & _TRAIN_FLAGS):
        if FLAGS[name].present:
            # '--name value' as flags_of writes them ('--name' / '--noname'
            # for a bool).
            flag, eq, value = FLAGS[name].serialize().partition("=")
            given += [flag, shlex.quote(value)] if eq else [flag]
    run_dir = os.path.join(study_dir, "best")
    given += [tuning.flags_of(best.params), "--output_dir", shlex.quote(run_dir)]
    # A model from $DISMIR_TF_MODELS is unknown to train.py without it.
    plugins = os.environ.get(model_specs.PLUGINS_ENV, "")
    env = (
        f"{model_specs.PLUGINS_ENV}={shlex.quote(plugins)} "
        if base.model.name not in model_specs.BUILTIN_NAMES
        else ""
    )
    print(f"train it: {env}python train.py " + " ".join(given))


def run() -> None:
    """The ``tune.py`` / ``dismir-tune`` command."""
    cli.run_app(main, doc=__doc__, refused=IGNORED)


if __name__ == "__main__":
    run()
