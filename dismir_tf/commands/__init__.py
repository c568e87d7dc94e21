"""The command-line entry points: train.py, evaluate.py and compare.py at the
repository root (and the ``dismir-*`` console scripts of pyproject.toml) are
thin wrappers around these modules.  Flags are defined here and in
dismir_tf.cli only; the library below takes typed config dataclasses."""
