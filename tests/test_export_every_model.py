"""Every model serves the lists evaluate.py scored, on a timestamped real
data set (ml-100k): a model that reads the history times (PIMIRec) takes
them in its serving signature (issue 14 item 4)."""

import dataclasses
import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from dismir_tf import export, reports
from dismir_tf.config import DataConfig
from dismir_tf.data import load_dataset
from dismir_tf.models import create_model, model_names, resolve_config, time_unit
from tests.helpers import shared_file, tiny_run_config
from tests.tfserving_json import call, request_to_tensors

DOCS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "serving.md"
)


def documented_requests() -> list[dict]:
    """Every REST request body of docs/serving.md (curl ... -d '{...}')."""
    text = open(DOCS).read()
    bodies = [json.loads(m) for m in re.findall(r"-d '(\{.*?\})'", text, re.S)]
    assert len(bodies) >= 6, bodies
    return bodies


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = str(shared_file("ml-100k/ml-100k.inter.gz"))
    cfg = DataConfig(
        dataset="",
        dataset_file=path,
        dataset_format="recbole_inter",
        data_dir=str(tmp_path_factory.mktemp("data")),
    )
    return cfg, load_dataset(cfg)


def _requests(ds, split="test"):
    """Each user's whole history before its targets (raw ids) and their
    Unix times, right-padded with '' / 0: longer than max_len, so the
    SavedModel's truncation is exercised too."""
    users = ds.split_users(split).astype(np.int64)
    starts, n = ds.offsets[users], ds.lengths[users]
    k = (0.8 * n).astype(np.int64)
    width = int(k.max())
    ids = np.full((len(users), width), "", dtype=object)
    times = np.zeros((len(users), width), np.float64)
    for row, (s, m) in enumerate(zip(starts, k)):
        ids[row, :m] = ds.item_ids[ds.items[s : s + m]]
        times[row, :m] = ds.timestamps[s : s + m]
    return ids.astype(str), times


@pytest.mark.parametrize("name", model_names())
def test_the_export_serves_evaluate_py_lists(tmp_path, data, name):
    """Untrained weights (the seeded start) are enough: what is checked is
    that serving computes what evaluation computes, not what training
    learned."""
    data_config, ds = data
    config = tiny_run_config(
        str(tmp_path / "run"), model=name, max_len=20, num_interests=2
    )
    config = dataclasses.replace(
        config, data=data_config, model=resolve_config(config.model)
    )
    model = create_model(ds.num_items, config.model, seed=0)
    model.build_for(config.model.max_len)
    assert ds.timestamps is not None
    dump = str(tmp_path / "top.jsonl")
    reports.evaluate_split(config, ds, model, "test", dump_topk=dump)
    want = np.array([r["top50"] for r in reports.read_topk_dump(dump)])

    path = export.export_model(model, ds, config, str(tmp_path / "export"))
    served = tf.saved_model.load(path).signatures["serving_default"]
    ids, times = _requests(ds)
    timed = time_unit(config.model) is not None
    inputs = {"history": tf.constant(ids)}
    if timed:
        inputs["history_times"] = tf.constant(times)
    got = served(**inputs)["item_ids"].numpy().astype(str)
    assert (got == want).all(), (name, (got == want).all(axis=1).mean())
    # Every request the serving document shows, as TF Serving turns it
    # into tensors, for this model's signatures (times: PIMIRec only).
    loaded = tf.saved_model.load(path)
    checked = 0
    for body in documented_requests():
        sig = loaded.signatures[body.get("signature_name", "serving_default")]
        specs = sig.structured_input_signature[1]
        rows = body.get("instances") or [body.get("inputs")]
        has_times = any(isinstance(r, dict) and "history_times" in r for r in rows)
        if has_times != timed:
            continue
        tensors = request_to_tensors(body, specs)
        out = call(sig, tensors)
        batch = len(tensors["history"])
        assert all(v.shape[0] == batch for v in out.values()), body
        checked += 1
    assert checked >= (3 if timed else 4), checked
    if timed:
        # Without times the documented fallback (positions) is served, and
        # on this timestamped run it is not what evaluate.py scored.
        fallback = (
            served(
                history=tf.constant(ids),
                history_times=tf.zeros([len(ids), 0], tf.float64),
            )["item_ids"]
            .numpy()
            .astype(str)
        )
        assert not (fallback == want).all()


def test_the_rest_emulation_refuses_what_tf_serving_refuses():
    spec = {
        "history": tf.TensorSpec([None, None], tf.string),
        "history_times": tf.TensorSpec([None, None], tf.float64),
    }
    # [[]] per instance is [B, 1, 0]: a rank the signature does not take.
    body = {"instances": [{"history": ["a", ""], "history_times": [[]]}]}
    assert request_to_tensors(body, spec)["history_times"].shape == (1, 1, 0)
    sig = type("Sig", (), {"structured_input_signature": ((), spec)})()
    with pytest.raises(ValueError, match="shape"):
        call(sig, request_to_tensors(body, spec))
    ok = {"instances": [{"history": ["a", ""], "history_times": []}]}
    assert request_to_tensors(ok, spec)["history_times"].shape == (1, 0)
    with pytest.raises(ValueError, match="same shape"):
        request_to_tensors(
            {
                "instances": [
                    {"history": ["a"], "history_times": []},
                    {"history": ["a", "b"], "history_times": []},
                ]
            },
            spec,
        )
    with pytest.raises(ValueError, match="expected type: string"):
        request_to_tensors(
            {"inputs": {"history": [[790, 3266]], "history_times": [[]]}}, spec
        )
    with pytest.raises(ValueError, match="expected type: float64"):
        request_to_tensors(
            {"inputs": {"history": [["a"]], "history_times": [["1"]]}}, spec
        )
