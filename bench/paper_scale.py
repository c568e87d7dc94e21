"""Benchmark: `python train.py` end to end at the paper's data sizes.

Makes seeded stand-ins of the paper's Gowalla and Amazon Books (Table 1:
users, items and interactions exactly; heavy-tailed history lengths and
Zipf item popularity, ``synthetic_books`` of bench/cooccurrence_books.py)
as ``seq_lines`` files, trains on them with ``train.py`` (a child process,
so every figure is the command a user runs), and reports per stage the
wall clock, CPU time and peak memory that the run recorded itself
(metrics.json "stages", dismir_tf/stages.py), the steady training step and
the in-run evaluation against the machine's measured matmul rate.

    python bench/paper_scale.py make --size gowalla      # the stand-in file
    python bench/paper_scale.py run --size gowalla --model dismir \\
        --max_steps 2000 --eval_every 1000
    python bench/paper_scale.py run --size beauty --model dismir \\
        --settings gowalla --max_steps 2000 --eval_every 1000
    python bench/paper_scale.py matmul                   # the FLOP/s bound
    python bench/paper_scale.py table                    # docs table rows

``--size beauty`` trains on the shared beauty file with the settings of
``--settings`` (F, max_len, C), the same step on a 12k-item catalogue, to
compare a step's cost across catalogue sizes.  Every ``run`` writes
results/paper_scale/SIZE-MODEL[-SETTINGS]-STEPS.json; ``table`` prints the
markdown rows of docs/performance.md from them.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import time

_BENCH = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_BENCH)
sys.path.insert(0, _ROOT)
sys.path.insert(0, _BENCH)

SIZES = {
    # name: users, items, interactions (the paper's Table 1)
    "gowalla": (165_506, 174_605, 2_061_264),
    "books": (603_668, 367_982, 8_898_041),
}
# The named data sets' shape settings (dismir_tf/data/registry.py).
SETTINGS = {
    "gowalla": dict(num_interests=4, max_len=40, hard_negative_candidates=10),
    "books": dict(num_interests=6, max_len=20, hard_negative_candidates=50),
}
SHARED = os.path.join(os.path.dirname(_ROOT), "shared", "data")
BEAUTY = os.path.join(SHARED, "beauty", "Beauty.txt.gz")
OUT = os.path.join(_ROOT, "results", "paper_scale")


def standin_path(size: str, data_dir: str) -> str:
    return os.path.join(data_dir, "standins", f"{size}.seq.txt.gz")


def make_standin(size: str, data_dir: str, seed: int = 0) -> str:
    """Writes the seeded stand-in of ``size`` as a gzip ``seq_lines`` file
    (one user a line: ``u<k> item item ...``) and returns its path; an
    existing file is kept (the same seed gives the same file)."""
    path = standin_path(size, data_dir)
    if os.path.exists(path):
        return path
    from cooccurrence_books import synthetic_books

    users, items, interactions = SIZES[size]
    t0 = time.perf_counter()
    ds = synthetic_books(
        users,
        items,
        interactions,
        min_length=5,
        length_tail=2.2,
        min_item_count=5,
        item_zipf=1.0,
        item_zipf_shift=35.0,
        seed=seed,
    )
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".part"
    with gzip.open(tmp, "wt", compresslevel=3) as f:
        for u in range(ds.num_users):
            seq = ds.items[ds.offsets[u] : ds.offsets[u + 1]]
            f.write(f"u{u} " + " ".join(map(str, seq.tolist())) + "\n")
    os.replace(tmp, path)
    print(
        f"wrote {path} ({users:,} users, {items:,} items, "
        f"{interactions:,} interactions) in "
        f"{time.perf_counter() - t0:.0f} s",
        file=sys.stderr,
    )
    return path


def run(args) -> dict:
    """Trains with train.py and returns the figures (also written to
    results/paper_scale/)."""
    settings = SETTINGS[args.settings or args.size]
    if args.size == "beauty":
        data = ["--dataset_file", BEAUTY, "--dataset_format", "seq_lines"]
    else:
        data = [
            "--dataset_file",
            make_standin(args.size, args.data_dir),
            "--dataset_format",
            "seq_lines",
        ]
    name = "-".join(
        [args.size, args.model]
        + ([args.settings] if args.settings else [])
        + ([args.tag] if args.tag else [])
        + ([f"{args.workers}workers"] if args.workers > 1 else [])
        + [str(args.max_steps)]
    )
    out_dir = os.path.join(args.runs_dir, name)
    if os.path.exists(out_dir):
        # train.py would resume it (or, finished, just read it back): a
        # measurement needs a fresh run.
        raise SystemExit(
            f"{out_dir} exists: move it away, or give the run another --tag"
        )
    cmd = [
        sys.executable,
        os.path.join(_ROOT, "train.py"),
        *data,
        "--model",
        args.model,
        "--max_steps",
        str(args.max_steps),
        "--eval_every",
        str(args.eval_every),
        "--output_dir",
        out_dir,
        "--seed",
        str(args.seed),
        *args.extra,
    ]
    for key, value in settings.items():
        cmd += [f"--{key}", str(value)]
    print(" ".join(cmd), file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    os.makedirs(args.runs_dir, exist_ok=True)
    workers = None
    if args.workers > 1:
        workers = run_workers(
            cmd + ["--strategy", "multi_worker"], args.workers, out_dir
        )
    else:
        with open(out_dir + ".log", "w") as log:
            proc = subprocess.run(cmd, stderr=log, stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"train.py failed ({proc.returncode}); see {out_dir}.log")
    wall = time.perf_counter() - t0
    with open(os.path.join(out_dir, "metrics.json")) as f:
        metrics = json.load(f)
    with open(os.path.join(out_dir, "state.json")) as f:
        state = json.load(f)
    evals = state["evals"]
    steady = [e["train_seconds"] for e in evals[1:]] or [evals[0]["train_seconds"]]
    step_ms = 1000 * statistics.median(steady) / args.eval_every
    figures = {
        "size": args.size,
        "model": args.model,
        "settings": args.settings or args.size,
        "command": [_relative(c) for c in cmd],
        "workers": workers,
        "wall_seconds": round(wall, 1),
        "stages": metrics["stages"],
        "steady_step_ms": round(step_ms, 2),
        "steady_seq_per_s": round(128 * 1000 / step_ms),
        "evaluation_seconds": [e["evaluation_seconds"] for e in evals],
        "diagnostics_seconds": [e["diagnostics_seconds"] for e in evals],
        "valid_users": metrics["collapse"]["test"]["users"],
        "test": metrics["test"],
        "valid": metrics["valid"],
    }
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(figures, f, indent=1)
    print(json.dumps({k: v for k, v in figures.items() if k != "command"}))
    return figures


def _relative(arg: str) -> str:
    """A command argument with this checkout's path made relative."""
    if os.path.isabs(arg) and arg.startswith(os.path.dirname(_ROOT)):
        return os.path.relpath(arg, _ROOT)
    return arg


