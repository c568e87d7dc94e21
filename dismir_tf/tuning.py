"""Hyperparameter search on valid users only, with Optuna.

``tune(base, TuneConfig(...))`` searches one model's declared space
(``model_specs.ModelSpec.search_space``: the learning rate and the model's
own knobs) with Optuna's TPE sampler.  Every trial is a normal training run
(``training.run``) into its own run directory, with ``test=False``: the test
users are never evaluated, and a trial's figure is the valid Recall@50 of
its best evaluation (the same selection rule as every run).  After each
valid evaluation the trial reports the figure to Optuna's median pruner,
which stops trials that are below the median of the earlier trials at the
same step (``TuneConfig.prune``).

The study lives in ``study_dir``: Optuna's journal file (study.journal),
one run directory per trial under trials/ (named by the trial's parameters,
so a retried trial resumes its own checkpoint), and trials.csv / .json, the
record of every trial's parameters, state and valid figures, rewritten after
each trial.  Running the same command again resumes: finished trials are
kept, a trial that was running when the process died is retried with the
same parameters (its run resumes from its last checkpoint), and the search
continues until ``trials`` trials have finished (completed or pruned).

KerasTuner (1.4.8) was the other candidate; it rejects tf-keras models
("Expected ... a valid Keras Model instance. Received: tf_keras...
Sequential"), and this project must use tf-keras for TFRS (docs/
models.md), so Optuna it is.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from dismir_tf import model_specs
from dismir_tf.config import RunConfig, config_differences
from dismir_tf.errors import ConfigError
from dismir_tf.io_utils import atomic_write_json
from dismir_tf.model_params import SearchRange

# The trials' figure: the selection metric of every run (valid users).
OBJECTIVE = "recall@50"
TRAIN_PARAMS = ("learning_rate",)


@dataclasses.dataclass(frozen=True)
class TuneConfig:
    """One model's search.

    Attributes:
      study_dir: where the study, the trials' runs and the record go.
      trials: trials to finish (completed or pruned), resumes included.
      params: the searched parameters (default: the model's whole declared
        space); each must be in the model's ``search_space``.
      sampler_seed: seed of the TPE sampler of a study without trials; a
        reopened study's sampler is seeded from it and the number of trials
        the study holds (:func:`open_study`).  The trials' training seed is
        the base configuration's ``train.seed``.
      prune: stop trials that fall below the median of earlier trials.
      startup_trials: trials before TPE models the space and before the
        pruner prunes (random search up to there).
      warmup_evaluations: evaluations of a trial before it may be pruned.
    """

    study_dir: str
    trials: int = 12
    params: tuple[str, ...] | None = None
    sampler_seed: int = 0
    prune: bool = True
    startup_trials: int = 4
    warmup_evaluations: int = 2

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise ConfigError("--trials must be >= 1")
        if self.params is not None and not self.params:
            raise ConfigError("--params names no parameter")
        if self.startup_trials < 0 or self.warmup_evaluations < 0:
            raise ConfigError("--startup_trials and --warmup_evaluations must be >= 0")


@dataclasses.dataclass(frozen=True)
class TrialRecord:
    """One trial as trials.csv has it."""

    number: int
    state: str  # COMPLETE, PRUNED, FAIL, RUNNING
    params: dict[str, Any]
    valid: dict[str, float]  # best evaluation's valid metrics
    best_step: int | None  # None (and no figures): retried, see records()
    steps: int | None
    output_dir: str
    retry_of: int | None = None  # the interrupted trial this one retried

    @property
    def value(self) -> float | None:
        return self.valid.get(OBJECTIVE)


def search_space(
    model: str, params: tuple[str, ...] | None = None
) -> dict[str, SearchRange]:
    """The searched ranges of ``model`` (all its declared ones by default).

    Raises:
      ConfigError: an unknown parameter, or a model without a space.
    """
    space = dict(model_specs.get(model).search_space)
    if not space:
        raise ConfigError(
            f"{model!r} declares no search space (dismir_tf/model_specs.py)"
        )
    if params is None:
        return space
    unknown = [p for p in params if p not in space]
    if unknown:
        raise ConfigError(
            f"{model!r} does not search {', '.join(unknown)}; its space is "
            f"{', '.join(sorted(space))} (dismir_tf/model_specs.py)"
        )
    return {p: space[p] for p in params}


def describe_range(r: SearchRange) -> str:
    """'[1e-4, 1e-2] log', '{a, b}', '[2, 8]' for the log line."""
    if r.choices:
        return "{" + ", ".join(map(str, r.choices)) + "}"
    return f"[{r.low:g}, {r.high:g}]" + (" log" if r.log else "")


def _is_int_range(r: SearchRange) -> bool:
    return (
        not r.choices
        and isinstance(r.low, int)
        and isinstance(r.high, int)
        and not r.log
    )


def suggest(trial, name: str, r: SearchRange) -> Any:
    """One parameter of an Optuna trial from its declared range."""
    if r.choices:
        return trial.suggest_categorical(name, list(r.choices))
    if _is_int_range(r):
        return trial.suggest_int(name, r.low, r.high)
    low, high = r.bounds
    return trial.suggest_float(name, low, high, log=r.log)


def trial_key(params: Mapping[str, Any]) -> str:
    """A run directory name for ``params`` (the same parameters, the same
    directory, so a retried trial resumes its run)."""
    text = json.dumps(dict(sorted(params.items())), sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def trial_config(
    base: RunConfig, params: Mapping[str, Any], output_dir: str
) -> RunConfig:
    """``base`` with the trial's parameters and run directory."""
    train = {k: v for k, v in params.items() if k in TRAIN_PARAMS}
    own = model_specs.get(base.model.name).param_flags()
    model = {k: v for k, v in params.items() if k not in TRAIN_PARAMS and k not in own}
    model_params = {
        **base.model.params,
        **{own[k].name: v for k, v in params.items() if k in own},
    }
    return RunConfig(
        data=base.data,
        model=dataclasses.replace(base.model, params=model_params, **model),
        train=dataclasses.replace(base.train, output_dir=output_dir, **train),
    )


