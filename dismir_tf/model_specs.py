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
* ``params``: the model's own hyperparameters, a dataclass of
  ``dismir_tf.model_params`` (defaults, help, search ranges, flags);
* ``search_space``: the ranges a tuner searches (the fair-tables issue);
* ``capsule``: whether the model is built on DisMIR's capsule (its params
  are :class:`~dismir_tf.model_params.CapsuleParams`, resolved by
  ``dismir_tf.capsule_config.resolve_capsule``).

It imports neither TensorFlow nor the model classes (``factory`` is a
``module:attribute`` path imported by :func:`load_factory`), so the entry
points check a model name and its flags before TensorFlow starts.

How DisMIR's lambda was chosen: docs/models.md, "The partition weight".
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable, Mapping
from typing import Any

from dismir_tf.model_params import (
    CapsuleParams,
    MIRBFParams,
    MIRRVParams,
    PIMIRecParams,
    Re4Params,
    REMIParams,
    SASRecParams,
    SearchRange,
    UMIParams,
    param,
)

# param and SearchRange are model_params' (re-exported: a model declared
# outside the package may import them from here).
__all__ = [
    "DISMIR_PARTITION_WEIGHT",
    "PARTITION_POLICIES",
    "ModelSpec",
    "SearchRange",
    "get",
    "load_factory",
    "load_plugins",
    "names",
    "param",
    "param_flag_owners",
    "BUILTIN_NAMES",
    "PLUGINS_ENV",
    "register",
    "specs",
]

