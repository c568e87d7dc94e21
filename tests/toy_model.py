"""A model from outside the package: its own file and one registry line.

``tests/test_registry.py`` registers it (``model_specs.register(SPEC)``)
and trains, tunes and configures it through the project's entry points, to
show that a new model needs nothing else: its hyperparameter (``scale``)
gets a flag (``--toy_mean_scale``), a config.json key and a search range
from the ``params`` dataclass below.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from dismir_tf import types
from dismir_tf.layers.ops import masked_mean
from dismir_tf.model_params import SearchRange, param
from dismir_tf.model_specs import ModelSpec
from dismir_tf.models.base import Encoded, RetrievalModel


@dataclasses.dataclass(frozen=True)
class ToyParams:
    scale: float = param(1.0, "the user vector's scale", SearchRange(0.5, 2.0))

    def __post_init__(self) -> None:
        if self.scale <= 0:
            raise ValueError(f"scale must be > 0, got {self.scale}")


class ToyMean(RetrievalModel):
    """scale x the masked mean of the history embeddings (one interest)."""

    multi_interest = False

    def encode(self, features, training=False, seed=None):
        history = features[types.HISTORY]
        mask = tf.cast(history > 0, tf.float32)
        items = self.item_embedding(history)
        user = self.model_config.own.scale * masked_mean(items, mask)
        return Encoded(
            interests=user[:, None], weights=None, routing=None, items=items, mask=mask
        )


SPEC = ModelSpec(
    name="toy-mean",
    factory="tests.toy_model:ToyMean",
    summary="toy: a scaled mean of the history",
    partition="never",
    params=ToyParams,
    search_space={"learning_rate": SearchRange(1e-4, 1e-2, log=True)},
)
