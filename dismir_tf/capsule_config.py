"""The DisMIR family's capsule configuration, without TensorFlow.

``DEFAULT_CAPSULE`` is the project's default capsule, ``CAPSULE_PRESETS``
the named configurations (docs/models.md, "Choosing the capsule", says why
each) and :func:`resolve_config` fills a config's unset options from them.
The entry points call it before loading data, so that a contradictory
option (e.g. ``--capsule_order`` with the paper-remi preset) is refused at
once; :mod:`dismir_tf.models.dismir` builds the model from its result.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from dismir_tf import config as config_lib
from dismir_tf import model_specs, types
from dismir_tf.config import ModelConfig
from dismir_tf.errors import ConfigError
from dismir_tf.model_params import CapsuleParams

# The capsule options (CapsuleParams' fields but its beta) and their "model
# default" markers (the dataclass defaults).
CAPSULE_FIELDS = tuple(
    f.name
    for f in dataclasses.fields(CapsuleParams)
    if f.name not in ("capsule_preset", "remi_beta")
)
_UNSET: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(CapsuleParams)}

# The project's default DisMIR capsule (docs/models.md, "Choosing the
# capsule").
DEFAULT_CAPSULE: dict[str, Any] = dict(
    routing_init="prototype",
    routing_softmax="interests",
    routing_padding_in_softmax=False,
    routing_similarity="cosine",
    routing_temperature=0.02,
    routing_detach=False,
    interest_norm="squash",
    readout="max",
    rec_loss="pairwise",
    capsule_transform="shared_from_identity",
    capsule_recency="learned",
)
# The default before the recency weights (--routing_temperature 0.1
# --capsule_recency none) is in docs/models.md, "How the default was
# chosen".
# The default before the collapse study (prototype logits by dot product,
# W = I, the fused eq. 5 readout): on real data it ranks as mean pooling.
LEGACY_CAPSULE = {
    k: v for k, v in config_lib.LEGACY_CAPSULE.items() if k != "capsule_preset"
}

# Named configurations.  'paper-remi': "identity transformation, one
# routing pass" on REMI's code base (the paper's footnote 6), i.e. REMI's
# CapsuleNetwork MIND path (bilinear_type 0) with W = I: N(0, 1) routing
# logits drawn on every forward pass, the routing softmax over the history
# positions with padding inside it, and the single pass summing detached
# items (REMI's passes i < 2 use item_eb_hat_iter); eq. 5's fused score in
# training and REMI's evaluator in retrieval (every interest retrieves,
# merged by score).
CAPSULE_PRESETS: dict[str, dict[str, Any]] = {
    "paper-remi": dict(
        routing_init="random_per_call",
        routing_softmax="positions",
        routing_padding_in_softmax=True,
        routing_similarity="dot",
        routing_temperature=1.0,
        routing_detach=True,
        interest_norm="squash",
        readout="fused",
        rec_loss="pairwise",
        capsule_transform="identity",
        capsule_recency="none",
        retrieval=types.MERGE,
    ),
}


class PresetConflictError(ConfigError):
    """An option set explicitly to another value than the capsule preset's.

    Attributes:
      preset, field: the preset and the option.
      value: the preset's value; given: the one set.
    """

    def __init__(self, preset: str, field: str, value: Any, given: Any):
        self.preset, self.field, self.value, self.given = preset, field, value, given
        super().__init__(
            f"capsule_preset {preset!r} sets {field}={value!r}; drop "
            f"--{field} (given {given!r}) or the preset"
        )


def resolve_capsule(config: ModelConfig) -> ModelConfig:
    """Fills the DisMIR family's unset capsule options (``config.params``,
    :class:`~dismir_tf.model_params.CapsuleParams`) from the preset (if
    ``capsule_preset`` names one) or ``DEFAULT_CAPSULE``; a preset's
    ``retrieval`` is set on the config itself.

    Raises:
      PresetConflictError: an option set explicitly contradicts the preset.
      ConfigError: ``remi_beta`` is set for the pairwise objective it does not act on,
        or ``capsule_order`` is set with detached routed items (its weights
        would get no gradient).
    """
    params = dict(config.params)
    preset = params.get("capsule_preset", "")
    base = CAPSULE_PRESETS[preset] if preset else DEFAULT_CAPSULE
    top: dict[str, Any] = {}
    for field, value in base.items():
        if field not in _UNSET:  # retrieval
            given = getattr(config, field)
            if given != "" and given != value:
                raise PresetConflictError(preset, field, value, given)
            top[field] = value
            continue
        given = params.get(field, _UNSET[field])
        if given == _UNSET[field]:
            params[field] = value
        elif preset and given != value:
            raise PresetConflictError(preset, field, value, given)
    if params["capsule_order"] != "none" and params["routing_detach"]:
        raise ConfigError(
            f"--capsule_order {params['capsule_order']} learns through the "
            "routed items, which --routing_detach (set by the paper-remi "
            "preset) cuts from the gradient; drop one of them"
        )
    if (
        params["rec_loss"] != "sampled_softmax"
        and params["remi_beta"] != _UNSET["remi_beta"]
    ):
        raise ConfigError(
            "--remi_beta acts on the DisMIR family only with --rec_loss "
            f"sampled_softmax (the objective is {params['rec_loss']!r}); "
            "remove it"
        )
    return dataclasses.replace(config, params=params, **top)


def clear_capsule_options(config: ModelConfig) -> ModelConfig:
    """``config`` with the DisMIR family's capsule options (and preset)
    unset, its other params kept (to reuse a resolved DisMIR config for
    another model)."""
    params = {
        k: v
        for k, v in config.params.items()
        if k not in CAPSULE_FIELDS and k != "capsule_preset"
    }
    return dataclasses.replace(config, params=params)


def resolve_config(config: ModelConfig) -> ModelConfig:
    """Fills in what a model's own defaults decide (the DisMIR family's
    capsule: :func:`resolve_capsule`); other models' configs are returned
    as they are.

    Raises:
      ConfigError: see :func:`resolve_capsule`.
    """
    if model_specs.get(config.name).capsule:
        return resolve_capsule(config)
    return config