def _free_ports(n: int) -> list[int]:
    import socket

    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def run_workers(cmd: list[str], n: int, out_dir: str) -> list[dict]:
    """Runs ``cmd`` as an n-worker MultiWorkerMirroredStrategy cluster on
    127.0.0.1 (one TF_CONFIG per process, as docs/multi_worker.md) and
    returns each worker's stage times, read from the "time:" line every
    train.py prints last (worker 0, the chief, also writes metrics.json)."""
    import re

    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(n)]}
    procs, logs = [], []
    for i in range(n):
        env = dict(
            os.environ,
            TF_CONFIG=json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": i}}
            ),
        )
        log = open(f"{out_dir}.worker{i}.log", "w")
        logs.append(log)
        procs.append(
            subprocess.Popen(cmd, env=env, stderr=log, stdout=subprocess.DEVNULL)
        )
    codes = [p.wait() for p in procs]
    for log in logs:
        log.close()
    if any(codes):
        raise SystemExit(f"a worker failed ({codes}); see {out_dir}.worker*.log")
    out = []
    for i in range(n):
        with open(f"{out_dir}.worker{i}.log") as f:
            line = [x for x in f if x.startswith("time: ")][-1]
        stages = dict(re.findall(r"([a-z ]+?) ([0-9.]+) s[,;]", line[6:]))
        peak = re.search(r"peak memory ([0-9.]+) GiB", line)
        out.append(
            {
                "worker": i,
                "time_line": line.strip(),
                "stages_seconds": {k.strip(): float(v) for k, v in stages.items()},
                "peak_rss_gib": float(peak.group(1)),
            }
        )
    return out