PARTITION_POLICIES = ("default", "plugin", "never")


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
      search_space: per ModelConfig field or params flag (and
        'learning_rate'), the range a tuner searches.
      capsule: built on DisMIR's capsule (its params are
        :class:`~dismir_tf.model_params.CapsuleParams` or an extension).
      factory_kwargs: keyword arguments the factory is called with (e.g.
        ``use_attention=False`` for w/o DPI).
      params: the model's own hyperparameters, a frozen dataclass of
        ``dismir_tf.model_params`` whose fields are declared with
        :func:`~dismir_tf.model_params.param` (default, help, search
        range, shared flag), or None; ``check`` (optional) is called with
        the whole ModelConfig and returns a message when the params do not
        fit the rest of it (e.g. heads that do not divide d).  Each field
        becomes a flag (``--<model>_<field>``, ``-`` in the model name read
        as ``_``, or the field's shared flag), a key of
        ``ModelConfig.params`` (and of config.json), and, with a search
        range, a tuned parameter under the flag's name.  A new model
        declares its settings here and touches nothing else.
    """

    name: str
    factory: str
    summary: str
    partition: str = "plugin"
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    search_space: Mapping[str, SearchRange] = dataclasses.field(default_factory=dict)
    capsule: bool = False
    factory_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    params: type | None = None
    check: Callable[[Any], str | None] | None = None

    def __post_init__(self) -> None:
        if self.params is not None:
            if not dataclasses.is_dataclass(self.params):
                raise ValueError(f"{self.name}: params must be a dataclass")
            for field in dataclasses.fields(self.params):
                default = field.default
                if (
                    type(default) not in (bool, int, float, str)
                    or "help" not in field.metadata
                ):
                    raise ValueError(
                        f"{self.name}: params field {field.name!r} must be "
                        "declared with model_params.param(default, help) and "
                        "a bool, int, float or str default"
                    )
            space = dict(self.search_space)
            for flag, field in self.param_flags().items():
                search = field.metadata.get("search")
                if search is not None:
                    space.setdefault(flag, search)
            object.__setattr__(self, "search_space", space)
        if self.capsule and not (
            isinstance(self.params, type) and issubclass(self.params, CapsuleParams)
        ):
            raise ValueError(
                f"{self.name}: a capsule model's params are "
                "CapsuleParams or extend them"
            )
        if self.partition not in PARTITION_POLICIES:
            raise ValueError(f"partition must be one of {PARTITION_POLICIES}")
        lam = self.defaults.get("partition_weight", 0.0)
        if (self.partition == "default") != (lam > 0):
            raise ValueError(
                f"{self.name}: partition='default' goes with a "
                "default partition_weight > 0 and only with it"
            )

    @property
    def flag_prefix(self) -> str:
        """``sasrec``, ``comirec_sa``: the model's name as a flag prefix."""
        return self.name.replace("-", "_")

    def param_flags(self) -> dict[str, dataclasses.Field]:
        """{flag name: field} of the model's own hyperparameters: the
        field's shared flag (``param(..., flag=...)``) or
        ``<model>_<field>``."""
        if self.params is None:
            return {}
        return {
            f.metadata.get("flag") or f"{self.flag_prefix}_{f.name}": f
            for f in dataclasses.fields(self.params)
        }

    @property
    def default_partition_weight(self) -> float:
        """lambda when no --partition_weight is given (0: the task is off)."""
        return float(self.defaults.get("partition_weight", 0.0))


# DisMIR's lambda with the project's default capsule: the highest (on
# ml-1m-odd level) valid figure on every shared data set, against 0.1 on
# each and the paper's Gowalla value 0.01 on gowalla-lbsn (docs/models.md,
# "The partition weight").
DISMIR_PARTITION_WEIGHT = 1.0


def _check_sasrec(config: Any) -> str | None:
    if config.embedding_dim % config.params["heads"]:
        return (
            f"sasrec_heads {config.params['heads']} must divide "
            f"embedding_dim {config.embedding_dim}"
        )
    return None


_LR = SearchRange(1e-4, 1e-2, log=True)
_LAMBDA = SearchRange(0.01, 10.0, log=True)
_F = SearchRange(2, 8)
_CAPSULE_SPACE = {
    "learning_rate": _LR,
    "num_interests": _F,
    "routing_temperature": SearchRange(0.01, 1.0, log=True),
}


def _spec(name, factory, summary, **kw) -> ModelSpec:
    return ModelSpec(name=name, factory=factory, summary=summary, **kw)


_SPECS: dict[str, ModelSpec] = {
    s.name: s
    for s in (
        _spec(
            "dnn",
            "dismir_tf.models.dnn:DNN",
            "YouTube DNN: mean-pooled history, one interest",
            partition="never",
            search_space={"learning_rate": _LR},
        ),
        _spec(
            "gru4rec",
            "dismir_tf.models.gru4rec:GRU4Rec",
            "GRU4Rec: a GRU over the ordered history, one interest",
            partition="never",
            search_space={"learning_rate": _LR},
        ),
        _spec(
            "sasrec",
            "dismir_tf.models.sasrec:SASRec",
            "SASRec: causal self-attention over the ordered history, one interest",
            partition="never",
            params=SASRecParams,
            check=_check_sasrec,
            search_space={"learning_rate": _LR},
        ),
        _spec(
            "mind",
            "dismir_tf.models.mind:MIND",
            "MIND: dynamic-routing capsules with a label-aware readout",
            search_space={
                "learning_rate": _LR,
                "num_interests": _F,
                "routing_iterations": SearchRange(1, 3),
            },
        ),
        _spec(
            "comirec-dr",
            "dismir_tf.models.comirec:ComiRecDR",
            "ComiRec-DR: dynamic routing",
            search_space={
                "learning_rate": _LR,
                "num_interests": _F,
                "routing_iterations": SearchRange(1, 3),
            },
        ),
        _spec(
            "comirec-sa",
            "dismir_tf.models.comirec:ComiRecSA",
            "ComiRec-SA: self-attentive interests",
            search_space={"learning_rate": _LR, "num_interests": _F},
        ),
        _spec(
            "pimirec",
            "dismir_tf.models.pimirec:PIMIRec",
            "PIMIRec: time- and position-aware interests",
            params=PIMIRecParams,
            search_space={"learning_rate": _LR, "num_interests": _F},
        ),
        _spec(
            "remi",
            "dismir_tf.models.remi:REMI",
            "REMI: ComiRec-SA with routing regularisation and "
            "interest-aware hard negatives",
            params=REMIParams,
            search_space={
                "learning_rate": _LR,
                "num_interests": _F,
                "remi_beta": SearchRange(0.0, 10.0),
                "routing_variance_weight": SearchRange(1.0, 1000.0, log=True),
            },
        ),
        _spec(
            "re4",
            "dismir_tf.models.re4:Re4",
            "Re4: ComiRec-SA with backward flows",
            params=Re4Params,
            search_space={"learning_rate": _LR, "num_interests": _F},
        ),
        _spec(
            "umi",
            "dismir_tf.models.umi:UMI",
            "UMI: user-guided routing",
            params=UMIParams,
            search_space={"learning_rate": _LR, "num_interests": _F},
        ),
        _spec(
            "dismir",
            "dismir_tf.models.dismir:DisMIR",
            "DisMIR: capsule interests, interest attention, item partition",
            partition="default",
            capsule=True,
            params=CapsuleParams,
            defaults={"partition_weight": DISMIR_PARTITION_WEIGHT},
            search_space={**_CAPSULE_SPACE, "partition_weight": _LAMBDA},
        ),
        _spec(
            "mir",
            "dismir_tf.models.dismir:DisMIR",
            "MIR: DisMIR without the partition task (lambda = 0)",
            partition="never",
            capsule=True,
            params=CapsuleParams,
            search_space=_CAPSULE_SPACE,
        ),
        _spec(
            "mir-rv",
            "dismir_tf.models.mir_variants:MIRRV",
            "MIR-RV: MIR with REMI's routing-variance regulariser",
            partition="never",
            capsule=True,
            params=MIRRVParams,
            search_space={
                **_CAPSULE_SPACE,
                "routing_variance_weight": SearchRange(1.0, 1000.0, log=True),
            },
        ),
        _spec(
            "mir-bf",
            "dismir_tf.models.mir_variants:MIRBF",
            "MIR-BF: MIR with Re4's backward-flow loss",
            partition="never",
            capsule=True,
            params=MIRBFParams,
            search_space={
                **_CAPSULE_SPACE,
                "backward_flow_weight": SearchRange(0.01, 1.0, log=True),
            },
        ),
        _spec(
            "dismir-wo-dpi",
            "dismir_tf.models.dismir:DisMIR",
            "DisMIR w/o DPI: equal weights in place of the interest attention",
            partition="default",
            capsule=True,
            params=CapsuleParams,
            defaults={"partition_weight": DISMIR_PARTITION_WEIGHT},
            search_space={**_CAPSULE_SPACE, "partition_weight": _LAMBDA},
            factory_kwargs={"use_attention": False},
        ),
    )
}


# The package's own models (model_specs.names() adds those of plugins).
BUILTIN_NAMES = tuple(_SPECS)

# Modules that register models from outside the package (each calls
# register(SPEC) when imported), comma-separated: every entry point and
# config.json reader then knows them, e.g.
# DISMIR_TF_MODELS=mymodel python train.py --model mine.
PLUGINS_ENV = "DISMIR_TF_MODELS"
_plugins_loaded = False


def load_plugins() -> None:
    """Imports the modules named in ``$DISMIR_TF_MODELS`` once.

    Raises:
      ConfigError: a module that cannot be imported (its name and error).
    """
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for module in filter(None, os.environ.get(PLUGINS_ENV, "").split(",")):
        try:
            importlib.import_module(module.strip())
        except ImportError as e:
            from dismir_tf.errors import ConfigError

            raise ConfigError(
                f"{PLUGINS_ENV}: cannot import {module.strip()!r} ({e}); it "
                "must be importable from the working directory or PYTHONPATH"
            ) from None


def get(name: str) -> ModelSpec:
    """The spec of ``name``.

    Raises:
      ConfigError: an unknown name, with the closest valid one.
    """
    load_plugins()
    if name not in _SPECS:
        from dismir_tf.config import unknown_model_message
        from dismir_tf.errors import ConfigError

        raise ConfigError(unknown_model_message(name, names()))
    return _SPECS[name]


def names() -> tuple[str, ...]:
    """Every registered ``--model`` name, in registration order (those of
    ``$DISMIR_TF_MODELS`` included)."""
    load_plugins()
    return tuple(_SPECS)


def specs() -> tuple[ModelSpec, ...]:
    load_plugins()
    return tuple(_SPECS.values())


def register(spec: ModelSpec) -> None:
    """Adds (or replaces) a model: its spec is all the project needs."""
    _SPECS[spec.name] = spec


def param_flag_owners() -> dict[str, tuple[dataclasses.Field, tuple[str, ...]]]:
    """{flag: (its field, the models that declare it)} over every
    registered model's ``params``; a flag several models declare (the
    DisMIR family's capsule options, ``--remi_beta``) acts on each of them.

    Raises:
      ValueError: two models declare one flag with different defaults or
        help (they would not be one setting).
    """
    owners: dict[str, tuple[dataclasses.Field, tuple[str, ...]]] = {}
    for spec in specs():
        for flag, field in spec.param_flags().items():
            if flag not in owners:
                owners[flag] = (field, (spec.name,))
                continue
            first, names_ = owners[flag]
            if (first.default, first.metadata["help"]) != (
                field.default,
                field.metadata["help"],
            ):
                raise ValueError(
                    f"--{flag} is declared by {names_[0]} and {spec.name} "
                    "with different defaults or help; give one of them "
                    "another name"
                )
            owners[flag] = (first, names_ + (spec.name,))
    return owners


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
