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

import dataclasses
import hashlib
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from dismir_tf import evaluation, optimizers, pipeline
from dismir_tf.callbacks import (  # noqa: F401  (re-exported)
    PROGRESS,
    SELECTION_METRIC,
    EvalAndCheckpoint,
    OnEvaluation,
    Progress,
    progress_bar_wanted,
)
from dismir_tf.config import RunConfig, TrainConfig
from dismir_tf.data import dataset_fingerprint, load_dataset
from dismir_tf.data.dataset import SequenceDataset
from dismir_tf.devices import (  # noqa: F401  (re-exported)
    configure_logical_cpus,
    is_chief,
    is_multi_worker,
    make_strategy,
    task_name,
)
from dismir_tf.diagnostics import collapse_diagnostics
from dismir_tf.errors import ConfigError
from dismir_tf.evaluation import evaluate_model, make_query_fn  # noqa: F401  (re-exported)
from dismir_tf.io_utils import atomic_write_json
from dismir_tf.models import (
    RetrievalModel,
    describe_settings,
    resolve_config,
    time_unit,
)
from dismir_tf.runs import (  # noqa: F401  (re-exported)
    RunDirectory,
    RunState,
    build_model,
    check_output_dir,
    check_same_run,
    load_run,
    read_run_json,
    require_checkpoint,
)
from dismir_tf.stages import StageClock

Log = Callable[[str], None]


def _stderr_log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def train_input(
    strategy: tf.distribute.Strategy, sampler: pipeline.TrainSampler, start_step: int
):
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
    if not is_multi_worker(strategy):
        return data
    replicas = strategy.num_replicas_in_sync
    if sampler.batch_size % replicas:
        raise ConfigError(
            f"--batch_size {sampler.batch_size} is not a "
            f"multiple of the {replicas} replicas"
        )

    def dataset_fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
        per_replica = ctx.get_per_replica_batch_size(sampler.batch_size)
        local = replicas // ctx.num_input_pipelines
        first = ctx.input_pipeline_id * local * per_replica

        def shard(batch):
            return {
                k: tf.reshape(
                    v[first : first + local * per_replica],
                    [local, per_replica] + v.shape[1:],
                )
                for k, v in batch.items()
            }

        # One element per local replica and step, in replica order.
        return sampler.dataset_from(start_step).map(shard).unbatch()

    return strategy.distribute_datasets_from_function(dataset_fn)


def _check_workers_agree(strategy: tf.distribute.Strategy, steps_done: int) -> None:
    """Fails on every worker alike if they would resume different steps.

    Each worker reads the run's state from ``--output_dir``; when that is
    not storage they all share, a restarted cluster would resume the
    chief's step on one worker and step 0 on another and train on garbage.
    All workers are equal iff n * sum(x^2) == (sum x)^2.
    """
    if not is_multi_worker(strategy):
        return
    x = float(steps_done)
    sums = strategy.reduce(
        tf.distribute.ReduceOp.SUM,
        strategy.run(lambda: tf.constant([1.0, x, x * x], tf.float64)),
        axis=None,
    )
    n, total, squares = sums.numpy().tolist()
    if n * squares != total * total:
        raise ConfigError(
            "the workers found different progress in --output_dir (step "
            f"{steps_done} here); on a cluster it must be storage that "
            "every worker reads (docs/multi_worker.md)"
        )


def make_positive_sampler(config: RunConfig, ds: SequenceDataset, log: Log):
    if config.model.partition_lambda <= 0:
        return None
    from dismir_tf.cooccurrence import build_positive_sampler

    t0 = time.time()
    sampler = build_positive_sampler(ds)
    log(
        f"co-occurrence graph over {len(ds.train_users)} training users: "
        f"{sampler.num_entries:,} edges in {time.time() - t0:.1f}s"
    )
    return sampler


def _steps_per_execution(eval_every: int, cap: int = 50) -> int:
    return max(d for d in range(1, min(cap, eval_every) + 1) if eval_every % d == 0)