def matmul_rate(repeats: int = 20) -> dict:
    """GFLOP/s of the evaluation's scoring matmul ([B Q, d] x [d, N],
    float32) at Gowalla size, the best and the median of ``repeats``."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import numpy as np
    import tensorflow as tf

    b, q, d, n = 512, 4, 64, 174_605
    rng = np.random.default_rng(0)
    queries = tf.constant(rng.normal(size=(b * q, d)).astype(np.float32))
    items = tf.constant(rng.normal(size=(n, d)).astype(np.float32))

    @tf.function
    def score(x):
        return tf.reduce_max(
            tf.reshape(tf.matmul(x, items, transpose_b=True), [b, q, n]), axis=1
        )

    score(queries).numpy()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        score(queries).numpy()
        times.append(time.perf_counter() - t0)
    flops = 2 * b * q * d * n
    return {
        "gflops_best": round(flops / min(times) / 1e9, 1),
        "gflops_median": round(flops / statistics.median(times) / 1e9, 1),
        "shape": [b * q, d, n],
    }


def table() -> None:
    """Markdown rows of every recorded run."""
    rows = []
    for name in sorted(os.listdir(OUT)):
        if (
            not name.endswith(".json")
            or name == "matmul.json"
            or name.startswith("step-ratio")
        ):
            continue
        with open(os.path.join(OUT, name)) as f:
            r = json.load(f)
        st = r["stages"]

        def cell(stage):
            s = st.get(stage)
            if not s:
                return "-"
            return (
                f"{s['wall_seconds']:,.1f} s / {s['cpu_seconds']:,.1f} s"
                f" / {s['peak_rss_mib'] / 1024:,.2f} GiB"
            )

        steps = r["command"][r["command"].index("--max_steps") + 1]
        update = "dense" if "dense" in r["command"] else "auto"
        if r.get("workers"):
            steps += f" ({len(r['workers'])} workers)"
        rows.append(
            f"| {r['size']} | {r['model']} | {r['settings']} | {steps} | "
            f"{update} | {cell('load')}"
            f" | {cell('graph')} | {cell('train')} | {r['steady_step_ms']}"
            f" ms ({r['steady_seq_per_s']:,} seq/s) | {cell('evaluation')} |"
            f" {cell('diagnostics')} | {cell('test')} | "
            f"{st['total']['wall_seconds']:,.0f} s, "
            f"{st['total']['peak_rss_mib'] / 1024:,.2f} GiB |"
        )
    print(
        "| data | model | settings | steps | embedding update | load | "
        "graph | train | steady step | evaluation (all) | diagnostics "
        "(all) | test | whole run |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make")
    mk.add_argument("--size", choices=sorted(SIZES), required=True)
    mk.add_argument("--data_dir", default=os.path.join(_ROOT, "data"))
    rn = sub.add_parser("run")
    rn.add_argument("--size", choices=sorted(SIZES) + ["beauty"], required=True)
    rn.add_argument(
        "--settings",
        choices=sorted(SETTINGS),
        default=None,
        help="the named data set whose F, max_len, C to use (default: --size's)",
    )
    rn.add_argument("--model", default="dismir")
    rn.add_argument("--max_steps", type=int, default=2000)
    rn.add_argument("--eval_every", type=int, default=1000)
    rn.add_argument("--seed", type=int, default=0)
    rn.add_argument("--tag", default="")
    rn.add_argument(
        "--workers",
        type=int,
        default=1,
        help="> 1: that many train.py processes as one "
        "MultiWorkerMirroredStrategy cluster on 127.0.0.1",
    )
    rn.add_argument("--data_dir", default=os.path.join(_ROOT, "data"))
    rn.add_argument("--runs_dir", default=os.path.join(_ROOT, "runs", "paper_scale"))
    rn.add_argument("extra", nargs="*", help="more train.py flags (after --)")
    sub.add_parser("matmul")
    sub.add_parser("table")
    args = parser.parse_args()
    if args.cmd == "make":
        make_standin(args.size, args.data_dir)
    elif args.cmd == "run":
        if args.size == "beauty" and not args.settings:
            parser.error("--size beauty needs --settings gowalla|books")
        run(args)
    elif args.cmd == "matmul":
        rate = matmul_rate()
        os.makedirs(OUT, exist_ok=True)
        with open(os.path.join(OUT, "matmul.json"), "w") as f:
            json.dump(rate, f)
        print(json.dumps(rate))
    else:
        table()


if __name__ == "__main__":
    main()
