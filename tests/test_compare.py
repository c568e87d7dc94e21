"""Comparison tables (Tables 2, 3, 5) on fake metrics, and the resume."""

import dataclasses
import os

import numpy as np
import pytest
from scipy import stats

from dismir_tf import compare
from dismir_tf.config import ModelConfig
from dismir_tf.errors import ConfigError
from dismir_tf.io_utils import atomic_write_json
from tests.helpers import run_python, tiny_run_config


def _metrics(base: float) -> dict:
    """A fake metrics.json: every metric = base + its position / 100."""
    return {"test": {m: base + i / 100 for i, m in enumerate(compare.METRIC_ORDER)}}


# Three seeds per model; dismir is best, mind the best baseline, dnn worst.
RESULTS = {
    "dnn": [_metrics(v) for v in (0.10, 0.11, 0.12)],
    "mind": [_metrics(v) for v in (0.20, 0.22, 0.21)],
    "dismir": [_metrics(v) for v in (0.25, 0.26, 0.28)],
}


def _cell(label, metric="recall@20"):
    values = [r["test"][metric] for r in RESULTS[label]]
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"


def test_summarize_best_baseline_improvement_and_scipy_t_test():
    table = compare.summarize(RESULTS, proposed="dismir")
    for m in compare.METRIC_ORDER:
        assert table.best(m) == "dismir"
        assert table.best_baseline[m] == "mind"
        a = [r["test"][m] for r in RESULTS["dismir"]]
        b = [r["test"][m] for r in RESULTS["mind"]]
        assert table.improvement[m] == pytest.approx(
            (np.mean(a) - np.mean(b)) / np.mean(b)
        )
        assert table.p_value[m] == pytest.approx(stats.ttest_rel(a, b).pvalue)


def test_table2_shape_metrics_as_rows_models_as_columns():
    table = compare.summarize(RESULTS, proposed="dismir")
    md = compare.to_markdown(table, "T2")
    lines = [line for line in md.splitlines() if line.startswith("|")]
    assert lines[0] == ("| metric | dnn | mind | dismir | improve. | p (paired t) |")
    assert len(lines) == 2 + len(compare.METRIC_ORDER)
    row = lines[2].split(" | ")
    assert row[0] == "| R@20"
    assert row[1] == _cell("dnn")  # plain
    assert row[2] == f"<u>{_cell('mind')}</u>"  # best baseline
    assert row[3] == f"**{_cell('dismir')}**"  # best
    imp = table.improvement["recall@20"]
    assert row[4] == f"{100 * imp:+.2f}%"
    assert row[5].rstrip(" |") == f"{table.p_value['recall@20']:.3g}"


def test_ablation_shape_methods_as_rows_metrics_as_columns():
    table = compare.summarize(RESULTS, proposed="dismir")
    md = compare.to_markdown_ablation(table, "T3")
    lines = [line for line in md.splitlines() if line.startswith("|")]
    assert lines[0] == "| method | R@20 | HR@20 | ND@20 | R@50 | HR@50 | ND@50 |"
    labels = [line.split(" | ")[0][2:] for line in lines[2:]]
    assert labels == ["dnn", "mind", "dismir", "improve.", "p (paired t)"]
    mind = lines[3].split(" | ")
    assert mind[1] == f"<u>{_cell('mind')}</u>"
    dismir = lines[4].split(" | ")
    assert dismir[1] == f"**{_cell('dismir')}**"
    assert lines[2].count("**") == 0 and lines[2].count("<u>") == 0
    p = lines[6].split(" | ")
    assert p[1] == f"{table.p_value['recall@20']:.3g}"
    imp = lines[5].split(" | ")
    assert imp[4] == f"{100 * table.improvement['recall@50']:+.2f}%"


