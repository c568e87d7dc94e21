"""The SavedModel export: served in a TensorFlow-only process, raw ids.

Three tiny runs are trained once (module fixture) and exported: DisMIR
(fused readout), DNN (single interest, trained with exclude_history) and
MIR with the merge readout.  One fresh subprocess that imports TensorFlow
only (legacy-Keras switch unset) loads every export and answers all the
requests; saved_model_cli and the export CLI run beside it, in parallel.
The synthetic set has 32 test users, two whole row blocks, so that the
evaluator's one batch has no ragged tail and every comparison with its dump
can be bit for bit.
"""

import dataclasses
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from dismir_tf import export, pipeline, reports, retrieval, training, types
from dismir_tf.errors import ConfigError
from tests.helpers import tiny_run_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K = export.DEFAULT_K
TEST_USERS = 2 * export.ROW_BLOCK
RUNS = {  # name -> (model, overrides)
    "dismir": ("dismir", {}),
    "dnn": ("dnn", {"exclude_history": True}),
    "mir": ("mir", {"retrieval": "merge"}),
}

# Runs in a fresh interpreter: TensorFlow only, no dismir_tf, no tf_keras.
SERVE_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf
jobs = json.load(open(sys.argv[1]))
for job in jobs:
    m = tf.saved_model.load(job["model"])
    req = np.load(job["requests"])
    out = {}
    serve = m.signatures["serving_default"]
    for name in req.files:
        if name.startswith("one_"):
            continue
        o = serve(history=tf.constant(req[name]))
        out[name + ".ids"] = o["item_ids"].numpy().astype(str)
        out[name + ".scores"] = o["scores"].numpy()
    ones = [serve(history=tf.constant(req[n][None])) for n in sorted(
        (f for f in req.files if f.startswith("one_")),
        key=lambda f: int(f[4:]))]
    out["one.ids"] = np.concatenate([o["item_ids"].numpy() for o in ones]
                                    ).astype(str)
    out["one.scores"] = np.concatenate([o["scores"].numpy() for o in ones])
    ui = m.signatures["user_interests"](history=tf.constant(req["eval"]))
    for key, value in ui.items():
        out["ui." + key] = value.numpy()
    items = m.signatures["item_embeddings"]()
    out["items.ids"] = items["item_ids"].numpy().astype(str)
    out["items.embeddings"] = items["embeddings"].numpy()
    np.savez(job["out"], **out)
bad = [k for k in sys.modules if k.split(".")[0] in (
    "dismir_tf", "tf_keras", "tensorflow_recommenders")]
