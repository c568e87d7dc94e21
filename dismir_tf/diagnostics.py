"""Collapse diagnostics: is a multi-interest model really multi-interest?

One function, :func:`collapse_diagnostics`, reads any model of the project
over the users of a split and returns figures that a collapsed model cannot
hide (issue: DisMIR's interests collapse into one on real data):

``routing_max``
  Mean over real history items of the share of the item's routing mass
  that goes to its strongest interest, max_f b_if / sum_f b_if.  With the
  routing softmax over interests (paper 3.2) this is max_f b_if; with it
  over positions (REMI's code) the column is renormalised first.  Uniform
  routing gives exactly 1/F; hard routing 1.  nan for models without
  routing weights.
``interest_cosine``
  Mean over users of the mean pairwise cosine between the user's F interest
  vectors (1: all interests point the same way).  An empty interest (the
  zero vector, see ``live_interests``) has cosine 0 with every other, so
  read this with ``live_interest_cosine``.
``live_interests``
  Mean over users of the number of live interests: those whose norm is
  above 1e-3 of the user's largest.  With nearly hard routing (DisMIR's
  default, temperature 0.02) an interest that collects none of a user's
  items is numerically the zero vector; it scores 0 for every item.
``live_interest_cosine``
  Mean pairwise cosine among a user's live interests, averaged over the
  users with at least two (nan if there are none).
``attention_max``, ``attention_entropy``
  Mean over users of max_f a_uf and of -sum_f a_uf log a_uf (nats; uniform
  gives log F, in ``attention_entropy_uniform``).  nan for models without
  an interest attention.
``query_history_cosine``
  Mean over users of the cosine between the retrieval query and the mean
  of the user's history embeddings (of the transformed items W e_i that
  the interests pool, for a model with a learned transformation:
  ``Encoded.routed_items``, so that a rotation alone cannot hide mean
  pooling), averaged over the user's live queries (norm above 1e-3 of the
  user's largest) when retrieval merges several (each interest, or each
  attention-scaled interest, is a query).  1 means the model ranks as mean
  pooling.
``fused_history_cosine``
  The same for the fused vector sum_f a_uf m_uf (the mean over f without
  an attention), whatever the retrieval.
``interest_history_cosine``
  Mean over users and interests of cos(m_uf, history mean).
``top_k_interests``
  With merge retrieval: mean over users of the number of distinct
  interests that contribute items to the user's top-k (an item is
  contributed by the interest that scores it highest; k = 50).  1 for
  fused retrieval and single-interest models.  Read it with
  ``interest_cosine``: interests that coincide up to rounding split their
  near-tied items among themselves (MIR-RV on beauty: cosine 1.000 and 3.5
  "contributing" interests).

Interests and scores are read exactly as the evaluator reads them
(``model.encode`` in inference mode, ``model.retrieval_queries`` of
the same encoding for the retrieval queries), in batches of users.

Cost.  Every figure but ``top_k_interests`` reads only the users' own
encodings (O(L F d) a user), a few percent of a full-catalogue evaluation
(O(Q N d) a user).  ``top_k_interests`` needs each user's merged top-k over
the whole catalogue: the evaluator computes it alongside its own top-k at
no extra scoring (``evaluation.evaluate(..., contributors=True)``), and
``collapse_diagnostics`` takes it from there (``top_k_interests=``) or
else scores the catalogue itself, in TensorFlow, for its users only.  The
training loop reads a fixed sample of at most ``DIAGNOSTIC_USERS`` valid
users at every evaluation (the same users every time, so the curve is
comparable) and every test user once at the end (docs/performance.md).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

# Users read by the collapse diagnostics at each in-run evaluation (a
# fixed, seeded sample when the valid split is larger).
DIAGNOSTIC_USERS = 2000

FIGURES = (
    "routing_max",
    "interest_cosine",
    "live_interests",
    "live_interest_cosine",
    "attention_max",
    "attention_entropy",
    "query_history_cosine",
    "fused_history_cosine",
    "interest_history_cosine",
    "top_k_interests",
)


@dataclasses.dataclass
class CollapseDiagnostics:
    """The figures of the module doc, averaged over ``users`` users."""

    routing_max: float
    interest_cosine: float
    live_interests: float
    live_interest_cosine: float
    attention_max: float
    attention_entropy: float
    attention_entropy_uniform: float
    query_history_cosine: float
    fused_history_cosine: float
    interest_history_cosine: float
    top_k_interests: float
    top_k: int
    num_interests: int
    retrieval: str
    users: int
    of_users: int | None = None

    def to_dict(self) -> dict:
        """JSON-able: nan (a figure the model does not have) is None."""
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in dataclasses.asdict(self).items()
        }

    def summary(self) -> str:
        """One line for logs and reports."""

        def num(x, digits=3):
            return "n/a" if x is None or math.isnan(x) else f"{x:.{digits}f}"

        return (
            f"interest cosine {num(self.interest_cosine)} (live "
            f"{num(self.live_interest_cosine)}, "
            f"{num(self.live_interests, 2)} live)  "
            f"query~history-mean cosine {num(self.query_history_cosine)}"
            f"  routing max {num(self.routing_max)} (uniform "
            f"{1 / self.num_interests:.3f})  attention max "
            f"{num(self.attention_max)}  interests in top-{self.top_k} "
            f"{num(self.top_k_interests, 2)}/{self.num_interests}"
            + (
                f"  ({self.users:,} of {self.of_users:,} users, a fixed sample)"
                if self.of_users and self.of_users > self.users
                else ""
            )
        )


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def routing_max_share(routing: np.ndarray, mask: np.ndarray) -> tuple[float, int]:
    """(sum over real items of max_f b_if / sum_f b_if, number of real
    items with routing mass) for routing [B, F, L] and mask [B, L]."""
    col = routing.sum(axis=1)  # [B, L]
    ok = (mask > 0) & (col > 0)
    share = routing.max(axis=1) / np.where(col > 0, col, 1.0)
    return float(share[ok].sum()), int(ok.sum())


_LIVE = 1e-3


def live_mask(vectors: np.ndarray) -> np.ndarray:
    """[B, Q, d] -> [B, Q] bool: norm above _LIVE of the row's largest."""
    norms = np.linalg.norm(vectors, axis=-1)
    return (norms > _LIVE * norms.max(axis=1, keepdims=True)) & (norms > 0)