def test_plugin_shape_each_backbone_with_and_without_the_task():
    variants = compare.plugin_variants(["mind", "remi", "dismir"], 0.1)
    # A baseline's "without" run is its plain (Table 2) run: same slug.
    assert [(v.label, v.model, v.overrides) for v in variants] == [
        ("mind", "mind", ()),
        ("mind + partition", "mind", (("partition_weight", 0.1),)),
        ("remi", "remi", ()),
        ("remi + partition", "remi", (("partition_weight", 0.1),)),
        ("dismir", "dismir", (("partition_weight", 0.0),)),
        ("dismir + partition", "dismir", (("partition_weight", 0.1),)),
    ]
    assert [v.slug for v in variants[:2]] == ["mind", "mind-partition_weight0.1"]
    assert len({v.slug for v in variants}) == 6
    with pytest.raises(ValueError, match="partition weight"):
        compare.plugin_variants(["mind"], 0.0)

    results = {
        "mind": [_metrics(v) for v in (0.20, 0.21, 0.22)],
        "mind + partition": [_metrics(v) for v in (0.22, 0.24, 0.23)],
        "remi": [_metrics(v) for v in (0.30, 0.31, 0.33)],
        "remi + partition": [_metrics(v) for v in (0.29, 0.30, 0.31)],
    }
    plugin = compare.summarize_plugin(results, ["mind", "remi"])
    md = compare.plugin_to_markdown(plugin)
    lines = [line for line in md.splitlines() if line.startswith("|")]
    assert lines[0] == (
        "| metric | mind + partition | mind | improve. | p (paired t) | "
        "remi + partition | remi | improve. | p (paired t) |"
    )
    row = lines[2].split(" | ")
    assert row[1].startswith("**") and not row[2].startswith("**")
    assert not row[5].startswith("**") and row[6].startswith("**")
    a = [r["test"]["recall@20"] for r in results["mind + partition"]]
    b = [r["test"]["recall@20"] for r in results["mind"]]
    assert row[3] == f"{100 * (np.mean(a) - np.mean(b)) / np.mean(b):+.2f}%"
    assert row[4] == f"{stats.ttest_rel(a, b).pvalue:.3g}"
    csv_lines = compare.plugin_to_csv(plugin).splitlines()
    assert csv_lines[0].startswith("model,metric")
    assert len(csv_lines) == 1 + 4 * len(compare.METRIC_ORDER)


def test_single_seed_has_no_p_value():
    one = {k: v[:1] for k, v in RESULTS.items()}
    table = compare.summarize(one, proposed="dismir")
    assert np.isnan(table.p_value["recall@20"])
    md = compare.to_markdown(table)
    # No test to run: 'n/a', not 'nan' (it read as a bug).
    assert "nan" not in md and md.count("| n/a |") == len(compare.METRIC_ORDER)
    # One seed has no spread: the mean alone, not '± 0.0000'.
    assert "±" not in md.split("\n\n")[0] and "One seed, test users." in md
    assert "±" not in compare.to_markdown_ablation(table).split("\n\n")[0]


def test_a_table_of_the_proposed_model_alone_has_no_improvement_columns():
    """One screening variant's table (only DisMIR) has no baseline: no
    'improve.' or 'p' column, and no 'nan' cell (it printed '+nan%')."""
    alone = {"dismir": RESULTS["dismir"]}
    md = compare.to_markdown(compare.summarize(alone, proposed="dismir"))
    lines = [line for line in md.splitlines() if line.startswith("|")]
    assert lines[0] == "| metric | dismir |"
    assert all(line.count("|") == 3 for line in lines)
    assert "nan" not in md and "improve." not in md


def test_write_table_writes_markdown_and_csv(tmp_path):
    table = compare.summarize(RESULTS, proposed="dismir")
    md, cs = compare.write_table(
        table, str(tmp_path), "t3", markdown=compare.to_markdown_ablation
    )
    assert open(md).read().startswith("| method |")
    assert open(cs).read().startswith("model,metric")


def test_run_grid_resumes_and_uses_per_model_base_configs(tmp_path):
    base = tiny_run_config(
        str(tmp_path / "unused"), model="dismir", partition_weight=0.3
    )
    variants = [
        compare.Variant("dnn", "dnn"),
        compare.Variant("mind", "mind"),
        *compare.plugin_variants(["mind"], 0.2)[1:],
    ]
    calls = []

    def train(config):
        calls.append(config)
        metrics = _metrics(0.1 * len(calls))
        os.makedirs(config.train.output_dir, exist_ok=True)
        atomic_write_json(
            os.path.join(config.train.output_dir, "metrics.json"), metrics
        )
        return metrics

    def model_base(name):
        # As the CLI: only DisMIR takes the partition task by default.
        return base.model.with_model(name, partition_weight=0.0)

    out = str(tmp_path / "grid")
    first = compare.run_grid(
        base, variants, [0, 1], out, train, log=lambda m: None, model_base=model_base
    )
    assert len(calls) == 6
    by_dir = {os.path.basename(c.train.output_dir): c for c in calls}
    assert set(by_dir) == {
        "dnn-seed0",
        "dnn-seed1",
        "mind-seed0",
        "mind-seed1",
        "mind-partition_weight0.2-seed0",
        "mind-partition_weight0.2-seed1",
    }
    assert by_dir["mind-seed0"].model.partition_weight == 0.0
    assert by_dir["mind-partition_weight0.2-seed1"].model.partition_weight == 0.2
    assert by_dir["dnn-seed1"].train.seed == 1
    assert isinstance(by_dir["dnn-seed0"].model, ModelConfig)

    logs = []
    again = compare.run_grid(
        base, variants, [0, 1], out, train, log=logs.append, model_base=model_base
    )
    assert len(calls) == 6  # nothing trained again
    assert again == first
    assert all("done before" in line for line in logs)


