"""--capsule_order: the DisMIR capsule reading the order of the history
(dismir_tf/models/dismir.py ``DisMIR.ordered_items``; docs/models.md,
"Reading the order")."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from dismir_tf import export, pipeline, reports, training, types
from dismir_tf.config import ModelConfig
from dismir_tf.errors import ConfigError
from dismir_tf.models import create_model, resolve_config
from tests.helpers import malformed_seq_file, run_python, tiny_run_config

L, D, F, N_ITEMS = 6, 8, 3, 40
# Right-padded histories: 4 items, 6 items, 1 item.
HISTORY = np.array(
    [[5, 9, 2, 7, 0, 0], [11, 3, 8, 14, 6, 21], [4, 0, 0, 0, 0, 0]], np.int32
)


def _model(order: str, **kw):
    cfg = resolve_config(
        ModelConfig.from_settings(
            name="dismir",
            embedding_dim=D,
            num_interests=F,
            max_len=L,
            capsule_order=order,
            **kw,
        )
    )
    model = create_model(N_ITEMS, cfg, seed=3)
    model.encode({types.HISTORY: tf.constant(HISTORY)})
    return model


def _ordered(model, history):
    mask = tf.cast(history > 0, tf.float32)
    items = model.item_embedding(tf.constant(history))
    return model.ordered_items(items, mask).numpy()


def test_positions_add_the_embedding_of_each_items_recency_rank():
    model = _model("positions")
    table = np.random.RandomState(0).randn(L, D).astype(np.float32)
    model.order_positions.embeddings.assign(table)
    got = _ordered(model, HISTORY)
    emb = model.item_embedding.embeddings.numpy()
    for b, row in enumerate(HISTORY):
        n = int((row > 0).sum())
        for i in range(L):
            # r(i) = n - 1 - i: the newest item has rank 0.
            want = emb[row[i]] + table[n - 1 - i] if i < n else np.zeros(D)
            np.testing.assert_allclose(got[b, i], want, rtol=1e-6, atol=1e-6)


def test_positions_start_as_the_order_free_capsule():
    # The rank embeddings start at 0: the same seed gives the same
    # interests as the paper's capsule until they learn.
    plain = _model("none").encode({types.HISTORY: tf.constant(HISTORY)})
    ordered = _model("positions").encode({types.HISTORY: tf.constant(HISTORY)})
    np.testing.assert_allclose(
        ordered.interests.numpy(), plain.interests.numpy(), rtol=1e-6
    )


def _reversed(history):
    out = np.zeros_like(history)
    for b, row in enumerate(history):
        n = int((row > 0).sum())
        out[b, :n] = row[:n][::-1]
    return out


def test_self_attention_is_causal_and_reads_the_order():
    model = _model("self_attention", capsule_recency="none")
    got = _ordered(model, HISTORY)
    # Item i reads items 0..i only: a new newest item changes no older one.
    changed = HISTORY.copy()
    changed[1, 5] = 30
    other = _ordered(model, changed)
    np.testing.assert_allclose(other[1, :5], got[1, :5], rtol=1e-6)
    assert not np.allclose(other[1, 5], got[1, 5])
    # ... and an older item changes the newest one's output.
    changed = HISTORY.copy()
    changed[1, 0] = 30
    assert not np.allclose(_ordered(model, changed)[1, 5], got[1, 5])
    assert np.all(got[0, 4:] == 0) and np.all(got[2, 1:] == 0)

    # The order-free capsule (no recency weights) gives the same interests
    # for a history and its reverse; the order-aware one does not.
    def interests(m, h):
        return m.encode({types.HISTORY: tf.constant(h)}).interests.numpy()

    plain = _model("none", capsule_recency="none")
    np.testing.assert_allclose(
        interests(plain, _reversed(HISTORY)),
        interests(plain, HISTORY),
        rtol=1e-5,
        atol=1e-6,
    )
    assert not np.allclose(
        interests(model, _reversed(HISTORY))[:2], interests(model, HISTORY)[:2]
    )


def test_the_run_header_names_the_order():
    from dismir_tf.models import describe_settings

    def header(order):
        return describe_settings(
            resolve_config(
                ModelConfig.from_settings(name="dismir", capsule_order=order)
            )
        )

    assert header("self_attention").endswith("readout max, order self_attention")
    assert "order" not in header("none")


def test_unknown_order_is_refused():
    with pytest.raises(ConfigError, match="capsule_order must be one of"):
        ModelConfig.from_settings(name="dismir", capsule_order="reversed")


@pytest.mark.parametrize("name", ["dismir", "dismir-wo-dpi", "mir"])
def test_order_with_detached_routed_items_is_refused(name):
    # Detached routed items (paper-remi) would leave the order's weights
    # without a gradient: refused, not silently frozen.
    for kw in ({"capsule_preset": "paper-remi"}, {"routing_detach": True}):
        cfg = ModelConfig.from_settings(name=name, capsule_order="positions", **kw)
        with pytest.raises(ConfigError, match="--routing_detach"):
            resolve_config(cfg)
    resolve_config(ModelConfig.from_settings(name=name, capsule_preset="paper-remi"))


# Runs COMMAND as its entry point would, then says on stderr whether
# TensorFlow was imported.
_RUN_THEN_REPORT_TF = (
    "import runpy, sys\n"
    "sys.argv = sys.argv[1:]\n"
    "code = 0\n"
    "try:\n runpy.run_path(sys.argv[0], run_name='__main__')\n"
    "except SystemExit as e:\n code = e.code\n"
    "print('tensorflow imported:', 'tensorflow' in sys.modules, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


@pytest.mark.parametrize("command", ["train.py", "tune.py", "compare.py"])
def test_the_refusal_comes_before_the_data_is_read(tmp_path, command):
    # Line 2 of the file is malformed: read first, its error would hide
    # the contradiction (after TensorFlow's start-up and the data's load).
    bad = malformed_seq_file(tmp_path)
    base = [command, "--dataset_file", str(bad), "--dataset_format", "seq_lines"]
    base += {
        "train.py": ["--output_dir", str(tmp_path / "r")],
        "tune.py": ["--study_dir", str(tmp_path / "r")],
        "compare.py": ["--models", "dismir", "--out_dir", str(tmp_path / "r")],
    }[command]
    contradiction = ["--capsule_preset", "paper-remi", "--capsule_order", "positions"]

    def run(args):
        proc = run_python("-c", _RUN_THEN_REPORT_TF, *base, *args, timeout=180)
        assert proc.returncode != 0, proc.stdout
        lines = proc.stderr.strip().splitlines()
        assert len(lines) >= 2, proc.stderr
        return lines[-2], lines[-1]

    # The file is refused on its own, naming its line.
    assert "bad.txt:2: expected a user id" in run([])[0]
    error, tf_line = run(contradiction)
    assert error.startswith("error: --capsule_order positions learns through"), error
    assert tf_line == "tensorflow imported: False"


def test_a_grid_is_checked_as_the_grid_it_runs(tmp_path):
    # compare.py --mode plugin runs mind, comirec-sa and remi, not the
    # --models flag's default: REMI's --remi_beta is accepted (the file's
    # error is the one reported), not refused as the DisMIR family's.
    bad = malformed_seq_file(tmp_path)
    proc = run_python(
        *["compare.py", "--mode", "plugin", "--remi_beta", "2"],
        *["--dataset_file", str(bad), "--dataset_format", "seq_lines"],
        *["--out_dir", str(tmp_path / "r")],
        timeout=300,
    )
    assert proc.returncode != 0
    assert "bad.txt:2: expected a user id" in proc.stderr, proc.stderr[-2000:]


@pytest.mark.parametrize("order", ["positions", "self_attention"])
def test_trains_reloads_and_exports_with_the_order(tmp_path, order):
    # The order's weights learn, a reloaded run scores as the trained one,
    # and the SavedModel's interests are the model's.
    run_dir = str(tmp_path / "run")
    config = tiny_run_config(run_dir, capsule_order=order, max_steps=20)
    trained = training.run(config, log=lambda m: None)
    config, ds, model = training.load_run(run_dir, log=lambda m: None)
    assert model.model_config.own.capsule_order == order
    assert np.abs(model.order_positions.embeddings.numpy()).max() > 0
    ex = pipeline.eval_examples(ds, "test", config.model.max_len)
    enc = model.encode({types.HISTORY: tf.constant(ex.history)})
    path = export.export_model(model, ds, config, str(tmp_path / "export"))
    raw = ds.item_ids[ex.history].astype(str)  # padding is ''
    served = tf.saved_model.load(path).signatures["user_interests"](
        history=tf.constant(raw)
    )
    # The reloaded run scores the test users as the trained one did (a
    # block left at its random start on restore would not).
    reloaded = reports.evaluate_split(config, ds, model, "test")
    assert reloaded["recall@50"] == pytest.approx(trained["test"]["recall@50"])
    assert reloaded["ndcg@50"] == pytest.approx(trained["test"]["ndcg@50"])
    np.testing.assert_allclose(
        served["interests"].numpy(), enc.interests.numpy(), rtol=1e-5, atol=1e-6
    )