def params_of(config: RunConfig, names: Iterable[str]) -> dict[str, Any]:
    """The values ``config`` holds for the searched parameters ``names``
    (what :func:`trial_config` set).

    Raises:
      KeyError: a name the config does not hold.
    """
    own = model_specs.get(config.model.name).param_flags()
    out = {}
    for k in names:
        if k in TRAIN_PARAMS:
            out[k] = getattr(config.train, k)
        elif k in own:
            out[k] = config.model.params[own[k].name]
        else:
            out[k] = getattr(config.model, k)
    return out


def check_space(base: RunConfig, space: Mapping[str, SearchRange]) -> None:
    """Refuses a search whose trials the other flags would refuse, before
    any trial runs (e.g. ``routing_temperature`` searched under
    ``--capsule_preset paper-remi``, which fixes it).  Each parameter is
    tried alone at its bounds (every choice of a categorical one).

    Raises:
      ConfigError: naming the parameter, the value and the refusal.
    """
    from dismir_tf.capsule_config import PresetConflictError, resolve_config

    for name, r in space.items():
        values = r.choices or (r.low, r.high)
        for value in values:
            try:
                config = trial_config(base, {name: value}, base.train.output_dir)
                resolve_config(config.model)
            except ConfigError as e:
                # A preset's refusal without its advice to drop --{name}:
                # the search, not the user, sets it.
                why = (
                    f"capsule_preset {e.preset!r} sets {e.field}={e.value!r}"
                    if isinstance(e, PresetConflictError)
                    else str(e)
                )
                raise ConfigError(
                    f"the search covers {name} ({describe_range(r)}), but the "
                    f"other flags refuse {name}={value!r}: {why}; leave "
                    f"{name} out of --params, or drop the flag that fixes it"
                ) from e


def _optuna():
    try:
        import optuna
    except ImportError as e:  # pragma: no cover - in requirements.txt
        raise ConfigError(
            "tuning needs optuna (pip install -r requirements.txt)"
        ) from e
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


# The study's Optuna journal, in its study_dir.
JOURNAL = "study.journal"


