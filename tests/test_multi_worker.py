"""--strategy multi_worker: two train.py worker processes on 127.0.0.1.

Each test launches a two-worker MultiWorkerMirroredStrategy cluster (a
TF_CONFIG per process, free local ports, nothing beyond the loopback
interface) on the tiny synthetic set, with a deadline after which every
process is killed, and checks:

* both workers end with bit-identical weights (each dumps them through
  DISMIR_DUMP_FINAL_WEIGHTS), and the same weights as one process with two
  mirrored replicas: the workers' data shards are the two halves of the
  single-process batch, disjoint and complete;
* only the chief writes: config.json, metrics.json and a finished
  state.json in --output_dir, nothing left behind by the other worker;
* a cluster killed mid-run and started again resumes from the last
  checkpoint on every worker and finishes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from dismir_tf import training
from dismir_tf.config import RunConfig, TrainConfig
from dismir_tf.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKERS = 2
DEADLINE_SECONDS = 420
ARGS = [
    "--synthetic_users",
    "400",
    "--synthetic_items",
    "150",
    "--embedding_dim",
    "16",
    "--eval_every",
    "20",
]


def _free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _env(tmp_path, **extra) -> dict:
    env = dict(os.environ)
    env.pop("TF_USE_LEGACY_KERAS", None)  # train.py must set it
    env.pop("TF_CONFIG", None)
    env["CUDA_VISIBLE_DEVICES"] = ""
    # Non-chief scratch directories land here, so the test sees leftovers.
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    env["TMPDIR"] = str(scratch)
    env.update(extra)
    return env


class Cluster:
    """WORKERS train.py processes of one run; killed if still alive."""

    def __init__(self, tmp_path, out: str, dump: str, max_steps: int, name: str):
        ports = _free_ports(WORKERS)
        cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
        self.logs = [tmp_path / f"{name}-worker{i}.log" for i in range(WORKERS)]
        self.procs = []
        for i in range(WORKERS):
            env = _env(
                tmp_path,
                DISMIR_DUMP_FINAL_WEIGHTS=dump,
                TF_CONFIG=json.dumps(
                    {"cluster": cluster, "task": {"type": "worker", "index": i}}
                ),
            )
            with open(self.logs[i], "w") as log:
                self.procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "train.py",
                            "--strategy",
                            "multi_worker",
                            *ARGS,
                            "--max_steps",
                            str(max_steps),
                            "--output_dir",
                            out,
                        ],
                        cwd=ROOT,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
        for p in self.procs:
            p.wait()

    def log_text(self, i: int) -> str:
        return self.logs[i].read_text()

    def wait(self, deadline: float = DEADLINE_SECONDS) -> None:
        """Waits for all workers; any failure or the deadline kills all."""
        end = time.monotonic() + deadline
        try:
            while time.monotonic() < end:
                codes = [p.poll() for p in self.procs]
                if any(c not in (None, 0) for c in codes):
                    break  # one failed: the others would hang
                if all(c == 0 for c in codes):
                    return
                time.sleep(0.2)
        finally:
            self.kill()
        tails = "\n".join(
            f"--- worker {i} (exit {p.returncode}):\n" + self.log_text(i)[-3000:]
            for i, p in enumerate(self.procs)
        )
        pytest.fail(f"the cluster did not finish cleanly:\n{tails}")


def _load(path) -> dict:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def _check_chief_outputs(out: str, steps: int) -> dict:
    for name in ("config.json", "metrics.json", "state.json"):
        assert os.path.exists(os.path.join(out, name)), name
    config = json.load(open(os.path.join(out, "config.json")))
    assert config["train"]["strategy"] == "multi_worker"
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert 0.0 < metrics["test"]["recall@50"] <= 1.0
    assert metrics["steps"] == steps
    state = json.load(open(os.path.join(out, "state.json")))
    assert state["finished"] and state["steps_done"] == steps
    assert os.listdir(os.path.join(out, "best"))
    assert os.listdir(os.path.join(out, "ckpt"))
    return state


@pytest.fixture(scope="module")
def two_worker_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multi_worker")
    out, dump = str(tmp / "run"), str(tmp / "dump")
    cluster = Cluster(tmp, out, dump, max_steps=40, name="run")
    cluster.wait()
    return tmp, out, dump, cluster


def test_workers_end_with_identical_weights(two_worker_run):
    _, _, dump, _ = two_worker_run
    chief = _load(os.path.join(dump, "worker-0.npz"))
    other = _load(os.path.join(dump, "worker-1.npz"))
    assert any("item_embedding" in k for k in chief)
    assert chief.keys() == other.keys()
    for k in chief:
        np.testing.assert_array_equal(chief[k], other[k], err_msg=k)


def test_only_the_chief_writes_and_its_outputs_are_complete(two_worker_run):
    tmp, out, _, cluster = two_worker_run
    state = _check_chief_outputs(out, steps=40)
    assert [e["step"] for e in state["evals"]] == [20, 40]
    # The other worker trained, evaluated in step with the chief, and
    # removed its scratch directory.
    assert "step 40/40" in cluster.log_text(1)
    assert "the chief writes the metrics" in cluster.log_text(1)
    assert os.listdir(tmp / "scratch") == []
    assert sorted(os.listdir(out)) == sorted(
        ["best", "ckpt", "config.json", "logs", "metrics.json", "state.json"]
    )


def test_worker_shards_are_the_halves_of_the_single_process_batch(
    two_worker_run, tmp_path
):
    """Two workers == one process with two mirrored replicas, bit for bit.

    Replica r trains on rows [r B/2, (r+1) B/2) of step s's batch in both
    set-ups, so the weights only match if each worker took its own half.
    """
    _, _, dump, _ = two_worker_run
    local_dump = str(tmp_path / "dump")
    proc = subprocess.run(
        [
            sys.executable,
            "train.py",
            "--strategy",
            "mirrored",
            "--logical_cpus",
            "2",
            *ARGS,
            "--max_steps",
            "40",
            "--output_dir",
            str(tmp_path / "run"),
        ],
        cwd=ROOT,
        env=_env(tmp_path, DISMIR_DUMP_FINAL_WEIGHTS=local_dump),
        capture_output=True,
        text=True,
        timeout=DEADLINE_SECONDS,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    mirrored = _load(os.path.join(local_dump, "local.npz"))
    workers = _load(os.path.join(dump, "worker-0.npz"))
    for k in workers:
        np.testing.assert_allclose(
            workers[k], mirrored[k], rtol=1e-5, atol=1e-6, err_msg=k
        )


def test_a_killed_cluster_resumes_from_the_last_checkpoint(tmp_path):
    out, dump = str(tmp_path / "run"), str(tmp_path / "dump")
    steps = 400
    first = Cluster(tmp_path, out, dump, max_steps=steps, name="first")
    state_path = os.path.join(out, "state.json")
    end = time.monotonic() + DEADLINE_SECONDS
    done = 0
    try:
        while time.monotonic() < end and done < 40:
            if any(p.poll() is not None for p in first.procs):
                break
            try:
                done = json.load(open(state_path))["steps_done"]
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.05)
    finally:
        first.kill()  # as a preemption would: no clean-up
    assert 40 <= done < steps, (
        "the cluster was not killed mid-run:\n" + (first.log_text(0)[-3000:])
    )

    second = Cluster(tmp_path, out, dump, max_steps=steps, name="second")
    second.wait()
    resumed = json.load(open(state_path))
    for i in range(WORKERS):
        log = second.log_text(i)
        assert "resuming" in log, log[-3000:]
        start = int(log.split("resuming")[1].split("from step ")[1].split()[0])
        assert done <= start < steps
    assert resumed["finished"]
    _check_chief_outputs(out, steps=resumed["steps_done"])
    chief = _load(os.path.join(dump, "worker-0.npz"))
    other = _load(os.path.join(dump, "worker-1.npz"))
    for k in chief:
        np.testing.assert_array_equal(chief[k], other[k], err_msg=k)


# ------------------------------------------------------------ in-process
def test_multi_worker_without_tf_config_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    config = RunConfig(train=TrainConfig(strategy="multi_worker"))
    with pytest.raises(ConfigError, match="TF_CONFIG"):
        training.make_strategy(config)


class _Resolver:
    def __init__(self, task_type, task_id, jobs):
        self.task_type, self.task_id, self._jobs = task_type, task_id, jobs

    def cluster_spec(self):
        class Spec:
            def __init__(self, jobs):
                self.jobs = jobs

            def as_dict(self):
                return self.jobs

        return Spec(self._jobs)


class _Strategy:
    def __init__(self, resolver):
        self.cluster_resolver = resolver


@pytest.mark.parametrize(
    "task_type,task_id,jobs,chief",
    [
        ("worker", 0, {"worker": ["a", "b"]}, True),
        ("worker", 1, {"worker": ["a", "b"]}, False),
        ("chief", 0, {"chief": ["a"], "worker": ["b"]}, True),
        ("worker", 0, {"chief": ["a"], "worker": ["b"]}, False),
        (None, None, {}, True),
    ],
)
def test_is_chief(task_type, task_id, jobs, chief):
    strategy = _Strategy(_Resolver(task_type, task_id, jobs))
    assert training.is_chief(strategy) is chief
