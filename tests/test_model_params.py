"""Each model's own settings live in its spec's params (the house issue):
the DisMIR family's capsule, REMI's and UMI's beta, the MIR-RV/MIR-BF
weights; shared flags act on each model that declares them, and every
recorded config.json still loads with the values it was trained with."""

import dataclasses
import glob
import json
import os
import subprocess
import sys

import pytest

from dismir_tf import model_params, model_specs
from dismir_tf.config import ModelConfig, RunConfig
from dismir_tf.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_PROBE = """
import json, sys
import dismir_tf
from absl import flags
from dismir_tf import cli
from dismir_tf.errors import ConfigError
cli.define_data_flags(); cli.define_model_flags(); cli.define_train_flags()
flags.FLAGS(sys.argv)
data = cli.data_config_from_flags()
out = {}
for grid in (False, True):
    for m in ("dismir", "mir-rv", "mir-bf", "remi", "umi", "sasrec"):
        try:
            p = cli.model_config_from_flags(data, model=m, grid=grid).params
        except ConfigError as e:
            p = "refused: " + str(e)
        out[f"{m} {'grid' if grid else 'train'}"] = p
print(json.dumps(out))
"""


def _probe(*flags):
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, TF_USE_LEGACY_KERAS="1"),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_shared_flags_reach_each_model_that_declares_them():
    got = _probe(
        "--routing_temperature",
        "0.1",
        "--remi_beta",
        "2",
        "--routing_variance_weight",
        "5",
        "--backward_flow_weight",
        "0.3",
    )
    # compare.py grids: each model takes the flags it declares.
    assert got["dismir grid"]["routing_temperature"] == 0.1
    assert got["dismir grid"]["remi_beta"] == 2.0
    assert "routing_variance_weight" not in got["dismir grid"]
    assert got["mir-rv grid"]["routing_variance_weight"] == 5.0
    assert got["mir-rv grid"]["routing_temperature"] == 0.1
    assert got["mir-bf grid"]["backward_flow_weight"] == 0.3
    assert got["remi grid"] == {"remi_beta": 2.0, "routing_variance_weight": 5.0}
    assert got["umi grid"] == {"remi_beta": 2.0}
    assert got["sasrec grid"] == {"blocks": 2, "heads": 1, "dropout": 0.5}
    # train.py: a flag the model does not declare is refused, with the
    # models it acts on.
    assert got["remi train"].startswith(
        "refused: --routing_temperature "
        "acts only on dismir, mir, mir-rv, "
        "mir-bf, dismir-wo-dpi"
    )
    assert "--backward_flow_weight acts only on mir-bf" in got["remi train"]
    assert got["sasrec train"].endswith("(none acts on 'sasrec'); remove them")


def test_one_flag_per_shared_setting_and_conflicts_are_refused():
    owners = model_specs.param_flag_owners()
    assert owners["remi_beta"][1] == (
        "remi",
        "umi",
        "dismir",
        "mir",
        "mir-rv",
        "mir-bf",
        "dismir-wo-dpi",
    )
    assert owners["routing_variance_weight"][1] == ("remi", "mir-rv")
    assert owners["readout"][1] == (
        "dismir",
        "mir",
        "mir-rv",
        "mir-bf",
        "dismir-wo-dpi",
    )

    @dataclasses.dataclass(frozen=True)
    class Clash:
        readout: str = model_params.param("max", "another readout", flag="readout")

    saved = dict(model_specs._SPECS)
    try:
        model_specs.register(
            model_specs.ModelSpec(
                name="clash",
                factory="dismir_tf.models.dnn:DNN",
                summary="a clash",
                partition="never",
                params=Clash,
            )
        )
        with pytest.raises(
            ValueError,
            match="--readout is declared by dismir and clash with different defaults",
        ):
            model_specs.param_flag_owners()
    finally:
        model_specs._SPECS.clear()
        model_specs._SPECS.update(saved)


def test_settings_named_as_flags_build_a_config():
    cfg = ModelConfig.from_settings(
        "mir-rv", num_interests=3, routing_temperature=0.1, routing_variance_weight=7.0
    )
    assert cfg.num_interests == 3
    assert cfg.own.routing_temperature == 0.1
    assert cfg.own.routing_variance_weight == 7.0
    # Carried to another model under the same flag, dropped otherwise.
    remi = cfg.with_model("remi")
    assert remi.params == {"remi_beta": 1.0, "routing_variance_weight": 7.0}
    assert cfg.with_model("mir").own.routing_temperature == 0.1
    with pytest.raises(
        ConfigError,
        match="sasrec_blocks: neither a model setting nor a parameter of 'dnn' "
        r"\(sasrec_blocks acts on sasrec\)",
    ):
        ModelConfig.from_settings("dnn", sasrec_blocks=3)
    with pytest.raises(ConfigError, match="remi_beta must be finite"):
        ModelConfig.from_settings("remi", remi_beta=-1.0)


