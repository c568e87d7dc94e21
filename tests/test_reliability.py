"""Reliability: bad input, interrupted runs, divergence, determinism, safety.

Every bad input goes through the real entry point (`python train.py` in a
subprocess) and must end with exit status 2, exactly one line on stderr
starting with 'error:' (naming the file and line where there is one), no
traceback, and nothing written: no run directory, no processed cache.
Flag errors are found before TensorFlow is imported, so their stderr is that
one line and nothing else.  The subprocesses of a table run two at a time.

docs/reliability.md lists the same cases with the exact messages.
"""

import concurrent.futures
import dataclasses
import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from dismir_tf import cli, training
from dismir_tf.config import DataConfig, ModelConfig, TrainConfig
from dismir_tf.data import cache_path, dataset_fingerprint, load_dataset
from dismir_tf.data.dataset import SequenceDataset
from dismir_tf.errors import ConfigError, TrainingDivergedError
from dismir_tf.io_utils import atomic_write_json
from tests.helpers import run_python, tiny_run_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = [
    "--synthetic_users",
    "400",
    "--synthetic_items",
    "150",
    "--synthetic_groups",
    "6",
    "--embedding_dim",
    "16",
]
# The interrupted-run command: 8 evaluations, no early stop.
LONG = SMALL + [
    "--batch_size",
    "64",
    "--max_steps",
    "400",
    "--eval_every",
    "50",
    "--patience",
    "100",
    "--seed",
    "3",
]
RUN_FILES = ("config.json", "state.json", "metrics.json")


# ------------------------------------------------------------------ helpers
def _env():
    env = dict(os.environ)
    env.pop("TF_USE_LEGACY_KERAS", None)  # the scripts must set it
    return env


def _python(*args, timeout=900):
    return run_python(*args, timeout=timeout, env=_env())


def _run_all(commands):
    """Runs argument lists two at a time (2 cores); results in order."""
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda args: _python(*args), commands))