def _journal_storage(study_dir: str):
    """Optuna's journal storage on ``study_dir``/study.journal (the file is
    created when it does not exist)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(os.path.join(study_dir, JOURNAL)))


def open_study(tcfg: TuneConfig, model: str):
    """The Optuna study of ``model`` in ``tcfg.study_dir`` (created or
    loaded), its TPE sampler seeded with ``tcfg.sampler_seed`` (mixed with
    the number of trials it already holds, if any); e.g.
    ``open_study(...).enqueue_trial(params)`` queues a trial to run first.

    Raises:
      ConfigError: ``study_dir`` holds another model's study.
    """
    optuna = _optuna()
    os.makedirs(tcfg.study_dir, exist_ok=True)
    storage = _journal_storage(tcfg.study_dir)
    others = [n for n in optuna.study.get_all_study_names(storage) if n != model]
    if others:
        raise ConfigError(
            f"{tcfg.study_dir} holds the study of {others[0]!r}; tune "
            f"{model!r} in another --study_dir"
        )
    pruner = (
        optuna.pruners.MedianPruner(
            n_startup_trials=tcfg.startup_trials, n_warmup_steps=0, n_min_trials=1
        )
        if tcfg.prune
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(
        study_name=model,
        storage=storage,
        load_if_exists=True,
        direction="maximize",
        pruner=pruner,
    )
    # A study reopened after a crash must not replay its first random
    # (start-up) draws, so the seed mixes in the trials it already holds
    # (mixed, not added: seed 0 after k trials is not a fresh seed k).  A
    # study without trials is seeded with ``sampler_seed`` itself.
    held = len(study.get_trials(deepcopy=False))
    seed = (
        tcfg.sampler_seed
        if held == 0
        else int(np.random.SeedSequence([tcfg.sampler_seed, held]).generate_state(1)[0])
    )
    study.sampler = optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=max(tcfg.startup_trials, 1)
    )
    return study


def _read_json(path: str) -> dict | None:
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def records(study) -> list[TrialRecord]:
    """Every trial of ``study`` with its run's valid figures (none for an
    interrupted trial that was retried: its retry took over its run
    directory)."""
    out = []
    trials = study.get_trials(deepcopy=False)
    retried = {
        t.user_attrs["retry_of"]
        for t in trials
        if "retry_of" in t.user_attrs and t.state.name != "WAITING"
    }
    for t in trials:
        run = t.user_attrs.get("output_dir", "")
        if t.number in retried:
            # Its run directory is its retry's: the figures there are the
            # retry's, not its own.
            out.append(
                TrialRecord(
                    number=t.number,
                    state=t.state.name,
                    params=dict(t.params),
                    valid={},
                    best_step=None,
                    steps=None,
                    output_dir=run,
                    retry_of=t.user_attrs.get("retry_of"),
                )
            )
            continue
        metrics = _read_json(os.path.join(run, "metrics.json")) or {}
        state = _read_json(os.path.join(run, "state.json")) or {}
        best = state.get("best_step", 0)
        valid: dict[str, float] = metrics.get("valid") or next(
            (e["valid"] for e in state.get("evals", []) if e["step"] == best), {}
        )
        out.append(
            TrialRecord(
                number=t.number,
                state=t.state.name,
                params=dict(t.params),
                valid=dict(valid),
                best_step=best,
                steps=state.get("steps_done", 0),
                output_dir=run,
                retry_of=t.user_attrs.get("retry_of"),
            )
        )
    return out


def study_records(study_dir: str) -> list[TrialRecord]:
    """:func:`records` of the study in ``study_dir``, read from its
    study.journal without changing it (run directories are found as the
    trials recorded them, relative to the working directory: run it where
    the study ran, the repository's root for results/fair).

    Raises:
      FileNotFoundError: ``study_dir`` has no study.journal, or a finished
        (complete or pruned) trial's run directory has no state.json (run
        from another directory than the study's, or files missing).
      ValueError: the journal holds no study or more than one.
    """
    optuna = _optuna()
    path = os.path.join(study_dir, JOURNAL)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no study here")
    storage = _journal_storage(study_dir)
    names = optuna.study.get_all_study_names(storage)
    if len(names) != 1:
        raise ValueError(f"{path} holds {len(names)} studies; expected one")
    recs = records(optuna.load_study(study_name=names[0], storage=storage))
    for r in recs:
        state = os.path.join(r.output_dir, "state.json")
        if r.state in ("COMPLETE", "PRUNED") and not os.path.exists(state):
            raise FileNotFoundError(
                f"{state}: trial {r.number} of {path} finished but its run "
                f"file is not there (working directory {os.getcwd()}; run "
                "from the directory the study ran in)"
            )
    return recs


def read_records(study_dir: str) -> list[TrialRecord]:
    """The trials.json of ``study_dir`` (:func:`write_records`); none if
    the study has not written one."""
    path = os.path.join(study_dir, "trials.json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [TrialRecord(**r) for r in json.load(f)]


def write_records(study_dir: str, recs: list[TrialRecord]) -> None:
    """trials.json and trials.csv (one row a trial) in ``study_dir``."""
    atomic_write_json(
        os.path.join(study_dir, "trials.json"), [dataclasses.asdict(r) for r in recs]
    )
    params = sorted({p for r in recs for p in r.params})
    metrics = sorted({m for r in recs for m in r.valid})
    path = os.path.join(study_dir, "trials.csv")
    with open(path + ".part", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "trial",
                "state",
                *params,
                *[f"valid_{m}" for m in metrics],
                "best_step",
                "steps",
                "retry_of",
                "output_dir",
            ]
        )
        for r in recs:
            w.writerow(
                [
                    r.number,
                    r.state,
                    *[r.params.get(p, "") for p in params],
                    *[r.valid.get(m, "") for m in metrics],
                    *[
                        "" if v is None else v
                        for v in (r.best_step, r.steps, r.retry_of)
                    ],
                    r.output_dir,
                ]
            )
    os.replace(path + ".part", path)


def best_record(recs: list[TrialRecord]) -> TrialRecord | None:
    """The completed trial with the highest valid Recall@50 (ties: the
    earlier trial)."""
    done = [r for r in recs if r.state == "COMPLETE" and r.value is not None]
    return max(done, key=lambda r: (r.value, -r.number)) if done else None


def _comparable(config: dict) -> dict:
    """A ``RunConfig.to_dict()`` as a study compares it: parsed (fields
    added to the config since take their defaults), without the run and
    cache directories, the data file by its real path.

    Raises:
      ConfigError: a config this version cannot parse.
    """
    out = RunConfig.from_dict(config).to_dict()
    out["train"].pop("output_dir", None)
    out["data"].pop("data_dir", None)
    if out["data"].get("dataset_file"):
        out["data"]["dataset_file"] = os.path.realpath(out["data"]["dataset_file"])
    return out


def _study_settings(base: RunConfig, space: Mapping[str, SearchRange]) -> dict:
    """What makes a study one search: every trial's configuration before
    its parameters (:func:`_comparable`) and the searched ranges."""
    return {
        "config": _comparable(base.to_dict()),
        "space": {k: describe_range(r) for k, r in sorted(space.items())},
    }


def check_study(
    base: RunConfig, tcfg: TuneConfig, space: Mapping[str, SearchRange]
) -> None:
    """Refuses a run of the study in ``tcfg.study_dir`` with another model
    or other settings than its first run's (its trials would mix with the
    study's), before any data is read; a new study is left unwritten.  A
    study made before settings were recorded takes this run's as its own.

    Raises:
      ConfigError: the other model, or each setting that differs.
    """
    if os.path.exists(os.path.join(tcfg.study_dir, "study.journal")):
        _check_settings(open_study(tcfg, base.model.name), base, space, tcfg)


def _check_settings(
    study, base: RunConfig, space: Mapping[str, SearchRange], tcfg: TuneConfig
) -> None:
    """:func:`check_study` on the opened ``study``: records the settings of
    a study without them (a new one, or one from before they were
    recorded), compares those of any other."""
    settings = _study_settings(base, space)
    held = study.user_attrs.get("settings")
    if held is None:
        study.set_user_attr("settings", settings)
        return
    try:
        was, searched = _comparable(held["config"]), held["space"]
    except (ConfigError, KeyError, TypeError) as e:
        # A config of another version (ConfigError), a malformed record.
        raise ConfigError(
            f"{tcfg.study_dir} holds a study this version cannot read "
            f"({type(e).__name__}: {e}); use a new --study_dir"
        ) from e
    diff = config_differences(was, settings["config"])
    if searched != settings["space"]:
        diff.append(f"searched ({searched} -> {settings['space']})")
    if diff:
        raise ConfigError(
            f"{tcfg.study_dir} holds a study with other settings (the "
            f"study's -> this run's: {', '.join(diff)}); give the study's "
            "flags again, or use a new --study_dir"
        )


def _retry_interrupted(study, log: Callable[[str], None]) -> None:
    """Trials left RUNNING by a dead process: failed, and their parameters
    queued again (the retry resumes the same run directory)."""
    optuna = _optuna()
    for t in study.get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)
    ):
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        log(
            f"trial {t.number} was interrupted; the next trial retries it with "
            "the same parameters (its run resumes from its last checkpoint)"
        )


def tune(
    base: RunConfig,
    tcfg: TuneConfig,
    log: Callable[[str], None] = print,
    *,
    run_fn: Callable[..., dict],
) -> TrialRecord | None:
    """Runs (or resumes) the search and returns the best trial.

    Args:
      base: every trial's configuration before its parameters (data, model
        name and its other settings, budget, seed).
      tcfg: the search.
      log: progress lines.
      run_fn: runs one trial as ``training.run`` does (the tune command
        passes ``training.run`` on the data set loaded once; this module
        does not import the training loop).

    Returns:
      The best completed trial, or None if none completed.

    Raises:
      ConfigError: a bad search (unknown parameters, a model without a
        space), or ``study_dir`` holds a study of another model or with
        other settings.
    """
    optuna = _optuna()
    model = base.model.name
    space = search_space(model, tcfg.params)
    study = open_study(tcfg, model)
    _check_settings(study, base, space, tcfg)
    _retry_interrupted(study, log)
    finished_states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    eval_every = base.train.eval_every
    while True:
        done = len(study.get_trials(deepcopy=False, states=finished_states))
        if done >= tcfg.trials:
            break
        trial = study.ask()
        params = {name: suggest(trial, name, r) for name, r in space.items()}
        out = os.path.join(tcfg.study_dir, "trials", trial_key(params))
        trial.set_user_attr("output_dir", out)
        config = trial_config(base, params, out)
        retry_of = trial.user_attrs.get("retry_of")
        log(
            f"trial {trial.number} ({done + 1}/{tcfg.trials}"
            + ("" if retry_of is None else f", the retry of trial {retry_of}")
            + "): "
            + ", ".join(
                f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                for k, v in params.items()
            )
        )
        # A resumed run reports its earlier evaluations again.
        state = _read_json(os.path.join(out, "state.json")) or {}
        for e in state.get("evals", []):
            trial.report(e["valid"][OBJECTIVE], e["step"])

        def on_evaluation(step: int, valid: dict, trial=trial) -> bool:
            trial.report(valid[OBJECTIVE], step)
            return step >= tcfg.warmup_evaluations * eval_every and trial.should_prune()

        metrics = run_fn(config, test=False, on_evaluation=on_evaluation, verbose=0)
        value = (metrics.get("valid") or {}).get(OBJECTIVE)
        if metrics.get("stopped_by_caller"):
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            log(
                f"trial {trial.number} pruned at step {metrics['steps']} "
                f"(valid {OBJECTIVE} {value:.4f} best so far in it)"
            )
        else:
            study.tell(trial, value)
            log(
                f"trial {trial.number}: valid {OBJECTIVE} {value:.4f} "
                f"(best step {metrics['best_step']})"
            )
        write_records(tcfg.study_dir, records(study))
    recs = records(study)
    write_records(tcfg.study_dir, recs)
    return best_record(recs)


def flags_of(params: Mapping[str, Any]) -> str:
    """The train.py flags that set ``params`` exactly: a float is written
    in full (its shortest round-trip form), since a learning rate rounded
    to 6 digits is another float32 and the run diverges from the trial's."""

    def flag(k: str, v: Any) -> str:
        if isinstance(v, bool | np.bool_):  # absl: --x / --nox, not --x True
            return f"--{k}" if v else f"--no{k}"
        if isinstance(v, float | np.floating):
            return f"--{k} {float(v)!r}"
        return f"--{k} {v}"

    return " ".join(flag(k, v) for k, v in sorted(params.items()))
