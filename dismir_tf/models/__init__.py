"""Model registry: ``--model`` names -> model classes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from dismir_tf import config as config_module
from dismir_tf.config import ModelConfig, unknown_model_message
from dismir_tf.errors import ConfigError
from dismir_tf.models.base import Encoded, RetrievalModel
from dismir_tf.models.comirec import ComiRecDR, ComiRecSA
from dismir_tf.models.dismir import (DisMIR, check_no_capsule_options,
                                     resolve_capsule)
from dismir_tf.models.dnn import DNN
from dismir_tf.models.gru4rec import GRU4Rec
from dismir_tf.models.mind import MIND
from dismir_tf.models.mir_variants import MIRBF, MIRRV
from dismir_tf.models.pimirec import PIMIRec
from dismir_tf.models.re4 import Re4
from dismir_tf.models.remi import REMI
from dismir_tf.models.umi import UMI


def _dismir(**kw) -> Callable[..., RetrievalModel]:
    def make(num_items, config, seed):
        return DisMIR(num_items, config, seed, **kw)
    return make


# name -> (factory, config overrides forced by the variant)
_REGISTRY: dict[str, tuple[Callable[..., RetrievalModel], dict]] = {
    # The partition task is for multi-interest models; DNN never takes it.
    "dnn": (DNN, {"partition_weight": 0.0}),
    "gru4rec": (GRU4Rec, {"partition_weight": 0.0}),
    # Table 2's multi-interest baselines: the partition task is a plugin
    # for them (Table 5), off unless --partition_weight asks for it.
    "mind": (MIND, {}),
    "comirec-dr": (ComiRecDR, {}),
    "comirec-sa": (ComiRecSA, {}),
    "pimirec": (PIMIRec, {}),
    "remi": (REMI, {}),
    "re4": (Re4, {}),
    "umi": (UMI, {}),
    "dismir": (_dismir(), {}),
    "mir": (_dismir(), {"partition_weight": 0.0}),
    # Table 3's ablations: the partition task replaced by another term.
    "mir-rv": (MIRRV, {"partition_weight": 0.0}),
    "mir-bf": (MIRBF, {"partition_weight": 0.0}),
    "dismir-wo-dpi": (_dismir(use_attention=False), {}),
}

# Models that take the data set's partition weight lambda by default; the
# others take the partition task only when --partition_weight is given.
_DATASET_LAMBDA_MODELS = frozenset({"dismir", "dismir-wo-dpi"})

MODEL_NAMES = tuple(_REGISTRY)
assert MODEL_NAMES == config_module.MODEL_NAMES, (
    "dismir_tf.config.MODEL_NAMES must list the registry's names")

# The models built on DisMIR's capsule: they take the routing_* / readout
# / capsule_preset options.
CAPSULE_MODELS = frozenset({"dismir", "mir", "dismir-wo-dpi", "mir-rv",
                            "mir-bf"})


def register(name: str, factory: Callable[..., RetrievalModel],
             overrides: dict | None = None) -> None:
    """Adds a model to the registry (used by the baselines' modules)."""
    _REGISTRY[name] = (factory, dict(overrides or {}))


def model_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def time_unit(config: ModelConfig) -> float | None:
    """Seconds per time unit of the history times the pipeline adds for
    ``config``'s model, or None when the model takes no time (the class
    attribute ``uses_time``; only PIMIRec has it)."""
    factory = _REGISTRY[resolve_config(config).name][0]
    if not getattr(factory, "uses_time", False):
        return None
    return config.pimirec_time_unit


def uses_dataset_partition_weight(name: str) -> bool:
    """Whether ``name`` takes the data set's lambda when none is given."""
    return name in _DATASET_LAMBDA_MODELS


def resolve_config(config: ModelConfig) -> ModelConfig:
    """Applies the overrides that define a variant (e.g. MIR: lambda = 0)."""
    if config.name not in _REGISTRY:
        raise ConfigError(unknown_model_message(config.name, model_names()))
    config = dataclasses.replace(config, **_REGISTRY[config.name][1])
    if config.name in CAPSULE_MODELS:
        return resolve_capsule(config)
    check_no_capsule_options(config)
    return config


def create_model(num_items: int, config: ModelConfig,
                 seed: int = 0) -> RetrievalModel:
    config = resolve_config(config)
    return _REGISTRY[config.name][0](num_items, config, seed)


__all__ = ["DNN", "MIND", "MIRBF", "MIRRV", "REMI", "ComiRecDR", "ComiRecSA",
           "DisMIR", "Encoded", "GRU4Rec", "MODEL_NAMES", "RetrievalModel",
           "UMI", "create_model", "model_names", "register", "resolve_config",
           "uses_dataset_partition_weight", "Re4"]
