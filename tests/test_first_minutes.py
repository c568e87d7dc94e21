"""What a new user meets first (issue 15): quiet start-up, progress, the
real step count, one metrics line, where the run went, Ctrl-C, committed
runs without checkpoints."""

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import run_python

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = [
    "--synthetic_users",
    "300",
    "--synthetic_items",
    "120",
    "--synthetic_groups",
    "6",
    "--embedding_dim",
    "16",
]
NOISE = (
    "I0000",
    "E0000",
    "W0000",
    "cuInit",
    "absl::InitializeLog",
    "oneDNN custom operations",
    "To enable the following instructions",
)


def _default_sigint() -> None:
    """In the child: SIGINT's default action, as in a terminal.  A test
    suite started as a background job (`bash .ci/run &`) has SIGINT
    ignored, which its children inherit and Python then keeps, so the
    Ctrl-C under test would never arrive."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _env(user_logging: bool = False) -> dict:
    env = dict(os.environ)
    env.pop("TF_USE_LEGACY_KERAS", None)  # the scripts set it
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # conftest's; not the user's
    if user_logging:
        env["TF_CPP_MIN_LOG_LEVEL"] = "0"
    return env


def _python(*args, user_logging=False):
    return run_python(*args, timeout=600, env=_env(user_logging))


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("run") / "r")
    proc = _python(
        "train.py",
        *SMALL,
        "--max_steps",
        "30",
        "--eval_every",
        "20",
        "--output_dir",
        out,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_start_up_is_quiet_unless_the_user_set_tensorflow_logging(small_run):
    _, proc = small_run
    noisy = [line for line in proc.stderr.splitlines() if any(n in line for n in NOISE)]
    assert noisy == []
    # With TensorFlow's own variable set, nothing is filtered (the lines
    # appear where this TensorFlow build prints them at all).
    loud = _python("evaluate.py", "--run_dir", small_run[0], user_logging=True)
    quiet = _python("evaluate.py", "--run_dir", small_run[0])
    assert loud.returncode == quiet.returncode == 0
    assert not any(n in quiet.stderr for n in NOISE)
    assert loud.stdout == quiet.stdout


def test_the_real_step_count_progress_and_where_the_run_is(small_run):
    out, proc = small_run
    err = proc.stderr
    assert "40 steps (--max_steps 30 rounded up" in err
    assert "step 40/40" in err and "/30 " not in err
    # Redirected (not a terminal): no progress bar and none of its
    # carriage returns or backspaces, one plain line per evaluation with
    # the time per step.
    assert "\r" not in err and "\b" not in err and "20/20 [" not in err
    assert re.search(r"step 20/40 .* seq/s, [0-9.]+ ms/step", err), err
    assert f"tensorboard --logdir {os.path.join(out, 'logs')}" in err
    assert "metrics.json" in err
    # The metrics line once, on stdout.
    metrics = json.load(open(os.path.join(out, "metrics.json")))["test"]
    line = "  ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()))
    assert proc.stdout.count(line) == 1 and line not in err


def test_training_scalars_are_on_the_global_step(small_run):
    import tensorflow as tf

    out, _ = small_run
    steps = {}
    for part in ("train", "valid"):
        for path in glob.glob(os.path.join(out, "logs", part, "events.*")):
            for event in tf.compat.v1.train.summary_iterator(path):
                for value in event.summary.value:
                    steps.setdefault(f"{part}/{value.tag}", set()).add(event.step)
    assert steps["train/loss"] == {20, 40}
    assert steps["train/rec_loss"] == steps["valid/recall@50"] == {20, 40}


def test_ctrl_c_is_one_line_exit_130_and_the_same_command_resumes(tmp_path):
    out = str(tmp_path / "r")
    # A patience the run cannot exhaust: under load the SIGINT may come
    # late, and a run that stopped early by itself would exit 0.
    args = [
        sys.executable,
        "train.py",
        *SMALL,
        "--max_steps",
        "100000",
        "--eval_every",
        "20",
        "--patience",
        "100000",
        "--output_dir",
        out,
    ]
    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        env=_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_default_sigint,
    )
    deadline = time.time() + 300
    # state.json is written after the first checkpoint: from then on a
    # resume starts there (a Ctrl-C between the two starts again).
    while time.time() < deadline and not os.path.exists(
        os.path.join(out, "state.json")
    ):
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted at step ") and out in last
    assert "the same command resumes" in last
    state = json.load(open(os.path.join(out, "state.json")))
    assert state["steps_done"] >= 20
    # The same command resumes from that checkpoint.
    again = subprocess.Popen(
        args,
        cwd=ROOT,
        env=_env(),
        text=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=_default_sigint,
    )
    seen = []
    for line in again.stderr:
        seen.append(line)
        if line.startswith("resuming") or line.startswith("training"):
            break
    again.send_signal(signal.SIGINT)
    again.communicate(timeout=120)
    assert seen[-1].startswith(f"resuming {out} from step {state['steps_done']} "), seen


@pytest.mark.parametrize(
    "command",
    [
        ["evaluate.py", "--run_dir", "{run}"],
        ["export.py", "--run_dir", "{run}", "--export_dir", "{tmp}/export"],
        [
            "-m",
            "dismir_tf.analysis",
            "collapse",
            "--run_dirs",
            "{run}",
            "--out",
            "{tmp}/c",
        ],
        ["-m", "dismir_tf.analysis", "diagnose", "--run_dirs", "{run}"],
    ],
)
def test_a_run_without_its_checkpoint_is_one_clear_line(small_run, tmp_path, command):
    run = str(tmp_path / "committed")
    os.makedirs(run)
    for name in ("config.json", "state.json", "metrics.json"):
        shutil.copy(os.path.join(small_run[0], name), run)
    proc = _python(*[c.format(run=run, tmp=tmp_path) for c in command])
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr
    assert lines[-1].startswith(f"error: {run}: its best checkpoint")
    assert "train it again" in lines[-1]
    assert not os.path.exists(tmp_path / "export")


def test_outputs_default_into_the_run_directory_with_mode_0644(small_run):
    out, _ = small_run
    proc = _python(
        "evaluate.py",
        "--run_dir",
        out,
        "--dump_topk",
        "top.jsonl",
        "--dump_partition",
        "part.tsv",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("top.jsonl", "part.tsv", "metrics.json", "state.json", "config.json"):
        path = os.path.join(out, name)
        assert os.path.isfile(path), name
        assert os.stat(path).st_mode & 0o777 == 0o644 & ~_umask(), name
    assert not os.path.exists(os.path.join(ROOT, "top.jsonl"))
    proc = _python("export.py", "--run_dir", out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == os.path.join(out, "export", "1")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_an_unknown_model_is_refused_at_once_with_the_closest_name():
    proc = _python("train.py", "--model", "comirec_sa")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: unknown model 'comirec_sa'; did you mean 'comirec-sa'? "
        "(expected one of dnn, gru4rec, sasrec, mind, comirec-dr, "
        "comirec-sa, pimirec, remi, re4, umi, dismir, mir, mir-rv, mir-bf, "
        "dismir-wo-dpi; a model from outside the package: name its module in "
        "$DISMIR_TF_MODELS)"
    )
    # Refused before TensorFlow is imported (not after 7 to 12 s of it).
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, runpy; sys.argv = ['train.py', "
            "'--model', 'x']; import dismir_tf.cli\n"
            "try:\n runpy.run_path('train.py', run_name='__main__')\n"
            "except SystemExit: pass\n"
            "print('tensorflow' in sys.modules)",
        ],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.stdout.strip().splitlines()[-1] == "False", check.stderr


def test_the_stderr_filter_never_blocks_when_its_reader_goes_away():
    script = (
        "import sys\nfrom dismir_tf import cli\ncli.quiet_startup()\n"
        "for i in range(20000):\n"
        "    print('line', i, 'x' * 60, file=sys.stderr)\n"
        "print('done')\n"
    )
    proc = subprocess.run(
        [
            "bash",
            "-c",
            f'{sys.executable} -c "$S" 2>&1 >/dev/null '
            "| head -c 50 >/dev/null; echo ${PIPESTATUS[0]}",
        ],
        cwd=ROOT,
        env={**_env(), "S": script, "PYTHONPATH": ROOT},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr


def test_progress_bar_only_on_a_terminal():
    import io

    from dismir_tf import training

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert training.progress_bar_wanted(None, Terminal())
    assert not training.progress_bar_wanted(0, Terminal())
    assert not training.progress_bar_wanted(None, io.StringIO())
    assert not training.progress_bar_wanted(1, object())
