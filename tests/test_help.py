"""Every entry point's -h / --help / --helpfull prints its flags with their
defaults and exits 0 (they used to fail with 'Unknown command line flag')."""

import os
import subprocess
import sys

import pytest

from tests.helpers import run_python

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENTRY_POINTS = {
    "train.py": [sys.executable, "train.py"],
    "evaluate.py": [sys.executable, "evaluate.py"],
    "compare.py": [sys.executable, "compare.py"],
    "export.py": [sys.executable, "export.py"],
    "analyze": [sys.executable, "-m", "dismir_tf.analysis"],
    "tune.py": [sys.executable, "tune.py"],
    "retrain.py": [sys.executable, "retrain.py"],
    "data": [sys.executable, "-m", "dismir_tf.data"],
}


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
@pytest.mark.parametrize("arg", ["--help", "-h", "--helpfull"])
def test_help_lists_flags_with_defaults(name, arg):
    proc = subprocess.run(
        ENTRY_POINTS[name] + [arg],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Unknown command line flag" not in proc.stderr
    out = proc.stdout
    assert "Flags:" in out
    # A flag every entry point shares, with its default.
    assert (
        "--batch_size" in out
        or "--run_dir" in out
        or "--dataset_file" in out
        or "--output_dir" in out
    ), out[:2000]
    assert "(default:" in out
    # Only this project's flags (not TensorFlow's TPU / tensor tracer
    # ones), and no file path of this machine as a section header.
    assert "--tpu" not in out and "--tt_" not in out and "--op_conversion" not in out
    assert not [
        line
        for line in out.splitlines()
        if line.startswith("/") or line.endswith(".py:")
    ]


DEFAULTS_SCRIPT = r"""
import dataclasses, json, re, sys
sys.argv = ["train.py"]
import dismir_tf.commands.train  # noqa: F401  (defines the flags)
from absl import flags
from dismir_tf import cli
from dismir_tf.models import resolve_config
flags.FLAGS(["train.py"])
cfg = cli.run_config_from_flags()
model = resolve_config(cfg.model)
resolved = {}
for part in (model, cfg.train, cfg.data, cfg.data.synthetic):
    for f in dataclasses.fields(part):
        resolved.setdefault(f.name, getattr(part, f.name))
from dismir_tf import model_specs
own = model_specs.get(model.name).param_flags()
for flag, (field, _) in model_specs.param_flag_owners().items():
    # The default model's resolved value, else what --model NAME gives.
    resolved[flag] = (model.params[own[flag].name] if flag in own
                      else field.default)
for k, v in (("synthetic_users", "num_users"), ("synthetic_items",
             "num_items"), ("synthetic_groups", "num_groups")):
    resolved[k] = resolved[v]
out = {}
for name in sorted(cli.project_flags()):
    fl = flags.FLAGS[name]
    m = re.search(r"(?:\(|; )default:? ([^\s;,)]+)", fl.help)
    out[name] = {"absl": fl.default, "help": m.group(1) if m else None,
                 "resolved": resolved.get(name, "?")}
print(json.dumps(out, default=str))
"""


def _same(text, value):
    if text == "none":  # no value, or the value named 'none'
        return value in ("", None, 0, "none")
    if isinstance(value, bool):
        return text == str(value).lower()
    if isinstance(value, (int, float)):
        try:
            return float(text) == float(value)
        except ValueError:
            return False
    return text == str(value)


def test_every_flags_printed_default_is_the_resolved_one():
    # `python train.py` with no flag: DisMIR on the synthetic set.  Every
    # flag shows a default (absl's own, or "default: X" in its help), and
    # it is what the run resolves to.
    import json

    env = dict(os.environ)
    env.pop("TF_USE_LEGACY_KERAS", None)
    env["TF_USE_LEGACY_KERAS"] = "1"
    proc = subprocess.run(
        [sys.executable, "-c", DEFAULTS_SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    flags = json.loads(proc.stdout.strip().splitlines()[-1])
    wrong = {}
    for name, f in flags.items():
        if f["resolved"] == "?":  # not a configuration field
            continue
        if name == "output_dir":  # a template of the run's names
            f["help"] = (
                f["help"]
                .replace("<dataset>", "synthetic")
                .replace("<model>", "dismir")
                .replace("<seed>", "0")
            )
        if f["help"] is not None:
            if not _same(f["help"], f["resolved"]):
                wrong[name] = f
        elif f["absl"] is None:
            wrong[name] = f  # no default shown at all
        elif not _same(
            str(f["absl"]).lower() if isinstance(f["absl"], bool) else str(f["absl"]),
            f["resolved"],
        ):
            wrong[name] = f
    assert not wrong, "\n".join(f"{k}: {v}" for k, v in wrong.items())


def test_every_model_setting_is_a_flag_generated_from_its_field():
    """ModelConfig's settings carry their flag's help and type
    (config.setting); cli defines --<field> from them, so a new setting is
    a new field and nothing in cli.py."""
    import dataclasses

    from dismir_tf import cli
    from dismir_tf.config import ModelConfig

    fields = {f.name: f for f in dataclasses.fields(ModelConfig)}
    assert set(cli.MODEL_FLAG_NAMES) == set(fields) - {"name", "params"}
    proc = subprocess.run(
        [sys.executable, "train.py", "--helpfull"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    flat = " ".join(proc.stdout.split())
    for name in cli.MODEL_FLAG_NAMES:
        help_text = " ".join(fields[name].metadata["help"].split())
        assert f"--{name}:" in flat or f"--[no]{name}:" in flat, name
        assert help_text[:40] in flat, name


@pytest.mark.parametrize(
    "name,module", [("tune.py", "tune"), ("compare.py", "compare")]
)
def test_help_leaves_out_the_shared_flags_the_entry_point_refuses(name, module):
    """tune.py and compare.py share train.py's flags but refuse some of them
    (cli.refuse_inactive_flags); their help leaves those out."""
    import re

    proc = run_python(*ENTRY_POINTS[name][1:], "--help", timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    listed = set(re.findall(r"^  --(?:\[no\])?([\w-]+):", proc.stdout, re.M))
    ignored = f"import dismir_tf.commands.{module} as m; print(' '.join(m.IGNORED))"
    refused = set(run_python("-c", ignored, timeout=120).stdout.split())
    assert refused and "output_dir" in refused
    assert not listed & refused, listed & refused
    # The shared flags that it takes are still there.
    assert {"batch_size", "dataset_file", "learning_rate"} <= listed


def test_the_model_flag_names_every_registered_model():
    from dismir_tf import model_specs

    proc = run_python("train.py", "--help", timeout=120)
    flat = " ".join(proc.stdout.split())
    assert f"--model: Model name: {', '.join(model_specs.names())}." in flat
