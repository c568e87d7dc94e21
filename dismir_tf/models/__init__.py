"""Model registry: ``--model`` names -> models, from dismir_tf.model_specs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dismir_tf import config as config_module
from dismir_tf import model_specs, types
from dismir_tf.capsule_config import resolve_config
from dismir_tf.config import ModelConfig
from dismir_tf.errors import ConfigError
from dismir_tf.models.base import Encoded, RetrievalModel
from dismir_tf.models.comirec import ComiRecDR, ComiRecSA
from dismir_tf.models.dismir import DisMIR
from dismir_tf.models.dnn import DNN
from dismir_tf.models.gru4rec import GRU4Rec
from dismir_tf.models.mind import MIND
from dismir_tf.models.mir_variants import MIRBF, MIRRV
from dismir_tf.models.pimirec import PIMIRec
from dismir_tf.models.re4 import Re4
from dismir_tf.models.remi import REMI
from dismir_tf.models.umi import UMI

# Every model's name, class, defaults and partition policy are declared
# once, in dismir_tf.model_specs; this module builds them.
MODEL_NAMES = config_module.MODEL_NAMES


def capsule_models() -> frozenset[str]:
    """The models built on DisMIR's capsule: their params are
    :class:`~dismir_tf.model_params.CapsuleParams` (the routing_* /
    readout / capsule_preset options)."""
    return frozenset(s.name for s in model_specs.specs() if s.capsule)


def register(spec: model_specs.ModelSpec) -> None:
    """Adds a model (a new baseline needs its module and this one call)."""
    model_specs.register(spec)


def model_names() -> tuple[str, ...]:
    return model_specs.names()


def _factory(name: str) -> Callable[..., RetrievalModel]:
    return model_specs.load_factory(model_specs.get(name))


def _model_class(name: str) -> Any:
    """The class behind ``name``'s factory (its class attributes:
    ``input_features``, ``multi_interest``)."""
    factory = _factory(name)
    return getattr(factory, "__wrapped__", factory)


def time_unit(config: ModelConfig) -> float | None:
    """Seconds per time unit of the history times the pipeline adds for
    ``config``'s model, or None when the model takes no time (its
    ``input_features`` do not list ``types.HISTORY_TIME``; of the package's
    models only PIMIRec's do).  A model that reads the times declares the
    unit as a ``time_unit`` field of its params.

    Raises:
      ConfigError: the model reads the times but its params declare no
        ``time_unit``.
    """
    if types.HISTORY_TIME not in getattr(
        _model_class(config.name), "input_features", ()
    ):
        return None
    if "time_unit" not in config.params:
        raise ConfigError(
            f"{config.name!r} reads {types.HISTORY_TIME!r}: its params must "
            "declare time_unit (seconds per time unit, e.g. "
            "model_params.PIMIRecParams.time_unit)"
        )
    return float(config.params["time_unit"])


def takes_partition_by_default(name: str) -> bool:
    """Whether ``name`` takes the partition task by default (its spec's
    ``partition == 'default'``: DisMIR and w/o DPI)."""
    return model_specs.get(name).partition == "default"


def describe_settings(config: ModelConfig) -> str:
    """One line of a resolved config's model settings for the training
    header: lambda and where it came from, F (multi-interest models),
    max_len, d, C and, for the DisMIR family, the capsule, readout and
    (when it reads it) order."""
    spec = model_specs.get(config.name)
    lam = config.partition_weight
    if spec.partition == "never":
        how = f"lambda 0 ({config.name} has no partition task)"
    elif lam == spec.default_partition_weight:
        how = (
            f"lambda {lam:g} ({config.name}'s default, dismir_tf/model_specs.py)"
            if lam > 0
            else "lambda 0 (partition task off; --partition_weight turns it on)"
        )
    else:
        how = f"lambda {lam:g} (--partition_weight)"
    # F only where there are F interests (a single-interest model ignores it).
    multi = getattr(_model_class(config.name), "multi_interest", True)
    parts = [how] + ([f"F {config.num_interests}"] if multi else [])
    parts += [f"max_len {config.max_len}", f"d {config.embedding_dim}"]
    if spec.capsule:
        own = config.own
        parts += [
            f"C {config.hard_negative_candidates}"
            if own.rec_loss == "pairwise"
            else f"sampled softmax over {config.sampled_softmax_negatives}",
            f"capsule {own.routing_similarity} routing "
            f"(T {own.routing_temperature:g}, "
            f"{own.routing_init} init, softmax over "
            f"{own.routing_softmax}), W {own.capsule_transform},"
            f" recency {own.capsule_recency}",
            f"readout {own.readout}",
        ]
        if own.capsule_order != "none":
            parts.append(f"order {own.capsule_order}")
    return "model settings: " + ", ".join(parts)


def create_model(num_items: int, config: ModelConfig, seed: int = 0) -> RetrievalModel:
    config = resolve_config(config)
    return _factory(config.name)(num_items, config, seed)


__all__ = [
    "DNN",
    "MIND",
    "MIRBF",
    "MIRRV",
    "REMI",
    "ComiRecDR",
    "ComiRecSA",
    "DisMIR",
    "Encoded",
    "GRU4Rec",
    "MODEL_NAMES",
    "RetrievalModel",
    "PIMIRec",
    "UMI",
    "create_model",
    "describe_settings",
    "model_names",
    "register",
    "resolve_config",
    "takes_partition_by_default",
    "Re4",
]
