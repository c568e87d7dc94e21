"""Model specs: each model's name, class, defaults and search space, once.

This module is the one place where a model's own settings are decided:

* ``defaults``: the :class:`~dismir_tf.config.ModelConfig` fields the model
  sets when no flag does (for DisMIR, lambda; for every model, what its
  paper or the project's evidence picked);
* ``partition``: how the model takes the item-partition task of Theorem 4
  (eq. 6): ``'default'`` (on, at ``defaults['partition_weight']``, as
  DisMIR), ``'plugin'`` (off unless ``--partition_weight`` asks for it:
  the multi-interest baselines of Table 2, for which the task is the plugin
  of Table 5) or ``'never'`` (the model has no interests to partition, or
  is an ablation defined by lambda = 0; a partition weight is refused);
* ``search_space``: the ranges a tuner searches (the fair-tables issue);
* ``capsule``: whether the model is built on DisMIR's capsule and takes its
  ``routing_*`` / ``readout`` options (``dismir_tf.models.dismir``).

It imports neither TensorFlow nor the model classes (``factory`` is a
``module:attribute`` path imported by :func:`load_factory`), so the entry
points check a model name and its flags before TensorFlow starts.

How DisMIR's lambda was chosen: docs/models.md, "The partition weight".
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from collections.abc import Callable, Mapping
from typing import Any

PARTITION_POLICIES = ("default", "plugin", "never")


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


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Everything the project knows about one ``--model`` name.

    Attributes:
      name: the ``--model`` value.
      factory: ``'module:attribute'`` of the class (or a function returning
        one) called as ``factory(num_items, config, seed)``.
      summary: one line for ``--help`` and error messages.
      partition: how the model takes the partition task
        (``PARTITION_POLICIES``, module docstring).
      defaults: ModelConfig fields this model sets when no flag does.
      search_space: per ModelConfig field (and 'learning_rate'), the range
        a tuner searches.
      capsule: built on DisMIR's capsule (takes the capsule options).
      factory_kwargs: keyword arguments the factory is called with (e.g.
        ``use_attention=False`` for w/o DPI).
      params: the model's own hyperparameters, a frozen dataclass whose
        fields are declared with :func:`param` (default, help, search
        range), or None; ``check`` (optional) is called with the whole
        ModelConfig and returns a message when the params do not fit the
        rest of it (e.g. heads that do not divide d).  Each field becomes
        the flag
        ``--<model>_<field>`` (``-`` in the model name read as ``_``), a
        key of ``ModelConfig.params`` (and of config.json), and, with a
        search range, a tuned parameter under the flag's name.  A new
        model declares its settings here and touches nothing else.
    """

    name: str
    factory: str
    summary: str
    partition: str = "plugin"
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    search_space: Mapping[str, SearchRange] = dataclasses.field(
        default_factory=dict)
    capsule: bool = False
    factory_kwargs: Mapping[str, Any] = dataclasses.field(
        default_factory=dict)
    params: type | None = None
    check: Callable[[Any], str | None] | None = None

    def __post_init__(self) -> None:
        if self.params is not None:
            if not dataclasses.is_dataclass(self.params):
                raise ValueError(f"{self.name}: params must be a dataclass")
            for field in dataclasses.fields(self.params):
                default = field.default
                if type(default) not in (bool, int, float, str) or \
                        "help" not in field.metadata:
                    raise ValueError(
                        f"{self.name}: params field {field.name!r} must be "
                        "declared with model_specs.param(default, help) and "
                        "a bool, int, float or str default")
            space = dict(self.search_space)
            for flag, field in self.param_flags().items():
                search = field.metadata.get("search")
                if search is not None:
                    space.setdefault(flag, search)
            object.__setattr__(self, "search_space", space)
        if self.partition not in PARTITION_POLICIES:
            raise ValueError(f"partition must be one of {PARTITION_POLICIES}")
        lam = self.defaults.get("partition_weight", 0.0)
        if (self.partition == "default") != (lam > 0):
            raise ValueError(f"{self.name}: partition='default' goes with a "
                             "default partition_weight > 0 and only with it")

    @property
    def flag_prefix(self) -> str:
        """``sasrec``, ``comirec_sa``: the model's name as a flag prefix."""
        return self.name.replace("-", "_")

    def param_flags(self) -> dict[str, dataclasses.Field]:
        """{flag name: field} of the model's own hyperparameters."""
        if self.params is None:
            return {}
        return {f"{self.flag_prefix}_{f.name}": f
                for f in dataclasses.fields(self.params)}

    @property
    def default_partition_weight(self) -> float:
        """lambda when no --partition_weight is given (0: the task is off)."""
        return float(self.defaults.get("partition_weight", 0.0))