def pair_cosines(
    unit: np.ndarray, live: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean pairwise cosines of each user's interests, from one Gram matrix.

    Args:
      unit: [B, F, d] unit interest vectors (an empty interest: zeros).
      live: [B, F] bool, their :func:`live_mask`.

    Returns:
      ([B] mean cosine over all pairs f < f' (nan if F = 1), [B] mean over
      the pairs of live interests, [B] bool the user has such a pair).
    """
    f = unit.shape[1]
    gram = np.einsum("bfd,bgd->bfg", unit, unit)
    upper = np.triu(np.ones((f, f), bool), 1)[None]
    everything = (
        gram[:, upper[0]].mean(axis=1) if f > 1 else np.full(unit.shape[0], np.nan)
    )
    pairs = live[:, :, None] & live[:, None, :] & upper
    count = pairs.sum(axis=(1, 2))
    total = np.where(pairs, gram, 0.0).sum(axis=(1, 2))
    return everything, total / np.maximum(count, 1), count > 0


def attention_figures(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[B, F] -> ([B] max_f a_f, [B] entropy in nats)."""
    w = np.clip(weights, 1e-12, 1.0)
    return weights.max(axis=1), -(weights * np.log(w)).sum(axis=1)


def history_mean(items: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[B, L, d], [B, L] -> [B, d] mean of the real items."""
    total = np.einsum("bld,bl->bd", items, mask)
    return total / np.maximum(mask.sum(1, keepdims=True), 1.0)


def top_k_contributors(queries, item_embeddings, k: int) -> np.ndarray:
    """[B] number of distinct queries that contribute to the merged top-k.

    The merged top-k is the top-k of max_q queries_q . e_i over items
    1..N (row 0 of ``item_embeddings`` is padding), found by the
    evaluator's exact top-k (``retrieval.score_and_top_k_candidates``);
    each of its items is contributed by its argmax q
    (``retrieval.contributors_of``).
    """
    import tensorflow as tf

    from dismir_tf.retrieval import contributors_of, score_and_top_k_fn

    emb = tf.convert_to_tensor(item_embeddings, tf.float32)
    k = min(k, int(emb.shape[0]) - 1)
    _, items = score_and_top_k_fn(
        tf.convert_to_tensor(queries, tf.float32), emb, k, None
    )
    return contributors_of(queries, emb, items)


def figures_from_arrays(
    interests: np.ndarray,
    weights: np.ndarray | None,
    routing: np.ndarray | None,
    items: np.ndarray,
    mask: np.ndarray,
    queries: np.ndarray,
    item_embeddings,
    retrieval: str,
    top_k: int = 50,
    top_k_interests: np.ndarray | None = None,
) -> dict:
    """Per-batch sums of the figures (see :func:`collapse_diagnostics`).

    Args:
      interests: [B, F, d]; weights: [B, F] or None; routing: [B, F, L] or
        None; items: [B, L, d]; mask: [B, L]; queries: [B, Q, d] retrieval
        queries; item_embeddings: [N + 1, d]; retrieval: 'merge' or 'fused';
        top_k_interests: [B] contributors to each user's top-k when the
        evaluator has them (else computed from the catalogue).

    Returns:
      A dict of sums and counts, combined by :func:`_finish`.
    """
    mask = mask.astype(np.float64)
    mean = history_mean(items, mask)
    if weights is None:
        fused = interests.mean(axis=1)
    else:
        fused = np.einsum("bf,bfd->bd", weights, interests)
    unit, unit_mean = _unit(interests), _unit(mean)
    out = {"users": interests.shape[0]}
    live = live_mask(interests)
    everything, cos, has_pair = pair_cosines(unit, live)
    out["interest_cosine"] = float(np.nansum(everything))
    out["live_interests"] = float(live.sum())
    out["live_interest_cosine"] = float(cos[has_pair].sum())
    out["live_pair_users"] = int(has_pair.sum())
    out["fused_history_cosine"] = float(np.sum((_unit(fused) * unit_mean).sum(-1)))
    q = np.asarray(queries, np.float64)
    q_live = live_mask(q)
    q_cos = (_unit(q) * unit_mean[:, None]).sum(-1)  # [B, Q]
    out["query_history_cosine"] = float(
        np.sum(np.where(q_live, q_cos, 0.0).sum(1) / np.maximum(q_live.sum(1), 1))
    )
    out["interest_history_cosine"] = float(
        np.sum((unit * unit_mean[:, None]).sum(-1).mean(1))
    )
    if routing is not None:
        out["routing_sum"], out["routing_items"] = routing_max_share(routing, mask)
    if weights is not None:
        amax, ent = attention_figures(weights)
        out["attention_max"], out["attention_entropy"] = (
            float(amax.sum()),
            float(ent.sum()),
        )
    if retrieval == "merge" and queries.shape[1] > 1:
        if top_k_interests is None:
            top_k_interests = top_k_contributors(queries, item_embeddings, top_k)
        out["top_k_interests"] = float(np.sum(top_k_interests))
    else:
        out["top_k_interests"] = float(interests.shape[0])
    return out


def _finish(
    parts: list[dict],
    num_interests: int,
    retrieval: str,
    top_k: int,
    of_users: int | None = None,
) -> CollapseDiagnostics:
    users = sum(p["users"] for p in parts)

    def mean_of(key, count="users"):
        if not all(key in p for p in parts) or users == 0:
            return math.nan
        n = sum(p[count] for p in parts)
        return sum(p[key] for p in parts) / n if n else math.nan

    return CollapseDiagnostics(
        routing_max=mean_of("routing_sum", "routing_items"),
        interest_cosine=(mean_of("interest_cosine") if num_interests > 1 else math.nan),
        live_interests=mean_of("live_interests"),
        live_interest_cosine=(
            mean_of("live_interest_cosine", "live_pair_users")
            if num_interests > 1
            else math.nan
        ),
        attention_max=mean_of("attention_max"),
        attention_entropy=mean_of("attention_entropy"),
        attention_entropy_uniform=math.log(num_interests),
        query_history_cosine=mean_of("query_history_cosine"),
        fused_history_cosine=mean_of("fused_history_cosine"),
        interest_history_cosine=mean_of("interest_history_cosine"),
        top_k_interests=mean_of("top_k_interests"),
        top_k=top_k,
        num_interests=num_interests,
        retrieval=retrieval,
        users=users,
        of_users=of_users,
    )


def sample_rows(num_users: int, max_users: int | None, seed: int = 0) -> np.ndarray:
    """The rows read for ``num_users`` users: all of them, or a fixed
    seeded sample of ``max_users`` (sorted), the same for every call."""
    if max_users is None or num_users <= max_users:
        return np.arange(num_users)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(num_users, size=max_users, replace=False))


def collapse_diagnostics(
    model,
    examples,
    batch_size: int = 512,
    top_k: int = 50,
    retrieval: str | None = None,
    max_users: int | None = None,
    seed: int = 0,
    top_k_interests: np.ndarray | None = None,
) -> CollapseDiagnostics:
    """The collapse figures of ``model`` over the users of ``examples``.

    Args:
      model: a :class:`dismir_tf.models.RetrievalModel`.
      examples: :class:`dismir_tf.pipeline.EvalExamples` of a split (the
        model is given their ``inputs(rows)``: the history and the other
        features, e.g. history times).
      batch_size: users per batch.
      top_k: k of ``top_k_interests`` (the protocol's largest cut-off, 50).
      retrieval: 'merge' or 'fused'; default the model's own.
      max_users: read a fixed sample of this many users
        (:func:`sample_rows` with ``seed``; None: every user).  The result
        says how many of how many (``users``, ``of_users``).
      seed: the sample's seed.
      top_k_interests: [num_users] per-user contributors to the top-k from
        the evaluator (``EvalResult.contributors``, same k and retrieval);
        None: scored here over the whole catalogue for the users read.

    Returns:
      :class:`CollapseDiagnostics`.
    """
    from dismir_tf.pipeline import feature_tensors

    mode = retrieval or model.retrieval
    rows = sample_rows(examples.num_users, max_users, seed)
    emb = model.item_embedding.embeddings if top_k_interests is None else None
    parts = []
    num_interests = 1
    for lo in range(0, len(rows), batch_size):
        sl = rows[lo : lo + batch_size]
        enc = model.encode(feature_tensors(examples.inputs(sl)), training=False)
        queries = model.retrieval_queries(enc, mode)
        num_interests = int(enc.interests.shape[1])
        parts.append(
            figures_from_arrays(
                enc.interests.numpy().astype(np.float64),
                None if enc.weights is None else enc.weights.numpy(),
                None if enc.routing is None else enc.routing.numpy(),
                (enc.items if enc.routed_items is None else enc.routed_items)
                .numpy()
                .astype(np.float64),
                enc.mask.numpy(),
                queries.numpy(),
                emb,
                mode,
                top_k,
                None if top_k_interests is None else top_k_interests[sl],
            )
        )
    return _finish(parts, num_interests, mode, top_k, of_users=examples.num_users)
