"""Table 4's collapse statistics: hand-made cases and a finished run."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from dismir_tf.analysis import collapse
from tests.helpers import tiny_run_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
R2 = math.sqrt(2.0)


def _hand_case():
    """Three users, F = 3, d = 2, L = 6 (padding at the end).

    user 0: items (1,0) (1,0) (0,1) (0,2) (1,1) -> interests 0 0 1 1 0;
            interest 2 is empty.
    user 1: items (3,0) (0,3)                  -> both interest 2.
    user 2: items (1,0) (0,1) (-1,0)           -> interests 0 1 2.
    """
    items = np.zeros((3, 6, 2))
    items[0, :5] = [[1, 0], [1, 0], [0, 1], [0, 2], [1, 1]]
    items[1, :2] = [[3, 0], [0, 3]]
    items[2, :3] = [[1, 0], [0, 1], [-1, 0]]
    mask = np.zeros((3, 6))
    mask[0, :5] = mask[1, :2] = mask[2, :3] = 1
    wanted = [[0, 0, 1, 1, 0], [2, 2], [0, 1, 2]]
    routing = np.full((3, 3, 6), 0.1)
    for u, row in enumerate(wanted):
        for pos, f in enumerate(row):
            routing[u, f, pos] = 0.8
    # Padding positions favour interest 1 and must still be ignored.
    routing[:, 1, 5] = 5.0
    return routing, mask, items, wanted


def test_assign_items_by_routing_ignores_padding():
    routing, mask, items, wanted = _hand_case()
    assign, source = collapse.assign_items(routing, mask, None, items)
    assert source == collapse.ROUTING
    assert assign.shape == (3, 6)
    for u, row in enumerate(wanted):
        np.testing.assert_array_equal(assign[u, : len(row)], row)
        assert (assign[u, len(row) :] == -1).all()


def test_assign_items_without_routing_uses_interest_scores():
    # m_0 = (1,0), m_1 = (0,1): (2,1) scores 2 vs 1 -> 0; (1,3) -> 1.
    interests = np.array([[[1.0, 0.0], [0.0, 1.0]]])
    items = np.array([[[2.0, 1.0], [1.0, 3.0], [0.0, 0.0]]])
    mask = np.array([[1.0, 1.0, 0.0]])
    assign, source = collapse.assign_items(None, mask, interests, items)
    assert source == collapse.INTEREST_SCORE
    np.testing.assert_array_equal(assign, [[0, 1, -1]])


def test_per_user_similarity_hand_numbers():
    routing, mask, items, _ = _hand_case()
    assign, _ = collapse.assign_items(routing, mask, None, items)
    a0, e0 = assign[0, :5], items[0, :5]
    # G_0 = {(1,0),(1,0),(1,1)}, G_1 = {(0,1),(0,2)}, G_2 empty (skipped).
    # Inner products G_0 x G_1: 0,0 | 0,0 | 1,2 -> 3 / 6 pairs = 0.5; only
    # one pair of non-empty interests, so Similarity = 0.5.
    sim, pairs = collapse.between_similarity(e0, a0, 3)
    assert sim == pytest.approx(0.5) and pairs == 1
    # One non-empty interest: no similarity.
    sim1, pairs1 = collapse.between_similarity(items[1, :2], assign[1, :2], 3)
    assert math.isnan(sim1) and pairs1 == 0
    # User 2: pairs (0,1) 0, (0,2) -1, (1,2) 0 -> 2/(F(F-1)) * -1 = -1/3.
    sim2, pairs2 = collapse.between_similarity(items[2, :3], assign[2, :3], 3)
    assert sim2 == pytest.approx(-1 / 3) and pairs2 == 3
    # Within user 0 (unit vectors): G_0 ordered pairs 1, 1/r2, 1/r2 (each
    # twice) = 2 + 2 r2; G_1 two pairs of cosine 1 = 2; / 8 pairs.
    unit = e0 / np.linalg.norm(e0, axis=1, keepdims=True)
    assert collapse.within_similarity(unit, a0, 3) == pytest.approx((4 + 2 * R2) / 8)
    np.testing.assert_array_equal(collapse.group_sizes(assign[0], 3), [3, 2, 0])


def test_collapse_statistics_hand_numbers():
    routing, mask, items, _ = _hand_case()
    assign, _ = collapse.assign_items(routing, mask, None, items)
    s = collapse.collapse_statistics(assign, items, 3)
    # Similarity: users 0 and 2 only (user 1 has one non-empty interest):
    # (0.5 + -1/3) / 2 = 1/12.
    assert s.similarity == pytest.approx(1 / 12)
    assert s.users == 3 and s.users_with_similarity == 2
    # Cosine: user 0's G_0 x G_1 cosines 0,0,0,0,1/r2,1/r2 -> r2/6; user 2
    # as above (unit vectors already) -1/3.
    assert s.cosine_similarity == pytest.approx((R2 / 6 - 1 / 3) / 2)
    # Counts per interest: [3,2,0], [0,0,2], [1,1,1].
    # MIN mean(0,0,1) = 1/3; MAX mean(3,2,1) = 2.
    assert s.min == pytest.approx(1 / 3)
    assert s.max == pytest.approx(2.0)
    # STD (ddof 0): [3,2,0] -> sqrt(14/9); [0,0,2] -> sqrt(8/9); [1,1,1] 0.
    assert s.std == pytest.approx((math.sqrt(14 / 9) + math.sqrt(8 / 9)) / 3)
    assert s.nonempty_interests == pytest.approx(2.0)
    assert s.items_per_user == pytest.approx(10 / 3)


def test_sample_users_is_seeded_and_bounded():
    a = collapse.sample_users(500, 100, seed=3)
    assert len(a) == 100 and len(set(a)) == 100
    np.testing.assert_array_equal(a, collapse.sample_users(500, 100, 3))
    assert not np.array_equal(a, collapse.sample_users(500, 100, 4))
    np.testing.assert_array_equal(collapse.sample_users(7, 100, 0), np.arange(7))


def test_single_interest_model_has_no_similarity():
    from dismir_tf.config import ModelConfig
    from dismir_tf.models import create_model

    model = create_model(
        30, ModelConfig.from_settings(name="dnn", embedding_dim=8, max_len=5), seed=0
    )
    model.build_for(5)
    enc = collapse.encode_numpy(model, np.array([[1, 2, 3, 0, 0]]))
    assert enc["routing"] is None
    assign, source = collapse.assign_items(
        enc["routing"], enc["mask"], enc["interests"], enc["items"]
    )
    assert source == collapse.INTEREST_SCORE
    np.testing.assert_array_equal(assign, [[0, 0, 0, -1, -1]])
    s = collapse.collapse_statistics(assign, enc["items"], 1)
    assert math.isnan(s.similarity) and s.std == 0 and s.max == 3


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from dismir_tf import training

    out = str(tmp_path_factory.mktemp("collapse") / "run")
    training.run(tiny_run_config(out), log=lambda m: None, verbose=0)
    return out


def test_run_collapse_on_a_finished_run(tiny_run):
    r = collapse.run_collapse(tiny_run, num_users=20, seed=1, label="DisMIR")
    assert r["label"] == "DisMIR" and r["assigned_by"] == collapse.ROUTING
    assert r["num_interests"] == 3 and r["users"] == 20
    assert len(set(r["users_sampled"])) == 20
    assert 0 <= r["min"] <= r["max"] <= 10 and r["std"] >= 0
    assert r["min"] * 3 <= r["items_per_user"] <= r["max"] * 3
    assert 1 <= r["nonempty_interests"] <= 3
    # Deterministic for a seed.
    assert collapse.run_collapse(tiny_run, 20, 1)["similarity"] == r["similarity"]
    md = collapse.to_markdown([r, dict(r, label="other")], "t")
    assert "| MIN/MAX |" in md and "| metric | DisMIR | other |" in md
    # The collapse diagnostics of the same users sit beside Table 4, and
    # agree with the state.json history's figures' kind.
    d = r["diagnostics"]
    assert d["users"] == 20 and d["num_interests"] == 3
    assert 1 / 3 <= d["routing_max"] <= 1
    assert -1 <= d["interest_cosine"] <= 1
    assert r["diagnostics_all_users"]["users"] >= 20
    assert f"| interest cosine (mean over pairs) | {d['interest_cosine']:.3f}" in md
    state = json.load(open(os.path.join(tiny_run, "state.json")))
    assert all("collapse" in e for e in state["evals"])
    metrics = json.load(open(os.path.join(tiny_run, "metrics.json")))
    assert metrics["collapse"]["test"]["num_interests"] == 3
    # Only users with long histories: every sampled user has >= 9 items.
    long = collapse.run_collapse(tiny_run, 5, 1, min_history=9)
    assert long["users"] == min(5, long["eligible_users"])
    assert long["items_per_user"] >= 9 and long["min_history"] == 9
    assert "with >= 9 history items" in collapse.to_markdown([long])
    from dismir_tf.errors import ConfigError

    with pytest.raises(ConfigError):
        collapse.run_collapse(tiny_run, 5, 1, min_history=1000)


def test_collapse_command_writes_json_and_markdown(tiny_run, tmp_path):
    stem = str(tmp_path / "out" / "collapse")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dismir_tf.analysis",
            "collapse",
            "--run_dirs",
            f"{tiny_run},{tiny_run}",
            "--labels",
            "A,B",
            "--num_users",
            "10",
            "--out",
            stem + ".json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.load(open(stem + ".json"))
    assert [r["label"] for r in data["runs"]] == ["A", "B"]
    assert data["runs"][0]["similarity"] == data["runs"][1]["similarity"]
    assert "| metric | A | B |" in open(stem + ".md").read()


def test_analyze_rejects_bad_commands():
    proc = subprocess.run(
        [sys.executable, "-m", "dismir_tf.analysis", "nonsense"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "expected one command" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "dismir_tf.analysis", "collapse", "--out", "x"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "--run_dirs" in proc.stderr


def test_collapse_figures_are_tensorboard_scalars_at_every_validation(tiny_run):
    import glob

    import tensorflow as tf

    steps = {}
    for path in glob.glob(os.path.join(tiny_run, "logs", "valid", "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag.startswith("collapse/"):
                    steps.setdefault(value.tag, set()).add(event.step)
    state = json.load(open(os.path.join(tiny_run, "state.json")))
    eval_steps = {e["step"] for e in state["evals"]}
    for tag in (
        "collapse/interest_cosine",
        "collapse/query_history_cosine",
        "collapse/routing_max",
        "collapse/attention_max",
        "collapse/attention_entropy",
        "collapse/top_k_interests",
    ):
        assert steps.get(tag) == eval_steps, tag
