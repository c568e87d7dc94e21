"""Exports a finished run as a SavedModel for TensorFlow Serving.

    python export.py --run_dir RUN [--export_dir DIR] [--k 50]
        [--version N]                        # or: dismir-export ...

writes DIR/<version>/ (DIR defaults to RUN/export; the version is one more
than the largest there, or 1) and prints its path.  Signatures, history
rules and exactness: docs/serving.md and dismir_tf/export.py.
"""

from __future__ import annotations

import os
import sys

from absl import flags

from dismir_tf import cli, types

DEFAULT_K = types.DEFAULT_K


def define_flags() -> None:
    flags.DEFINE_string("run_dir", None, "A run directory written by train.py.")
    flags.DEFINE_string(
        "export_dir",
        None,
        "TensorFlow Serving's model base "
        "path; the model goes to EXPORT_DIR/<version>/ "
        "(default RUN_DIR/export).",
    )
    flags.DEFINE_integer("k", DEFAULT_K, "Items returned per request.")
    flags.DEFINE_integer(
        "version",
        None,
        "Version number (default: one more than the largest in --export_dir, or 1).",
    )
    flags.mark_flags_as_required(["run_dir"])


def main(argv: list[str]) -> None:
    del argv
    from dismir_tf.runs import require_checkpoint

    fl = flags.FLAGS
    require_checkpoint(fl.run_dir)  # before TensorFlow starts
    from dismir_tf.export import export_run

    export_dir = fl.export_dir or os.path.join(fl.run_dir, "export")
    path = export_run(
        fl.run_dir,
        export_dir,
        k=fl.k,
        version=fl.version,
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
    print(path)


def run() -> None:
    """The ``python export.py`` / ``dismir-export`` command."""
    define_flags()
    cli.run_app(main, doc=__doc__)


if __name__ == "__main__":
    run()
