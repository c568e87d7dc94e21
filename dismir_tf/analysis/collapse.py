"""Interest-collapse statistics (the paper's Table 4, section 5.3.3).

For a sample of users (100 test users, seeded, as the paper), every history
item is assigned to one interest, giving groups G_1..G_F per user, and:

* **Similarity** (item-level collapse): the paper's

      Similarity = 2 / (F (F - 1)) * sum_{f < f'} sim(G_f, G_f'),
      sim(G_f, G_f') = sum_{i in G_f, j in G_f'} <e_i, e_j> / (|G_f| |G_f'|),

  the mean inner product of item embeddings across two interests, averaged
  over the pairs of interests.  A pair with an empty group has no sim(): it
  is *skipped* and the average is over the pairs whose two groups are both
  non-empty (2 / (F (F - 1)) becomes 1 / #such pairs).  A user with fewer
  than two non-empty groups has no similarity at all and is left out of
  the similarity average (``users_with_similarity`` counts the others).
  The inner product depends on the embeddings' scale, which differs between
  models, so the same formula is also reported on unit vectors
  (``cosine_similarity``), next to the within-interest cosine (mean over
  pairs i != j of the same group) for reference.
* **MIN / MAX / STD** (facet-level collapse): the smallest and largest
  number of items in one interest and the population standard deviation
  (ddof = 0) of the F counts, empty interests counting 0, per user and then
  averaged over the users.

How items are assigned: to the interest with the largest routing weight
(``Encoded.routing`` [B, F, L]: the capsule weights b_if of DisMIR, MIR,
MIR-RV, MIR-BF, MIND, ComiRec-DR, REMI; ComiRec-SA's attention).  A model
without routing weights has the interest that scores the item highest stand
in: argmax_f m_f . e_i.  Ties go to the lowest f (numpy's argmax).
"""

from __future__ import annotations

import dataclasses
import io
import math
from collections.abc import Sequence

import numpy as np

ROUTING = "routing"
INTEREST_SCORE = "interest_score"
SOURCES = {
    ROUTING: "largest routing weight b_if",
    INTEREST_SCORE: "largest m_f . e_i (no routing weights)",
}


def assign_items(
    routing: np.ndarray | None,
    mask: np.ndarray,
    interests: np.ndarray,
    items: np.ndarray,
) -> tuple[np.ndarray, str]:
    """Each history item's interest.

    Args:
      routing: [B, F, L] item-to-interest weights, or None.
      mask: [B, L] 1 for real items, 0 for padding.
      interests: [B, F, d] interest vectors m_f.
      items: [B, L, d] history embeddings e_i.

    Returns:
      (assignment [B, L] int64 in 0..F-1, -1 on padding; the source, ROUTING
      or INTEREST_SCORE).
    """
    if routing is not None:
        score, source = np.asarray(routing), ROUTING
    else:
        score = np.einsum("bfd,bld->bfl", interests, items)
        source = INTEREST_SCORE
    assign = np.argmax(score, axis=1).astype(np.int64)
    return np.where(np.asarray(mask) > 0, assign, -1), source


def group_sizes(assign: np.ndarray, num_interests: int) -> np.ndarray:
    """[L] assignment (-1 = padding) -> [F] items per interest."""
    a = assign[assign >= 0]
    return np.bincount(a, minlength=num_interests)[:num_interests]


def between_similarity(
    emb: np.ndarray, assign: np.ndarray, num_interests: int
) -> tuple[float, int]:
    """The paper's Similarity for one user.

    Args:
      emb: [n, d] embeddings of the user's (real) history items.
      assign: [n] their interests.

    Returns:
      (mean over the pairs f < f' of non-empty groups of the mean <e_i, e_j>
      between them, or nan when fewer than two groups are non-empty; the
      number of such pairs).
    """
    groups = [emb[assign == f] for f in range(num_interests)]
    groups = [g for g in groups if len(g)]
    sims = [
        float((groups[a] @ groups[b].T).mean())
        for a in range(len(groups))
        for b in range(a + 1, len(groups))
    ]
    return (float(np.mean(sims)) if sims else math.nan), len(sims)


def within_similarity(emb: np.ndarray, assign: np.ndarray, num_interests: int) -> float:
    """Mean <e_i, e_j> over pairs i != j in the same group (nan if none)."""
    total, pairs = 0.0, 0
    for f in range(num_interests):
        g = emb[assign == f]
        n = len(g)
        if n < 2:
            continue
        gram = g @ g.T
        total += float(gram.sum() - np.trace(gram))
        pairs += n * (n - 1)
    return total / pairs if pairs else math.nan