# DisMIR's lambda with the project's default capsule: the highest (on
# ml-1m-odd level) valid figure on every shared data set, against 0.1 on
# each and the paper's Gowalla value 0.01 on gowalla-lbsn (docs/models.md,
# "The partition weight").
DISMIR_PARTITION_WEIGHT = 1.0

def param(default: Any, help: str,
          search: SearchRange | None = None) -> Any:
    """A field of a model's ``params`` dataclass: its default, its flag's
    help line and, optionally, the range a tuner searches."""
    return dataclasses.field(default=default,
                             metadata={"help": help, "search": search})


_LR = SearchRange(1e-4, 1e-2, log=True)


@dataclasses.dataclass(frozen=True)
class SASRecParams:
    """SASRec's own settings (Kang and McAuley, ICDM '18;
    dismir_tf/models/sasrec.py): the reference's 2 blocks and 1 head;
    dropout 0.5 as on its sparse Amazon and Steam sets (0.2 on
    MovieLens-1M)."""

    blocks: int = param(2, "self-attention blocks", SearchRange(1, 3))
    heads: int = param(1, "attention heads (must divide embedding_dim)",
                       SearchRange(choices=(1, 2)))
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
    temperature: float = param(0.02, "re-contrast temperature",
                               SearchRange(0.01, 1.0, log=True))
    threshold: float = param(0.0, "attention threshold of an interest's "
                             "representative items (0: 1/|history|)")

    def __post_init__(self) -> None:
        _finite_at_least_zero(re4_contrast_weight=self.contrast_weight,
                              re4_attend_weight=self.attend_weight,
                              re4_construct_weight=self.construct_weight)
        if not (math.isfinite(self.temperature) and self.temperature > 0.0):
            raise ValueError("re4_temperature must be > 0")
        if not 0.0 <= self.threshold < 1.0:
            raise ValueError("re4_threshold must be in [0, 1) "
                             "(0: 1/|history|)")


@dataclasses.dataclass(frozen=True)
class PIMIRecParams:
    """PIMIRec's own settings (Chen et al., IJCAI '21;
    dismir_tf/models/pimirec.py): K, the clip of the interval matrix (the
    reference's --time_span default); the seconds per time unit of the
    intervals (timestamped data only; order-only data counts one unit per
    interaction); and the rounds of the star-graph interactivity module."""

    time_span: int = param(64, "K, the clip of the interval matrix")
    time_unit: float = param(86400.0, "seconds per time unit of the "
                             "intervals")
    graph_layers: int = param(3, "rounds of the star-graph module")

    def __post_init__(self) -> None:
        if self.time_span < 1:
            raise ValueError("pimirec_time_span must be >= 1")
        if not (math.isfinite(self.time_unit) and self.time_unit > 0.0):
            raise ValueError("pimirec_time_unit must be finite and > 0")
        if self.graph_layers < 1:
            raise ValueError("pimirec_graph_layers must be >= 1")


def _check_sasrec(config: Any) -> str | None:
    if config.embedding_dim % config.params["heads"]:
        return (f"sasrec_heads {config.params['heads']} must divide "
                f"embedding_dim {config.embedding_dim}")
    return None


_LAMBDA = SearchRange(0.01, 10.0, log=True)
_F = SearchRange(2, 8)
_CAPSULE_SPACE = {"learning_rate": _LR, "num_interests": _F,
                  "routing_temperature": SearchRange(0.01, 1.0, log=True)}


def _spec(name, factory, summary, **kw) -> ModelSpec:
    return ModelSpec(name=name, factory=factory, summary=summary, **kw)


