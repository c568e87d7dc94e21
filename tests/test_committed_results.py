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
DATA_SETS = sorted(d for d in os.listdir(FAIR) if os.path.isdir(os.path.join(FAIR, d)))


def _summarize():
    spec = importlib.util.spec_from_file_location(
        "fair_summarize", os.path.join(FAIR, "summarize.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_fair_data_set_has_its_table():
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


def test_the_documented_search_spaces_are_the_registrys():
    from dismir_tf import model_specs, tuning

    summarize = _summarize()
    with open(os.path.join(ROOT, "docs", "results.md")) as f:
        lines = set(f.read().splitlines())
    for model in summarize.MODELS:
        space = model_specs.get(model).search_space
        row = ", ".join(f"{k} {tuning.describe_range(r)}" for k, r in space.items())
        assert f"| {model} | {row} |" in lines, model