print(json.dumps({"bad_modules": bad}))
"""


def _env():
    env = dict(os.environ)
    env.pop("TF_USE_LEGACY_KERAS", None)
    env.pop("PYTHONPATH", None)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def _popen(args, cwd):
    return subprocess.Popen(
        args,
        cwd=cwd,
        env=_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _finish(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _requests(ds, config, eval_history):
    """Raw-id requests: the eval histories and variants of them."""
    ids = ds.item_ids
    eval_raw = ids[eval_history]
    users = ds.test_users
    # The whole known prefix s[:int(0.8 n)] (often longer than max_len).
    prefixes = [ds.sequence(u)[: int(0.8 * len(ds.sequence(u)))] for u in users]
    width = max(len(p) for p in prefixes)
    long = np.full([len(users), width], "", dtype=object)
    for row, p in enumerate(prefixes):
        long[row, : len(p)] = ids[p]
    # Unknown ids and '' around and between the known items.
    unknown = np.full([len(users), 2 * eval_raw.shape[1] + 2], "", dtype=object)
    for row, h in enumerate(eval_raw):
        known = [x for x in h if x]
        mixed = ["no-such-item"]
        for j, x in enumerate(known):
            mixed += [x, "" if j % 2 else f"unknown-{row}-{j}"]
        unknown[row, : len(mixed)] = mixed
    empty = np.array([["", "", ""], ["nope", "", "x"], ["", "", ""]], dtype=object)
    idx = np.arange(256) % len(users)
    req = {
        "eval": eval_raw,
        "long": long,
        "unknown": unknown,
        "empty": empty,
        "b256": eval_raw[idx],
    }
    for i in range(3):
        req[f"one_{i}"] = eval_raw[i]
    return {k: np.asarray(v, dtype=str) for k, v in req.items()}, prefixes


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    base = tmp_path_factory.mktemp("export")
    runs = {}
    for name, (model_name, overrides) in RUNS.items():
        run_dir = str(base / f"run-{name}")
        config = tiny_run_config(
            run_dir, model=model_name, max_steps=20, eval_every=20, **overrides
        )
        # 320 users: 32 test users, two whole row blocks of the export.
        config = dataclasses.replace(
            config,
            data=dataclasses.replace(
                config.data,
                synthetic=dataclasses.replace(
                    config.data.synthetic, num_users=TEST_USERS * 10
                ),
            ),
        )
        training.run(config, log=lambda m: None)
        config, ds, model = training.load_run(run_dir, log=lambda m: None)
        dump = str(base / f"dump-{name}.jsonl")
        reports.evaluate_split(config, ds, model, "test", dump_topk=dump)
        ex = pipeline.eval_examples(ds, "test", config.model.max_len)
        hist = tf.constant(ex.history)
        # The evaluator's exclusion: the whole known sequence.
        ref_scores, ref_items = retrieval.score_and_top_k_fn(
            training.make_query_fn(model)(hist),
            model.item_embedding.embeddings,
            K,
            tf.constant(ex.known_items(slice(None)))
            if config.train.exclude_history
            else None,
        )
        enc = model.encode({types.HISTORY: hist})
        export_dir = str(base / f"serving-{name}")
        path = export.export_model(model, ds, config, export_dir)
        req, prefixes = _requests(ds, config, ex.history)
        np.savez(str(base / f"req-{name}.npz"), **req)
        runs[name] = dict(
            run_dir=run_dir,
            config=config,
            ds=ds,
            path=path,
            export_dir=export_dir,
            prefixes=prefixes,
            requests=req,
            dump=reports.read_topk_dump(dump),
            ref_ids=ds.item_ids[ref_items.numpy()],
            ref_scores=ref_scores.numpy(),
            interests=enc.interests.numpy(),
            fused=enc.fused().numpy(),
            embeddings=model.item_embedding.embeddings.numpy(),
        )
    jobs = [
        {
            "model": r["path"],
            "requests": str(base / f"req-{n}.npz"),
            "out": str(base / f"out-{n}.npz"),
        }
        for n, r in runs.items()
    ]
    jobs_file = base / "jobs.json"
    jobs_file.write_text(json.dumps(jobs))
    first = runs["dismir"]
    request = json.dumps([list(first["requests"]["eval"][0])])
    procs = {
        "serve": _popen(
            [sys.executable, "-c", SERVE_SCRIPT, str(jobs_file)], cwd=str(base)
        ),
        "show": _popen(
            ["saved_model_cli", "show", "--dir", first["path"], "--all"], cwd=str(base)
        ),
        "run": _popen(
            [
                "saved_model_cli",
                "run",
                "--dir",
                first["path"],
                "--tag_set",
                "serve",
                "--signature_def",
                "serving_default",
                "--input_exprs",
                f"history={request}",
            ],
            cwd=str(base),
        ),
        "cli_missing": _popen(
            [
                sys.executable,
                "export.py",
                "--run_dir",
                str(base / "no-such-run"),
                "--export_dir",
                str(base / "x"),
            ],
            cwd=ROOT,
        ),
        "cli_ok": _popen(
            [
                sys.executable,
                "export.py",
                "--run_dir",
                runs["dnn"]["run_dir"],
                "--export_dir",
                str(base / "cli"),
                "--k",
                "20",
            ],
            cwd=ROOT,
        ),
    }
    results = {name: _finish(p) for name, p in procs.items()}
    rc, out, err = results["serve"]
    assert rc == 0, err[-3000:]
    for n in runs:
        with np.load(str(base / f"out-{n}.npz")) as z:
            runs[n]["served"] = dict(z)
    return dict(
        runs=runs,
        procs=results,
        base=base,
        serve_report=json.loads(out.strip().splitlines()[-1]),
    )


def _dump_ids(run):
    return np.array([row["top50"] for row in run["dump"]])


def _full(run, variant):
    """The request that carries what the evaluator knows: with
    exclude_history the whole known sequence ('long'), else the history."""
    if run["config"].train.exclude_history:
        return {"eval": "long", "b256": None, "one": None}[variant]
    return variant


@pytest.mark.parametrize("name", list(RUNS))
def test_fresh_process_serves_the_dump_exactly(exported, name):
    run = exported["runs"][name]
    served = run["served"]
    v = _full(run, "eval")
    assert len(run["dump"]) == TEST_USERS
    assert (served[f"{v}.ids"] == _dump_ids(run)).all()
    assert (served[f"{v}.ids"] == run["ref_ids"]).all()
    assert (served[f"{v}.scores"] == run["ref_scores"]).all()
    assert served["eval.scores"].dtype == np.float32
    assert exported["serve_report"]["bad_modules"] == []


@pytest.mark.parametrize("name", list(RUNS))
def test_batches_of_1_and_256(exported, name):
    run = exported["runs"][name]
    if _full(run, "b256") is None:
        pytest.skip(
            "batches of the history requests: the runs without "
            "exclusion (the dnn run excludes what 'long' carries)"
        )
    served = run["served"]
    # Requests are computed in whole row blocks, so any batch size gives
    # the evaluator's scores bit for bit (and hence its order of ties).
    idx = np.arange(256) % len(run["dump"])
    assert (served["b256.ids"] == _dump_ids(run)[idx]).all()
    assert (served["b256.scores"] == run["ref_scores"][idx]).all()
    assert (served["one.ids"] == _dump_ids(run)[:3]).all()
    assert (served["one.scores"] == run["ref_scores"][:3]).all()


@pytest.mark.parametrize("name", list(RUNS))
def test_unknown_ids_and_long_histories(exported, name):
    run = exported["runs"][name]
    served = run["served"]
    max_len = run["config"].model.max_len
    assert max(len(p) for p in run["prefixes"]) > max_len
    assert run["requests"]["long"].shape[1] > max_len
    # Same compacted histories, same batch: the same answers, bit for bit
    # (with exclude_history the long request also removes the older items
    # it carries, so it may differ from 'eval' there).
    same = ("unknown",) if run["config"].train.exclude_history else ("unknown", "long")
    for variant in same:
        assert (served[f"{variant}.ids"] == served["eval.ids"]).all()
        assert (served[f"{variant}.scores"] == served["eval.scores"]).all()
    if run["config"].train.exclude_history:
        # Nothing the long request carries comes back.
        long_req = run["requests"]["long"]
        for row, ids in enumerate(served["long.ids"]):
            carried = set(long_req[row]) - {""}
            assert not carried & set(ids)


@pytest.mark.parametrize("name", list(RUNS))
def test_empty_history_gets_the_most_popular_items(exported, name):
    run = exported["runs"][name]
    ds = run["ds"]
    counts = ds.item_counts(ds.train_users)[1:]
    order = np.argsort(-counts, kind="stable")[:K]
    for row in range(3):
        assert list(run["served"]["empty.ids"][row]) == list(ds.item_ids[order + 1])
        np.testing.assert_array_equal(
            run["served"]["empty.scores"][row], counts[order].astype(np.float32)
        )


@pytest.mark.parametrize("name", list(RUNS))
def test_user_interests_and_item_embeddings(exported, name):
    run = exported["runs"][name]
    served = run["served"]
    f = 1 if name == "dnn" else run["config"].model.num_interests
    d = run["config"].model.embedding_dim
    users = len(run["dump"])
    assert served["ui.interests"].shape == (users, f, d)
    assert served["ui.attention"].shape == (users, f)
    assert served["ui.fused"].shape == (users, d)
    np.testing.assert_allclose(served["ui.attention"].sum(1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(
        served["ui.interests"], run["interests"], rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(served["ui.fused"], run["fused"], rtol=1e-5, atol=1e-6)
    history = run["requests"]["eval"]
    assert (served["ui.history_length"] == (history != "").sum(1)).all()
    ds = run["ds"]
    assert list(served["items.ids"]) == list(ds.item_ids[1:])
    assert (served["items.embeddings"] == run["embeddings"][1:]).all()
    # The same table as a file, for REST users (no-input signatures cannot
    # be called through TF Serving's REST API).
    extra = os.path.join(run["path"], export.EXTRA_DIR)
    lines = (
        open(os.path.join(extra, export.ITEMS_FILE), encoding="utf-8")
        .read()
        .splitlines()
    )
    assert lines[0] == "item_id\ttrain_count"
    assert [line.split("\t")[0] for line in lines[1:]] == list(ds.item_ids[1:])
    assert [int(line.split("\t")[1]) for line in lines[1:]] == list(
        ds.item_counts(ds.train_users)[1:]
    )
    emb = np.load(os.path.join(extra, export.EMBEDDINGS_FILE))
    assert emb.dtype == np.float32 and (emb == run["embeddings"][1:]).all()


def test_saved_model_cli_show_lists_the_signatures(exported):
    rc, out, err = exported["procs"]["show"]
    assert rc == 0, err[-2000:]
    cfg = exported["runs"]["dismir"]["config"].model
    f, d = cfg.num_interests, cfg.embedding_dim
    sigs = {}
    for block in re.split(r"\nsignature_def\['", out)[1:]:
        name = block.split("'")[0]
        inputs, _, outputs = block.partition("output(s):")
        sigs[name] = {
            side: {
                m.group(1): (m.group(2), m.group(3))
                for m in re.finditer(
                    r"\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+shape: (\S+)", text
                )
            }
            for side, text in (("in", inputs), ("out", outputs))
        }
    n = exported["runs"]["dismir"]["ds"].num_items
    assert sigs["serving_default"] == {
        "in": {"history": ("DT_STRING", "(-1,")},
        "out": {"item_ids": ("DT_STRING", "(-1,"), "scores": ("DT_FLOAT", "(-1,")},
    }
    assert "shape: (-1, -1)" in out and f"shape: (-1, {K})" in out
    assert sigs["user_interests"]["in"] == {"history": ("DT_STRING", "(-1,")}
    assert sigs["user_interests"]["out"] == {
        "interests": ("DT_FLOAT", "(-1,"),
        "attention": ("DT_FLOAT", "(-1,"),
        "fused": ("DT_FLOAT", "(-1,"),
        "history_length": ("DT_INT32", "(-1)"),
    }
    assert f"shape: (-1, {f}, {d})" in out and f"shape: (-1, {f})" in out
    assert sigs["item_embeddings"] == {
        "in": {},
        "out": {
            "item_ids": ("DT_STRING", f"({n})"),
            "embeddings": ("DT_FLOAT", f"({n},"),
        },
    }
    assert f"shape: ({n}, {d})" in out


def test_saved_model_cli_run_answers_a_request(exported):
    rc, out, err = exported["procs"]["run"]
    assert rc == 0, err[-2000:]
    body = out.split("Result for output key item_ids:")[1].split(
        "Result for output key"
    )[0]
    ids = re.findall(r"b'([^']*)'", body)
    assert ids == _dump_ids(exported["runs"]["dismir"])[0].tolist()
    assert "Result for output key scores:" in out


def test_export_cli_and_version_numbers(exported):
    rc, out, err = exported["procs"]["cli_ok"]
    assert rc == 0, err[-2000:]
    cli_dir = str(exported["base"] / "cli")
    assert out.strip().splitlines()[-1] == os.path.join(cli_dir, "1")
    meta = json.load(
        open(os.path.join(cli_dir, "1", export.EXTRA_DIR, export.METADATA_FILE))
    )
    assert meta["k"] == 20 and meta["model"] == "dnn"
    assert meta["exclude_history"] is True
    run = exported["runs"]["dnn"]
    # Next version by default, an explicit one on request, never overwrite.
    model = training.load_run(run["run_dir"], log=lambda m: None)[2]
    args = (model, run["ds"], run["config"], cli_dir)
    assert export.export_model(*args, k=5) == os.path.join(cli_dir, "2")
    assert export.export_model(*args, k=5, version=10) == os.path.join(cli_dir, "10")
    assert export.export_model(*args, k=5) == os.path.join(cli_dir, "11")
    with pytest.raises(ConfigError, match="already is version 2"):
        export.export_model(*args, version=2)
    with pytest.raises(ConfigError, match="--k"):
        export.export_model(*args, k=run["ds"].num_items + 1)
    assert sorted(os.listdir(cli_dir)) == ["1", "10", "11", "2"]
    # TF Serving reads version names as integers: '0000012' is version 12,
    # so --version 12 is refused, whatever the padding, before any work,
    # and the next free version is 13.
    os.rename(os.path.join(cli_dir, "11"), os.path.join(cli_dir, "0000012"))
    for v in (12, 1, 10):
        with pytest.raises(ConfigError, match=f"already is version {v}"):
            export.export_run(run["run_dir"], cli_dir, version=v)
    assert export.export_model(*args, k=5) == os.path.join(cli_dir, "13")


def test_export_cli_errors_exit_2(exported):
    rc, out, err = exported["procs"]["cli_missing"]
    assert rc == 2
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("error: ")
    assert "not a run directory" in err


def test_compact_history():
    got, n = export.compact_history(
        tf.constant([[0, 5, 0, 6, 7, 8], [0, 0, 0, 0, 0, 0], [9, 0, 0, 0, 0, 0]]), 3
    )
    assert got.numpy().tolist() == [[6, 7, 8], [0, 0, 0], [9, 0, 0]]
    assert n.numpy().tolist() == [3, 0, 1]


def test_every_registered_model_traces(exported):
    """Each model of the registry builds the serving functions (in process;
    untrained weights), and its top-k is the evaluator's."""
    from dismir_tf.models import create_model, model_names, resolve_config

    run = exported["runs"]["dismir"]
    ds, config = run["ds"], run["config"]
    hist = pipeline.eval_examples(ds, "test", config.model.max_len).history
    from dismir_tf.capsule_config import clear_capsule_options

    for name in model_names():
        cfg = resolve_config(clear_capsule_options(config.model).with_model(name))
        model = create_model(ds.num_items, cfg, seed=0)
        model.build_for(cfg.max_len)
        module = export.ServingModule(
            model, ds.item_ids, ds.item_counts(ds.train_users), cfg.max_len, k=10
        )
        out = module.serve(tf.constant(ds.item_ids[hist]))
        scores, want = retrieval.score_and_top_k_fn(
            training.make_query_fn(model)(tf.constant(hist)),
            model.item_embedding.embeddings,
            10,
            None,
        )
        assert (
            out["item_ids"].numpy().astype(str) == ds.item_ids[want.numpy()]
        ).all(), name
        assert (out["scores"].numpy() == scores.numpy()).all(), name
