"""Training runs: fit with early stopping, best checkpoint, resume.

``run(config)`` is the whole job behind train.py.  A run directory holds:

* ``config.json``: the resolved configuration;
* ``ckpt/``: the latest training checkpoint (model, optimizer, step), written
  after every evaluation, from which a killed run resumes;
* ``best/``: the model weights with the best valid Recall@50 so far;
* ``state.json``: step count, best-so-far, early-stopping counter and the
  evaluation history, written atomically after the checkpoints it names;
* ``metrics.json``: valid and test metrics of the best checkpoint;
* ``logs/``: TensorBoard.

Running the same command again on a run directory resumes it: training
continues from the last checkpoint with its step count, best-so-far and
patience counter (batches are a function of the step, so the resumed run
sees the batches it would have seen); a finished run is not trained again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from dismir_tf import evaluation, optimizers, pipeline
from dismir_tf.config import RunConfig, TrainConfig, config_differences
from dismir_tf.data import dataset_fingerprint, load_dataset
from dismir_tf.data.dataset import SequenceDataset
from dismir_tf.diagnostics import DIAGNOSTIC_USERS, FIGURES, collapse_diagnostics
from dismir_tf.errors import ConfigError, TrainingDivergedError
from dismir_tf.io_utils import atomic_write_json, read_json
from dismir_tf.models import (
    RetrievalModel,
    create_model,
    describe_settings,
    resolve_config,
    time_unit,
)
from dismir_tf.runs import require_checkpoint
from dismir_tf.stages import StageClock, peak_rss_mib

Log = Callable[[str], None]
SELECTION_METRIC = "recall@50"


def _stderr_log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ devices
def configure_logical_cpus(n: int) -> None:
    """Splits the CPU into n logical devices (before TF initialises them)."""
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError:
        # Already initialised (e.g. by an earlier call in this process);
        # fine if there are enough logical devices.
        pass
    have = len(tf.config.list_logical_devices("CPU"))
    if have < n:
        raise ConfigError(
            f"the mirrored strategy needs {n} logical CPU devices but the "
            f"process has {have}; TensorFlow was initialised before the "
            "strategy was chosen")


def make_strategy(config: RunConfig) -> tf.distribute.Strategy:
    """The tf.distribute strategy named by ``config.train.strategy``."""
    name = config.train.strategy
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            return tf.distribute.MirroredStrategy()
        n = config.train.logical_cpus
        configure_logical_cpus(n)
        devices = [d.name for d in tf.config.list_logical_devices("CPU")][:n]
        return tf.distribute.MirroredStrategy(
            devices=devices,
            cross_device_ops=tf.distribute.ReductionToOneDevice())
    if name == "multi_worker":
        # The cluster and this process's task come from TF_CONFIG
        # (docs/multi_worker.md).  Without it TensorFlow would quietly train
        # a one-worker "cluster", which is never what was meant.
        if not os.environ.get("TF_CONFIG"):
            raise ConfigError(
                "--strategy multi_worker needs the TF_CONFIG environment "
                "variable (the cluster's addresses and this worker's task); "
                "see docs/multi_worker.md")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ConfigError(f"unknown strategy {name!r}")


def _is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def _task_name(strategy: tf.distribute.Strategy) -> str:
    """'worker-1', 'chief-0', ... or 'local' outside a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return "local"
    return f"{resolver.task_type}-{resolver.task_id}"


def train_input(strategy: tf.distribute.Strategy,
                sampler: pipeline.TrainSampler, start_step: int):
    """The training batches from ``start_step`` on, as ``fit`` takes them.

    One device, or several on one machine: the global batches, which Keras
    splits over the local replicas.  Several workers: every worker samples
    the step's global batch (it is a function of the seed and the step) and
    keeps only its own replicas' slices, so replica r of the cluster trains
    on rows [r * B / R, (r + 1) * B / R) of the same batch a single process
    would see: the workers' shards are disjoint, cover the batch, and the
    run does not depend on how the replicas are spread over machines.
    """
    data = sampler.dataset_from(start_step)
    if not _is_multi_worker(strategy):
        return data
    replicas = strategy.num_replicas_in_sync
    if sampler.batch_size % replicas:
        raise ConfigError(f"--batch_size {sampler.batch_size} is not a "
                          f"multiple of the {replicas} replicas")

    def dataset_fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
        per_replica = ctx.get_per_replica_batch_size(sampler.batch_size)
        local = replicas // ctx.num_input_pipelines
        first = ctx.input_pipeline_id * local * per_replica

        def shard(batch):
            return {k: tf.reshape(v[first:first + local * per_replica],
                                  [local, per_replica] + v.shape[1:])
                    for k, v in batch.items()}

        # One element per local replica and step, in replica order.
        return sampler.dataset_from(start_step).map(shard).unbatch()

    return strategy.distribute_datasets_from_function(dataset_fn)


