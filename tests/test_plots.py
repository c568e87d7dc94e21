"""Pictures (t-SNE, catalogue, sweep curves) and the sweep's resume."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from dismir_tf.analysis import plots, sweep
from dismir_tf.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from tests.helpers import tiny_run_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _assert_png(path, min_bytes=5000):
    data = open(path, "rb").read()
    assert data[:8] == plots.PNG_MAGIC
    assert len(data) > min_bytes
    assert len(data) < 300_000


def test_tsne_shapes_and_small_inputs():
    rng = np.random.RandomState(0)
    x = rng.randn(20, 8)
    xy = plots.tsne_2d(x, seed=0)
    assert xy.shape == (20, 2) and np.isfinite(xy).all()
    np.testing.assert_allclose(xy, plots.tsne_2d(x, seed=0))
    # Fewer than 5 points: principal components, still [n, 2].
    assert plots.tsne_2d(x[:3]).shape == (3, 2)
    assert plots.tsne_2d(x[:1]).shape == (1, 2)


def test_user_and_catalogue_and_sweep_figures(tmp_path):
    rng = np.random.RandomState(1)
    panels = [
        plots.UserPanel(f"run {i}", rng.randn(20, 2), rng.randint(0, 4, 20), 4)
        for i in range(3)
    ]
    _assert_png(plots.plot_user_interests(panels, str(tmp_path / "u.png"), "title"))
    # 25 groups: the 10 largest coloured, the rest grey.
    rows = [
        plots.CatalogueRow(
            "r",
            rng.randn(300, 2),
            [("a", rng.randint(0, 25, 300)), ("b", rng.randint(0, 3, 300))],
        )
    ]
    _assert_png(plots.plot_catalogue(rows, str(tmp_path / "c.png"), "t"))
    curves = [
        plots.SweepCurve(
            "lambda",
            [0.0, 0.01, 0.1],
            {"recall@20": [0.1, 0.2, 0.15], "ndcg@20": [0.05, 0.07, float("nan")]},
            base=0.1,
        ),
        plots.SweepCurve(
            "F", [2, 4], {"recall@20": [0.1, 0.2], "ndcg@20": [0.1, 0.1]}, base=4
        ),
    ]
    _assert_png(plots.plot_sweep(curves, str(tmp_path / "s.png"), "t"))
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["c.png", "s.png", "u.png"]


# ---------------------------------------------------------- the commands
@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    from dismir_tf import training

    tmp = tmp_path_factory.mktemp("plots")
    out = []
    for lam in (0.0, 0.5):
        path = str(tmp / f"lam{lam}")
        training.run(
            tiny_run_config(path, partition_weight=lam), log=lambda m: None, verbose=0
        )
        out.append(path)
    return out


def _analyze(*args):
    return subprocess.run(
        [sys.executable, "-m", "dismir_tf.analysis", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_tsne_command(tiny_runs, tmp_path):
    png = str(tmp_path / "user.png")
    proc = _analyze(
        "tsne",
        "--run_dirs",
        ",".join(tiny_runs),
        "--labels",
        "MIR,DisMIR",
        "--out",
        png,
    )
    assert proc.returncode == 0, proc.stderr
    _assert_png(png)


def test_catalogue_command_with_planted_groups(tiny_runs, tmp_path):
    png = str(tmp_path / "cat.png")
    proc = _analyze(
        "catalogue", "--run_dir", tiny_runs[1], "--catalogue_sample", "80", "--out", png
    )
    assert proc.returncode == 0, proc.stderr
    assert "80 of 120 items" in proc.stderr
    _assert_png(png)


# ------------------------------------------------------------------ sweep
def _base(tmp_path) -> RunConfig:
    return RunConfig(
        data=DataConfig(dataset="synthetic"),
        model=ModelConfig(
            name="dismir", partition_weight=0.1, num_interests=4, embedding_dim=16
        ),
        train=TrainConfig(output_dir=str(tmp_path / "unused")),
    )


class FakeTrain:
    """Writes a metrics.json that depends on the configuration."""

    def __init__(self):
        self.calls = []

    def __call__(self, config):
        m = config.model
        score = m.partition_weight + m.num_interests / 100 + m.embedding_dim / 1000
        metrics = {
            split: {
                k: score * (1 if "recall" in k else 0.5)
                for k in ("recall@20", "ndcg@20", "recall@50", "ndcg@50")
            }
            for split in ("valid", "test")
        }
        os.makedirs(config.train.output_dir, exist_ok=True)
        with open(os.path.join(config.train.output_dir, "metrics.json"), "w") as f:
            json.dump(metrics, f)
        self.calls.append(config)
        return metrics


def test_sweep_points_share_the_base_run(tmp_path):
    points = sweep.sweep_points(
        _base(tmp_path), {"lambda": [0.0, 0.1], "F": [2, 4], "K": [16]}
    )
    assert [(p.param, p.value) for p in points] == [
        ("lambda", 0.0),
        ("lambda", 0.1),
        ("F", 2),
        ("F", 4),
        ("K", 16),
    ]
    slugs = [p.variant.slug for p in points]
    assert slugs == [
        "dismir-partition_weight0.0",
        "dismir",
        "dismir-num_interests2",
        "dismir",
        "dismir",
    ]
    assert len(sweep.unique_variants(points)) == 3
    with pytest.raises(ValueError):
        sweep.sweep_points(_base(tmp_path), {"mu": [1]})


def test_sweep_trains_once_and_resumes(tmp_path):
    base = _base(tmp_path)
    grid = {"lambda": [0.0, 0.1, 1.0], "F": [2, 4], "N_o": [10], "K": [8, 16]}
    out = str(tmp_path / "sweep")
    train = FakeTrain()
    first = sweep.run_sweep(base, grid, [0], out, train, lambda m: None)
    # Distinct runs: base, lambda 0, lambda 1, F 2, N_o 10, K 8.
    assert len(train.calls) == 6
    assert {c.model.partition_negatives for c in train.calls} == {10, 100}
    curves = {c.name: c for c in first.curves()}
    assert curves["lambda"].metrics["recall@20"] == pytest.approx([0.056, 0.156, 1.056])
    assert curves["K"].metrics["ndcg@20"] == pytest.approx([0.5 * 0.148, 0.5 * 0.156])
    assert curves["F"].base == 4
    # Again: everything is read back, nothing trained.
    again = FakeTrain()
    second = sweep.run_sweep(base, grid, [0], out, again, lambda m: None)
    assert again.calls == []
    assert second.to_dict() == first.to_dict()
    # A lost run is the only one trained again.
    lost = os.path.join(out, "runs", "dismir-num_interests2-seed0")
    os.remove(os.path.join(lost, "metrics.json"))
    third = FakeTrain()
    sweep.run_sweep(base, grid, [0], out, third, lambda m: None)
    assert [c.train.output_dir for c in third.calls] == [lost]


def test_sweep_plot_only_skips_missing_runs_and_writes(tmp_path):
    base = _base(tmp_path)
    out = str(tmp_path / "sweep")
    train = FakeTrain()
    sweep.run_sweep(base, {"lambda": [0.0, 0.1]}, [0], out, train, lambda m: None)
    result = sweep.run_sweep(
        base,
        {"lambda": [0.0, 0.1, 1.0]},
        [0],
        out,
        train,
        lambda m: None,
        plot_only=True,
    )
    assert len(train.calls) == 2
    recall = result.curves()[0].metrics["recall@20"]
    assert recall[:2] == pytest.approx([0.056, 0.156])
    assert np.isnan(recall[2])
    png = str(tmp_path / "fig" / "sweep.png")
    js, md, _ = sweep.write_outputs(result, out, png, "title")
    _assert_png(png)
    assert "| lambda | 1 | dismir-partition_weight1.0 | 0 | n/a |" in open(md).read()
    assert json.load(open(js))["base"]["lambda"] == 0.1
