"""The README's Python example runs as printed."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_readme_python_example_runs(capsys):
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    block = re.search(r"<!-- readme-example:start -->\n```python\n(.*?)```",
                      text, re.S)
    assert block, "the README lost its example markers"
    namespace: dict = {}
    exec(compile(block.group(1), "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "recall@50" in out
    losses = namespace["history"].history["rec_loss"]
    assert losses[-1] < losses[0]
    assert namespace["history"].history["partition_loss"][0] > 0
    assert 0.0 < namespace["result"].metrics["recall@50"] <= 1.0
    assert os.path.exists("/tmp/dismir_example/weights.index")