_SPECS: dict[str, ModelSpec] = {s.name: s for s in (
    _spec("dnn", "dismir_tf.models.dnn:DNN",
          "YouTube DNN: mean-pooled history, one interest",
          partition="never", search_space={"learning_rate": _LR}),
    _spec("gru4rec", "dismir_tf.models.gru4rec:GRU4Rec",
          "GRU4Rec: a GRU over the ordered history, one interest",
          partition="never", search_space={"learning_rate": _LR}),
    _spec("sasrec", "dismir_tf.models.sasrec:SASRec",
          "SASRec: causal self-attention over the ordered history, one "
          "interest", partition="never", params=SASRecParams,
          check=_check_sasrec, search_space={"learning_rate": _LR}),
    _spec("mind", "dismir_tf.models.mind:MIND",
          "MIND: dynamic-routing capsules with a label-aware readout",
          search_space={"learning_rate": _LR, "num_interests": _F,
                        "routing_iterations": SearchRange(1, 3)}),
    _spec("comirec-dr", "dismir_tf.models.comirec:ComiRecDR",
          "ComiRec-DR: dynamic routing", search_space={
              "learning_rate": _LR, "num_interests": _F,
              "routing_iterations": SearchRange(1, 3)}),
    _spec("comirec-sa", "dismir_tf.models.comirec:ComiRecSA",
          "ComiRec-SA: self-attentive interests",
          search_space={"learning_rate": _LR, "num_interests": _F}),
    _spec("pimirec", "dismir_tf.models.pimirec:PIMIRec",
          "PIMIRec: time- and position-aware interests",
          params=PIMIRecParams,
          search_space={"learning_rate": _LR, "num_interests": _F}),
    _spec("remi", "dismir_tf.models.remi:REMI",
          "REMI: ComiRec-SA with routing regularisation and "
          "interest-aware hard negatives",
          search_space={"learning_rate": _LR, "num_interests": _F,
                        "remi_beta": SearchRange(0.0, 10.0),
                        "routing_variance_weight": SearchRange(
                            1.0, 1000.0, log=True)}),
    _spec("re4", "dismir_tf.models.re4:Re4",
          "Re4: ComiRec-SA with backward flows", params=Re4Params,
          search_space={"learning_rate": _LR, "num_interests": _F}),
    _spec("umi", "dismir_tf.models.umi:UMI",
          "UMI: user-guided routing",
          search_space={"learning_rate": _LR, "num_interests": _F}),
    _spec("dismir", "dismir_tf.models.dismir:DisMIR",
          "DisMIR: capsule interests, interest attention, item partition",
          partition="default", capsule=True,
          defaults={"partition_weight": DISMIR_PARTITION_WEIGHT},
          search_space={**_CAPSULE_SPACE, "partition_weight": _LAMBDA}),
    _spec("mir", "dismir_tf.models.dismir:DisMIR",
          "MIR: DisMIR without the partition task (lambda = 0)",
          partition="never", capsule=True, search_space=_CAPSULE_SPACE),
    _spec("mir-rv", "dismir_tf.models.mir_variants:MIRRV",
          "MIR-RV: MIR with REMI's routing-variance regulariser",
          partition="never", capsule=True,
          search_space={**_CAPSULE_SPACE, "routing_variance_weight":
                        SearchRange(1.0, 1000.0, log=True)}),
    _spec("mir-bf", "dismir_tf.models.mir_variants:MIRBF",
          "MIR-BF: MIR with Re4's backward-flow loss",
          partition="never", capsule=True,
          search_space={**_CAPSULE_SPACE, "backward_flow_weight":
                        SearchRange(0.01, 1.0, log=True)}),
    _spec("dismir-wo-dpi", "dismir_tf.models.dismir:DisMIR",
          "DisMIR w/o DPI: equal weights in place of the interest attention",
          partition="default", capsule=True,
          defaults={"partition_weight": DISMIR_PARTITION_WEIGHT},
          search_space={**_CAPSULE_SPACE, "partition_weight": _LAMBDA},
          factory_kwargs={"use_attention": False}),
)}


def get(name: str) -> ModelSpec:
    """The spec of ``name``.

    Raises:
      ConfigError: an unknown name, with the closest valid one.
    """
    if name not in _SPECS:
        from dismir_tf.config import unknown_model_message
        from dismir_tf.errors import ConfigError
        raise ConfigError(unknown_model_message(name, names()))
    return _SPECS[name]


def names() -> tuple[str, ...]:
    """Every registered ``--model`` name, in registration order."""
    return tuple(_SPECS)


def specs() -> tuple[ModelSpec, ...]:
    return tuple(_SPECS.values())


def register(spec: ModelSpec) -> None:
    """Adds (or replaces) a model: its spec is all the project needs."""
    _SPECS[spec.name] = spec


def load_factory(spec: ModelSpec) -> Callable[..., Any]:
    """The callable that builds ``spec``'s model (imports its module)."""
    module, _, attr = spec.factory.partition(":")
    target = getattr(importlib.import_module(module), attr)
    if not spec.factory_kwargs:
        return target
    kwargs = dict(spec.factory_kwargs)

    def make(num_items, config, seed=0):
        return target(num_items, config, seed, **kwargs)
    # The class behind it: its input_features and other class attributes.
    setattr(make, "__wrapped__", target)
    return make
