"""Benchmark: a DisMIR training step at paper size against the same step on
beauty, interleaved (one process per side, taking turns).

    python bench/step_ratio.py --size books      # F 6, max_len 20, C 50
    python bench/step_ratio.py --size gowalla    # F 4, max_len 40, C 10

Both sides are built as train.py builds them (the data set, the
co-occurrence positives, the model with the shipped defaults, the
optimizer that ``--embedding_update auto`` resolves to, XLA, 50 steps per
execution), each in its own process, then timed in alternation: a round is
``--steps`` steps of the beauty model, then ``--steps`` steps of the
paper-size one, each on its own live input pipeline, while the other
process waits.  (Both models in one process showed a floor of exactly
20.5 ms a step on either side in some rounds, with no CPU stolen by the
host and never in a process holding one model; one process per side has
no such floor.)  On a shared machine the other load falls on both
sides of a round alike, so the per-round ratio is the figure to read; its
median over ``--rounds`` rounds is printed, with each side's median
milliseconds per step.  The paper-size stand-in comes from
``bench/paper_scale.py make``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time

_BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(_BENCH))
sys.path.insert(0, _BENCH)

from paper_scale import BEAUTY, OUT, SETTINGS, make_standin  # noqa: E402

import dismir_tf  # noqa: E402,F401  (sets TF_USE_LEGACY_KERAS first)
from dismir_tf import pipeline, training  # noqa: E402
from dismir_tf.config import DataConfig, ModelConfig, TrainConfig  # noqa: E402
from dismir_tf.cooccurrence import build_positive_sampler  # noqa: E402
from dismir_tf.data import load_dataset  # noqa: E402
from dismir_tf.models import create_model, resolve_config  # noqa: E402

BATCH = 128
FULL_CORES = 1.3


def stolen_jiffies() -> int:
    """CPU time the hypervisor gave this machine's virtual CPUs to other
    guests, in jiffies since boot (/proc/stat; 0 elsewhere): load that no
    process list on this machine shows."""
    try:
        with open("/proc/stat") as f:
            return int(f.readline().split()[8])
    except (OSError, IndexError, ValueError):
        return 0


class Side:
    """One data set's model, optimizer and live pipeline."""

    def __init__(
        self, label: str, path: str, settings: dict, steps: int, data_dir: str
    ):
        self.label = label
        t0 = time.perf_counter()
        ds = load_dataset(
            DataConfig(
                dataset="",
                dataset_file=path,
                dataset_format="seq_lines",
                data_dir=data_dir,
            )
        )
        cfg = resolve_config(ModelConfig(name="dismir", **settings))
        sampler = pipeline.TrainSampler(
            ds, cfg.max_len, BATCH, seed=0, positive_sampler=build_positive_sampler(ds)
        )
        self.model = create_model(ds.num_items, cfg, seed=0)
        self.model.build_for(cfg.max_len)
        training.compile_model(
            self.model, TrainConfig(batch_size=BATCH, eval_every=steps, max_steps=steps)
        )
        self.update = type(self.model.optimizer).__name__
        self.data = iter(sampler.dataset_from(0))
        self.steps = steps
        self.epoch = 0
        self.ms: list[float] = []
        self.steal: list[float] = []
        print(
            f"{label}: {ds.num_items:,} items, {len(ds.train_users):,} "
            f"training users, {self.update}; set up in "
            f"{time.perf_counter() - t0:.0f} s",
            flush=True,
        )

    def run(self, record: bool = True) -> float:
        t0, c0 = time.perf_counter(), time.process_time()
        steal0 = stolen_jiffies()
        self.model.fit(
            self.data,
            steps_per_epoch=self.steps,
            epochs=self.epoch + 1,
            initial_epoch=self.epoch,
            verbose=0,
        )
        self.epoch += 1
        wall = time.perf_counter() - t0
        self.last_cpu_ms = 1e3 * (time.process_time() - c0) / self.steps
        steal1 = stolen_jiffies()
        ms = 1e3 * wall / self.steps
        # Share of the machine's CPU time (all cores) stolen by the host.
        self.last_steal = (steal1 - steal0) / (
            os.sysconf("SC_CLK_TCK") * wall * os.cpu_count()
        )
        if record:
            self.ms.append(ms)
            self.steal.append(self.last_steal)
        return ms