def _check_workers_agree(strategy: tf.distribute.Strategy,
                         steps_done: int) -> None:
    """Fails on every worker alike if they would resume different steps.

    Each worker reads the run's state from ``--output_dir``; when that is
    not storage they all share, a restarted cluster would resume the
    chief's step on one worker and step 0 on another and train on garbage.
    All workers are equal iff n * sum(x^2) == (sum x)^2.
    """
    if not _is_multi_worker(strategy):
        return
    x = float(steps_done)
    sums = strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(
        lambda: tf.constant([1.0, x, x * x], tf.float64)), axis=None)
    n, total, squares = sums.numpy().tolist()
    if n * squares != total * total:
        raise ConfigError(
            "the workers found different progress in --output_dir (step "
            f"{steps_done} here); on a cluster it must be storage that "
            "every worker reads (docs/multi_worker.md)")


# ----------------------------------------------------------------- helpers
def build_model(config: RunConfig, num_items: int) -> RetrievalModel:
    model = create_model(num_items, config.model, seed=config.train.seed)
    model.build_for(config.model.max_len)
    return model


def make_query_fn(model: RetrievalModel, retrieval: str | None = None):
    """A compiled history [B, L] -> queries [B, Q, d], cached per model.

    For a model with ``uses_time`` (PIMIRec) it is history, times=None ->
    queries, times [B, L] being the examples' history times."""
    cache = model.__dict__.setdefault("_query_fns", {})
    if retrieval not in cache:
        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
        def query(history):
            return model.query_vectors(history, retrieval)
        cache[retrieval] = query
        if getattr(model, "uses_time", False):
            @tf.function(input_signature=[
                tf.TensorSpec([None, None], tf.int32),
                tf.TensorSpec([None, None], tf.float32)])
            def timed_query(history, times):
                return model.query_vectors(history, retrieval, times=times)

            def query_with_times(history, times=None):
                if times is None:
                    return query(history)
                return timed_query(history, times)
            cache[retrieval] = query_with_times
    return cache[retrieval]


def evaluate_model(model: RetrievalModel, examples: pipeline.EvalExamples,
                   config: RunConfig, keep_topk: bool = False,
                   ks=evaluation.DEFAULT_KS,
                   contributors: bool = False) -> evaluation.EvalResult:
    return evaluation.evaluate(
        make_query_fn(model), model.item_embedding.embeddings, examples,
        ks=ks, batch_size=config.train.eval_batch_size,
        exclude_history=config.train.exclude_history, keep_topk=keep_topk,
        contributors=contributors)


def make_positive_sampler(config: RunConfig, ds: SequenceDataset,
                          log: Log):
    if config.model.partition_weight <= 0:
        return None
    from dismir_tf.cooccurrence import build_positive_sampler
    t0 = time.time()
    sampler = build_positive_sampler(ds)
    log(f"co-occurrence graph over {len(ds.train_users)} training users: "
        f"{sampler.num_entries:,} edges in {time.time() - t0:.1f}s")
    return sampler


def _steps_per_execution(eval_every: int, cap: int = 50) -> int:
    return max(d for d in range(1, min(cap, eval_every) + 1)
               if eval_every % d == 0)


def make_optimizer(cfg: TrainConfig, num_items: int = 0
                   ) -> tf.keras.optimizers.Optimizer:
    """Adam with ``cfg.learning_rate`` and the embedding update that
    ``cfg.embedding_update`` resolves to for an item table of
    ``num_items + 1`` rows (``dismir_tf.optimizers``: 'dense' is the
    reference's, every row every step; 'lazy' only the rows of the batch).

    With ``cfg.jit_compile`` its per-variable update is XLA-compiled, which
    Keras only does on GPUs by itself.  On the CPU that matters: the dense
    update moves every row of the [N + 1, d] item table at every step,
    which unfused is ~6 passes over three table-sized arrays and XLA turns
    into one.
    """
    update = optimizers.resolve_embedding_update(cfg.embedding_update,
                                                 num_items + 1)
    return optimizers.make_adam(cfg.learning_rate, update, cfg.jit_compile)


def compile_model(model: RetrievalModel, cfg: TrainConfig,
                  steps_per_execution: int | None = None) -> None:
    """Compiles ``model`` for training as run() does (inside the scope).

    ``steps_per_execution`` defaults to the largest divisor of
    ``cfg.eval_every`` up to 50 (fewer Python round trips per step).

    The whole train step is XLA-compiled only on one device.  Under a
    distribution strategy only the optimizer update (which runs per device
    after the all-reduce) is: XLA has no CPU kernels for collective ops
    (multi_worker) and cannot reach the variables of another logical CPU
    device (mirrored).
    """
    step_xla = cfg.jit_compile and not tf.distribute.has_strategy()
    model.compile(optimizer=make_optimizer(cfg, model.num_items),
                  steps_per_execution=(steps_per_execution or
                                       _steps_per_execution(cfg.eval_every)),
                  jit_compile=step_xla)


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
        values = _read_run_json(self.state_path)
        try:
            state = RunState(**values)
        except TypeError as e:
            raise ConfigError(f"not a state file of this version ({e})",
                              path=self.state_path) from None
        if state.best_prefix:
            # The best checkpoint is looked up in this directory's best/
            # whatever path the file names: the run directory may have been
            # moved since, and old best checkpoints are deleted by this name,
            # so a path read from a file must not point anywhere else.
            state.best_prefix = os.path.join(
                self.best_dir, os.path.basename(state.best_prefix))
        return state

    def save_state(self, state: RunState) -> None:
        atomic_write_json(self.state_path, dataclasses.asdict(state))

    def read_config(self) -> RunConfig:
        values = _read_run_json(self.config_path)
        try:
            return RunConfig.from_dict(values)
        except (TypeError, AttributeError) as e:
            raise ConfigError(f"not a config file of this version ({e})",
                              path=self.config_path) from None


