"""Each model's own hyperparameters: frozen dataclasses, one per model.

A field is declared with :func:`param` (default, help, optional search
range, optional shared flag name).  A model's spec
(``dismir_tf.model_specs``) names its dataclass; ``ModelConfig.params``
holds the values (checked here, defaults filled in, recorded in
config.json) and the entry points define one flag per field.

The settings shared by a family are declared once and used by each member:
the DisMIR family (dismir, mir, mir-rv, mir-bf, dismir-wo-dpi) shares
:class:`CapsuleParams`; MIR-RV and MIR-BF add their regulariser's weight;
REMI and MIR-RV declare the routing-variance weight alike, and REMI, UMI
and the DisMIR family the hard-negative temperature beta, so each keeps one
flag (``--routing_variance_weight``, ``--remi_beta``).

No TensorFlow here: the entry points check flags before it starts.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any


@dataclasses.dataclass(frozen=True)
class SearchRange:
    """One hyperparameter's search range.

    Attributes:
      low, high: bounds of a numeric range (inclusive).
      log: sample the numeric range on a log scale.
      choices: the values of a categorical parameter (then low/high unused).
    """

    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if self.choices:
            return
        if self.low is None or self.high is None or self.low > self.high:
            raise ValueError("a SearchRange needs low <= high or choices")
        if self.log and self.low <= 0:
            raise ValueError("a log-scale SearchRange needs low > 0")

    @property
    def bounds(self) -> tuple[float, float]:
        """(low, high) of a numeric range as floats."""
        if self.low is None or self.high is None:
            raise ValueError("a categorical SearchRange has no bounds")
        return float(self.low), float(self.high)

    def contains(self, value: Any) -> bool:
        if self.choices:
            return value in self.choices
        return self.low <= value <= self.high


def param(
    default: Any, help: str, search: SearchRange | None = None, flag: str | None = None
) -> Any:
    """A field of a model's ``params`` dataclass.

    Args:
      default: the value when no flag sets it (bool, int, float or str).
      help: the flag's help line.
      search: the range a tuner searches, or None.
      flag: the flag's name when it is not ``<model>_<field>``: a setting
        that several models declare alike (DisMIR's capsule options, REMI's
        beta) keeps one flag, and each model that declares it reads it.
    """
    return dataclasses.field(
        default=default, metadata={"help": help, "search": search, "flag": flag}
    )


@dataclasses.dataclass(frozen=True)
class SASRecParams:
    """SASRec's own settings (Kang and McAuley, ICDM '18;
    dismir_tf/models/sasrec.py): the reference's 2 blocks and 1 head;
    dropout 0.5 as on its sparse Amazon and Steam sets (0.2 on
    MovieLens-1M)."""

    blocks: int = param(2, "self-attention blocks", SearchRange(1, 3))
    heads: int = param(
        1, "attention heads (must divide embedding_dim)", SearchRange(choices=(1, 2))
    )
    dropout: float = param(0.5, "dropout rate", SearchRange(0.0, 0.5))

    def __post_init__(self) -> None:
        if self.blocks < 1:
            raise ValueError("sasrec_blocks must be >= 1")
        if self.heads < 1:
            raise ValueError("sasrec_heads must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("sasrec_dropout must be in [0, 1)")


def _finite_at_least_zero(**values: float) -> None:
    for name, value in values.items():
        if not (math.isfinite(value) and value >= 0.0):
            raise ValueError(f"{name} must be finite and >= 0")


@dataclasses.dataclass(frozen=True)
class Re4Params:
    """Re4's own settings (Zhang et al., WWW '22; dismir_tf/models/re4.py):
    the weights of its three backward flows, the re-contrast temperature
    and the attention threshold that picks each interest's representative
    items (0: 1/|history| per user, the reference's --thre -1).  Defaults:
    the reference code's t_cont and the RecPanGu port's lambdas (the
    official script takes the lambdas as required flags)."""

    contrast_weight: float = param(0.1, "weight of the re-contrast flow")
    attend_weight: float = param(0.01, "weight of the re-attend flow")
    construct_weight: float = param(0.1, "weight of the re-construct flow")
    temperature: float = param(
        0.02, "re-contrast temperature", SearchRange(0.01, 1.0, log=True)
    )
    threshold: float = param(
        0.0,
        "attention threshold of an interest's representative items (0: 1/|history|)",
    )

    def __post_init__(self) -> None:
        _finite_at_least_zero(
            re4_contrast_weight=self.contrast_weight,
            re4_attend_weight=self.attend_weight,
            re4_construct_weight=self.construct_weight,
        )
        if not (math.isfinite(self.temperature) and self.temperature > 0.0):
            raise ValueError("re4_temperature must be > 0")
        if not 0.0 <= self.threshold < 1.0:
            raise ValueError("re4_threshold must be in [0, 1) (0: 1/|history|)")


@dataclasses.dataclass(frozen=True)
class PIMIRecParams:
    """PIMIRec's own settings (Chen et al., IJCAI '21;
    dismir_tf/models/pimirec.py): K, the clip of the interval matrix (the
    reference's --time_span default); the seconds per time unit of the
    intervals (timestamped data only; order-only data counts one unit per
    interaction); and the rounds of the star-graph interactivity module."""

    time_span: int = param(64, "K, the clip of the interval matrix")
    time_unit: float = param(86400.0, "seconds per time unit of the intervals")
    graph_layers: int = param(3, "rounds of the star-graph module")

    def __post_init__(self) -> None:
        if self.time_span < 1:
            raise ValueError("pimirec_time_span must be >= 1")
        if not (math.isfinite(self.time_unit) and self.time_unit > 0.0):
            raise ValueError("pimirec_time_unit must be finite and > 0")
        if self.graph_layers < 1:
            raise ValueError("pimirec_graph_layers must be >= 1")


# The DisMIR family's capsule design space (dismir_tf/models/dismir.py,
# docs/models.md); '' (0 for the temperature) is "the model's default",
# filled in by dismir_tf.capsule_config.resolve_capsule.
ROUTING_INITS = ("prototype", "random", "random_per_call")
ROUTING_SOFTMAX = ("interests", "positions")
ROUTING_SIMILARITIES = ("dot", "cosine")
READOUTS = ("fused", "max", "weighted_max")
INTEREST_NORMS = ("squash", "none")
REC_LOSSES = ("pairwise", "sampled_softmax")
CAPSULE_TRANSFORMS = ("identity", "shared", "shared_from_identity")
CAPSULE_RECENCY = ("none", "learned", "learned_per_interest")
CAPSULE_ORDERS = ("none", "positions", "self_attention")
CAPSULE_PRESETS = ("paper-remi",)


def remi_beta_param() -> Any:
    """The ``--remi_beta`` field (a model of another module that weights
    its sampled softmax's negatives as REMI declares it with this)."""
    return param(
        1.0,
        "the hard-negative temperature beta of REMI's sampled "
        "softmax (REMI, UMI; the DisMIR family with --rec_loss "
        "sampled_softmax)",
        flag="remi_beta",
    )


def routing_variance_weight_param() -> Any:
    """The ``--routing_variance_weight`` field (REMI's eq. 1 weight)."""
    return param(
        100.0,
        "weight of the routing-variance regulariser (REMI, MIR-RV)",
        flag="routing_variance_weight",
    )


def _check_beta(beta: float) -> None:
    if not (math.isfinite(beta) and beta >= 0.0):
        raise ValueError("remi_beta must be finite and >= 0")


def _capsule(default: Any, name: str, help: str) -> Any:
    return param(default, "DisMIR family: " + help, flag=name)


@dataclasses.dataclass(frozen=True)
class CapsuleParams:
    """The DisMIR family's capsule, readout and objective
    (dismir_tf/models/dismir.py; :class:`dismir_tf.layers.
    CapsuleInterestExtractor` for the routing options).  Each string's ''
    and the temperature's 0 mean the model's default
    (``dismir_tf.capsule_config.DEFAULT_CAPSULE``, or the preset's); the
    exception is ``capsule_order``, an option outside the default and the
    presets, whose default is 'none' itself.

    Attributes:
      routing_init, routing_softmax, routing_padding_in_softmax,
      routing_similarity, routing_temperature, routing_detach: the routing.
      interest_norm: 'squash' (the squashed capsules v_f, as ComiRec/MIND)
        or 'none' (the capsules m_f of paper 3.2 before the squash).
      readout: how an item is scored from the interests, in training and
        retrieval: 'fused' (eq. 5, sum_f a_f m_f . e_i), 'max'
        (max_f m_f . e_i: merge retrieval) or 'weighted_max'
        (max_f a_f m_f . e_i).
      rec_loss: 'pairwise' (eq. 5: -log sigmoid(s_ui - s_uj), j the
        highest-scoring of C uniform candidates) or 'sampled_softmax'
        (REMI's IHN: the target against ``sampled_softmax_negatives``
        shared uniform negatives, each weighted by
        softmax_j(remi_beta * s_uj)).
      capsule_transform: W in m_f = sum_i b_if W e_i: 'identity' (paper
        5.1.4), 'shared' (a learned d x d matrix, N(0, 1/d) start, as MIND)
        or 'shared_from_identity' (the same matrix started at W = I).
      capsule_recency: 'none' (the paper), 'learned' (one learned positive
        weight per recency rank scales each routed item, started at 1) or
        'learned_per_interest' (one per rank and interest).
      capsule_order: how the routed items read the order of the history:
        'none' (the paper's order-free capsule), 'positions' (u_i = e_i +
        p_{r(i)}, a learned embedding of the item's recency rank r(i), 0
        for the newest, started at 0) or 'self_attention' (u_i is the
        output at position i of one causal SASRec block over e_i +
        p_{r(i)}: item i reads the items before it, in the manner of
        SASRec).  Not in the paper; docs/models.md, "Reading the order".
      capsule_preset: '' or a named configuration (``CAPSULE_PRESETS``;
        'paper-remi': the authors' most likely one on REMI's code).
      remi_beta: beta of the 'sampled_softmax' objective.
    """

    routing_init: str = _capsule(
        "",
        "routing_init",
        "how routing logits start: prototype, random "
        "(one fixed draw) or random_per_call (a new draw every training "
        "step; default: prototype).",
    )
    routing_softmax: str = _capsule(
        "",
        "routing_softmax",
        "the routing softmax's axis: interests (paper "
        "3.2) or positions (REMI's code; default: interests).",
    )
    routing_padding_in_softmax: bool = _capsule(
        False,
        "routing_padding_in_softmax",
        "with --routing_softmax="
        "positions: padding stays inside the softmax (REMI's code; default: "
        "false).",
    )
    routing_similarity: str = _capsule(
        "",
        "routing_similarity",
        "prototype logits by dot product or cosine (default: cosine).",
    )
    routing_temperature: float = _capsule(
        0.0, "routing_temperature", "routing logits are divided by it (default: 0.02)."
    )
    routing_detach: bool = _capsule(
        False,
        "routing_detach",
        "the routed items of the last pass get no "
        "gradient (REMI's code with one pass; default: false).",
    )
    interest_norm: str = _capsule(
        "",
        "interest_norm",
        "squash (the squashed capsules v_f) or none "
        "(the capsules m_f of paper 3.2; default: squash).",
    )
    readout: str = _capsule(
        "",
        "readout",
        "fused (eq. 5), max or weighted_max, in training and retrieval (default: max).",
    )
    rec_loss: str = _capsule(
        "",
        "rec_loss",
        "pairwise (eq. 5, the hardest of C candidates) or "
        "sampled_softmax (REMI's IHN over --sampled_softmax_negatives; "
        "default: pairwise).",
    )
    capsule_transform: str = _capsule(
        "",
        "capsule_transform",
        "W of the capsule: identity (paper 5.1.4) "
        "or shared (a learned d x d matrix) or shared_from_identity (the "
        "same, started at W = I; default: shared_from_identity).",
    )
    capsule_recency: str = _capsule(
        "",
        "capsule_recency",
        "none (the paper), learned (one learned "
        "weight per recency rank scales each routed item) or "
        "learned_per_interest (one per rank and interest; default: "
        "learned).",
    )
    capsule_order: str = _capsule(
        "none",
        "capsule_order",
        "how the routed items read the history's order: none (the paper's "
        "order-free capsule), positions (a learned recency-rank embedding "
        "is added to each item) or self_attention (one causal SASRec block "
        "over item + position embeddings; default: none).",
    )
    capsule_preset: str = _capsule(
        "",
        "capsule_preset",
        "a named capsule configuration (paper-remi: "
        "the authors' most likely one on REMI's code; default: none).",
    )
    remi_beta: float = remi_beta_param()

    def __post_init__(self) -> None:
        for name, allowed in (
            ("routing_init", ROUTING_INITS),
            ("routing_softmax", ROUTING_SOFTMAX),
            ("routing_similarity", ROUTING_SIMILARITIES),
            ("readout", READOUTS),
            ("interest_norm", INTEREST_NORMS),
            ("rec_loss", REC_LOSSES),
            ("capsule_transform", CAPSULE_TRANSFORMS),
            ("capsule_recency", CAPSULE_RECENCY),
            ("capsule_preset", CAPSULE_PRESETS),
            ("capsule_order", CAPSULE_ORDERS),
        ):
            value = getattr(self, name)
            # '' is "the model's default" for every option but capsule_order.
            unset = () if name == "capsule_order" else ("",)
            if value not in unset + allowed:
                raise ValueError(
                    f"{name} must be one of {', '.join(allowed)}, got {value!r}"
                )
        if not (
            math.isfinite(self.routing_temperature) and self.routing_temperature >= 0.0
        ):
            raise ValueError(
                "routing_temperature must be finite and > 0 (0: the model's default)"
            )
        if self.routing_padding_in_softmax and self.routing_softmax not in (
            "",
            "positions",
        ):
            raise ValueError(
                "routing_padding_in_softmax needs routing_softmax=positions"
            )
        _check_beta(self.remi_beta)


@dataclasses.dataclass(frozen=True)
class MIRRVParams(CapsuleParams):
    """MIR-RV: the capsule plus REMI's routing-variance weight
    (dismir_tf/models/mir_variants.py)."""

    routing_variance_weight: float = routing_variance_weight_param()

    def __post_init__(self) -> None:
        super().__post_init__()
        _finite_at_least_zero(routing_variance_weight=self.routing_variance_weight)


@dataclasses.dataclass(frozen=True)
class MIRBFParams(CapsuleParams):
    """MIR-BF: the capsule plus the weight of Re4's backward flow (the
    DisMIR paper's eq. 2; dismir_tf/models/mir_variants.py)."""

    backward_flow_weight: float = param(
        0.1, "weight of Re4's backward-flow loss", flag="backward_flow_weight"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        _finite_at_least_zero(backward_flow_weight=self.backward_flow_weight)


@dataclasses.dataclass(frozen=True)
class REMIParams:
    """REMI's own settings (Xie et al., RecSys '23; dismir_tf/models/
    remi.py): beta of its interest-aware hard negatives (the reference's
    --rbeta) and the weight of its routing regulariser (--rlambda); the
    defaults are the reference's."""

    remi_beta: float = remi_beta_param()
    routing_variance_weight: float = routing_variance_weight_param()

    def __post_init__(self) -> None:
        _check_beta(self.remi_beta)
        _finite_at_least_zero(routing_variance_weight=self.routing_variance_weight)


@dataclasses.dataclass(frozen=True)
class UMIParams:
    """UMI's own settings (dismir_tf/models/umi.py): beta of the
    interest-aware hard negatives of its sampled softmax, as REMI's."""

    remi_beta: float = remi_beta_param()

    def __post_init__(self) -> None:
        _check_beta(self.remi_beta)
