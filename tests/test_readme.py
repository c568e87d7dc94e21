"""The README's Python example runs as printed."""

import os

from tests.helpers import readme_block


def test_readme_python_example_runs(capsys):
    namespace: dict = {}
    exec(compile(readme_block("readme-example"), "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "recall@50" in out
    losses = namespace["history"].history["rec_loss"]
    assert losses[-1] < losses[0]
    assert namespace["history"].history["partition_loss"][0] > 0
    assert 0.0 < namespace["result"].metrics["recall@50"] <= 1.0
    assert os.path.exists("/tmp/dismir_example/weights.index")
