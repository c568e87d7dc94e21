"""The Keras callbacks of a training run: valid evaluation with the best
and resume checkpoints and early stopping (EvalAndCheckpoint), and the
progress bar (Progress)."""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import tensorflow as tf

from dismir_tf import evaluation, pipeline
from dismir_tf.config import RunConfig
from dismir_tf.diagnostics import DIAGNOSTIC_USERS, FIGURES, collapse_diagnostics
from dismir_tf.errors import TrainingDivergedError
from dismir_tf.runs import Log, RunDirectory, RunState
from dismir_tf.stages import StageClock, peak_rss_mib

# Where the run of this process is, for the one-line Ctrl-C message of the
# entry points (cli.user_errors_exit): output_dir, step (the last step
# trained), checkpoint (the last step saved, where a rerun resumes).
PROGRESS: dict = {}


SELECTION_METRIC = "recall@50"


# ------------------------------------------------------------------ callback
# run(on_evaluation=...): called after every valid evaluation with the step
# and the valid metrics; returning True stops the run there (a pruner).
OnEvaluation = Callable[[int, dict], bool]


class EvalAndCheckpoint(tf.keras.callbacks.Callback):
    """Valid evaluation, best checkpoint, resume checkpoint, early stop."""

    def __init__(
        self,
        run_dir: RunDirectory,
        state: RunState,
        config: RunConfig,
        examples: pipeline.EvalExamples,
        manager: tf.train.CheckpointManager,
        step_var: tf.Variable,
        best_ckpt: tf.train.Checkpoint,
        log: Log,
        is_chief: bool,
        clock: StageClock | None = None,
        on_evaluation: OnEvaluation | None = None,
    ):
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
        self.writer = (
            tf.summary.create_file_writer(os.path.join(run_dir.log_dir, "valid"))
            if is_chief
            else None
        )
        # Training scalars on the global step as well (Keras' TensorBoard
        # callback would index them by evaluation interval).
        self.train_writer = (
            tf.summary.create_file_writer(os.path.join(run_dir.log_dir, "train"))
            if is_chief
            else None
        )
        self.total_steps = (
            math.ceil(config.train.max_steps / config.train.eval_every)
            * config.train.eval_every
        )
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
        first = self.state.steps_done + getattr(self, "_checked_batch", -1) + 2
        self._checked_batch = batch
        if loss is None or math.isfinite(float(loss)):
            return
        step = self.state.steps_done + batch + 1
        where = (
            f"at step {step}" if first >= step else f"between steps {first} and {step}"
        )
        if self.state.steps_done > 0:
            kept = (
                f"the last good checkpoint, step {self.state.steps_done}"
                f", is kept in {self.run_dir.ckpt_dir} and the run "
                "directory is left as it was then"
            )
        else:
            kept = (
                "no checkpoint had been written yet (the first is at "
                f"step {self.config.train.eval_every})"
            )
        raise TrainingDivergedError(
            f"the loss became {float(loss)} {where}; {kept}. Start again "
            "with a lower --learning_rate (or --partition_weight) in a new "
            "--output_dir"
        )

    def on_epoch_end(self, epoch, logs=None):
        cfg = self.config.train
        st = self.state
        st.train_seconds += time.time() - self._t0
        self.clock.add(
            "train",
            time.time() - self._t0,
            time.process_time() - self._cpu0,
            self._peak0,
        )
        st.epochs_done = epoch + 1
        st.steps_done = st.epochs_done * cfg.eval_every
        self.step_var.assign(st.steps_done)
        interval_seconds = time.time() - self._t0
        t_eval = time.time()
        with self.clock("evaluation"):
            result = evaluation.evaluate_model(
                self.model, self.examples, self.config, ks=(50,), contributors=True
            )
        t_diag = time.time()
        metric = result.metrics[SELECTION_METRIC]
        improved = metric > st.best_metric
        # A fixed sample of the valid users, and the evaluation's own top
        # lists: the diagnostics cost a few percent of the evaluation.
        with self.clock("diagnostics"):
            diag = collapse_diagnostics(
                self.model,
                self.examples,
                self.config.train.eval_batch_size,
                max_users=DIAGNOSTIC_USERS,
                top_k_interests=result.contributors,
            )
        train = {k: float(v) for k, v in (logs or {}).items()}
        entry: dict[str, Any] = {
            "step": st.steps_done,
            "valid": result.metrics,
            "collapse": diag.to_dict(),
            "train": train,
            "eval_seconds": round(time.time() - t_eval, 2),
            # The split of this interval: training (the first one includes
            # tracing and XLA compilation), the valid evaluation, and the
            # diagnostics (part of eval_seconds).
            "train_seconds": round(interval_seconds, 3),
            "evaluation_seconds": round(t_diag - t_eval, 3),
            "diagnostics_seconds": round(time.time() - t_diag, 3),
        }
        st.evals.append(entry)
        old_best = st.best_prefix
        if improved:
            st.best_metric, st.best_step, st.bad_evals = (metric, st.steps_done, 0)
            # Every worker writes (a non-chief into its scratch directory):
            # saving may run collective ops that need all of them.
            st.best_prefix = self.best_ckpt.write(
                os.path.join(self.run_dir.best_dir, f"step-{st.steps_done}")
            )
        else:
            st.bad_evals += 1
        if st.bad_evals >= cfg.patience or st.steps_done >= cfg.max_steps:
            st.stopped_early = st.steps_done < cfg.max_steps
            self.model.stop_training = True
        if (
            self.on_evaluation is not None
            and st.steps_done < cfg.max_steps
            and self.on_evaluation(st.steps_done, dict(result.metrics))
        ):
            # The caller (a tuner's pruner) stops the run here.
            entry["stopped_by_caller"] = True
            st.stopped_early = True
            self.model.stop_training = True
        self.manager.save(checkpoint_number=st.steps_done)
        if self.is_chief:
            self.run_dir.save_state(st)
        # Only now can a resume start here: it reads state.json, and a
        # checkpoint that state.json does not name is removed on resume.
        PROGRESS["checkpoint"] = st.steps_done
        # Only a best checkpoint of this process's own directory: a resumed
        # non-chief worker's old_best is the chief's.
        if improved and old_best.startswith(self.run_dir.best_dir + os.sep):
            for f in tf.io.gfile.glob(old_best + ".*"):
                tf.io.gfile.remove(f)
        if self.train_writer is not None and self.writer is not None:
            with self.train_writer.as_default(step=st.steps_done):
                for k, v in train.items():
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
        best = (
            "  (best)"
            if improved
            else f"  (best {st.best_metric:.4f} at {st.best_step})"
        )
        train_seconds = max(time.time() - self._t0 - entry["eval_seconds"], 1e-9)
        ms_per_step = 1e3 * interval_seconds / max(st.steps_done - first_step, 1)
        self.log(
            f"step {st.steps_done}/{self.total_steps}"
            f"  loss {train.get('loss', float('nan')):.4f}"
            f"  rec {train.get('rec_loss', float('nan')):.4f}"
            f"  partition {train.get('partition_loss', float('nan')):.4f}"
            f"  valid recall@50 {metric:.4f}{best}"
            f"  {seqs / train_seconds:,.0f} seq/s, {ms_per_step:.1f} ms/step"
        )
        if diag.num_interests > 1:
            self.log(f"  collapse (valid): {diag.summary()}")


class Progress(tf.keras.callbacks.Callback):
    """Keras's own progress bar over each evaluation interval, with the
    losses, the time per step and the ETA, on stderr (stdout carries the
    results), redrawn in place every 0.5 s: on a terminal only
    (:func:`progress_bar_wanted`)."""

    def __init__(self, eval_every: int):
        super().__init__()
        self.eval_every = eval_every
        self.interval = 0.5
        self.bar: tf.keras.utils.Progbar | None = None

    def on_epoch_begin(self, epoch, logs=None):
        self.bar = tf.keras.utils.Progbar(
            self.eval_every,
            interval=self.interval,
            unit_name="step",
            stateful_metrics=["loss", "rec_loss", "partition_loss"],
        )

    def on_train_batch_end(self, batch, logs=None):
        values = [
            (k, float(v))
            for k, v in (logs or {}).items()
            if k in ("loss", "rec_loss", "partition_loss")
        ]
        if self.bar is None:  # Keras begins every epoch first
            return
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