def _error_line(proc, one_line=False):
    """The single 'error:' line of a failed run, after the common checks."""
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    errors = [x for x in lines if x.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert lines[-1] == errors[0], proc.stderr[-3000:]
    if one_line:
        # Found before TensorFlow started: nothing else was printed.
        assert lines == errors, proc.stderr[-3000:]
    return errors[0]


def _truncated_gzip():
    data = gzip.compress(_interactions(users=3000).encode())
    return data[: len(data) // 2]


def _npz_files(directory):
    return [
        os.path.join(d, f)
        for d, _, files in os.walk(directory)
        for f in files
        if f.endswith(".npz")
    ]


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8"))
    return str(path)


def _interactions(users=60, items=80, per_user=8):
    return "".join(
        f"u{u}\ti{(u + k) % items}\t{1000 + k}\n"
        for u in range(users)
        for k in range(per_user)
    )


# ------------------------------------------------------------ bad flags
# (flags, words the error line must contain)
BAD_FLAGS = [
    (["--num_interests", "0"], "num_interests (F) must be >= 1"),
    (["--max_len", "0"], "max_len must be >= 1"),
    (["--partition_weight", "-1"], "partition_weight (lambda) must be"),
    (["--partition_weight", "inf"], "partition_weight (lambda) must be finite"),
    (["--batch_size", "0"], "batch_size must be >= 1"),
    (["--eval_every", "0"], "eval_every must be >= 1"),
    (["--max_steps", "0"], "max_steps must be >= 1"),
    (
        ["--max_steps", "100", "--eval_every", "500"],
        "eval_every (500) must be <= max_steps (100)",
    ),
    (["--learning_rate", "0"], "learning_rate must be finite and > 0"),
    (["--learning_rate", "nan"], "learning_rate must be finite and > 0"),
    (["--seed", "-1"], "seed must be in [0, 2**32)"),
    (["--patience", "0"], "patience must be >= 1"),
    (["--embedding_dim", "0"], "embedding_dim must be >= 1"),
    (["--partition_negatives", "0"], "partition_negatives (N_o) must be"),
    (["--hard_negative_candidates", "0"], "hard_negative_candidates (C)"),
    (["--retrieval", "sum"], "retrieval must be one of"),
    (["--strategy", "tpu"], "strategy must be one of"),
    (["--min_user_count", "2"], "min_user_count must be >= 5"),
    (["--synthetic_users", "5"], "synthetic num_users must be >= 10"),
    (["--batch_size", "abc"], "batch_size"),  # absl parsing
    (["--no_such_flag", "1"], "no_such_flag"),  # absl parsing
    (
        [
            "--dataset",
            "gowalla",
            "--dataset_file",
            "x.tsv",
            "--dataset_format",
            "seq_lines",
        ],
        "give exactly one of --dataset and --dataset_file",
    ),
    (
        ["--dataset_file", "x.tsv"],
        "--dataset_file needs --dataset_format, one of: recbole_inter, "
        "snap_gowalla, user_item_time_tsv",
    ),
    (["--dataset", "nosuch"], "unknown data set 'nosuch'"),
    (
        ["--dataset_file", "x.tsv", "--dataset_format", "csv"],
        "unknown data format 'csv'",
    ),
    (
        ["--dataset_file", "missing.tsv", "--dataset_format", "seq_lines"],
        "missing.tsv: file not found",
    ),
    (
        [
            "--dataset_file",
            "README.md",
            "--dataset_format",
            "seq_lines",
            "--synthetic_users",
            "50",
        ],
        "--synthetic_users is only for the synthetic data set",
    ),
]


def test_bad_flags_exit_2_with_one_line_before_tensorflow(tmp_path):
    commands = []
    for n, (flags, _) in enumerate(BAD_FLAGS):
        commands.append(
            [
                "train.py",
                *flags,
                "--output_dir",
                str(tmp_path / f"out{n}"),
                "--data_dir",
                str(tmp_path / "data"),
            ]
        )
    procs = _run_all(commands)
    for n, ((flags, words), proc) in enumerate(zip(BAD_FLAGS, procs)):
        assert proc.returncode == 2, (flags, proc.stderr[-2000:])
        line = _error_line(proc, one_line=True)
        assert words in line, (flags, line)
        assert not os.path.exists(tmp_path / f"out{n}"), flags
    assert not os.path.exists(tmp_path / "data")


def test_a_required_flag_left_out_is_named_with_its_help():
    procs = _run_all([["evaluate.py"], ["export.py"]])
    for proc in procs:
        assert proc.returncode == 2, proc.stderr[-2000:]
        line = _error_line(proc, one_line=True)
        assert line == (
            "error: --run_dir is required: A run directory written by "
            "train.py; see --help"
        ), line


# ------------------------------------------------------------ bad data
def test_bad_data_files_exit_2_naming_file_and_line(tmp_path):
    good = _interactions()
    lines = good.splitlines(keepends=True)
    files = {
        "columns": _write(
            tmp_path / "columns.tsv", lines[0] + "u1\ti1\n" + "".join(lines[2:])
        ),
        "timestamp": _write(
            tmp_path / "timestamp.tsv", "".join(lines[:2]) + "u9\ti3\tyesterday\n"
        ),
        "empty": _write(tmp_path / "empty.tsv", ""),
        "filtered": _write(
            tmp_path / "filtered.tsv", "u1\ti1\t1\nu2\ti2\t2\nu3\ti3\t3\n"
        ),
        "utf8": _write(
            tmp_path / "latin1.tsv",
            lines[0].encode() + "u\u00e9\ti1\t5\n".encode("latin-1"),
        ),
        "gzip": _write(tmp_path / "truncated.tsv.gz", _truncated_gzip()),
        "small": _write(tmp_path / "small.tsv", _interactions(users=60, items=20)),
        "json": _write(
            tmp_path / "reviews.json",
            '{"reviewerID": "a", "asin": "b", '
            '"unixReviewTime": 1}\n{"reviewerID": "a", "asin"\n',
        ),
        "seq": _write(tmp_path / "seq.txt", "u1 i1 i2\nu2\n"),
    }
    cases = [
        # (file, format, extra flags, words the error line must contain)
        (
            "columns",
            "user_item_time_tsv",
            [],
            f"{files['columns']}:2: expected 3 tab-separated fields, found 2",
        ),
        (
            "timestamp",
            "user_item_time_tsv",
            [],
            f"{files['timestamp']}:3: timestamp 'yesterday' is not a number",
        ),
        ("empty", "user_item_time_tsv", [], f"{files['empty']}:1: the file is empty"),
        (
            "filtered",
            "user_item_time_tsv",
            [],
            f"{files['filtered']}: every user was filtered out",
        ),
        ("utf8", "user_item_time_tsv", [], f"{files['utf8']}:2: not valid UTF-8"),
        ("gzip", "user_item_time_tsv", [], "the gzip file is truncated"),
        ("json", "amazon_reviews_json", [], f"{files['json']}:2: invalid JSON"),
        (
            "seq",
            "seq_lines",
            [],
            f"{files['seq']}:2: expected a user id followed by at least one item id",
        ),
        (
            "small",
            "user_item_time_tsv",
            ["--data_dir", files["empty"]],
            f"{files['empty']}: not a writable directory, so the processed cache",
        ),
        # Model names are known without TensorFlow, with the closest one.
        (
            "small",
            "user_item_time_tsv",
            ["--model", "dismr"],
            "unknown model 'dismr'; did you mean 'dismir'? (expected one of",
        ),
    ]
    # Found only once TensorFlow has started (the output directory, the
    # data set's size).
    after_tf = [
        (
            "small",
            "user_item_time_tsv",
            ["--output_dir", files["empty"] + "/run"],
            f"{files['empty']}/run: --output_dir cannot be created",
        ),
        (
            "small",
            "user_item_time_tsv",
            [],
            "the data set has 20 items after preprocessing; the evaluation "
            "ranks the top 50",
        ),
    ]
    commands = []
    for n, (name, fmt, extra, _) in enumerate(cases + after_tf):
        commands.append(
            [
                "train.py",
                "--dataset_file",
                files[name],
                "--dataset_format",
                fmt,
                "--output_dir",
                str(tmp_path / f"out{n}"),
                "--data_dir",
                str(tmp_path / f"data{n}"),
                *extra,
            ]
        )
    procs = _run_all(commands)
    for n, ((name, _, extra, words), proc) in enumerate(zip(cases + after_tf, procs)):
        assert proc.returncode == 2, (name, extra, proc.stderr[-2000:])
        line = _error_line(proc)
        assert words in line, (name, extra, line)
        assert not os.path.exists(tmp_path / f"out{n}"), (name, extra)
        if n < len(cases):
            # Before TensorFlow: only the data progress lines came first,
            # and no cache was written.
            assert all(
                x.startswith(("data: ", "error: ")) for x in proc.stderr.splitlines()
            ), proc.stderr
            assert not _npz_files(tmp_path / f"data{n}"), (name, extra)
        # (The small file of the last case parsed fine, so its cache is
        # complete and valid; only the run refuses the data set.)
    # The truncated gzip error names the line where the stream ends.
    gz_line = _error_line(procs[5])
    assert re.search(re.escape(files["gzip"]) + r":\d+: ", gz_line), gz_line


def test_evaluate_py_bad_paths_exit_2_before_tensorflow(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text("{}")
    # A run whose checkpoint files are there (their content is read only
    # after TensorFlow starts, which these cases never reach).
    (run_dir / "state.json").write_text('{"best_prefix": "best/step-1"}')
    (run_dir / "best").mkdir()
    (run_dir / "best" / "step-1.index").write_text("")
    no_ckpt = tmp_path / "committed"
    no_ckpt.mkdir()
    (no_ckpt / "config.json").write_text("{}")
    (no_ckpt / "state.json").write_text('{"best_prefix": "best/step-1"}')
    cases = [
        (["--run_dir", str(tmp_path / "nope")], "is not a run directory"),
        (["--run_dir", str(no_ckpt)], "its best checkpoint"),
        (
            ["--run_dir", str(run_dir), "--dump_topk", str(tmp_path)],
            "--dump_topk is a directory",
        ),
        (
            ["--run_dir", str(run_dir), "--dump_topk", str(run_dir / "config.json")],
            "--dump_topk would overwrite the run's own file",
        ),
        (
            [
                "--run_dir",
                str(run_dir),
                "--dump_partition",
                str(run_dir / "config.json" / "p.tsv"),
            ],
            "--dump_partition cannot be written",
        ),
    ]
    procs = _run_all([["evaluate.py", *args] for args, _ in cases])
    for (args, words), proc in zip(cases, procs):
        assert proc.returncode == 2, (args, proc.stderr[-2000:])
        assert words in _error_line(proc, one_line=True), args
    assert (run_dir / "config.json").read_text() == "{}"


def test_damaged_run_files_are_user_errors(tmp_path):
    run_dir = training.RunDirectory(str(tmp_path))
    with open(run_dir.state_path, "w") as f:
        f.write('{"steps_done": 100,\n "evals": [')
    with pytest.raises(
        ConfigError, match=re.escape(run_dir.state_path) + r":2: not valid JSON"
    ):
        run_dir.load_state()
    atomic_write_json(run_dir.state_path, {"steps_done": 1, "bogus": 2})
    with pytest.raises(ConfigError, match="not a state file"):
        run_dir.load_state()
    # A path read from state.json never points outside best/.
    atomic_write_json(run_dir.state_path, {"best_prefix": "/somewhere/else/step-100"})
    state = run_dir.load_state()
    assert state.best_prefix == os.path.join(run_dir.best_dir, "step-100")
    # A damaged config.json stops a rerun before anything else happens.
    with open(run_dir.config_path, "w") as f:
        f.write("{\n\n  oops")
    with pytest.raises(
        ConfigError, match=re.escape(run_dir.config_path) + r":3: not valid JSON"
    ):
        training.run(tiny_run_config(str(tmp_path)), log=lambda m: None)
    # One of another version (an unknown field) is named, not a traceback.
    atomic_write_json(run_dir.config_path, {"train": {"bogus": 1}})
    with pytest.raises(
        ConfigError, match=re.escape(run_dir.config_path) + ": not a config file"
    ):
        run_dir.read_config()


# ------------------------------------------------------------ divergence
def test_nan_loss_exits_3_with_the_step_and_no_traceback(tmp_path):
    out = tmp_path / "nan"
    proc = _python(
        "train.py",
        *SMALL,
        "--learning_rate",
        "1e30",
        "--max_steps",
        "40",
        "--eval_every",
        "20",
        "--output_dir",
        str(out),
    )
    assert proc.returncode == 3, proc.stderr[-3000:]
    line = _error_line(proc)
    assert line.startswith("error: training diverged: the loss became nan")
    assert re.search(r"(at step \d+|between steps 1 and 20)", line), line
    assert "no checkpoint had been written yet" in line
    assert not (out / "metrics.json").exists()
    assert not (out / "state.json").exists()


def test_nan_after_an_evaluation_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    out = str(tmp_path / "run")
    config = tiny_run_config(out, max_steps=60, eval_every=20)
    original = training.EvalAndCheckpoint.on_train_batch_end

    def poisoned(self, batch, logs=None):
        if self.state.steps_done >= 20:
            logs = dict(logs or {}, loss=float("nan"))
        return original(self, batch, logs)

    monkeypatch.setattr(training.EvalAndCheckpoint, "on_train_batch_end", poisoned)
    with pytest.raises(TrainingDivergedError) as excinfo:
        training.run(config, log=lambda m: None)
    message = str(excinfo.value)
    assert "between steps 21 and 40" in message
    assert "the last good checkpoint, step 20" in message
    state = json.load(open(os.path.join(out, "state.json")))
    assert state["steps_done"] == 20 and not state["finished"]
    assert not os.path.exists(os.path.join(out, "metrics.json"))
    assert os.path.exists(os.path.join(out, "ckpt", "ckpt-20.index"))
    assert not os.path.exists(os.path.join(out, "ckpt", "ckpt-40.index"))
    # The kept checkpoint is usable: without the poison the run resumes.
    monkeypatch.setattr(training.EvalAndCheckpoint, "on_train_batch_end", original)
    lines = []
    training.run(config, log=lines.append)
    assert any("from step 20" in x for x in lines)


# ------------------------------------------------------------ resume
class _Killed(RuntimeError):
    pass


def test_kill_between_checkpoint_and_state_resumes_exactly(tmp_path, monkeypatch):
    reference = training.run(
        tiny_run_config(str(tmp_path / "ref"), max_steps=60, eval_every=20),
        log=lambda m: None,
    )
    out = str(tmp_path / "run")
    config = tiny_run_config(out, max_steps=60, eval_every=20)
    save_state = training.RunDirectory.save_state

    def dies_at_40(self, state):
        if state.steps_done == 40:
            raise _Killed()  # after ckpt-40 was saved, before state
        save_state(self, state)

    monkeypatch.setattr(training.RunDirectory, "save_state", dies_at_40)
    with pytest.raises(_Killed):
        training.run(config, log=lambda m: None)
    monkeypatch.setattr(training.RunDirectory, "save_state", save_state)
    assert json.load(open(os.path.join(out, "state.json")))["steps_done"] == 20
    # A Ctrl-C there names the step a resume really starts from.
    assert cli.interrupted_message().endswith(
        "the last checkpoint is step 20: the same command resumes from it"
    )
    assert os.path.exists(os.path.join(out, "ckpt", "ckpt-40.index"))
    # A kill during a best-checkpoint write also leaves TensorFlow's
    # temporary directory of that write (seen after a Ctrl-C under load).
    leftover = os.path.join(out, "best", "step-40_temp")
    os.makedirs(leftover)
    open(os.path.join(leftover, "part-00000-of-00001"), "w").close()
    lines = []
    resumed = training.run(config, log=lines.append)
    assert not os.path.exists(leftover)
    assert any(re.search(r"resuming .* from step 20 ", x) for x in lines)
    assert resumed["test"] == reference["test"]
    assert resumed["valid"] == reference["valid"]
    state = json.load(open(os.path.join(out, "state.json")))
    assert [e["step"] for e in state["evals"]] == [20, 40, 60]
    assert state["finished"]
    # Only the best checkpoint state.json names is left in best/.
    best = sorted(os.listdir(os.path.join(out, "best")))
    assert {f.split(".")[0] for f in best} == {os.path.basename(state["best_prefix"])}


def test_noresume_refuses_an_existing_run_and_deletes_nothing(tmp_path):
    # A run killed before its first evaluation: config.json only.
    out = tmp_path / "run"
    config = tiny_run_config(str(out), max_steps=20, eval_every=20)
    out.mkdir()
    (out / "config.json").write_text(config.to_json())
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="already holds a run"):
        training.run(config, log=lambda m: None, resume=False)
    assert sorted(os.listdir(out)) == ["config.json", "notes.txt"]
    assert (out / "config.json").read_text() == config.to_json()


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """One uninterrupted `python train.py` run of the LONG command."""
    out = str(tmp_path_factory.mktemp("reference") / "run")
    proc = _python("train.py", *LONG, "--output_dir", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def _read(out, name):
    with open(os.path.join(out, name)) as f:
        return json.load(f)


def test_same_seed_same_metrics_across_processes(reference_run, tmp_path):
    out = str(tmp_path / "again")
    proc = _python("train.py", *LONG, "--output_dir", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = _read(reference_run, "metrics.json"), _read(out, "metrics.json")
    assert a["test"] == b["test"] and a["valid"] == b["valid"]
    ea, eb = _read(reference_run, "state.json"), _read(out, "state.json")
    assert [e["valid"] for e in ea["evals"]] == [e["valid"] for e in eb["evals"]]


def test_sigkilled_run_resumes_and_matches_an_uninterrupted_one(
    reference_run, tmp_path
):
    out = str(tmp_path / "killed")
    command = [sys.executable, "train.py", *LONG, "--output_dir", out]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 600
    evals = 0
    try:
        while evals < 2 and proc.poll() is None:
            assert time.monotonic() < deadline, "no evaluation in 600 s"
            time.sleep(0.02)
            try:
                evals = len(_read(out, "state.json")["evals"])
            except (OSError, ValueError):
                pass  # not written yet (it is never half-written)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended by itself"
    killed_at = _read(out, "state.json")
    assert not killed_at["finished"] and killed_at["steps_done"] < 400
    assert not os.path.exists(os.path.join(out, "metrics.json"))

    again = _python("train.py", *LONG, "--output_dir", out)
    assert again.returncode == 0, again.stderr[-3000:]
    match = re.search(r"resuming \S+ from step (\d+) ", again.stderr)
    assert match, again.stderr[-3000:]
    assert int(match.group(1)) >= 100 and int(match.group(1)) % 50 == 0
    state = _read(out, "state.json")
    steps = [e["step"] for e in state["evals"]]
    assert state["finished"]
    assert steps == sorted(set(steps)) and steps[-1] == 400
    metrics = _read(out, "metrics.json")
    reference = _read(reference_run, "metrics.json")
    assert metrics["test"] == reference["test"]
    assert metrics["valid"] == reference["valid"]
    assert [e["valid"] for e in state["evals"]] == [
        e["valid"] for e in _read(reference_run, "state.json")["evals"]
    ]

    # --noresume on the finished directory: refused, nothing touched.
    before = {f: os.path.getmtime(os.path.join(out, f)) for f in RUN_FILES}
    refused = _python("train.py", *LONG, "--output_dir", out, "--noresume")
    assert refused.returncode == 2
    assert "already holds a run" in _error_line(refused)
    assert before == {f: os.path.getmtime(os.path.join(out, f)) for f in RUN_FILES}


# ------------------------------------------------------------ safety
class _Payload:
    """Unpickling this creates a marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _malicious_npz(path, marker):
    arrays = {
        "item_ids": np.array([_Payload(marker)], dtype=object),
        "meta": np.array(json.dumps({"name": "x", "version": 1})),
    }
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_malicious_npz_in_the_cache_is_refused_not_unpickled(tmp_path):
    marker = str(tmp_path / "code-ran")
    evil = str(tmp_path / "evil.npz")
    _malicious_npz(evil, marker)
    with pytest.raises(ValueError, match="allow_pickle"):
        SequenceDataset.load(evil)
    assert not os.path.exists(marker)

    data_file = _write(tmp_path / "log.tsv", _interactions())
    cfg = DataConfig(
        dataset="",
        dataset_file=data_file,
        dataset_format="user_item_time_tsv",
        data_dir=str(tmp_path / "data"),
    )
    cache = cache_path(cfg)
    os.makedirs(os.path.dirname(cache))
    _malicious_npz(cache, marker)
    lines = []
    ds = load_dataset(cfg, log=lines.append)
    assert not os.path.exists(marker)
    assert any("cannot read cache" in x and "rebuilding" in x for x in lines), lines
    clean = load_dataset(dataclasses.replace(cfg, data_dir=str(tmp_path / "clean")))
    assert dataset_fingerprint(ds) == dataset_fingerprint(clean)
    # The rebuilt cache is a clean one.
    assert dataset_fingerprint(SequenceDataset.load(cache)) == dataset_fingerprint(
        clean
    )


UNSAFE = [
    (
        r"^\s*(import|from)\s+(pickle|cPickle|dill|shelve|marshal)\b",
        "a pickle-like module",
    ),
    (r"allow_pickle\s*=\s*True", "np.load(allow_pickle=True)"),
    (r"(?<![\w.])(eval|exec)\(", "eval/exec"),
    (r"yaml\.(unsafe_)?load\(", "yaml.load"),
    (r"np\.load\((?![^)]*allow_pickle=False)", "np.load without allow_pickle=False"),
]


def test_no_code_executing_deserialisation_in_the_sources():
    paths = [os.path.join(ROOT, f) for f in os.listdir(ROOT) if f.endswith(".py")]
    for d, _, files in os.walk(os.path.join(ROOT, "dismir_tf")):
        paths += [os.path.join(d, f) for f in files if f.endswith(".py")]
    found = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for pattern, what in UNSAFE:
            for m in re.finditer(pattern, text, re.MULTILINE):
                line = text.count("\n", 0, m.start()) + 1
                found.append(f"{os.path.relpath(path, ROOT)}:{line}: {what}")
    assert not found, found


def test_config_validation_happens_in_the_dataclasses():
    # The same checks guard configs built in Python, not only flags.
    with pytest.raises(ConfigError, match="eval_every"):
        TrainConfig(max_steps=10, eval_every=20)
    with pytest.raises(ConfigError, match="seed"):
        TrainConfig(seed=2**32)
    with pytest.raises(ConfigError, match="finite"):
        ModelConfig(partition_weight=float("nan"))
    with pytest.raises(ConfigError, match="exactly one"):
        DataConfig(dataset="gowalla", dataset_file="x", dataset_format="y")
    config = tiny_run_config("unused")
    with pytest.raises(ConfigError):
        dataclasses.replace(config.train, batch_size=0)


def test_ctrl_c_before_the_first_checkpoint_says_it_starts_again(monkeypatch):
    from dismir_tf import callbacks

    monkeypatch.setattr(
        callbacks,
        "PROGRESS",
        {"step": 7, "total": 40, "output_dir": "/r", "checkpoint": 0},
    )
    assert cli.interrupted_message() == (
        "interrupted at step 7 of 40 in /r; no checkpoint yet: the same "
        "command starts again"
    )
