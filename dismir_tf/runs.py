"""Run directories: their layout, state and configuration, the checks the
entry points make before TensorFlow starts, and loading a finished run.

Importing this module does not import TensorFlow (``build_model`` and
``load_run`` import it when called)."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from dismir_tf.config import RunConfig, config_differences
from dismir_tf.errors import ConfigError, UnreadableConfigError
from dismir_tf.io_utils import atomic_write_json, read_json

if TYPE_CHECKING:
    from dismir_tf.data.dataset import SequenceDataset
    from dismir_tf.models import RetrievalModel

Log = Callable[[str], None]


def _stderr_log(msg: str) -> None:
    import sys

    print(msg, file=sys.stderr, flush=True)


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
        raise ConfigError(f"{run_dir} is not a run directory (no config.json)")
    state_path = os.path.join(run_dir, "state.json")
    state = read_json(state_path) if os.path.isfile(state_path) else {}
    prefix = state.get("best_prefix") if isinstance(state, dict) else None
    if not prefix:
        raise ConfigError(
            f"{run_dir} has no best checkpoint yet (no "
            "evaluation has finished); train it further"
        )
    # As RunDirectory.load_state: the checkpoint is looked up in this
    # directory's best/, whatever path state.json names (runs move).
    prefix = os.path.join(run_dir, "best", os.path.basename(prefix))
    if not os.path.isfile(prefix + ".index"):
        raise ConfigError(
            f"{run_dir}: its best checkpoint {prefix} is not there (run "
            f"directories committed under results/ keep config.json, "
            f"state.json and metrics.json, not checkpoints); to evaluate, "
            f"export or analyse this run, train it again into a new "
            f"--output_dir with the flags its config.json records"
        )
    return prefix


@dataclasses.dataclass
class RunState:
    """What survives a kill: progress, model selection, early stopping."""

    epochs_done: int = 0
    steps_done: int = 0
    best_metric: float = -1.0
    best_step: int = 0
    best_prefix: str = ""
    bad_evals: int = 0
    stopped_early: bool = False
    finished: bool = False
    train_seconds: float = 0.0
    fingerprint: str = ""
    evals: list = dataclasses.field(default_factory=list)


class RunDirectory:
    """File layout and atomic bookkeeping of one run directory."""

    def __init__(self, path: str):
        self.path = path
        self.config_path = os.path.join(path, "config.json")
        self.state_path = os.path.join(path, "state.json")
        self.metrics_path = os.path.join(path, "metrics.json")
        self.ckpt_dir = os.path.join(path, "ckpt")
        self.best_dir = os.path.join(path, "best")
        self.log_dir = os.path.join(path, "logs")

    def load_state(self) -> RunState | None:
        if not os.path.exists(self.state_path):
            return None
        values = read_run_json(self.state_path)
        try:
            state = RunState(**values)
        except TypeError as e:
            raise ConfigError(
                f"not a state file of this version ({e})", path=self.state_path
            ) from None
        if state.best_prefix:
            # The best checkpoint is looked up in this directory's best/
            # whatever path the file names: the run directory may have been
            # moved since, and old best checkpoints are deleted by this name,
            # so a path read from a file must not point anywhere else.
            state.best_prefix = os.path.join(
                self.best_dir, os.path.basename(state.best_prefix)
            )
        return state

    def save_state(self, state: RunState) -> None:
        atomic_write_json(self.state_path, dataclasses.asdict(state))

    def read_config(self) -> RunConfig:
        values = read_run_json(self.config_path)
        try:
            return RunConfig.from_dict(values)
        except UnreadableConfigError as e:
            raise ConfigError(e.detail, path=self.config_path) from None


def read_run_json(path: str) -> dict:
    """A JSON object from a run directory; a damaged file is a ConfigError.

    The run's own writes are atomic, so this only happens to a file edited
    or truncated by something else.
    """
    try:
        values = read_json(path)
    except json.JSONDecodeError as e:
        raise ConfigError(
            f"not valid JSON ({e.msg}, column {e.colno}); was it edited by hand?",
            path=path,
            line=e.lineno,
        ) from None
    except UnicodeDecodeError:
        raise ConfigError("not valid UTF-8", path=path) from None
    if not isinstance(values, dict):
        raise ConfigError("expected a JSON object", path=path, line=1)
    return values


def check_output_dir(path: str) -> None:
    """Fails before any work if ``path`` cannot become the run directory."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError("--output_dir exists and is not a directory", path=path)
    parent = os.path.abspath(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ConfigError(
            f"--output_dir cannot be created: {parent} is not a directory", path=path
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(
            f"--output_dir cannot be written: {parent} is not writable", path=path
        )


def check_same_run(run_dir: RunDirectory, config: RunConfig) -> None:
    if not os.path.exists(run_dir.config_path):
        return
    # Parsing fills fields added to the config since the run started.
    diff = config_differences(run_dir.read_config().to_dict(), config.to_dict())
    if diff:
        raise ConfigError(
            f"{run_dir.path} holds a run with a different configuration "
            f"({', '.join(diff)}); use a new --output_dir"
        )


# ----------------------------------------------------------------- helpers
def build_model(config: RunConfig, num_items: int) -> RetrievalModel:
    """The model of ``config`` for ``num_items`` items, built (weights
    created) for its history length."""
    from dismir_tf.models import create_model

    model = create_model(num_items, config.model, seed=config.train.seed)
    model.build_for(config.model.max_len)
    return model


def load_run(
    run_dir_path: str, log: Log = _stderr_log
) -> tuple[RunConfig, SequenceDataset, RetrievalModel]:
    """A finished run's config, data set and best model (for evaluation).

    Raises:
      ConfigError: not a run directory, no best checkpoint, or the data set
        changed since the run was trained.
    """
    import tensorflow as tf

    from dismir_tf.data import dataset_fingerprint, load_dataset

    run_dir = RunDirectory(run_dir_path)
    require_checkpoint(run_dir_path)
    state = run_dir.load_state()
    if state is None:  # require_checkpoint read it: removed since
        raise ConfigError("state.json has gone", path=run_dir_path)
    config = run_dir.read_config()
    ds = load_dataset(config.data, log=log)
    if state.fingerprint and state.fingerprint != dataset_fingerprint(ds):
        raise ConfigError(
            f"the data set ({config.data.dataset or config.data.dataset_file}"
            ") has changed since this run was trained; its checkpoint does "
            "not belong to the data as it is now",
            path=run_dir_path,
        )
    model = build_model(config, ds.num_items)
    tf.train.Checkpoint(model=model).read(state.best_prefix).expect_partial()
    return config, ds, model
