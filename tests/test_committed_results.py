"""The committed fair tables (results/fair/DATA/*.md) are what
results/fair/summarize.py makes from the committed trial and run files:
a table edited by hand, or a run file changed after the table was made,
fails here (no TensorFlow, no training)."""

from __future__ import annotations

import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAIR = os.path.join(ROOT, "results", "fair")
# A data set is a folder with a table (not __pycache__, which loading
# summarize.py may write here).
DATA_SETS = sorted(
    d for d in os.listdir(FAIR) if os.path.exists(os.path.join(FAIR, d, "table2.md"))
)


def _summarize():
    spec = importlib.util.spec_from_file_location(
        "fair_summarize", os.path.join(FAIR, "summarize.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_three_fair_data_sets_have_their_tables():
    assert {"beauty", "ml-1m-odd", "gowalla-lbsn"} <= set(DATA_SETS)


@pytest.mark.parametrize("data", DATA_SETS)
def test_the_fair_tables_recompute_from_their_run_files(data):
    summarize = _summarize()
    made = {
        "table2": summarize.table(data),
        "ablation": summarize.ablation(data),
        "plugin": summarize.plugin(data),
    }
    for name, text in made.items():
        path = os.path.join(FAIR, data, f"{name}.md")
        if text is None:
            assert not os.path.exists(path), f"{path} has no runs behind it"
            continue
        with open(path) as f:
            assert f.read() == text, f"{path} differs from its run files"


@pytest.mark.parametrize("data", DATA_SETS)
def test_each_studys_trial_records_are_its_journals(data, monkeypatch, tmp_path):
    """trials.json (the tables' source) and trials.csv are what the package
    records from the study's journal and run files: a stale record (as the
    old code's, where an interrupted trial showed its retry's figures)
    fails here."""
    import dataclasses

    from dismir_tf import tuning

    monkeypatch.chdir(ROOT)
    studies = [
        d
        for d in sorted(os.listdir(os.path.join(FAIR, data)))
        if os.path.exists(os.path.join(FAIR, data, d, "study.journal"))
    ]
    assert studies
    for model in studies:
        study_dir = os.path.join("results", "fair", data, model)
        with open(os.path.join(study_dir, "study.journal"), "rb") as f:
            journal = f.read()
        recs = tuning.study_records(study_dir)
        made = [dataclasses.asdict(r) for r in recs]
        kept = [dataclasses.asdict(r) for r in tuning.read_records(study_dir)]
        assert made == kept, f"{study_dir}/trials.json differs from its journal"
        again = tmp_path / data / model
        os.makedirs(again)
        tuning.write_records(str(again), recs)
        with open(os.path.join(study_dir, "trials.csv")) as f:
            assert f.read() == (again / "trials.csv").read_text(), study_dir
        with open(os.path.join(study_dir, "study.journal"), "rb") as f:
            assert f.read() == journal  # read, not changed


def test_study_records_from_another_directory_is_an_error(monkeypatch, tmp_path):
    """The journal names run directories from the repository's root: read
    from elsewhere they are missing, and the records would silently have no
    figures; it is an error naming the file."""
    from dismir_tf import tuning

    monkeypatch.chdir(tmp_path)
    study = os.path.join(FAIR, "gowalla-lbsn", "dnn")
    with pytest.raises(FileNotFoundError, match="state.json: trial 0 of .*run from"):
        tuning.study_records(study)
    monkeypatch.chdir(ROOT)
    assert tuning.study_records(study)[0].valid


def test_seeds_trained_with_other_parameters_than_the_best_trial_are_refused(
    tmp_path, monkeypatch
):
    # A study that gained trials and changed its best after its seeds ran:
    # the table must not print the new parameters beside the old seeds.
    import json
    import shutil

    summarize = _summarize()
    data, model = "gowalla-lbsn", "dnn"
    for part in [model] + [f"runs/{model}-seed{s}" for s in range(3)]:
        for name in ("trials.json", "config.json", "metrics.json"):
            src = os.path.join(FAIR, data, part, name)
            if os.path.exists(src):
                os.makedirs(tmp_path / data / part, exist_ok=True)
                shutil.copy(src, tmp_path / data / part / name)
    monkeypatch.setattr(summarize, "HERE", str(tmp_path))
    assert "| dnn | 12 (8) |" in summarize.table(data)  # as committed
    path = tmp_path / data / "runs" / f"{model}-seed1" / "config.json"
    config = json.loads(path.read_text())
    config["train"]["learning_rate"] *= 1.001
    path.write_text(json.dumps(config))
    with pytest.raises(SystemExit, match="dnn-seed1 was trained with learning_rate"):
        summarize.table(data)


def test_the_documented_search_spaces_are_the_registrys():
    from dismir_tf import model_specs, tuning

    summarize = _summarize()
    with open(os.path.join(ROOT, "docs", "results.md")) as f:
        lines = set(f.read().splitlines())
    for model in summarize.MODELS:
        space = model_specs.get(model).search_space
        row = ", ".join(f"{k} {tuning.describe_range(r)}" for k, r in space.items())
        assert f"| {model} | {row} |" in lines, model
