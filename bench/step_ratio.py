"""Benchmark: a DisMIR training step at paper size against the same step on
beauty, interleaved in one process.

    python bench/step_ratio.py --size books      # F 6, max_len 20, C 50
    python bench/step_ratio.py --size gowalla    # F 4, max_len 40, C 10

Both sides are built as train.py builds them (the data set, the
co-occurrence positives, the model with the shipped defaults, the
optimizer that ``--embedding_update auto`` resolves to, XLA, 50 steps per
execution), then timed in alternation: a round is ``--steps`` steps of the
beauty model, then ``--steps`` steps of the paper-size one, each on its own
live input pipeline.  On a shared machine the other load falls on both
sides of a round alike, so the per-round ratio is the figure to read; its
median over ``--rounds`` rounds is printed, with each side's median
milliseconds per step.  The paper-size stand-in comes from
``bench/paper_scale.py make``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

_BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(_BENCH))
sys.path.insert(0, _BENCH)

import dismir_tf  # noqa: E402,F401  (sets TF_USE_LEGACY_KERAS first)


from dismir_tf import pipeline, training  # noqa: E402
from dismir_tf.config import DataConfig, ModelConfig, TrainConfig  # noqa: E402
from dismir_tf.cooccurrence import build_positive_sampler  # noqa: E402
from dismir_tf.data import load_dataset  # noqa: E402
from dismir_tf.models import create_model, resolve_config  # noqa: E402
from paper_scale import (BEAUTY, SETTINGS, make_standin,  # noqa: E402
                         OUT)

BATCH = 128


class Side:
    """One data set's model, optimizer and live pipeline."""

    def __init__(self, label: str, path: str, settings: dict, steps: int,
                 data_dir: str):
        self.label = label
        t0 = time.perf_counter()
        ds = load_dataset(DataConfig(dataset="", dataset_file=path,
                                     dataset_format="seq_lines",
                                     data_dir=data_dir))
        cfg = resolve_config(ModelConfig(name="dismir", **settings))
        sampler = pipeline.TrainSampler(
            ds, cfg.max_len, BATCH, seed=0,
            positive_sampler=build_positive_sampler(ds))
        self.model = create_model(ds.num_items, cfg, seed=0)
        self.model.build_for(cfg.max_len)
        training.compile_model(self.model, TrainConfig(
            batch_size=BATCH, eval_every=steps, max_steps=steps))
        self.update = type(self.model.optimizer).__name__
        self.data = iter(sampler.dataset_from(0))
        self.steps = steps
        self.epoch = 0
        self.ms: list[float] = []
        print(f"{label}: {ds.num_items:,} items, {len(ds.train_users):,} "
              f"training users, {self.update}; set up in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)

    def run(self, record: bool = True) -> float:
        t0 = time.perf_counter()
        self.model.fit(self.data, steps_per_epoch=self.steps,
                       epochs=self.epoch + 1, initial_epoch=self.epoch,
                       verbose=0)
        self.epoch += 1
        ms = 1e3 * (time.perf_counter() - t0) / self.steps
        if record:
            self.ms.append(ms)
        return ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SETTINGS), required=True)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--data_dir", default=os.path.join(
        os.path.dirname(_BENCH), "data"))
    args = parser.parse_args()
    settings = SETTINGS[args.size]
    print(f"load average {os.getloadavg()[0]:.1f}; settings {settings}",
          flush=True)
    small = Side("beauty", BEAUTY, settings, args.steps, args.data_dir)
    big = Side(args.size, make_standin(args.size, args.data_dir), settings,
               args.steps, args.data_dir)
    small.run(record=False)          # tracing and XLA compilation
    big.run(record=False)
    ratios = []
    for r in range(args.rounds):
        a, b = small.run(), big.run()
        ratios.append(b / a)
        print(f"round {r}: beauty {a:.2f} ms/step, {args.size} {b:.2f} "
              f"ms/step, ratio {b / a:.2f}", flush=True)
    out = {"size": args.size, "settings": settings, "steps": args.steps,
           "rounds": args.rounds,
           "beauty_ms": round(statistics.median(small.ms), 2),
           "paper_size_ms": round(statistics.median(big.ms), 2),
           "ratio_median": round(statistics.median(ratios), 3),
           "ratios": [round(x, 3) for x in ratios],
           "updates": {"beauty": small.update, args.size: big.update},
           "load_average_end": round(os.getloadavg()[0], 2)}
    print(json.dumps(out))
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, f"step-ratio-{args.size}.json"), "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
