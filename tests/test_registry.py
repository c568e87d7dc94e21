"""Adding a model touches its own file and one registry line: a toy model
from outside the package (tests/toy_model.py) is registered with
``model_specs.register(SPEC)`` and then configured, trained, tuned and
given flags by the project's own code."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from dismir_tf import model_specs, training, tuning
from dismir_tf.config import ModelConfig
from dismir_tf.errors import ConfigError
from dismir_tf.models import create_model
from tests import toy_model
from tests.helpers import tiny_run_config, train_it_command

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def toy(monkeypatch):
    # register(SPEC), undone after the test.
    monkeypatch.setitem(model_specs._SPECS, "toy-mean", toy_model.SPEC)
    return toy_model.SPEC


def test_its_params_are_a_config_with_defaults_and_checks(toy):
    assert ModelConfig(name="toy-mean").params == {"scale": 1.0}
    assert ModelConfig(name="toy-mean", params={"scale": 2}).own.scale == 2
    with pytest.raises(ConfigError, match="no parameter width"):
        ModelConfig(name="toy-mean", params={"width": 3})
    with pytest.raises(ConfigError, match="scale must be > 0"):
        ModelConfig(name="toy-mean", params={"scale": -1.0})
    with pytest.raises(ConfigError, match="no parameters of its own"):
        ModelConfig(name="dnn", params={"scale": 2.0})


def test_a_badly_declared_param_is_refused_at_registration():
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Bad:
        width: int = 4  # not model_params.param(...)

    with pytest.raises(ValueError, match="'width' must be declared"):
        model_specs.ModelSpec(
            name="bad", factory="x:y", summary="", partition="never", params=Bad
        )


def test_configs_stay_hashable(toy):
    assert hash(ModelConfig(name="toy-mean")) == hash(
        ModelConfig(name="toy-mean", params={"scale": 3.0})
    )


def test_its_param_acts_on_the_model(toy):
    history = tf.constant([[3, 5, 0, 0]])
    vectors = [
        create_model(
            20, ModelConfig(name="toy-mean", max_len=4, params={"scale": s}), seed=0
        )
        .query_vectors(history)
        .numpy()
        for s in (1.0, 3.0)
    ]
    np.testing.assert_allclose(vectors[1], 3.0 * vectors[0], rtol=1e-6)


def test_it_trains_and_records_its_params(toy, tmp_path):
    config = tiny_run_config(
        str(tmp_path / "run"),
        model="toy-mean",
        params={"scale": 1.5},
        max_steps=20,
        eval_every=10,
    )
    metrics = training.run(config, log=lambda m: None, verbose=0)
    assert 0.0 <= metrics["test"]["recall@50"] <= 1.0
    recorded = json.load(open(tmp_path / "run" / "config.json"))
    assert recorded["model"]["params"] == {"scale": 1.5}


def test_its_search_range_is_tuned_under_its_flag_name(toy, tmp_path):
    space = tuning.search_space("toy-mean")
    assert set(space) == {"learning_rate", "toy_mean_scale"}
    base = tiny_run_config(str(tmp_path / "base"), model="toy-mean")
    trial = tuning.trial_config(
        base, {"toy_mean_scale": 0.75, "learning_rate": 0.002}, str(tmp_path / "t")
    )
    assert trial.model.params == {"scale": 0.75}
    assert trial.train.learning_rate == 0.002


# A tiny synthetic run (seconds).
TINY = (
    "--synthetic_users 300 --synthetic_items 120 --synthetic_groups 6 "
    "--embedding_dim 16 --max_steps 20 --eval_every 10 --batch_size 32"
).split()

_CLI = """
import sys
sys.path.insert(0, {root!r})
from dismir_tf import model_specs
from tests.toy_model import SPEC
model_specs.register(SPEC)                  # the one registry line
from dismir_tf.commands.train import run
sys.argv = ["train.py"] + {argv!r}
run()
"""


def _train_cli(argv):
    code = _CLI.format(root=ROOT, argv=argv)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_train_py_gets_its_flag(tmp_path):
    out = str(tmp_path / "run")
    proc = _train_cli(
        ["--model", "toy-mean", "--toy_mean_scale", "2.5", *TINY, "--output_dir", out]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    recorded = json.load(open(os.path.join(out, "config.json")))
    assert recorded["model"]["params"] == {"scale": 2.5}
    help_text = _train_cli(["--help"]).stdout
    assert "--toy_mean_scale" in help_text
    assert "the user vector's scale (default 1.0)" in help_text
    wrong = _train_cli(
        [
            "--model",
            "dnn",
            "--toy_mean_scale",
            "2.5",
            "--output_dir",
            str(tmp_path / "x"),
        ]
    )
    assert wrong.returncode == 2
    assert "--toy_mean_scale acts only on toy-mean, not on 'dnn'" in wrong.stderr


def _plugin_cli(script, argv, plugin="tests.toy_plugin"):
    env = dict(os.environ, DISMIR_TF_MODELS=plugin)
    return subprocess.run(
        [sys.executable, script, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def test_a_plugin_module_named_in_the_environment_reaches_every_entry_point(
    tmp_path,
):
    # python train.py as it is, the model's module named in
    # $DISMIR_TF_MODELS: its flag, its run, and evaluate.py reading the run.
    out = str(tmp_path / "run")
    proc = _plugin_cli(
        "train.py",
        ["--model", "toy-mean", "--toy_mean_scale", "1.5", *TINY, "--output_dir", out],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.load(open(os.path.join(out, "config.json")))["model"]["params"] == {
        "scale": 1.5
    }
    again = _plugin_cli("evaluate.py", ["--run_dir", out])
    assert again.returncode == 0, again.stderr[-3000:]
    # Without it the run's model is unknown, and the message says how.
    plain = subprocess.run(
        [sys.executable, "evaluate.py", "--run_dir", out],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={k: v for k, v in os.environ.items() if k != "DISMIR_TF_MODELS"},
    )
    assert plain.returncode == 2
    assert "name its module in $DISMIR_TF_MODELS" in plain.stderr
    # A module that cannot be imported is named, in one line.
    bad = _plugin_cli("train.py", ["--model", "toy-mean"], plugin="no_such_mod")
    assert bad.returncode == 2
    assert "DISMIR_TF_MODELS: cannot import 'no_such_mod'" in bad.stderr


def test_tuning_a_plugin_model_prints_a_train_command_that_finds_it(tmp_path):
    # The best trial's command names the plugin module: run from a shell
    # without $DISMIR_TF_MODELS, it trains the tuned model.
    tune = _plugin_cli(
        "tune.py",
        ["--model", "toy-mean", *TINY, "--trials", "1", "--nojit_compile"]
        + ["--study_dir", str(tmp_path / "study")],
    )
    assert tune.returncode == 0, tune.stderr[-3000:]
    command = train_it_command(tune.stdout)
    assert command.startswith("DISMIR_TF_MODELS=tests.toy_plugin python train.py")
    train = subprocess.run(
        ["bash", "-c", command.replace("python ", f"{sys.executable} ", 1)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={k: v for k, v in os.environ.items() if k != "DISMIR_TF_MODELS"},
    )
    assert train.returncode == 0, train.stderr[-3000:]
    config = json.load(open(tmp_path / "study" / "best" / "config.json"))
    assert config["model"]["name"] == "toy-mean"


def test_a_model_that_reads_the_times_must_declare_their_unit(monkeypatch):
    # A model from outside the package that lists history_time among its
    # inputs gets the times in its params' unit, or a clear error.
    import dataclasses as dc

    from dismir_tf import types
    from dismir_tf.errors import ConfigError
    from dismir_tf.model_params import param
    from dismir_tf.models import time_unit

    class Timed(toy_model.ToyMean):
        input_features = (types.HISTORY, types.HISTORY_TIME)

    monkeypatch.setattr(toy_model, "Timed", Timed, raising=False)

    @dc.dataclass(frozen=True)
    class WithUnit:
        time_unit: float = param(3600.0, "seconds per time unit")

    for name, params, want in (("timed-a", WithUnit, 3600.0), ("timed-b", None, None)):
        monkeypatch.setitem(
            model_specs._SPECS,
            name,
            model_specs.ModelSpec(
                name=name,
                factory="tests.toy_model:Timed",
                summary="reads the times",
                partition="never",
                params=params,
            ),
        )
        if want is not None:
            assert time_unit(ModelConfig(name=name)) == want
        else:
            with pytest.raises(ConfigError, match="must declare time_unit"):
                time_unit(ModelConfig(name=name))
    assert time_unit(ModelConfig(name="pimirec")) == 86400.0
    assert time_unit(ModelConfig(name="dnn")) is None