def _read_run_json(path: str) -> dict:
    """A JSON object from a run directory; a damaged file is a ConfigError.

    The run's own writes are atomic, so this only happens to a file edited
    or truncated by something else.
    """
    try:
        values = read_json(path)
    except json.JSONDecodeError as e:
        raise ConfigError(f"not valid JSON ({e.msg}, column {e.colno}); "
                          "was it edited by hand?", path=path,
                          line=e.lineno) from None
    except UnicodeDecodeError:
        raise ConfigError("not valid UTF-8", path=path) from None
    if not isinstance(values, dict):
        raise ConfigError("expected a JSON object", path=path, line=1)
    return values


def _check_output_dir(path: str) -> None:
    """Fails before any work if ``path`` cannot become the run directory."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError("--output_dir exists and is not a directory",
                          path=path)
    parent = os.path.abspath(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ConfigError(f"--output_dir cannot be created: {parent} is not "
                          "a directory", path=path)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--output_dir cannot be written: {parent} is not "
                          "writable", path=path)


def _restore_for_resume(ckpt: tf.train.Checkpoint, step_var: tf.Variable,
                        run_dir: RunDirectory, state: RunState,
                        cfg: TrainConfig, log: Log, clean: bool) -> None:
    """Restores the checkpoint of the step state.json records.

    Each evaluation saves ckpt-<step> and then state.json, and the manager
    keeps the last two checkpoints, so a run killed between the two writes
    still has the checkpoint its state names: it is restored, the newer one
    is ignored (and overwritten when that evaluation is redone), and the
    resumed run is exactly the uninterrupted one.  With ``clean``, leftovers
    of a kill in this run's own file names are removed: best checkpoints
    state.json does not name and temporary files of atomic writes.
    """
    wanted = os.path.join(run_dir.ckpt_dir, f"ckpt-{state.steps_done}")
    if tf.io.gfile.exists(wanted + ".index"):
        ckpt.restore(wanted).expect_partial()
    else:
        latest = tf.train.latest_checkpoint(run_dir.ckpt_dir)
        if latest is None:
            raise ConfigError(f"{run_dir.state_path} exists but "
                              f"{run_dir.ckpt_dir} has no checkpoint")
        ckpt.restore(latest).expect_partial()
        step = int(step_var.numpy())
        if step < state.steps_done or step % cfg.eval_every:
            raise ConfigError(
                f"{run_dir.ckpt_dir} holds step {step} but "
                f"{run_dir.state_path} says {state.steps_done}; the run "
                "directory is inconsistent, use a new --output_dir")
        if step > state.steps_done:
            # Only a run directory from before two checkpoints were kept.
            log(f"warning: {run_dir.state_path} is behind the checkpoint "
                f"(step {state.steps_done} < {step}); continuing from step "
                f"{step} without that evaluation")
            state.steps_done = step
            state.epochs_done = step // cfg.eval_every
    if not clean:
        return
    keep = state.best_prefix + "."
    for f in tf.io.gfile.glob(os.path.join(run_dir.best_dir, "step-*")):
        if not (state.best_prefix and f.startswith(keep)):
            tf.io.gfile.remove(f)
    for name in ("config.json", "state.json", "metrics.json"):
        for f in tf.io.gfile.glob(os.path.join(run_dir.path,
                                               f".{name}.*.tmp")):
            tf.io.gfile.remove(f)


def _check_same_run(run_dir: RunDirectory, config: RunConfig) -> None:
    if not os.path.exists(run_dir.config_path):
        return
    # Parsing fills fields added to the config since the run started.
    diff = config_differences(run_dir.read_config().to_dict(),
                              config.to_dict())
    if diff:
        raise ConfigError(
            f"{run_dir.path} holds a run with a different configuration "
            f"({', '.join(diff)}); use a new --output_dir")


# ------------------------------------------------------------------ callback
# run(on_evaluation=...): called after every valid evaluation with the step
# and the valid metrics; returning True stops the run there (a pruner).
OnEvaluation = Callable[[int, dict], bool]


class _EvalAndCheckpoint(tf.keras.callbacks.Callback):
    """Valid evaluation, best checkpoint, resume checkpoint, early stop."""

    def __init__(self, run_dir: RunDirectory, state: RunState,
                 config: RunConfig, examples: pipeline.EvalExamples,
                 manager: tf.train.CheckpointManager, step_var: tf.Variable,
                 best_ckpt: tf.train.Checkpoint, log: Log, is_chief: bool,
                 clock: StageClock | None = None,
                 on_evaluation: OnEvaluation | None = None):
        super().__init__()
        self.clock = clock if clock is not None else StageClock()
        self.on_evaluation = on_evaluation
        self.run_dir = run_dir
        self.state = state
        self.config = config
        self.examples = examples
        self.manager = manager
        self.step_var = step_var
        self.best_ckpt = best_ckpt
        self.log = log
        self.is_chief = is_chief
        self.writer = (tf.summary.create_file_writer(
            os.path.join(run_dir.log_dir, "valid")) if is_chief else None)
        # Training scalars on the global step as well (Keras' TensorBoard
        # callback would index them by evaluation interval).
        self.train_writer = (tf.summary.create_file_writer(
            os.path.join(run_dir.log_dir, "train")) if is_chief else None)
        self.total_steps = (math.ceil(config.train.max_steps
                                      / config.train.eval_every)
                            * config.train.eval_every)
        self._t0 = 0.0
        self._last_step = state.steps_done

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.time()
        self._cpu0 = time.process_time()
        self._peak0 = peak_rss_mib()
        self._checked_batch = -1

    def on_train_batch_end(self, batch, logs=None):
        PROGRESS["step"] = self.state.steps_done + batch + 1
        # logs['loss'] is the epoch's running mean, reported once per
        # steps_per_execution: it turns NaN/inf in the chunk where the first
        # bad step is, and nothing of that epoch has been saved.
        loss = (logs or {}).get("loss")
        first = self.state.steps_done + getattr(self, "_checked_batch",
                                                -1) + 2
        self._checked_batch = batch
        if loss is None or math.isfinite(float(loss)):
            return
        step = self.state.steps_done + batch + 1
        where = (f"at step {step}" if first >= step else
                 f"between steps {first} and {step}")
        if self.state.steps_done > 0:
            kept = (f"the last good checkpoint, step {self.state.steps_done}"
                    f", is kept in {self.run_dir.ckpt_dir} and the run "
                    "directory is left as it was then")
        else:
            kept = ("no checkpoint had been written yet (the first is at "
                    f"step {self.config.train.eval_every})")
        raise TrainingDivergedError(
            f"the loss became {float(loss)} {where}; {kept}. Start again "
            "with a lower --learning_rate (or --partition_weight) in a new "
            "--output_dir")

    def on_epoch_end(self, epoch, logs=None):
        cfg = self.config.train
        st = self.state
        st.train_seconds += time.time() - self._t0
        self.clock.add("train", time.time() - self._t0,
                       time.process_time() - self._cpu0, self._peak0)
        st.epochs_done = epoch + 1
        st.steps_done = st.epochs_done * cfg.eval_every
        self.step_var.assign(st.steps_done)
        interval_seconds = time.time() - self._t0
        t_eval = time.time()
        with self.clock("evaluation"):
            result = evaluate_model(self.model, self.examples, self.config,
                                    ks=(50,), contributors=True)
        t_diag = time.time()
        metric = result.metrics[SELECTION_METRIC]
        improved = metric > st.best_metric
        # A fixed sample of the valid users, and the evaluation's own top
        # lists: the diagnostics cost a few percent of the evaluation.
        with self.clock("diagnostics"):
            diag = collapse_diagnostics(
                self.model, self.examples, self.config.train.eval_batch_size,
                max_users=DIAGNOSTIC_USERS,
                top_k_interests=result.contributors)
        entry = {"step": st.steps_done, "valid": result.metrics,
                 "collapse": diag.to_dict(),
                 "train": {k: float(v) for k, v in (logs or {}).items()},
                 "eval_seconds": round(time.time() - t_eval, 2),
                 # The split of this interval: training (the first one
                 # includes tracing and XLA compilation), the valid
                 # evaluation, and the diagnostics (part of eval_seconds).
                 "train_seconds": round(interval_seconds, 3),
                 "evaluation_seconds": round(t_diag - t_eval, 3),
                 "diagnostics_seconds": round(time.time() - t_diag, 3)}
        st.evals.append(entry)
        old_best = st.best_prefix
        if improved:
            st.best_metric, st.best_step, st.bad_evals = (metric,
                                                          st.steps_done, 0)
            # Every worker writes (a non-chief into its scratch directory):
            # saving may run collective ops that need all of them.
            st.best_prefix = self.best_ckpt.write(os.path.join(
                self.run_dir.best_dir, f"step-{st.steps_done}"))
        else:
            st.bad_evals += 1
        if st.bad_evals >= cfg.patience or st.steps_done >= cfg.max_steps:
            st.stopped_early = st.steps_done < cfg.max_steps
            self.model.stop_training = True
        if (self.on_evaluation is not None and st.steps_done < cfg.max_steps
                and self.on_evaluation(st.steps_done, dict(result.metrics))):
            # The caller (a tuner's pruner) stops the run here.
            entry["stopped_by_caller"] = True
            st.stopped_early = True
            self.model.stop_training = True
        self.manager.save(checkpoint_number=st.steps_done)
        PROGRESS["checkpoint"] = st.steps_done
        if self.is_chief:
            self.run_dir.save_state(st)
        # Only a best checkpoint of this process's own directory: a resumed
        # non-chief worker's old_best is the chief's.
        if improved and old_best.startswith(self.run_dir.best_dir + os.sep):
            for f in tf.io.gfile.glob(old_best + ".*"):
                tf.io.gfile.remove(f)
        if self.is_chief:
            with self.train_writer.as_default(step=st.steps_done):
                for k, v in entry["train"].items():
                    tf.summary.scalar(k, v)
            with self.writer.as_default(step=st.steps_done):
                for k, v in result.metrics.items():
                    tf.summary.scalar(k, v)
                for k, v in diag.to_dict().items():
                    if k in FIGURES and v is not None:
                        tf.summary.scalar(f"collapse/{k}", v)
        first_step = self._last_step
        seqs = (st.steps_done - self._last_step) * cfg.batch_size
        self._last_step = st.steps_done
        train = entry["train"]
        best = ("  (best)" if improved else
                f"  (best {st.best_metric:.4f} at {st.best_step})")
        train_seconds = max(time.time() - self._t0 - entry["eval_seconds"],
                            1e-9)
        ms_per_step = 1e3 * interval_seconds / max(st.steps_done - first_step,
                                                   1)
        self.log(
            f"step {st.steps_done}/{self.total_steps}"
            f"  loss {train.get('loss', float('nan')):.4f}"
            f"  rec {train.get('rec_loss', float('nan')):.4f}"
            f"  partition {train.get('partition_loss', float('nan')):.4f}"
            f"  valid recall@50 {metric:.4f}{best}"
            f"  {seqs / train_seconds:,.0f} seq/s, {ms_per_step:.1f} ms/step")
        if diag.num_interests > 1:
            self.log(f"  collapse (valid): {diag.summary()}")


# Where the run of this process is, for the one-line Ctrl-C message of the
# entry points (cli.user_errors_exit): output_dir, step (the last step
# trained), checkpoint (the last step saved, where a rerun resumes).
PROGRESS: dict = {}


class _Progress(tf.keras.callbacks.Callback):
    """Keras's own progress bar over each evaluation interval, with the
    losses, the time per step and the ETA, on stderr (stdout carries the
    results), redrawn in place every 0.5 s: on a terminal only
    (:func:`progress_bar_wanted`)."""

    def __init__(self, eval_every: int):
        super().__init__()
        self.eval_every = eval_every
        self.interval = 0.5
        self.bar = None

    def on_epoch_begin(self, epoch, logs=None):
        self.bar = tf.keras.utils.Progbar(
            self.eval_every, interval=self.interval, unit_name="step",
            stateful_metrics=["loss", "rec_loss", "partition_loss"])

    def on_train_batch_end(self, batch, logs=None):
        values = [(k, float(v)) for k, v in (logs or {}).items()
                  if k in ("loss", "rec_loss", "partition_loss")]
        with contextlib.redirect_stdout(sys.stderr):
            self.bar.update(batch + 1, values)


def progress_bar_wanted(verbose, stream) -> bool:
    """Keras's progress bar only on a terminal: it redraws in place with
    carriage returns and backspaces, which a redirected log would keep.
    Elsewhere every evaluation prints one plain line (step, losses, valid
    Recall@50, seq/s and ms/step).  ``verbose`` 0 turns it off everywhere.
    """
    if verbose == 0:
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


# --------------------------------------------------------------------- run
def run(config: RunConfig, log: Log = _stderr_log,
        verbose: int | None = None, resume: bool = True,
        dataset: SequenceDataset | None = None,
        clock: StageClock | None = None, test: bool = True,
        on_evaluation: OnEvaluation | None = None) -> dict:
    """Trains (or resumes) the run described by ``config``.

    The run's phases, each a function below: the run directory is checked
    (``_open_run_dir``), the data set loaded and checked against the
    protocol (``_load_data``), the model, checkpoints and state set up or
    restored (``_set_up``), the model trained with an evaluation and a
    checkpoint every ``eval_every`` steps (``_train``), and the best
    checkpoint tested and reported (``_test_and_report``).

    Args:
      config: the run.
      log: progress lines.
      verbose: 0: no progress bar; None or 1: Keras's progress bar on
        stderr (redrawn every 0.5 s on a terminal, every 30 s otherwise).
      resume: continue the run found in ``config.train.output_dir`` (the
        default); with False a directory that already holds a run is an
        error instead (nothing is ever deleted).
      dataset: ``load_dataset(config.data)`` when the caller has already
        loaded it (train.py does, before TensorFlow starts).
      clock: the run's :class:`dismir_tf.stages.StageClock` (train.py's
        has timed the loading); a new one by default.  Its figures go to
        metrics.json ("stages") and the last log line.
      test: evaluate the best checkpoint on the test users at the end (the
        default).  False (tuning): the test users are never read; the
        metrics are the best evaluation's valid figures, "test" is None.
      on_evaluation: called as ``on_evaluation(step, valid_metrics)`` after
        every valid evaluation but the last; True stops the run there
        (marked in state.json; a tuner's pruning).

    Returns:
      The metrics dict written to metrics.json:
      {"valid": {...}, "test": {...}, "best_step": .., ...}.

    Raises:
      UserInputError: bad configuration or data (nothing is written).
      TrainingDivergedError: the loss became NaN or infinite.
    """
    config = dataclasses.replace(config, model=resolve_config(config.model))
    PROGRESS.clear()     # a Ctrl-C now must not name an earlier run
    run_dir = RunDirectory(config.train.output_dir)
    state = _open_run_dir(run_dir, config, resume)
    if state is not None and state.finished and os.path.exists(
            run_dir.metrics_path):
        log(f"{run_dir.path} is already finished; metrics.json is there")
        return _read_run_json(run_dir.metrics_path)
    clock = clock if clock is not None else StageClock()
    strategy = make_strategy(config)
    tf.keras.utils.set_random_seed(config.train.seed)
    with clock("load"):
        ds = _load_data(config, dataset, log)
    r = _set_up(config, ds, strategy, run_dir, state, log, clock)
    _train(r, verbose, log, on_evaluation)
    _dump_final_weights(r.model, strategy)
    if not r.is_chief:
        # Every worker ran the valid evaluations (identical weights give
        # identical early-stopping decisions without a collective); the
        # test evaluation and all outputs are the chief's.
        tf.io.gfile.rmtree(r.write_dir.path)
        log(f"{_task_name(strategy)}: done at step {r.state.steps_done}; "
            "the chief writes the metrics")
        log(r.clock.summary())
        return {"valid": {}, "test": {}, "best_step": r.state.best_step,
                "steps": r.state.steps_done, "chief": False}
    return _test_and_report(r, log) if test else _valid_report(r, log)


@dataclasses.dataclass
class _Run:
    """What the phases of :func:`run` share."""

    config: RunConfig
    ds: SequenceDataset
    strategy: tf.distribute.Strategy
    run_dir: RunDirectory
    write_dir: RunDirectory
    is_chief: bool
    state: RunState
    valid: pipeline.EvalExamples
    sampler: pipeline.TrainSampler
    model: RetrievalModel
    step_var: tf.Variable
    manager: tf.train.CheckpointManager
    best_ckpt: tf.train.Checkpoint
    clock: StageClock


def _open_run_dir(run_dir: RunDirectory, config: RunConfig,
                  resume: bool) -> RunState | None:
    """Checks the output directory (writable, not another run's, --noresume)
    and returns the state of the run already there, or None."""
    _check_output_dir(run_dir.path)
    if not resume and (os.path.exists(run_dir.config_path)
                       or os.path.exists(run_dir.state_path)):
        raise ConfigError(
            "already holds a run and --noresume was given; drop --noresume "
            "to resume it, or choose a new --output_dir", path=run_dir.path)
    _check_same_run(run_dir, config)
    return run_dir.load_state()


def _load_data(config: RunConfig, dataset: SequenceDataset | None,
               log: Log) -> SequenceDataset:
    """The data set, checked against what the protocol needs."""
    ds = dataset if dataset is not None else load_dataset(config.data,
                                                          log=log)
    if len(ds.valid_users) == 0 or len(ds.test_users) == 0:
        raise ConfigError("the data set has no valid or no test users; it "
                          "is too small for the 80/10/10 user split")
    if ds.num_items < max(evaluation.DEFAULT_KS):
        raise ConfigError(
            f"the data set has {ds.num_items} items after preprocessing; the "
            f"evaluation ranks the top {max(evaluation.DEFAULT_KS)}, so it "
            "needs at least that many")
    return ds


def _set_up(config: RunConfig, ds: SequenceDataset,
            strategy: tf.distribute.Strategy, run_dir: RunDirectory,
            state: RunState | None, log: Log, clock: StageClock) -> _Run:
    """config.json, the input pipeline, the model and its checkpoints, and
    the run state (new, or restored from the resume checkpoint)."""
    cfg = config.train
    # History times only for models that ask for them (PIMIRec).
    unit = time_unit(config.model)
    valid = pipeline.eval_examples(ds, "valid", config.model.max_len, unit)
    is_chief = _is_chief(strategy)
    if is_chief:
        os.makedirs(cfg.output_dir, exist_ok=True)
        atomic_write_json(run_dir.config_path, config.to_dict())
    # Only the chief writes into the run directory.  Other workers still
    # save every checkpoint, as the TF multi-worker guide has it (saving
    # may run collective ops), into a scratch directory of their own.
    write_dir = run_dir if is_chief else _scratch_dir(strategy, cfg)
    with clock("graph"):
        positives = make_positive_sampler(config, ds, log)
    sampler = pipeline.TrainSampler(
        ds, config.model.max_len, cfg.batch_size, cfg.seed, positives,
        anchors=config.model.partition_anchors, time_unit=unit)
    del positives
    with strategy.scope():
        model = build_model(config, ds.num_items)
        compile_model(model, cfg)
        step_var = tf.Variable(0, dtype=tf.int64, trainable=False)
        ckpt = tf.train.Checkpoint(model=model, optimizer=model.optimizer,
                                   step=step_var)
        manager = tf.train.CheckpointManager(ckpt, write_dir.ckpt_dir,
                                             max_to_keep=2)
    if state is None:
        state = RunState(fingerprint=dataset_fingerprint(ds))
    else:
        if state.fingerprint != dataset_fingerprint(ds):
            raise ConfigError(
                f"the data set of {cfg.output_dir} has changed since the run "
                "started; use a new --output_dir")
        _restore_for_resume(ckpt, step_var, run_dir, state, cfg, log,
                            clean=is_chief)
        log(f"resuming {cfg.output_dir} from step {state.steps_done} "
            f"(best valid {SELECTION_METRIC} {state.best_metric:.4f} at step "
            f"{state.best_step}, {state.bad_evals} evaluation(s) without "
            "improvement)")
    return _Run(config=config, ds=ds, strategy=strategy, run_dir=run_dir,
                write_dir=write_dir, is_chief=is_chief, state=state,
                valid=valid, sampler=sampler, model=model, step_var=step_var,
                manager=manager, best_ckpt=tf.train.Checkpoint(model=model),
                clock=clock)


def _train(r: _Run, verbose: int | None, log: Log,
           on_evaluation: OnEvaluation | None = None) -> None:
    """Keras fit, one epoch per evaluation interval, from the state's step;
    the callback evaluates, checkpoints and stops early."""
    cfg, state = r.config.train, r.state
    total_epochs = math.ceil(cfg.max_steps / cfg.eval_every)
    total_steps = total_epochs * cfg.eval_every
    PROGRESS.update(output_dir=cfg.output_dir, step=state.steps_done,
                    checkpoint=state.steps_done, total=total_steps)
    rounded = ("" if total_steps == cfg.max_steps else
               f" (--max_steps {cfg.max_steps} rounded up to a multiple of "
               f"--eval_every)")
    ds = r.ds
    log(f"training {r.config.model.name} on {ds.name}: {ds.num_users:,} "
        f"users, {ds.num_items:,} items, {ds.num_interactions:,} "
        f"interactions; {total_steps} steps{rounded}, batch "
        f"{cfg.batch_size}, evaluation every {cfg.eval_every} steps on "
        f"{r.valid.num_users} valid users")
    log(describe_settings(r.config.model))
    # What make_optimizer built, not a second resolution of the flag.
    update = ("lazy" if isinstance(r.model.optimizer, optimizers.LazyAdam)
              else "dense")
    log(f"optimizer: Adam, lr {cfg.learning_rate:g}, {update} embedding "
        f"update" + (f" (auto: {ds.num_items + 1:,} item rows "
                     f"{'>' if update == 'lazy' else '<='} "
                     f"{optimizers.LAZY_FROM_ROWS:,})"
                     if cfg.embedding_update == "auto" else ""))
    callbacks: list = [_EvalAndCheckpoint(
        r.write_dir, state, r.config, r.valid, r.manager, r.step_var,
        r.best_ckpt, log, r.is_chief, r.clock, on_evaluation)]
    if r.is_chief and progress_bar_wanted(verbose, sys.stderr):
        callbacks.insert(0, _Progress(cfg.eval_every))
    _check_workers_agree(r.strategy, state.steps_done)
    if state.epochs_done < total_epochs and not state.stopped_early:
        train_data = train_input(r.strategy, r.sampler, state.steps_done)
        r.model.fit(train_data, steps_per_epoch=cfg.eval_every,
                    epochs=total_epochs, initial_epoch=state.epochs_done,
                    callbacks=callbacks, verbose=0)


def _test_and_report(r: _Run, log: Log) -> dict:
    """The best checkpoint on the valid and test users, with the collapse
    diagnostics; metrics.json, and the run marked finished."""
    cfg, state, config = r.config.train, r.state, r.config
    if state.best_prefix:
        r.best_ckpt.read(state.best_prefix).expect_partial()
    test = pipeline.eval_examples(r.ds, "test", config.model.max_len,
                                  time_unit(config.model))
    with r.clock("test"):
        test_result = evaluate_model(r.model, test, config,
                                     contributors=True)
        valid_metrics = evaluate_model(r.model, r.valid, config).metrics
    metrics = {
        "valid": valid_metrics,
        "test": test_result.metrics,
        "best_step": state.best_step,
        "steps": state.steps_done,
        "stopped_early": state.stopped_early,
        "train_seconds": round(state.train_seconds, 2),
        "train_sequences_per_second": round(
            state.steps_done * cfg.batch_size / max(state.train_seconds,
                                                    1e-9), 1),
        "model": config.model.name,
        "dataset": r.ds.name,
        "seed": cfg.seed,
    }
    # Every test user; the top-50 contributors come from the test
    # evaluation's own lists.
    with r.clock("test diagnostics"):
        test_collapse = collapse_diagnostics(
            r.model, test, cfg.eval_batch_size,
            top_k_interests=test_result.contributors)
    metrics["collapse"] = {"test": test_collapse.to_dict()}
    metrics["stages"] = r.clock.to_dict()
    atomic_write_json(r.run_dir.metrics_path, metrics)
    state.finished = True
    r.run_dir.save_state(state)
    if test_collapse.num_interests > 1:
        log(f"test collapse: {test_collapse.summary()}")
    log(r.clock.summary())
    log(f"run directory {cfg.output_dir}: metrics.json (test and valid "
        f"metrics), state.json (every evaluation), best/ (the checkpoint "
        f"evaluate.py and the export read); TensorBoard: tensorboard "
        f"--logdir {r.run_dir.log_dir}")
    return metrics


def _valid_report(r: _Run, log: Log) -> dict:
    """metrics.json of a run that never reads the test users (tuning): the
    valid figures of its best evaluation; the run marked finished."""
    state, cfg = r.state, r.config.train
    best = next((e for e in state.evals if e["step"] == state.best_step),
                None)
    metrics = {
        "valid": best["valid"] if best else {},
        "test": None,
        "best_step": state.best_step,
        "steps": state.steps_done,
        "stopped_early": state.stopped_early,
        "stopped_by_caller": any(e.get("stopped_by_caller")
                                 for e in state.evals),
        "train_seconds": round(state.train_seconds, 2),
        "model": r.config.model.name,
        "dataset": r.ds.name,
        "seed": cfg.seed,
        "stages": r.clock.to_dict(),
    }
    atomic_write_json(r.run_dir.metrics_path, metrics)
    state.finished = True
    r.run_dir.save_state(state)
    log(f"valid users only (no test evaluation): best valid "
        f"{SELECTION_METRIC} {state.best_metric:.4f} at step "
        f"{state.best_step}; run directory {cfg.output_dir}")
    return metrics


def _scratch_dir(strategy: tf.distribute.Strategy,
                 cfg: TrainConfig) -> RunDirectory:
    """A non-chief worker's private directory for its checkpoint writes.

    Its name is fixed per (run, task), so a restarted worker replaces what
    a killed one left instead of piling up copies of the model.
    """
    key = hashlib.sha256(os.path.abspath(cfg.output_dir).encode()).hexdigest()
    path = os.path.join(tempfile.gettempdir(),
                        f"dismir-{_task_name(strategy)}-{key[:12]}")
    if tf.io.gfile.exists(path):
        tf.io.gfile.rmtree(path)
    tf.io.gfile.makedirs(path)
    return RunDirectory(path)


# Set to a directory, every process of a run (each worker of a cluster)
# writes its weights at the end of training there as <task>.npz: the check
# that the workers stayed in sync (tests/test_multi_worker.py).
DUMP_WEIGHTS_ENV = "DISMIR_DUMP_FINAL_WEIGHTS"


def _dump_final_weights(model: RetrievalModel,
                        strategy: tf.distribute.Strategy) -> None:
    out = os.environ.get(DUMP_WEIGHTS_ENV)
    if not out:
        return
    os.makedirs(out, exist_ok=True)
    np.savez(os.path.join(out, f"{_task_name(strategy)}.npz"),
             **{v.name: v.numpy() for v in model.weights})


def _is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker" and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict())


def load_run(run_dir_path: str, log: Log = _stderr_log
             ) -> tuple[RunConfig, SequenceDataset, RetrievalModel]:
    """A finished run's config, data set and best model (for evaluation)."""
    run_dir = RunDirectory(run_dir_path)
    require_checkpoint(run_dir_path)
    state = run_dir.load_state()
    config = run_dir.read_config()
    ds = load_dataset(config.data, log=log)
    if state.fingerprint and state.fingerprint != dataset_fingerprint(ds):
        raise ConfigError(
            f"the data set ({config.data.dataset or config.data.dataset_file}"
            ") has changed since this run was trained; its checkpoint does "
            "not belong to the data as it is now", path=run_dir_path)
    model = build_model(config, ds.num_items)
    tf.train.Checkpoint(model=model).read(state.best_prefix).expect_partial()
    return config, ds, model


def describe_metrics(metrics: dict) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()))
