"""tune: Optuna over a model's declared space, on valid users only,
pruning, resuming, and every trial recorded (dismir_tf/tuning.py)."""

from __future__ import annotations

import csv
import json
import os
import shlex
import subprocess
import sys

import pytest

from dismir_tf import evaluation, pipeline, training, tuning
from dismir_tf.config import RunConfig
from dismir_tf.errors import ConfigError
from tests.helpers import (
    malformed_seq_file,
    run_python,
    tiny_run_config,
    train_it_command,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LRS = (1e-2, 1e-3, 1e-4)  # inside the declared range [1e-4, 1e-2]


def _python(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return run_python(*args, timeout=timeout)


def _base(tmp_path, **kw):
    kw.setdefault("max_steps", 40)
    return tiny_run_config(str(tmp_path / "unused"), model="dnn", **kw)


def _tcfg(tmp_path, **kw):
    kw.setdefault("params", ("learning_rate",))
    kw.setdefault("prune", False)
    return tuning.TuneConfig(study_dir=str(tmp_path / "study"), **kw)


def _enqueue(tcfg, lrs):
    study = tuning.open_study(tcfg, "dnn")
    for lr in lrs:
        study.enqueue_trial({"learning_rate": lr})


def _run(config, **kw):
    import tensorflow as tf

    tf.keras.backend.clear_session()
    return training.run(config, log=lambda m: None, **kw)


def test_selection_never_reads_test_users(tmp_path, monkeypatch):
    # The planted leak: a test evaluation scores the smallest learning rate
    # best (whatever the model does), so a tuner that looked at test users,
    # or took a run's test figure, would pick LRS[-1]; on valid users it
    # learns least and is worst.
    splits = []
    real_examples = pipeline.eval_examples

    def eval_examples(ds, split, *a, **kw):
        splits.append(split)
        return real_examples(ds, split, *a, **kw)

    real_evaluate = evaluation.evaluate_model
    test_users = {}

    def evaluate_model(model, examples, config, **kw):
        result = real_evaluate(model, examples, config, **kw)
        if set(examples.users.tolist()) <= test_users.get("ids", set()):
            lr = float(model.optimizer.learning_rate.numpy())
            result.metrics["recall@50"] = 1.0 - lr
        return result

    from dismir_tf.data import load_dataset

    ds = load_dataset(_base(tmp_path).data)
    test_users["ids"] = set(ds.test_users.tolist())
    monkeypatch.setattr(pipeline, "eval_examples", eval_examples)
    monkeypatch.setattr(evaluation, "evaluate_model", evaluate_model)
    tcfg = _tcfg(tmp_path, trials=3)
    _enqueue(tcfg, LRS)
    best = tuning.tune(_base(tmp_path), tcfg, log=lambda m: None, run_fn=_run)
    assert "test" not in splits and "valid" in splits
    recs = tuning.records(tuning.open_study(tcfg, "dnn"))
    assert [r.params["learning_rate"] for r in recs] == list(LRS)
    valid = {r.params["learning_rate"]: r.value for r in recs}
    # The leak would have changed the choice: the planted favourite is not
    # the valid users' choice ...
    assert max(valid, key=valid.get) != LRS[-1]
    # ... and the tuner took the valid users' choice.
    assert best.params["learning_rate"] == max(valid, key=valid.get)
    for r in recs:
        metrics = json.load(open(os.path.join(r.output_dir, "metrics.json")))
        assert metrics["test"] is None
        assert r.valid["recall@50"] == pytest.approx(
            max(
                e["valid"]["recall@50"]
                for e in json.load(open(os.path.join(r.output_dir, "state.json")))[
                    "evals"
                ]
            )
        )
    # Every trial is recorded with its parameters and valid figures.
    rows = list(csv.DictReader(open(tmp_path / "study" / "trials.csv")))
    assert [float(r["learning_rate"]) for r in rows] == list(LRS)
    assert all(r["state"] == "COMPLETE" for r in rows)
    assert [float(r["valid_recall@50"]) for r in rows] == [valid[lr] for lr in LRS]


def test_poor_trials_are_pruned(tmp_path):
    # Trial 0 learns; trial 1 (learning rate 1e-4, the range's lowest)
    # is below it at its first evaluation after the warm-up and is stopped
    # there.
    tcfg = _tcfg(tmp_path, trials=2, prune=True, startup_trials=1, warmup_evaluations=1)
    _enqueue(tcfg, (1e-2, 1e-4))
    tuning.tune(_base(tmp_path, max_steps=80), tcfg, log=lambda m: None, run_fn=_run)
    recs = tuning.records(tuning.open_study(tcfg, "dnn"))
    assert [r.state for r in recs] == ["COMPLETE", "PRUNED"]
    assert recs[0].steps == 80 and recs[1].steps == 20
    state = json.load(open(os.path.join(recs[1].output_dir, "state.json")))
    assert state["evals"][-1]["stopped_by_caller"] is True


def test_an_interrupted_study_resumes(tmp_path):
    tcfg = _tcfg(tmp_path, trials=2)
    _enqueue(tcfg, (1e-2, 1e-3))
    calls = []

    def dies_in_second_trial(config, on_evaluation=None, **kw):
        def hook(step, valid):
            calls.append(step)
            if len(calls) == 2:  # trial 1, after step 20
                raise KeyboardInterrupt
            return on_evaluation(step, valid)

        return _run(config, on_evaluation=hook, **kw)

    with pytest.raises(KeyboardInterrupt):
        tuning.tune(
            _base(tmp_path), tcfg, log=lambda m: None, run_fn=dies_in_second_trial
        )
    lines = []
    best = tuning.tune(_base(tmp_path), tcfg, log=lines.append, run_fn=_run)
    recs = tuning.records(tuning.open_study(tcfg, "dnn"))
    assert [r.state for r in recs] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert recs[2].params == recs[1].params
    assert recs[2].output_dir == recs[1].output_dir
    assert any("trial 1 was interrupted" in m for m in lines)
    assert any(m.startswith("trial 2 (2/2, the retry of trial 1): ") for m in lines)
    # The failed trial shows no figures (its run directory is its retry's).
    assert recs[1].valid == {} and recs[1].steps is None
    assert (recs[1].retry_of, recs[2].retry_of) == (None, 1)
    rows = list(csv.DictReader(open(tmp_path / "study" / "trials.csv")))
    assert [r["retry_of"] for r in rows] == ["", "", "1"]
    assert rows[1]["valid_recall@50"] == "" and rows[2]["valid_recall@50"] != ""
    assert (rows[1]["best_step"], rows[1]["steps"]) == ("", "")
    state = json.load(open(os.path.join(recs[2].output_dir, "state.json")))
    assert [e["step"] for e in state["evals"]] == [20, 40]
    assert best.number in (0, 2)
    # Resumed again with nothing left to do: no trial runs.
    n = len(recs)
    tuning.tune(_base(tmp_path), tcfg, log=lambda m: None, run_fn=_run)
    assert len(tuning.records(tuning.open_study(tcfg, "dnn"))) == n


def test_a_retry_that_is_itself_interrupted_keeps_what_it_retried(tmp_path):
    # Trial 0 interrupted, its retry (trial 1) interrupted too, trial 2
    # retries trial 1: every row says which trial it retried.
    tcfg = _tcfg(tmp_path, trials=1)
    _enqueue(tcfg, (1e-2,))

    def dies(config, on_evaluation=None, **kw):
        def hook(step, valid):
            raise KeyboardInterrupt

        return _run(config, on_evaluation=hook, **kw)

    for _ in range(2):
        with pytest.raises(KeyboardInterrupt):
            tuning.tune(_base(tmp_path), tcfg, log=lambda m: None, run_fn=dies)
    tuning.tune(_base(tmp_path), tcfg, log=lambda m: None, run_fn=_run)
    recs = tuning.records(tuning.open_study(tcfg, "dnn"))
    assert [r.state for r in recs] == ["FAIL", "FAIL", "COMPLETE"]
    assert [r.retry_of for r in recs] == [None, 0, 1]
    assert recs[1].valid == {} and recs[2].valid
    rows = list(csv.DictReader(open(tmp_path / "study" / "trials.csv")))
    assert [r["retry_of"] for r in rows] == ["", "0", "1"]
    assert tuning.read_records(tcfg.study_dir) == recs


def test_a_study_whose_settings_this_version_cannot_read_is_refused(tmp_path):
    # A setting since removed from the config (from_dict's TypeError) and a
    # malformed record are both the one-line refusal, not a traceback.
    tcfg = _tcfg(tmp_path, trials=1)
    space = tuning.search_space("dnn", ("learning_rate",))
    study = tuning.open_study(tcfg, "dnn")
    settings = tuning._study_settings(_base(tmp_path), space)
    settings["config"]["train"]["a_removed_setting"] = 1
    study.set_user_attr("settings", settings)
    with pytest.raises(ConfigError, match="holds a study this version cannot read"):
        tuning.check_study(_base(tmp_path), tcfg, space)
    study.set_user_attr("settings", {"space": settings["space"]})
    with pytest.raises(ConfigError, match="cannot read .KeyError"):
        tuning.check_study(_base(tmp_path), tcfg, space)


def test_a_reopened_study_does_not_replay_its_start_up_draws(tmp_path):
    # Resumed in the random start-up phase, the sampler must go on to new
    # draws: seeded afresh with the same seed it would draw trial 0's
    # configuration again as trial 1 (PIMIRec's beauty study did).
    from optuna.distributions import FloatDistribution, IntDistribution

    space = {
        "learning_rate": FloatDistribution(1e-4, 1e-2, log=True),
        "num_interests": IntDistribution(2, 8),
    }
    tcfg = _tcfg(tmp_path, startup_trials=4)
    first = tuning.open_study(tcfg, "dnn")
    t0 = first.ask(space)
    first.tell(t0, 0.1)
    t1 = tuning.open_study(tcfg, "dnn").ask(space)
    assert t1.params != t0.params
    # A new study still starts from ``sampler_seed``: the same seed in a
    # fresh directory draws trial 0's configuration again.
    again = tuning.open_study(_tcfg(tmp_path / "fresh", startup_trials=4), "dnn")
    assert again.ask(space).params == t0.params
    # Reopened with one trial, seed 0 is not a fresh study of seed 1.
    seed1 = tuning.open_study(
        _tcfg(tmp_path / "seed1", startup_trials=4, sampler_seed=1), "dnn"
    )
    assert seed1.ask(space).params != t1.params


def test_search_space_comes_from_the_registry():
    space = tuning.search_space("dismir")
    assert {"learning_rate", "num_interests", "partition_weight"} <= set(space)
    with pytest.raises(ConfigError, match="does not search dropout"):
        tuning.search_space("dismir", ("dropout",))
    base = tiny_run_config("/tmp/x", model="dismir")
    cfg = tuning.trial_config(
        base,
        {"learning_rate": 0.004, "num_interests": 5, "partition_weight": 0.3},
        "/tmp/t",
    )
    assert (
        cfg.train.learning_rate,
        cfg.model.num_interests,
        cfg.model.partition_weight,
    ) == (0.004, 5, 0.3)
    assert cfg.train.output_dir == "/tmp/t"
    assert tuning.trial_key({"a": 1, "b": 2.0}) == tuning.trial_key({"b": 2.0, "a": 1})


def test_tune_command_refuses_a_searched_flag(tmp_path):
    env = dict(os.environ)
    env.pop("TF_USE_LEGACY_KERAS", None)
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "tune.py"),
            "--model",
            "dnn",
            "--learning_rate",
            "0.01",
            "--study_dir",
            str(tmp_path / "s"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "--learning_rate is searched" in proc.stderr
    assert not (tmp_path / "s").exists()


def test_every_searched_parameter_has_a_flag():
    # The tuner prints the best trial as train.py flags: each searched
    # parameter must be one.
    from dismir_tf import cli, model_specs

    settable = set(cli.MODEL_FLAG_NAMES) | set(tuning.TRAIN_PARAMS)
    for spec in model_specs.specs():
        # A model's own params are flags named after them (cli).
        missing = set(spec.search_space) - settable - set(spec.param_flags())
        assert not missing, (spec.name, missing)


def test_a_search_the_other_flags_contradict_is_refused_before_the_data(tmp_path):
    # paper-remi fixes the routing temperature that DisMIR's space searches:
    # every trial would fail after the data's load; refused at once (the
    # malformed file is not even read), and accepted once it is not searched.
    bad = malformed_seq_file(tmp_path)

    def last_line(*args):
        proc = _python(
            *["tune.py", "--dataset_file", bad, "--dataset_format", "seq_lines"],
            *["--capsule_preset", "paper-remi", "--study_dir", str(tmp_path / "study")],
            *args,
        )
        assert proc.returncode != 0
        return proc.stderr.strip().splitlines()[-1]

    line = last_line()
    assert line.startswith("error: the search covers routing_temperature"), line
    assert "paper-remi' sets routing_temperature=1.0" in line
    assert "bad.txt:2" in last_line("--params", "learning_rate,num_interests")
    assert not os.path.exists(tmp_path / "study")


def test_a_study_dir_is_one_search(tmp_path):
    # Reused with other flags or another model, a study would mix trials
    # of different searches (and the record would lose one): refused,
    # naming the difference; the same settings resume it.
    tcfg = _tcfg(tmp_path, trials=1)
    _enqueue(tcfg, (1e-2,))
    tuning.tune(_base(tmp_path), tcfg, log=lambda m: None, run_fn=_run)
    with pytest.raises(ConfigError, match=r"model.embedding_dim \(16 -> 32\)"):
        tuning.tune(
            _base(tmp_path, embedding_dim=32), tcfg, log=lambda m: None, run_fn=_run
        )
    # XLA is part of a trial's run (a retry resumes that run).
    with pytest.raises(ConfigError, match=r"train.jit_compile \(True -> False\)"):
        tuning.check_study(
            _base(tmp_path, jit_compile=False), tcfg, tuning.search_space("dnn")
        )
    from dismir_tf.model_params import SearchRange

    narrower = {"learning_rate": SearchRange(1e-3, 1e-2, log=True)}
    with pytest.raises(ConfigError, match=r"searched \(\{'learning_rate'"):
        tuning.check_study(_base(tmp_path), tcfg, narrower)
    with pytest.raises(ConfigError, match="holds the study of 'dnn'"):
        tuning.open_study(tcfg, "mind")
    # Refused before the data is read (the file's error would come first).
    bad = malformed_seq_file(tmp_path)
    proc = _python(
        *["tune.py", "--model", "mind", "--study_dir", tcfg.study_dir],
        *["--dataset_file", bad, "--dataset_format", "seq_lines"],
    )
    assert proc.returncode == 2
    assert "holds the study of 'dnn'" in proc.stderr.strip().splitlines()[-1]
    # A larger budget, another sampler seed and another base run directory
    # are the same search: resumed, one more trial.
    again = _tcfg(tmp_path, trials=2, sampler_seed=5)
    base = _base(tmp_path / "elsewhere")
    tuning.tune(base, again, log=lambda m: None, run_fn=_run)
    assert len(tuning.records(tuning.open_study(tcfg, "dnn"))) == 2


def test_params_of_reads_what_trial_config_set(tmp_path):
    base = tiny_run_config(str(tmp_path), model="remi")
    params = {"learning_rate": 0.003, "num_interests": 5, "remi_beta": 0.25}
    config = tuning.trial_config(base, params, str(tmp_path / "t"))
    assert tuning.params_of(config, params) == params
    # Through config.json, as summarize.py reads the seeds' runs.
    again = RunConfig.from_dict(config.to_dict())
    assert tuning.params_of(again, params) == params


def test_empty_params_are_refused():
    proc = _python("tune.py", "--params=")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: --params is empty")


def test_the_printed_flags_set_the_trials_parameters_exactly():
    # Rounded to 6 digits, 0.0012520653814999472 becomes another float32
    # learning rate and the run diverges from the trial's.
    from absl import flags as absl_flags

    params = {"learning_rate": 0.0012520653814999472, "num_interests": 7}
    text = tuning.flags_of(params)
    parser = absl_flags.FlagValues()
    absl_flags.DEFINE_float("learning_rate", None, "", flag_values=parser)
    absl_flags.DEFINE_integer("num_interests", None, "", flag_values=parser)
    parser(["prog", *text.split()])
    assert parser.learning_rate == params["learning_rate"]
    assert parser.num_interests == 7


def test_the_printed_train_command_reproduces_the_best_trial(tmp_path):
    tiny = "--synthetic_users 300 --synthetic_items 120 --embedding_dim 16"
    tiny += " --max_steps 40 --eval_every 20 --model dnn --nojit_compile"
    tune = _python(
        *["tune.py", *tiny.split(), "--trials", "2"],
        *["--study_dir", str(tmp_path / "study")],
        timeout=600,
    )
    assert tune.returncode == 0, tune.stderr[-3000:]
    argv = shlex.split(train_it_command(tune.stdout))
    assert "--nojit_compile" in argv
    assert argv[:2] == ["python", "train.py"]
    # Every flag as '--name value' (or a bare bool), as the user gave them
    # and as flags_of writes the best parameters.
    assert not [a for a in argv if a.startswith("--") and "=" in a], argv
    # It trains into the study's best/, a real directory (not a placeholder).
    assert argv[-2:] == ["--output_dir", str(tmp_path / "study" / "best")]
    train = _python(*argv[1:], timeout=600)
    assert train.returncode == 0, train.stderr[-3000:]
    best = tuning.best_record(tuning.read_records(str(tmp_path / "study")))
    again = json.load(open(tmp_path / "study" / "best" / "metrics.json"))
    # The record keeps the @50 figures, bit for bit the rerun's.
    assert best.valid and all(again["valid"][k] == v for k, v in best.valid.items())
