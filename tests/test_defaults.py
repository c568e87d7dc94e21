"""The defaults a user gets are the ones the results report.

* Each model's settings come from its spec (dismir_tf/model_specs.py);
  a named data set adds only its shape (F, max_len, C).
* The README's table commands (results/tables.sh, no lambda flag) resolve
  to exactly the configs of the committed runs in results/DATA/runs: the
  tables are what those commands give.
* A flag a model ignores is refused, not silently changed.
* The training header names the resolved settings.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex

import pytest

from dismir_tf import model_specs
from dismir_tf.config import ModelConfig, RunConfig, config_differences
from dismir_tf.errors import ConfigError
from tests.helpers import run_python

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


_python = run_python


def test_every_spec_is_consistent():
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    for spec in model_specs.specs():
        assert set(spec.defaults) <= fields, spec.name
        own = spec.param_flags()  # its params, by flag name
        assert set(spec.search_space) <= fields | {"learning_rate"} | set(own), (
            spec.name
        )
        # A spec's own defaults lie inside its search space.
        # (resolved: the DisMIR family's '' capsule options are its defaults)
        from dismir_tf.models import resolve_config

        config = resolve_config(ModelConfig(name=spec.name))
        for field, rng in spec.search_space.items():
            if field in fields and field in spec.defaults:
                assert rng.contains(getattr(config, field)), (spec.name, field)
            if field in own:
                assert rng.contains(config.params[own[field].name]), (spec.name, field)
        # lambda: the spec's, and only the DisMIR models take it by default.
        assert config.partition_weight == spec.default_partition_weight
        assert (spec.partition == "default") == (config.partition_weight > 0), spec.name


def test_dismir_takes_the_evidence_lambda_and_mir_is_it_without():
    assert ModelConfig().partition_weight == model_specs.DISMIR_PARTITION_WEIGHT == 1.0
    assert ModelConfig(name="dismir-wo-dpi").partition_weight == 1.0
    assert ModelConfig(name="mir").partition_weight == 0.0
    # An explicit 0 is MIR's own value, accepted (old config.json files).
    assert ModelConfig(name="mir", partition_weight=0.0).partition_weight == 0.0
    with pytest.raises(ConfigError, match="does not act on 'mir'.*use --model dismir"):
        ModelConfig(name="mir", partition_weight=0.5)
    # with_model carries lambda only where the model takes it.
    cfg = ModelConfig(partition_weight=0.3)
    assert cfg.with_model("mind").partition_weight == 0.3
    assert cfg.with_model("gru4rec").partition_weight == 0.0


_PROBE = """
import json, sys
import dismir_tf
from absl import flags
from dismir_tf import cli
from dismir_tf.models import resolve_config
cli.define_data_flags(); cli.define_model_flags(); cli.define_train_flags()
flags.FLAGS(sys.argv)
c = cli.run_config_from_flags()
c = c.__class__(data=c.data, model=resolve_config(c.model), train=c.train)
print(json.dumps(c.to_dict()))
"""


def _resolved(*flags_):
    proc = _python("-c", _PROBE, *flags_)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _table_flags() -> dict[str, list[str]]:
    """results/tables.sh's per-data-set flags and COMMON (without the
    compare.py-only --seeds)."""
    with open(os.path.join(ROOT, "results", "tables.sh")) as f:
        text = f.read()
    common = shlex.split(re.search(r'^COMMON="([^"]*)"', text, re.M)[1])
    i = common.index("--seeds")
    del common[i : i + 2]
    out = {}
    for name, flags_ in re.findall(r'^  \[([\w-]+)\]="([^"]*)"$', text, re.M):
        out[name] = shlex.split(flags_) + common
    return out


@pytest.mark.parametrize("data", ["beauty", "ml-1m-odd", "gowalla-lbsn"])
def test_the_table_commands_give_the_table_runs(data):
    flags_ = _table_flags()[data]
    assert not any("partition_weight" in f for f in flags_), (
        "the table rows must be what the shipped defaults give"
    )
    for model in ("dismir", "mir"):
        path = os.path.join(
            ROOT, "results", data, "runs", f"{model}-seed0", "config.json"
        )
        with open(path) as f:
            recorded = json.load(f)
        got = _resolved(
            *flags_,
            "--model",
            model,
            "--seed",
            "0",
            "--output_dir",
            recorded["train"]["output_dir"],
        )
        # Read as a resumed run reads it (RunConfig.from_dict: fields added
        # since count as their defaults, settings moved into a model's
        # params follow it; config.config_differences).
        recorded = RunConfig.from_dict(recorded).to_dict()
        assert config_differences(recorded, got) == [], (data, model)


def test_the_named_data_sets_set_their_shape_and_dismir_its_lambda():
    expected = {
        "gowalla": (4, 40, 10),
        "retailrocket": (8, 20, 10),
        "books": (6, 20, 50),
        "synthetic": (4, 20, 10),
    }
    for name, (f, max_len, c) in expected.items():
        model = _resolved("--dataset", name)["model"]
        assert (
            model["num_interests"],
            model["max_len"],
            model["hard_negative_candidates"],
        ) == (f, max_len, c), name
        assert model["partition_weight"] == 1.0, name
    # A flag still wins over the data set's shape.
    assert (
        _resolved("--dataset", "books", "--num_interests", "3")["model"][
            "num_interests"
        ]
        == 3
    )


@pytest.mark.parametrize("model", ["mir", "gru4rec", "dnn", "mir-rv"])
def test_a_partition_weight_the_model_ignores_is_refused(model, tmp_path):
    out = tmp_path / "run"
    proc = _python(
        "train.py",
        "--model",
        model,
        "--partition_weight",
        "0.5",
        "--output_dir",
        str(out),
        "--max_steps",
        "10",
        "--eval_every",
        "10",
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert lines[-1].startswith(
        f"error: --partition_weight does not act on '{model}'"
    ), lines[-3:]
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_compare_grid_gives_the_flag_to_dismir_only(tmp_path):
    # --partition_weight in a table2 grid: DisMIR's lambda; MIR is not
    # refused there (it runs at 0, as the ablation table needs).
    proc = _python(
        "compare.py",
        "--mode",
        "table2",
        "--models",
        "mir,dismir",
        "--partition_weight",
        "0.5",
        "--synthetic_users",
        "200",
        "--synthetic_items",
        "100",
        "--synthetic_groups",
        "5",
        "--max_steps",
        "10",
        "--eval_every",
        "10",
        "--embedding_dim",
        "8",
        "--max_len",
        "8",
        "--out_dir",
        str(tmp_path / "grid"),
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lam = {}
    for model in ("mir", "dismir"):
        with open(tmp_path / "grid" / "runs" / f"{model}-seed0" / "config.json") as f:
            lam[model] = json.load(f)["model"]["partition_weight"]
    assert lam == {"mir": 0.0, "dismir": 0.5}


def test_the_training_header_names_the_resolved_settings(tmp_path):
    tiny = "--synthetic_users 200 --synthetic_items 100 --synthetic_groups 5"
    tiny += " --max_steps 10 --eval_every 10 --embedding_dim 8 --max_len 8"
    proc = _python("train.py", *tiny.split(), "--output_dir", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    header = [l for l in proc.stderr.splitlines() if l.startswith("model settings:")]
    assert header == [
        "model settings: lambda 1 (dismir's default, "
        "dismir_tf/model_specs.py), F 4, max_len 8, d 8, C 10, capsule "
        "cosine routing (T 0.02, prototype init, softmax over interests), "
        "W shared_from_identity, recency learned, readout max"
    ], header
    mind = ["--model", "mind", "--partition_weight", "0.3"]
    proc = _python(
        "train.py", *mind, *tiny.split(), "--output_dir", str(tmp_path / "mind")
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (
        "model settings: lambda 0.3 (--partition_weight), F 4, max_len 8, d 8"
    ) in proc.stderr


def test_the_header_gives_f_only_to_multi_interest_models():
    # A single-interest model ignores num_interests: its header says no F.
    from dismir_tf.config import ModelConfig
    from dismir_tf.models import describe_settings, resolve_config

    def header(name):
        return describe_settings(resolve_config(ModelConfig.from_settings(name=name)))

    for name in ("dnn", "gru4rec", "sasrec"):
        assert " F " not in header(name), header(name)
    for name in ("mind", "comirec-sa", "remi", "dismir"):
        assert ", F 4," in header(name), header(name)
