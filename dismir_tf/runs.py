"""TensorFlow-free checks of a run directory, for the entry points that read
finished runs (evaluate.py, the export, analyze) before TensorFlow starts."""

from __future__ import annotations

import os

from dismir_tf.errors import ConfigError
from dismir_tf.io_utils import read_json


def require_checkpoint(run_dir: str) -> str:
    """The prefix of ``run_dir``'s best checkpoint.

    Args:
      run_dir: a run directory written by train.py.

    Returns:
      The checkpoint prefix recorded in state.json.

    Raises:
      ConfigError: ``run_dir`` is not a run directory, has no best
        checkpoint yet, or its checkpoint files are absent (the run
        directories committed under results/ keep config.json, state.json
        and metrics.json only; the message says how to get one).
    """
    if not os.path.isfile(os.path.join(run_dir, "config.json")):
        raise ConfigError(f"{run_dir} is not a run directory (no "
                          "config.json)")
    state_path = os.path.join(run_dir, "state.json")
    state = read_json(state_path) if os.path.isfile(state_path) else {}
    prefix = state.get("best_prefix") if isinstance(state, dict) else None
    if not prefix:
        raise ConfigError(f"{run_dir} has no best checkpoint yet (no "
                          "evaluation has finished); train it further")
    # As RunDirectory.load_state: the checkpoint is looked up in this
    # directory's best/, whatever path state.json names (runs move).
    prefix = os.path.join(run_dir, "best", os.path.basename(prefix))
    if not os.path.isfile(prefix + ".index"):
        raise ConfigError(
            f"{run_dir}: its best checkpoint {prefix} is not there (run "
            f"directories committed under results/ keep config.json, "
            f"state.json and metrics.json, not checkpoints); to evaluate, "
            f"export or analyse this run, train it again into a new "
            f"--output_dir with the flags its config.json records")
    return prefix