def _serve(conn, label, path, settings, steps, data_dir) -> None:
    """A side in its own process: builds it, then runs ``steps`` steps each
    time the parent asks, and answers (ms per step, share stolen)."""
    side = Side(label, path, settings, steps, data_dir)
    side.run(record=False)  # tracing and XLA compilation
    conn.send(side.update)
    while conn.recv():
        ms = side.run()
        conn.send((ms, side.last_cpu_ms, side.last_steal))
    conn.close()
    # The live input pipeline's threads can keep an orderly interpreter
    # exit busy; nothing is left to flush.
    os._exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SETTINGS), required=True)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument(
        "--data_dir", default=os.path.join(os.path.dirname(_BENCH), "data")
    )
    args = parser.parse_args()
    settings = SETTINGS[args.size]
    print(f"load average {os.getloadavg()[0]:.1f}; settings {settings}", flush=True)
    big_path = make_standin(args.size, args.data_dir)
    ctx = multiprocessing.get_context("spawn")
    sides = {}
    for label, path in (("beauty", BEAUTY), (args.size, big_path)):
        # One side at a time: set-up and compilation are not timed.
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=_serve,
            args=(child, label, path, settings, args.steps, args.data_dir),
        )
        proc.start()
        sides[label] = (parent, proc, parent.recv())
    ms: dict[str, list[float]] = {k: [] for k in sides}
    cpu: dict[str, list[float]] = {k: [] for k in sides}
    steal: dict[str, list[float]] = {k: [] for k in sides}
    ratios, cpu_ratios = [], []
    for r in range(args.rounds):
        for label, (conn, _, _) in sides.items():  # beauty, then the other
            conn.send(True)
            m, c, st = conn.recv()
            ms[label].append(m)
            cpu[label].append(c)
            steal[label].append(st)
        a, b = ms["beauty"][-1], ms[args.size][-1]
        ca, cb = cpu["beauty"][-1], cpu[args.size][-1]
        ratios.append(b / a)
        cpu_ratios.append(cb / ca)
        print(
            f"round {r}: beauty {a:.2f} ms/step ({ca / a:.1f} cores), "
            f"{args.size} {b:.2f} ms/step ({cb / b:.1f} cores), wall "
            f"ratio {b / a:.2f}, CPU-time ratio {cb / ca:.2f}; stolen by "
            f"the host {100 * steal['beauty'][-1]:.0f}% / "
            f"{100 * steal[args.size][-1]:.0f}%",
            flush=True,
        )
    for conn, proc, _ in sides.values():
        conn.send(False)
        proc.join()
    # Rounds in which both processes ran on more than FULL_CORES cores: in
    # the others the machine gave one side about one core (wall time up to
    # 20.5 ms a step at the same CPU time), which the wall ratio reads as
    # that side's slowness.
    full = [
        r
        for r in range(args.rounds)
        if cpu["beauty"][r] / ms["beauty"][r] > FULL_CORES
        and cpu[args.size][r] / ms[args.size][r] > FULL_CORES
    ]
    print(
        f"median ratio: CPU time {statistics.median(cpu_ratios):.2f} "
        f"(all {args.rounds} rounds); wall "
        + (
            f"{statistics.median([ratios[r] for r in full]):.2f} over the "
            f"{len(full)} rounds in which both sides had more than "
            f"{FULL_CORES} cores"
            if full
            else "- (no round had both sides on full cores)"
        )
        + f"; wall over all rounds {statistics.median(ratios):.2f}",
        flush=True,
    )
    out = {
        "size": args.size,
        "full_core_rounds": full,
        "wall_ratio_median_full_cores": round(
            statistics.median([ratios[r] for r in full]), 3
        )
        if full
        else None,
        "settings": settings,
        "steps": args.steps,
        "rounds": args.rounds,
        "processes": "one per side",
        "beauty_ms": round(statistics.median(ms["beauty"]), 2),
        "paper_size_ms": round(statistics.median(ms[args.size]), 2),
        "ratio_median": round(statistics.median(ratios), 3),
        "ratios": [round(x, 3) for x in ratios],
        "beauty_cpu_ms": [round(x, 2) for x in cpu["beauty"]],
        "paper_size_cpu_ms": [round(x, 2) for x in cpu[args.size]],
        "cpu_ratio_median": round(statistics.median(cpu_ratios), 3),
        "cpu_ratios": [round(x, 3) for x in cpu_ratios],
        "beauty_wall_ms": [round(x, 2) for x in ms["beauty"]],
        "paper_size_wall_ms": [round(x, 2) for x in ms[args.size]],
        "steal_beauty": [round(x, 3) for x in steal["beauty"]],
        "steal_paper_size": [round(x, 3) for x in steal[args.size]],
        "updates": {k: v[2] for k, v in sides.items()},
        "load_average_end": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(out))
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, f"step-ratio-{args.size}.json"), "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
