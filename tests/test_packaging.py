"""pyproject.toml (PEP 621): the same pins as requirements.txt, console
scripts, and the README's Python example from another directory after
`pip install .` (issue 15 item 6)."""

import os
import re
import shutil
import subprocess
import sys
import tomllib

import dismir_tf
from tests.helpers import readme_block

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _pyproject() -> dict:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def test_dependencies_are_requirements_txt():
    project = _pyproject()["project"]
    with open(os.path.join(ROOT, "requirements.txt")) as f:
        requirements = [
            line.strip() for line in f if line.strip() and not line.startswith("#")
        ]
    declared = project["dependencies"] + project["optional-dependencies"]["test"]
    assert sorted(declared) == sorted(requirements)
    assert project["version"] == dismir_tf.__version__


def test_console_scripts_point_at_run_functions():
    import importlib.util

    from dismir_tf import export
    from dismir_tf.commands import export as export_command

    scripts = _pyproject()["project"]["scripts"]
    assert set(scripts) == {
        "dismir-train",
        "dismir-evaluate",
        "dismir-compare",
        "dismir-export",
        "dismir-analyze",
        "dismir-data",
        "dismir-tune",
        "dismir-retrain",
    }
    for target in scripts.values():
        # Not imported: the command modules define their flags at import.
        module, function = target.split(":")
        spec = importlib.util.find_spec(module)
        source = open(spec.origin, encoding="utf-8").read()
        assert re.search(rf"^def {function}\(\) -> None:", source, re.M), target
    assert export_command.DEFAULT_K == export.DEFAULT_K


def _readme_example() -> str:
    return readme_block("readme-example").replace(
        "/tmp/dismir_example/", "example_out/"
    )


def test_pip_install_then_the_readme_example_from_another_directory(tmp_path):
    # A copy of the sources (pip builds in place); the environment's
    # TensorFlow is reused (no network here), the project is installed
    # without dependencies into a fresh virtual environment.
    src = tmp_path / "src"
    top_level = {".git", "results", "runs", "data", "bench", "docs", "build"}

    def ignore(directory, names):
        skip = {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}
        if os.path.samefile(directory, ROOT):
            skip |= top_level & set(names)
        return skip

    shutil.copytree(ROOT, src, ignore=ignore)
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
        check=True,
        timeout=300,
    )
    python = str(venv / "bin" / "python")
    pip = subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert pip.returncode == 0, pip.stdout[-2000:] + pip.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    where = subprocess.run(
        [python, "-c", "import dismir_tf; print(dismir_tf.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert str(venv) in where.stdout, where.stdout + where.stderr
    (elsewhere / "example.py").write_text(_readme_example())
    run = subprocess.run(
        [python, "example.py"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "recall@50" in run.stdout
    helped = subprocess.run(
        [str(venv / "bin" / "dismir-train"), "--help"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert helped.returncode == 0 and "--dataset_file" in helped.stdout
