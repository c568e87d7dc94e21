"""Every entry point's -h / --help / --helpfull prints its flags with their
defaults and exits 0 (they used to fail with 'Unknown command line flag')."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENTRY_POINTS = {
    "train.py": [sys.executable, "train.py"],
    "evaluate.py": [sys.executable, "evaluate.py"],
    "compare.py": [sys.executable, "compare.py"],
    "export": [sys.executable, "-m", "dismir_tf.export"],
    "analyze": [sys.executable, "-m", "dismir_tf.analysis"],
    "tune.py": [sys.executable, "tune.py"],
    "data": [sys.executable, "-m", "dismir_tf.data"],
}


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
@pytest.mark.parametrize("arg", ["--help", "-h", "--helpfull"])
def test_help_lists_flags_with_defaults(name, arg):
    proc = subprocess.run(ENTRY_POINTS[name] + [arg], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Unknown command line flag" not in proc.stderr
    out = proc.stdout
    assert "Flags:" in out
    # A flag every entry point shares, with its default.
    assert ("--batch_size" in out or "--run_dir" in out
            or "--dataset_file" in out), out[:2000]
    assert "(default:" in out
    # Only this project's flags (not TensorFlow's TPU / tensor tracer
    # ones), and no file path of this machine as a section header.
    assert "tpu" not in out and "tensor_tracer" not in out
    assert not [line for line in out.splitlines()
                if line.startswith("/") or line.endswith(".py:")]