def test_recorded_configs_load_with_the_values_they_were_trained_with():
    # Every config.json under results/ was written with the flat fields;
    # each loads, and a recorded own setting lands in its model's params.
    paths = sorted(
        glob.glob(os.path.join(ROOT, "results", "**", "config.json"), recursive=True)
    )
    assert len(paths) > 100
    checked = 0
    for path in paths:
        raw = json.load(open(path))
        model = RunConfig.from_dict(raw).model
        flat = raw["model"]
        own = model_specs.get(model.name).param_flags()
        for flag, field in own.items():
            if flag in flat:
                assert model.params[field.name] == flat[flag], (path, flag)
                checked += 1
        if model_specs.get(model.name).capsule:
            assert model.params["readout"] in ("", *model_params.READOUTS)
    assert checked > 500
    # The tuned REMI of the fair tables keeps its tuned beta and weight.
    remi = RunConfig.from_dict(
        json.load(
            open(os.path.join(ROOT, "results/fair/beauty/runs/remi-seed0/config.json"))
        )
    ).model
    assert remi.params == {"remi_beta": 0.415151, "routing_variance_weight": 822.551}


@pytest.mark.parametrize("name", ["mir-rv", "remi"])
def test_a_layer_config_of_an_older_version_rebuilds_the_model(name):
    # A SavedModel's Keras config written before params held the model's
    # own settings (flat fields) rebuilds the same model.
    from dismir_tf.models import create_model, resolve_config

    cfg = resolve_config(
        ModelConfig.from_settings(
            name,
            embedding_dim=8,
            num_interests=2,
            max_len=5,
            routing_variance_weight=7.0,
        )
    )
    model = create_model(20, cfg, seed=0)
    layer_config = model.get_config()
    flat = {k: v for k, v in layer_config["config"].items() if k != "params"}
    own = model_specs.get(name).param_flags()
    flat.update({flag: cfg.params[f.name] for flag, f in own.items()})
    rebuilt = type(model).from_config(dict(layer_config, config=flat))
    assert rebuilt.model_config == cfg
    assert rebuilt.model_config.own.routing_variance_weight == 7.0


def test_params_and_flag_named_settings_merge_and_partial_dicts_keep_defaults():
    cfg = ModelConfig.from_settings(
        "dismir", params={"readout": "fused"}, routing_temperature=0.1
    )
    assert (cfg.own.readout, cfg.own.routing_temperature) == ("fused", 0.1)
    again = cfg.with_model("dismir", params={"readout": "max"}, routing_init="random")
    assert (again.own.readout, again.own.routing_init) == ("max", "random")
    # A dict with params (this version's format), even a partial one, is
    # not read as the capsule of the versions before the options.
    partial = RunConfig.from_dict(
        {"model": {"name": "dismir", "params": {"routing_temperature": 0.1}}}
    ).model
    from dismir_tf.capsule_config import (
        CAPSULE_PRESETS,
        DEFAULT_CAPSULE,
        clear_capsule_options,
    )
    from dismir_tf.models import resolve_config

    resolved = resolve_config(partial).params
    assert resolved["routing_temperature"] == 0.1
    assert all(
        resolved[k] == v
        for k, v in DEFAULT_CAPSULE.items()
        if k != "routing_temperature"
    )
    # Clearing the capsule keeps the family's other settings.
    rv = ModelConfig.from_settings(
        "mir-rv", routing_variance_weight=7.0, remi_beta=3.0, readout="fused"
    )
    cleared = clear_capsule_options(rv)
    assert cleared.params["readout"] == ""
    assert cleared.with_model("remi").params == {
        "remi_beta": 3.0,
        "routing_variance_weight": 7.0,
    }
    # The presets the config accepts are the ones resolve_capsule knows.
    assert model_params.CAPSULE_PRESETS == tuple(CAPSULE_PRESETS)


def test_the_partition_weight_help_names_every_model_that_refuses_it():
    import re

    from dismir_tf import config

    listed = re.search(
        r"defined by lambda 0: ([a-z0-9, -]+)\)", config._PARTITION_WEIGHT_HELP
    )
    assert listed is not None
    never = {
        s.name
        for s in model_specs.specs()
        if s.partition == "never" and s.name in model_specs.BUILTIN_NAMES
    }
    assert set(listed.group(1).split(", ")) == never