def test_tables_only_reads_runs_of_older_defaults_and_trains_nothing(tmp_path):
    """A finished run whose config.json differs from the grid's is refused
    when the grid would reuse it; --tables_only reads it all the same, and
    refuses a run that has not finished instead of training it."""
    out = str(tmp_path / "grid")
    base = tiny_run_config(str(tmp_path / "unused"), model="dnn")
    variants = [compare.Variant("dnn", "dnn")]
    for seed, lr in ((0, 0.5), (1, 0.5)):
        old = dataclasses.replace(
            base,
            train=dataclasses.replace(
                base.train,
                seed=seed,
                learning_rate=lr,
                output_dir=compare.run_dir_of(out, variants[0], seed),
            ),
        )
        os.makedirs(old.train.output_dir)
        atomic_write_json(
            os.path.join(old.train.output_dir, "config.json"), old.to_dict()
        )
        atomic_write_json(
            os.path.join(old.train.output_dir, "metrics.json"), _metrics(0.2 + seed)
        )

    def train(config):
        raise AssertionError("trained " + config.train.output_dir)

    with pytest.raises(ConfigError, match="different configuration.*learning_rate"):
        compare.run_grid(base, variants, [0, 1], out, train, log=lambda m: None)
    notes: list[str] = []
    got = compare.run_grid(
        base, variants, [0, 1], out, train, log=notes.append, tables_only=True
    )
    assert (
        sum("another configuration" in n and "learning_rate" in n for n in notes) == 2
    )
    assert [r["test"]["recall@50"] for r in got["dnn"]] == [
        _metrics(0.2)["test"]["recall@50"],
        _metrics(1.2)["test"]["recall@50"],
    ]
    with pytest.raises(ConfigError, match="dnn-seed2 has not finished"):
        compare.run_grid(
            base, variants, [0, 1, 2], out, train, log=lambda m: None, tables_only=True
        )


def test_run_grid_without_model_base_keeps_the_base_model():
    base = tiny_run_config("unused", model="dismir", partition_weight=0.3)
    seen = []

    def train(config):
        seen.append(config.model)
        return _metrics(0.1)

    compare.run_grid(
        base,
        [compare.Variant("mind", "mind")],
        [0],
        "/nonexistent-dir-for-test",
        train,
        log=lambda m: None,
    )
    assert seen[0].name == "mind" and seen[0].partition_weight == 0.3


# ------------------------------------------------------------ entry points
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_FLAG_PROBE = """
import json, sys
import dismir_tf
from absl import flags
from dismir_tf import cli
cli.define_data_flags(); cli.define_model_flags(); cli.define_train_flags()
flags.FLAGS(sys.argv)
data = cli.data_config_from_flags()
from dismir_tf.errors import ConfigError
def lam(m, grid):
    try:
        return cli.model_config_from_flags(data, model=m,
                                           grid=grid).partition_weight
    except ConfigError:
        return "refused"
models = ("dismir", "dismir-wo-dpi", "mir", "mind", "comirec-sa", "remi",
          "gru4rec")
print(json.dumps({g: {m: lam(m, g == "grid") for m in models}
                  for g in ("train", "grid")}))
"""


def _python(*args):
    return run_python(*args, timeout=600)


_OFF = {"mir": 0.0, "mind": 0.0, "comirec-sa": 0.0, "remi": 0.0, "gru4rec": 0.0}


