"""The layout's dependency rules, read from the source (no TensorFlow)."""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "dismir_tf"


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_keras_layers_live_in_layers_one_class_a_file():
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        layer_classes = [
            n.name
            for n in tree.body
            if isinstance(n, ast.ClassDef)
            # tf.keras.layers.Layer, or a TFRS layer (an index) or task
            and any(
                ast.unparse(b).endswith("layers.Layer")
                or ast.unparse(b).startswith(("tfrs.layers.", "tfrs.tasks."))
                for b in n.bases
            )
        ]
        if path.parent.name == "layers":
            assert len(layer_classes) <= 1, (path, layer_classes)
        elif path.name != "partition_task.py":
            # The partition task is a TFRS task (a Keras layer) beside the
            # models it serves as a plugin.
            assert not layer_classes, (path, layer_classes)


def test_layers_do_not_import_models_or_training():
    for path in (PACKAGE / "layers").glob("*.py"):
        bad = {
            m
            for m in _imports(path)
            if m.startswith(
                ("dismir_tf.models", "dismir_tf.training", "dismir_tf.commands")
            )
        }
        assert not bad, (path, bad)


def test_every_layer_is_exported():
    import dismir_tf.layers as layers

    files = {p.stem for p in (PACKAGE / "layers").glob("*.py")} - {"__init__", "ops"}
    exported = {name for name in layers.__all__}
    assert len(files) == len(exported)
    for name in exported:
        cls = getattr(layers, name)
        assert cls.__module__.rsplit(".", 1)[1] in files
        # keras-rs style: what it takes, with shapes, and an Example
        # (run by tests/test_layer_examples.py).
        doc = cls.__doc__ or ""
        assert "Example:" in doc and ("[B," in doc or "[B " in doc), name


def test_sources_hold_no_experiment_figures():
    """Docstrings and comments give shapes, units, errors and sources; what
    a configuration scored lives in docs/ and results/."""
    import re

    figure = re.compile(
        r"(R@50|HR@50|Recall@50)[^|\n]{0,20}\d\.\d{2}"
        r"|\d+% (above|below|higher|lower)|-\d+% / "
    )
    found = [
        f"{p.relative_to(PACKAGE)}:{i}"
        for p in PACKAGE.rglob("*.py")
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if figure.search(line) and 'f"' not in line
    ]
    assert not found, found


def test_nothing_below_the_commands_imports_training():
    """training.py is the run; helpers live in runs, callbacks, evaluation
    and devices, so only entry points import it."""
    entry_points = {
        PACKAGE / "training.py",
        PACKAGE / "analysis" / "__main__.py",
    } | set((PACKAGE / "commands").glob("*.py"))
    for path in PACKAGE.rglob("*.py"):
        if path in entry_points:
            continue
        assert "dismir_tf.training" not in _imports(path), path


def test_retrieval_and_metrics_are_defined_once():
    """One retrieval-and-metrics core (dismir_tf/retrieval.py): the
    evaluator, the TFRS metric and the export call it; the NumPy
    definitions are the tests' reference (tests/reference_metrics.py)."""
    core = {
        "protocol_metrics",
        "merge_top_k",
        "brute_force_index",
        "score_and_top_k",
        "score_and_top_k_candidates",
        "exact_top_k",
    }
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        if path.name != "retrieval.py":
            assert not defined & core, (path, defined & core)
            calls = {
                ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)
            }
            # No metric under another name either (the NDCG discount is
            # the core's), and no second BruteForce index.
            assert not any(
                c.rsplit(".", 1)[-1] in ("log2", "BruteForce") for c in calls
            ), path
    for user in (
        "evaluation.py",
        "tfrs_metrics.py",
        "layers/multi_interest_brute_force.py",
    ):
        text = (PACKAGE / user).read_text(encoding="utf-8")
        assert "from dismir_tf.retrieval import" in text or "retrieval." in text, user
    # The export's index is that layer.
    assert "MultiInterestBruteForce(" in (PACKAGE / "export.py").read_text()
