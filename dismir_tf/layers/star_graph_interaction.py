"""PIMIRec's star-graph interactivity module (Chen et al., IJCAI '21;
dismir_tf/models/pimirec.py).
"""

from __future__ import annotations

import math

import tensorflow as tf

from dismir_tf.initializers import he_normal, weight_seed
from dismir_tf.layers.ops import masked_softmax as _masked_softmax
from dismir_tf.layers.ops import project as _project


@tf.keras.utils.register_keras_serializable(package="dismir_tf")
class StarGraphInteraction(tf.keras.layers.Layer):
    """PIMI's interactivity module: rounds of attention on a star graph.

    Args:
      num_layers: int, default 3. Rounds of message passing (>= 1).
      seed: int. Seeds the projections' initialisers.

    Raises:
      ValueError: num_layers < 1.

    Call args: nodes [B, L, d] (h_i), initial [B, L, d] (e_i + p_i, a fixed
    extra neighbour of node i), mask [B, L] (right-padded).  Returns the
    item nodes [B, L, d] (0 on padding) and the central node [B, d] as the
    last round's item nodes saw it (the last round does not update it: the
    authors' code does, but nothing reads the result).

    Example:
      >>> import tensorflow as tf
      >>> layer = StarGraphInteraction(num_layers=2)
      >>> nodes = tf.random.normal([2, 5, 8])
      >>> initial = tf.random.normal([2, 5, 8])
      >>> mask = tf.constant([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
      >>> nodes, centre = layer(nodes, initial, mask)
      >>> nodes.shape, centre.shape
      (TensorShape([2, 5, 8]), TensorShape([2, 8]))
    """

    def __init__(self, num_layers: int = 3, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.num_layers = num_layers
        self.seed = seed

    def build(self, input_shape):
        d = int(input_shape[-1])
        self.node_qkv: list[list[tf.Variable]] = []
        self.centre_qkv: list[list[tf.Variable]] = []
        for layer in range(self.num_layers):
            kinds = [("node", self.node_qkv)]
            if layer < self.num_layers - 1:
                # The last round's central node would feed nothing.
                kinds.append(("centre", self.centre_qkv))
            for kind, store in kinds:
                store.append(
                    [
                        self.add_weight(
                            f"{kind}{layer}_{name}",
                            [d, d],
                            initializer=he_normal(
                                d, weight_seed(self.seed, f"{kind}{layer}_{name}")
                            ),
                        )
                        for name in ("wq", "wk", "wv")
                    ]
                )
        super().build(input_shape)

    @staticmethod
    def attend(query, keys, key_mask, qkv):
        """q [..., d], keys [..., n, d], key_mask [..., n] ->
        q + softmax(q Wq (keys Wk)^T / sqrt(d)) keys Wv  ([..., d])."""
        wq, wk, wv = qkv
        scale = 1.0 / math.sqrt(int(query.shape[-1]))
        # Broadcast products: einsum with '...' is slower here on the CPU.
        logits = (
            tf.reduce_sum(_project(query, wq)[..., None, :] * _project(keys, wk), -1)
            * scale
        )
        attention = _masked_softmax(logits, key_mask)
        return query + tf.reduce_sum(attention[..., None] * _project(keys, wv), -2)

    def call(self, nodes, initial, mask):
        mask = tf.cast(mask, nodes.dtype)
        m3 = mask[:, :, None]
        nodes = nodes * m3
        centre = tf.reduce_sum(nodes, 1) / tf.maximum(
            tf.reduce_sum(mask, 1, keepdims=True), 1.0
        )  # [B, d]
        zeros_row = tf.zeros_like(nodes[:, :1])
        zero_mask = tf.zeros_like(mask[:, :1])
        ones = tf.ones_like(mask)
        prev_ok = tf.concat([zero_mask, mask[:, :-1]], 1)
        next_ok = tf.concat([mask[:, 1:], zero_mask], 1)
        key_mask = tf.stack([prev_ok, next_ok, ones, ones], 2)  # [B, L, 4]
        centre_mask = tf.concat([tf.ones_like(mask[:, :1]), mask], 1)

        def neighbours(node_proj, centre_proj, initial_proj):
            # [B, L, 4, d]: previous, next, centre, own e + p.  Projecting
            # the L nodes once and shifting equals projecting the shifted
            # copies (the zero row projects to zero), at a quarter the cost.
            prev = tf.concat([zeros_row, node_proj[:, :-1]], 1)
            nxt = tf.concat([node_proj[:, 1:], zeros_row], 1)
            hub = tf.broadcast_to(centre_proj[:, None], tf.shape(node_proj))
            return tf.stack([prev, nxt, hub, initial_proj], 2)

        scale = 1.0 / math.sqrt(int(nodes.shape[-1]))
        for layer in range(self.num_layers):
            wq, wk, wv = self.node_qkv[layer]
            keys = neighbours(_project(nodes, wk), centre @ wk, _project(initial, wk))
            values = neighbours(_project(nodes, wv), centre @ wv, _project(initial, wv))
            logits = tf.reduce_sum(_project(nodes, wq)[:, :, None] * keys, -1) * scale
            attention = _masked_softmax(logits, key_mask)  # [B, L, 4]
            nodes = (
                tf.nn.relu(nodes + tf.reduce_sum(attention[..., None] * values, 2)) * m3
            )
            if layer == self.num_layers - 1:
                break
            keys = tf.concat([centre[:, None], nodes], 1)  # [B, 1+L, d]
            centre = tf.nn.relu(
                self.attend(centre, keys, centre_mask, self.centre_qkv[layer])
            )
        return nodes, centre

    def get_config(self):
        config = super().get_config()
        config.update(num_layers=self.num_layers, seed=self.seed)
        return config