def _unit(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-12)


@dataclasses.dataclass
class CollapseStats:
    """Table 4's statistics over a sample of users (see the module doc)."""

    similarity: float
    cosine_similarity: float
    within_cosine: float
    min: float
    max: float
    std: float
    nonempty_interests: float
    items_per_user: float
    users: int
    users_with_similarity: int
    num_interests: int

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _nanmean(values: list[float]) -> float:
    v = [x for x in values if not math.isnan(x)]
    return float(np.mean(v)) if v else math.nan


def collapse_statistics(
    assign: np.ndarray, items: np.ndarray, num_interests: int
) -> CollapseStats:
    """Table 4 from assignments [U, L] (-1 = padding) and embeddings [U, L, d]."""
    sim, cos, within, mins, maxs, stds, nonempty, lengths = ([] for _ in range(8))
    for a_row, e_row in zip(assign, items):
        real = a_row >= 0
        a, e = a_row[real], np.asarray(e_row)[real]
        counts = group_sizes(a, num_interests)
        mins.append(counts.min())
        maxs.append(counts.max())
        stds.append(counts.std())
        nonempty.append(int((counts > 0).sum()))
        lengths.append(len(a))
        sim.append(between_similarity(e, a, num_interests)[0])
        u = _unit(e)
        cos.append(between_similarity(u, a, num_interests)[0])
        within.append(within_similarity(u, a, num_interests))
    return CollapseStats(
        similarity=_nanmean(sim),
        cosine_similarity=_nanmean(cos),
        within_cosine=_nanmean(within),
        min=float(np.mean(mins)),
        max=float(np.mean(maxs)),
        std=float(np.mean(stds)),
        nonempty_interests=float(np.mean(nonempty)),
        items_per_user=float(np.mean(lengths)),
        users=len(assign),
        users_with_similarity=sum(not math.isnan(s) for s in sim),
        num_interests=num_interests,
    )


# ----------------------------------------------------------- finished runs
def sample_users(num_split_users: int, num_users: int, seed: int) -> np.ndarray:
    """Positions of ``num_users`` users of a split, drawn without
    replacement with ``np.random.RandomState(seed)`` and kept sorted."""
    n = min(num_users, num_split_users)
    rng = np.random.RandomState(seed)
    return np.sort(rng.choice(num_split_users, n, replace=False))


def encode_numpy(model, inputs) -> dict:
    """model.encode on NumPy inputs -> dict of NumPy arrays.

    Args:
      inputs: the model's features as NumPy arrays ({types.HISTORY: [B, L],
        ...}, e.g. ``EvalExamples.inputs(rows)``, with history times for a
        model that reads them), or a history [B, L] alone.
    """
    from dismir_tf.pipeline import feature_tensors

    enc = model.encode(feature_tensors(inputs), training=False)
    return {
        "interests": enc.interests.numpy(),
        "routing": None if enc.routing is None else enc.routing.numpy(),
        "items": enc.items.numpy(),
        "mask": enc.mask.numpy(),
    }


