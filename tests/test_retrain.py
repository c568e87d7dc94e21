"""`python retrain.py RUN` trains a recorded run again from its config.json
into a new directory and compares the metrics with the recorded ones."""

import json
import os
import subprocess
import sys

from dismir_tf import training
from dismir_tf.commands.retrain import check_dir, compare_evaluations, compare_metrics
from tests.helpers import tiny_run_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _retrain(*args):
    return subprocess.run(
        [sys.executable, "retrain.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_retrain_reproduces_a_recorded_run(tmp_path):
    run = str(tmp_path / "run")
    training.run(tiny_run_config(run, model="dnn", max_steps=20, eval_every=10))
    # results/ keeps config.json, state.json and metrics.json only.
    for name in os.listdir(run):
        if name not in ("config.json", "state.json", "metrics.json"):
            subprocess.run(["rm", "-rf", os.path.join(run, name)], check=True)
    new = str(tmp_path / "again")
    proc = _retrain(run, "--output_dir", new)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "identical to the recorded metrics" in proc.stdout, proc.stdout
    old_cfg = json.load(open(os.path.join(run, "config.json")))
    new_cfg = json.load(open(os.path.join(new, "config.json")))
    assert new_cfg["train"].pop("output_dir") == new
    old_cfg["train"].pop("output_dir")
    assert new_cfg == old_cfg
    assert (
        json.load(open(os.path.join(new, "metrics.json")))["test"]
        == json.load(open(os.path.join(run, "metrics.json")))["test"]
    )


def test_compare_metrics_reports_a_difference():
    old = {"valid": {"recall@50": 0.2}, "test": {"recall@50": 0.1}}
    new = {"valid": {"recall@50": 0.2}, "test": {"recall@50": 0.125}}
    lines = compare_metrics(old, new)
    assert "test recall@50: recorded 0.1000, now 0.1250 (+0.0250)" in lines
    assert lines[-1] == "largest difference 0.0250"
    assert compare_metrics(old, old)[-1] == "identical to the recorded metrics"


def test_retrain_refuses_a_directory_without_a_run(tmp_path):
    proc = _retrain(str(tmp_path))
    assert proc.returncode == 2
    assert f"{tmp_path}: no config.json" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = _retrain()
    assert proc.returncode == 2 and "give one run directory" in proc.stderr


def test_retrain_evaluations_checks_the_first_intervals_bit_for_bit(tmp_path):
    """--evaluations 1 trains eval_every steps of a recorded run and finds
    its first evaluation identical; the same check into the same directory
    is refused (a check is never read again); with the recorded figure
    changed in its last digits the new check reports the difference."""
    run = str(tmp_path / "run")
    training.run(tiny_run_config(run, model="dismir", max_steps=20, eval_every=10))
    check = str(tmp_path / "check")
    proc = _retrain(run, "--evaluations", "1", "--output_dir", check)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[-2:] == [
        "step 10: valid metrics identical",
        "identical to the recorded evaluations",
    ], proc.stdout
    with open(os.path.join(check, "state.json")) as f:
        assert [e["step"] for e in json.load(f)["evals"]] == [10]
    with open(os.path.join(check, "metrics.json")) as f:
        assert json.load(f)["test"] is None  # the test users are not read

    proc = _retrain(run, "--evaluations", "1", "--output_dir", check)
    assert proc.returncode == 2
    assert f"{check}: already holds a run" in proc.stderr
    assert "Traceback" not in proc.stderr

    state_path = os.path.join(run, "state.json")
    with open(state_path) as f:
        state = json.load(f)
    state["evals"][0]["valid"]["recall@50"] += 1e-12
    with open(state_path, "w") as f:
        json.dump(state, f)
    proc = _retrain(run, "--evaluations", "1", "--output_dir", str(tmp_path / "b"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "first difference at step 10"


def test_retrain_evaluations_refuses_a_run_without_recorded_evaluations(tmp_path):
    run = str(tmp_path / "run")
    training.run(tiny_run_config(run, model="dnn", max_steps=10, eval_every=10))
    os.remove(os.path.join(run, "state.json"))
    proc = _retrain(run, "--evaluations", "1", "--output_dir", str(tmp_path / "c"))
    assert proc.returncode == 2
    assert f"{run}: no evaluations recorded in state.json" in proc.stderr
    assert not os.path.exists(tmp_path / "c")


def test_the_default_check_directory_is_under_the_ignored_runs():
    assert check_dir("results/fair/beauty/runs/dnn-seed0/", 2) == os.path.join(
        "runs", "retrain-check", "results_fair_beauty_runs_dnn-seed0-eval2"
    )


def test_compare_evaluations_names_the_differing_metric_and_missing_steps():
    old = [{"step": 10, "valid": {"recall@50": 0.25, "hr@50": 0.5}}]
    new = [
        {"step": 10, "valid": {"recall@50": 0.2500001, "hr@50": 0.5}},
        {"step": 20, "valid": {"recall@50": 0.3}},
    ]
    assert compare_evaluations(old, new) == [
        "step 10: recall@50 0.25 -> 0.2500001",
        "step 20: no recorded evaluation",
        "first difference at step 10",
    ]
    assert compare_evaluations([], new)[-1] == "no recorded evaluation to compare with"
    same = [{"step": 10, "valid": {"recall@50": 0.25, "hr@50": 0.5}}]
    assert compare_evaluations(old, same + new[1:])[-1] == (
        "identical at 1 of 2 evaluations (the others not recorded)"
    )
    fewer = [{"step": 10, "valid": {"recall@50": 0.25}}]
    assert compare_evaluations(old, fewer) == [
        "step 10: hr@50 only recorded",
        "first difference at step 10",
    ]