@pytest.mark.parametrize(
    "extra, expected",
    [
        # No flag: DisMIR's lambda is its spec's, whatever the data set (the
        # named data set sets F, max_len and C only); the others are off.
        (
            [],
            {
                "train": {"dismir": 1.0, "dismir-wo-dpi": 1.0, **_OFF},
                "grid": {"dismir": 1.0, "dismir-wo-dpi": 1.0, **_OFF},
            },
        ),
        # train.py: the flag acts on a multi-interest baseline (the plugin)
        # and is refused where it cannot act; a compare.py grid gives it to
        # the DisMIR models only.
        (
            ["--partition_weight", "0.5"],
            {
                "train": {
                    "dismir": 0.5,
                    "dismir-wo-dpi": 0.5,
                    "mir": "refused",
                    "mind": 0.5,
                    "comirec-sa": 0.5,
                    "remi": 0.5,
                    "gru4rec": "refused",
                },
                "grid": {"dismir": 0.5, "dismir-wo-dpi": 0.5, **_OFF},
            },
        ),
    ],
)
def test_cli_gives_baselines_lambda_only_when_asked(extra, expected):
    import json

    proc = _python("-c", _FLAG_PROBE, "--dataset", "gowalla", *extra)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == expected


def test_compare_plugin_rejects_single_interest_backbones():
    proc = _python(
        "compare.py",
        "--mode",
        "plugin",
        "--models",
        "mind,dnn",
        "--seeds",
        "1",
        "--out_dir",
        "/nonexistent/x",
    )
    assert proc.returncode == 2
    assert "dnn never takes the partition task" in proc.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--proposed", "remix"], "--proposed remix is not one of the compared"),
        (["--mode", "plugin", "--proposed", "remi"], "--proposed does not act"),
    ],
)
def test_a_proposed_model_that_cannot_be_compared_is_refused(args, message):
    # Before: the table came out without the improvement columns, silently.
    proc = _python("compare.py", "--models", "dnn", *args, "--out_dir", "/no/x")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: {message}")


def test_compare_tables_only_writes_the_table_and_refuses_an_unfinished_run(
    tmp_path,
):
    """The command passes --tables_only to the grid: the table comes from
    the finished run's metrics.json (nothing trains), and a run of the grid
    that has not finished is one line and exit status 2."""
    out = tmp_path / "grid"
    os.makedirs(out / "runs" / "dnn-seed0")
    atomic_write_json(
        str(out / "runs" / "dnn-seed0" / "metrics.json"), _metrics(0.4321)
    )
    args = ("compare.py", "--models", "dnn", "--out_dir", str(out), "--tables_only")
    proc = _python(*args, "--seeds", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| R@20 | **0.4321** |" in (out / "table.md").read_text()
    assert not os.path.exists(out / "runs" / "dnn-seed0" / "config.json")
    proc = _python(*args, "--seeds", "2")
    assert proc.returncode == 2
    assert "dnn-seed1 has not finished" in proc.stderr
    assert not os.path.exists(out / "runs" / "dnn-seed1")


def test_help_gives_each_modes_default_models():
    proc = _python("compare.py", "--help")
    flat = " ".join(proc.stdout.split())
    for mode, models in compare.DEFAULT_MODELS.items():
        assert f"{mode}: {','.join(models)}" in flat, mode


def test_a_model_that_ties_the_best_is_bold_and_its_p_reads_identical():
    """w/o DPI under the max readout scores exactly as DisMIR: both are
    bold and the p cell says 'identical' (it printed DisMIR plain beside a
    bold w/o DPI, and 'nan')."""
    tied = {
        "mir": RESULTS["mind"],
        "dismir-wo-dpi": RESULTS["dismir"],
        "dismir": RESULTS["dismir"],
    }
    table = compare.summarize(tied, proposed="dismir")
    md = compare.to_markdown_ablation(table)
    lines = {
        line.split(" | ")[0][2:]: line.split(" | ")
        for line in md.splitlines()
        if line.startswith("|")
    }
    assert lines["dismir"][1] == f"**{_cell('dismir')}**"
    assert lines["dismir-wo-dpi"][1] == f"<u>**{_cell('dismir')}**</u>"
    assert not lines["mir"][1].startswith(("**", "<u>"))
    assert lines["p (paired t)"][1] == "identical"
    assert lines["improve."][1] == "+0.00%"
    assert "nan" not in md
    t2 = compare.to_markdown(table).splitlines()[2].split(" | ")
    assert t2[2].startswith("<u>**") and t2[3].startswith("**")
    assert t2[5].rstrip(" |") == "identical"
    # Different values with the same mean are not "identical".
    shuffled = dict(tied, dismir=RESULTS["dismir"][::-1])
    p = compare.summarize(shuffled, proposed="dismir").p_text("recall@20")
    assert p != "identical"