def run_collapse(
    run_dir: str,
    num_users: int = 100,
    seed: int = 0,
    split: str = "test",
    label: str | None = None,
    log=None,
    min_history: int = 0,
) -> dict:
    """Table 4 for one finished run (its best checkpoint).

    Args:
      min_history: draw only among the users with at least this many
        history items (0: all users, as the paper).

    Returns a JSON-able dict: the statistics, how items were assigned, the
    run's model, data set, F and the sampled users.
    """
    from dismir_tf import pipeline
    from dismir_tf.errors import ConfigError
    from dismir_tf.models import time_unit
    from dismir_tf.runs import load_run

    config, ds, model = load_run(run_dir, log=log or (lambda m: None))
    # With the history times for a model that reads them (PIMIRec), as the
    # evaluation gives them.
    examples = pipeline.eval_examples(
        ds, split, config.model.max_len, time_unit(config.model)
    )
    eligible = np.flatnonzero((examples.history > 0).sum(1) >= min_history)
    if len(eligible) == 0:
        raise ConfigError(
            f"no {split} user of {run_dir} has {min_history} or more history items"
        )
    pick = eligible[sample_users(len(eligible), num_users, seed)]
    enc = encode_numpy(model, examples.inputs(pick))
    from dismir_tf.diagnostics import collapse_diagnostics

    sampled = examples.select(pick)
    diag = collapse_diagnostics(model, sampled)
    whole = collapse_diagnostics(model, examples)
    assign, source = assign_items(
        enc["routing"], enc["mask"], enc["interests"], enc["items"]
    )
    f = enc["interests"].shape[1]
    stats = collapse_statistics(assign, enc["items"], f)
    return {
        "label": label or config.model.name,
        "run_dir": run_dir,
        "model": config.model.name,
        "dataset": ds.name,
        "num_interests": f,
        "embedding_dim": config.model.embedding_dim,
        "partition_weight": config.model.partition_weight,
        "split": split,
        "seed": seed,
        "assigned_by": source,
        "min_history": min_history,
        "eligible_users": int(len(eligible)),
        "users_sampled": [int(u) for u in examples.users[pick]],
        "diagnostics": diag.to_dict(),
        "diagnostics_all_users": whole.to_dict(),
        **stats.to_dict(),
    }


def _num(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def to_markdown(results: Sequence[dict], title: str = "") -> str:
    """Metrics as rows, runs as columns (the shape of Table 4)."""
    out = io.StringIO()
    if title:
        out.write(f"{title}\n\n")
    labels = [r["label"] for r in results]
    out.write("| metric | " + " | ".join(labels) + " |\n")
    out.write("|---|" + "---|" * len(labels) + "\n")
    rows = [
        ("Similarity (inner product)", lambda r: _num(r["similarity"])),
        ("Similarity (cosine)", lambda r: _num(r["cosine_similarity"])),
        ("within-interest cosine", lambda r: _num(r["within_cosine"])),
        ("MIN/MAX", lambda r: f"{_num(r['min'], 1)}/{_num(r['max'], 1)}"),
        ("STD", lambda r: _num(r["std"], 2)),
        ("non-empty interests", lambda r: _num(r["nonempty_interests"], 2)),
        ("F", lambda r: str(r["num_interests"])),
        ("items per user", lambda r: _num(r["items_per_user"], 1)),
        (
            "users (with a similarity)",
            lambda r: f"{r['users']} ({r['users_with_similarity']})",
        ),
        ("items assigned by", lambda r: SOURCES[r["assigned_by"]]),
    ]

    def diag(key, digits=3):
        def cell(r):
            v = r.get("diagnostics", {}).get(key)
            return "n/a" if v is None else f"{v:.{digits}f}"

        return cell

    rows += [
        ("routing max share (uniform = 1/F)", diag("routing_max")),
        ("interest cosine (mean over pairs)", diag("interest_cosine")),
        ("attention max", diag("attention_max")),
        ("attention entropy (nats)", diag("attention_entropy")),
        ("query ~ history-mean cosine", diag("query_history_cosine")),
        ("interests in the top-50", diag("top_k_interests", 2)),
    ]
    for name, cell in rows:
        out.write(f"| {name} | " + " | ".join(cell(r) for r in results) + " |\n")
    first = results[0] if results else {}
    among = (
        f" among the {first['eligible_users']} with >= "
        f"{first['min_history']} history items"
        if first.get("min_history", 0) > 0
        else ""
    )
    out.write(
        f"\n{first.get('users', 0)} {first.get('split', 'test')} users drawn "
        f"with seed {first.get('seed', 0)}{among}; each history item goes to "
        "the "
        "interest with the largest routing weight. Similarity: the paper's "
        "mean inner product <e_i, e_j> between items of two different "
        "interests, averaged over the pairs of non-empty interests (pairs "
        "with an empty interest skipped; users with < 2 non-empty interests "
        "left out), then over users; the cosine row is the same on unit "
        "vectors. MIN/MAX/STD: items per interest (empty = 0; population "
        "std), per user, averaged over users. Lower similarity: less "
        "item-level collapse; lower STD and a smaller MIN-MAX gap: less "
        "facet-level collapse.  The last six rows are the collapse "
        "diagnostics (dismir_tf/diagnostics.py) on the same users: where the "
        "routing max share is close to 1/F the assignment above is an argmax "
        "over near-equal weights and MIN/MAX/STD say little; read the "
        "interest and query cosines instead.\n"
    )
    return out.getvalue()