def make_optimizer(
    cfg: TrainConfig, num_items: int = 0
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
    update = optimizers.resolve_embedding_update(cfg.embedding_update, num_items + 1)
    return optimizers.make_adam(cfg.learning_rate, update, cfg.jit_compile)


def compile_model(
    model: RetrievalModel, cfg: TrainConfig, steps_per_execution: int | None = None
) -> None:
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
    model.compile(
        optimizer=make_optimizer(cfg, model.num_items),
        steps_per_execution=(
            steps_per_execution or _steps_per_execution(cfg.eval_every)
        ),
        jit_compile=step_xla,
    )


def _restore_for_resume(
    ckpt: tf.train.Checkpoint,
    step_var: tf.Variable,
    run_dir: RunDirectory,
    state: RunState,
    cfg: TrainConfig,
    log: Log,
    clean: bool,
) -> None:
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
            raise ConfigError(
                f"{run_dir.state_path} exists but {run_dir.ckpt_dir} has no checkpoint"
            )
        ckpt.restore(latest).expect_partial()
        step = int(step_var.numpy())
        if step < state.steps_done or step % cfg.eval_every:
            raise ConfigError(
                f"{run_dir.ckpt_dir} holds step {step} but "
                f"{run_dir.state_path} says {state.steps_done}; the run "
                "directory is inconsistent, use a new --output_dir"
            )
        if step > state.steps_done:
            # Only a run directory from before two checkpoints were kept.
            log(
                f"warning: {run_dir.state_path} is behind the checkpoint "
                f"(step {state.steps_done} < {step}); continuing from step "
                f"{step} without that evaluation"
            )
            state.steps_done = step
            state.epochs_done = step // cfg.eval_every
    if not clean:
        return
    keep = state.best_prefix + "."
    for f in tf.io.gfile.glob(os.path.join(run_dir.best_dir, "step-*")):
        if not (state.best_prefix and f.startswith(keep)):
            # A kill during a checkpoint write leaves its temporary
            # directory (step-N_temp/).
            if tf.io.gfile.isdir(f):
                tf.io.gfile.rmtree(f)
            else:
                tf.io.gfile.remove(f)
    for name in ("config.json", "state.json", "metrics.json"):
        for f in tf.io.gfile.glob(os.path.join(run_dir.path, f".{name}.*.tmp")):
            tf.io.gfile.remove(f)


# --------------------------------------------------------------------- run
def run(
    config: RunConfig,
    log: Log = _stderr_log,
    verbose: int | None = None,
    resume: bool = True,
    dataset: SequenceDataset | None = None,
    clock: StageClock | None = None,
    test: bool = True,
    on_evaluation: OnEvaluation | None = None,
) -> dict:
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
    PROGRESS.clear()  # a Ctrl-C now must not name an earlier run
    run_dir = RunDirectory(config.train.output_dir)
    state = _open_run_dir(run_dir, config, resume)
    if state is not None and state.finished and os.path.exists(run_dir.metrics_path):
        log(f"{run_dir.path} is already finished; metrics.json is there")
        return read_run_json(run_dir.metrics_path)
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
        log(
            f"{task_name(strategy)}: done at step {r.state.steps_done}; "
            "the chief writes the metrics"
        )
        log(r.clock.summary())
        return {
            "valid": {},
            "test": {},
            "best_step": r.state.best_step,
            "steps": r.state.steps_done,
            "chief": False,
        }
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


def _open_run_dir(
    run_dir: RunDirectory, config: RunConfig, resume: bool
) -> RunState | None:
    """Checks the output directory (writable, not another run's, --noresume)
    and returns the state of the run already there, or None."""
    check_output_dir(run_dir.path)
    if not resume and (
        os.path.exists(run_dir.config_path) or os.path.exists(run_dir.state_path)
    ):
        raise ConfigError(
            "already holds a run and --noresume was given; drop --noresume "
            "to resume it, or choose a new --output_dir",
            path=run_dir.path,
        )
    check_same_run(run_dir, config)
    return run_dir.load_state()


def _load_data(
    config: RunConfig, dataset: SequenceDataset | None, log: Log
) -> SequenceDataset:
    """The data set, checked against what the protocol needs."""
    ds = dataset if dataset is not None else load_dataset(config.data, log=log)
    if len(ds.valid_users) == 0 or len(ds.test_users) == 0:
        raise ConfigError(
            "the data set has no valid or no test users; it "
            "is too small for the 80/10/10 user split"
        )
    if ds.num_items < max(evaluation.DEFAULT_KS):
        raise ConfigError(
            f"the data set has {ds.num_items} items after preprocessing; the "
            f"evaluation ranks the top {max(evaluation.DEFAULT_KS)}, so it "
            "needs at least that many"
        )
    return ds


def _set_up(
    config: RunConfig,
    ds: SequenceDataset,
    strategy: tf.distribute.Strategy,
    run_dir: RunDirectory,
    state: RunState | None,
    log: Log,
    clock: StageClock,
) -> _Run:
    """config.json, the input pipeline, the model and its checkpoints, and
    the run state (new, or restored from the resume checkpoint)."""
    cfg = config.train
    # History times only for models that ask for them (PIMIRec).
    unit = time_unit(config.model)
    valid = pipeline.eval_examples(ds, "valid", config.model.max_len, unit)
    chief = is_chief(strategy)
    if chief:
        os.makedirs(cfg.output_dir, exist_ok=True)
        atomic_write_json(run_dir.config_path, config.to_dict())
    # Only the chief writes into the run directory.  Other workers still
    # save every checkpoint, as the TF multi-worker guide has it (saving
    # may run collective ops), into a scratch directory of their own.
    write_dir = run_dir if chief else _scratch_dir(strategy, cfg)
    with clock("graph"):
        positives = make_positive_sampler(config, ds, log)
    sampler = pipeline.TrainSampler(
        ds,
        config.model.max_len,
        cfg.batch_size,
        cfg.seed,
        positives,
        anchors=config.model.partition_anchors,
        time_unit=unit,
    )
    del positives
    with strategy.scope():
        model = build_model(config, ds.num_items)
        compile_model(model, cfg)
        step_var = tf.Variable(0, dtype=tf.int64, trainable=False)
        ckpt = tf.train.Checkpoint(
            model=model, optimizer=model.optimizer, step=step_var
        )
        manager = tf.train.CheckpointManager(ckpt, write_dir.ckpt_dir, max_to_keep=2)
    if state is None:
        state = RunState(fingerprint=dataset_fingerprint(ds))
    else:
        if state.fingerprint != dataset_fingerprint(ds):
            raise ConfigError(
                f"the data set of {cfg.output_dir} has changed since the run "
                "started; use a new --output_dir"
            )
        _restore_for_resume(ckpt, step_var, run_dir, state, cfg, log, clean=chief)
        log(
            f"resuming {cfg.output_dir} from step {state.steps_done} "
            f"(best valid {SELECTION_METRIC} {state.best_metric:.4f} at step "
            f"{state.best_step}, {state.bad_evals} evaluation(s) without "
            "improvement)"
        )
    return _Run(
        config=config,
        ds=ds,
        strategy=strategy,
        run_dir=run_dir,
        write_dir=write_dir,
        is_chief=chief,
        state=state,
        valid=valid,
        sampler=sampler,
        model=model,
        step_var=step_var,
        manager=manager,
        best_ckpt=tf.train.Checkpoint(model=model),
        clock=clock,
    )


def _train(
    r: _Run, verbose: int | None, log: Log, on_evaluation: OnEvaluation | None = None
) -> None:
    """Keras fit, one epoch per evaluation interval, from the state's step;
    the callback evaluates, checkpoints and stops early."""
    cfg, state = r.config.train, r.state
    total_epochs = math.ceil(cfg.max_steps / cfg.eval_every)
    total_steps = total_epochs * cfg.eval_every
    PROGRESS.update(
        output_dir=cfg.output_dir,
        step=state.steps_done,
        checkpoint=state.steps_done,
        total=total_steps,
    )
    rounded = (
        ""
        if total_steps == cfg.max_steps
        else f" (--max_steps {cfg.max_steps} rounded up to a multiple of --eval_every)"
    )
    ds = r.ds
    log(
        f"training {r.config.model.name} on {ds.name}: {ds.num_users:,} "
        f"users, {ds.num_items:,} items, {ds.num_interactions:,} "
        f"interactions; {total_steps} steps{rounded}, batch "
        f"{cfg.batch_size}, evaluation every {cfg.eval_every} steps on "
        f"{r.valid.num_users} valid users"
    )
    log(describe_settings(r.config.model))
    # What make_optimizer built, not a second resolution of the flag.
    update = "lazy" if isinstance(r.model.optimizer, optimizers.LazyAdam) else "dense"
    log(
        f"optimizer: Adam, lr {cfg.learning_rate:g}, {update} embedding "
        f"update"
        + (
            f" (auto: {ds.num_items + 1:,} item rows "
            f"{'>' if update == 'lazy' else '<='} "
            f"{optimizers.LAZY_FROM_ROWS:,})"
            if cfg.embedding_update == "auto"
            else ""
        )
    )
    callbacks: list = [
        EvalAndCheckpoint(
            r.write_dir,
            state,
            r.config,
            r.valid,
            r.manager,
            r.step_var,
            r.best_ckpt,
            log,
            r.is_chief,
            r.clock,
            on_evaluation,
        )
    ]
    if r.is_chief and progress_bar_wanted(verbose, sys.stderr):
        callbacks.insert(0, Progress(cfg.eval_every))
    _check_workers_agree(r.strategy, state.steps_done)
    if state.epochs_done < total_epochs and not state.stopped_early:
        train_data = train_input(r.strategy, r.sampler, state.steps_done)
        r.model.fit(
            train_data,
            steps_per_epoch=cfg.eval_every,
            epochs=total_epochs,
            initial_epoch=state.epochs_done,
            callbacks=callbacks,
            verbose=0,
        )


def _test_and_report(r: _Run, log: Log) -> dict:
    """The best checkpoint on the valid and test users, with the collapse
    diagnostics; metrics.json, and the run marked finished."""
    cfg, state, config = r.config.train, r.state, r.config
    if state.best_prefix:
        r.best_ckpt.read(state.best_prefix).expect_partial()
    test = pipeline.eval_examples(
        r.ds, "test", config.model.max_len, time_unit(config.model)
    )
    with r.clock("test"):
        test_result = evaluation.evaluate_model(
            r.model, test, config, contributors=True
        )
        valid_metrics = evaluation.evaluate_model(r.model, r.valid, config).metrics
    metrics = {
        "valid": valid_metrics,
        "test": test_result.metrics,
        "best_step": state.best_step,
        "steps": state.steps_done,
        "stopped_early": state.stopped_early,
        "train_seconds": round(state.train_seconds, 2),
        "train_sequences_per_second": round(
            state.steps_done * cfg.batch_size / max(state.train_seconds, 1e-9), 1
        ),
        "model": config.model.name,
        "dataset": r.ds.name,
        "seed": cfg.seed,
    }
    # Every test user; the top-50 contributors come from the test
    # evaluation's own lists.
    with r.clock("test diagnostics"):
        test_collapse = collapse_diagnostics(
            r.model, test, cfg.eval_batch_size, top_k_interests=test_result.contributors
        )
    metrics["collapse"] = {"test": test_collapse.to_dict()}
    metrics["stages"] = r.clock.to_dict()
    atomic_write_json(r.run_dir.metrics_path, metrics)
    state.finished = True
    r.run_dir.save_state(state)
    if test_collapse.num_interests > 1:
        log(f"test collapse: {test_collapse.summary()}")
    log(r.clock.summary())
    log(
        f"run directory {cfg.output_dir}: metrics.json (test and valid "
        f"metrics), state.json (every evaluation), best/ (the checkpoint "
        f"evaluate.py and the export read); TensorBoard: tensorboard "
        f"--logdir {r.run_dir.log_dir}"
    )
    return metrics


def _valid_report(r: _Run, log: Log) -> dict:
    """metrics.json of a run that never reads the test users (tuning): the
    valid figures of its best evaluation; the run marked finished."""
    state, cfg = r.state, r.config.train
    best = next((e for e in state.evals if e["step"] == state.best_step), None)
    metrics = {
        "valid": best["valid"] if best else {},
        "test": None,
        "best_step": state.best_step,
        "steps": state.steps_done,
        "stopped_early": state.stopped_early,
        "stopped_by_caller": any(e.get("stopped_by_caller") for e in state.evals),
        "train_seconds": round(state.train_seconds, 2),
        "model": r.config.model.name,
        "dataset": r.ds.name,
        "seed": cfg.seed,
        "stages": r.clock.to_dict(),
    }
    atomic_write_json(r.run_dir.metrics_path, metrics)
    state.finished = True
    r.run_dir.save_state(state)
    log(
        f"valid users only (no test evaluation): best valid "
        f"{SELECTION_METRIC} {state.best_metric:.4f} at step "
        f"{state.best_step}; run directory {cfg.output_dir}"
    )
    return metrics


def _scratch_dir(strategy: tf.distribute.Strategy, cfg: TrainConfig) -> RunDirectory:
    """A non-chief worker's private directory for its checkpoint writes.

    Its name is fixed per (run, task), so a restarted worker replaces what
    a killed one left instead of piling up copies of the model.
    """
    key = hashlib.sha256(os.path.abspath(cfg.output_dir).encode()).hexdigest()
    path = os.path.join(
        tempfile.gettempdir(), f"dismir-{task_name(strategy)}-{key[:12]}"
    )
    if tf.io.gfile.exists(path):
        tf.io.gfile.rmtree(path)
    tf.io.gfile.makedirs(path)
    return RunDirectory(path)


# Set to a directory, every process of a run (each worker of a cluster)
# writes its weights at the end of training there as <task>.npz: the check
# that the workers stayed in sync (tests/test_multi_worker.py).
DUMP_WEIGHTS_ENV = "DISMIR_DUMP_FINAL_WEIGHTS"


def _dump_final_weights(
    model: RetrievalModel, strategy: tf.distribute.Strategy
) -> None:
    out = os.environ.get(DUMP_WEIGHTS_ENV)
    if not out:
        return
    os.makedirs(out, exist_ok=True)
    np.savez(
        os.path.join(out, f"{task_name(strategy)}.npz"),
        **{v.name: v.numpy() for v in model.weights},
    )


def describe_metrics(metrics: dict) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()))
