"""Scratch driver (not in the tree): train.py with MIND's random routing
logits re-drawn N(0, 1) per example on every call (training and evaluation),
as REMI's PyTorch MIND does, instead of drawn once from the seed."""
import runpy
import sys

sys.path.insert(0, "/work/main")
import tensorflow as tf  # noqa: E402

import dismir_tf.capsule as C  # noqa: E402

_orig_call = C.CapsuleInterestExtractor.call


def call(self, items, mask):
    if self.routing_init != "random":
        return _orig_call(self, items, mask)
    shape = [tf.shape(items)[0], tf.shape(items)[1], self.num_interests]
    return _per_example_call(self, items, mask, tf.random.normal(shape))


def _per_example_call(self, items, mask, fresh):
    mask = tf.cast(mask, items.dtype)
    u = self._transformed(items)
    if self.padding_in_softmax:
        u = u * mask[:, None, :, None]
    logits = tf.transpose(fresh, [0, 2, 1])              # [B, F, L]
    u_routing = tf.stop_gradient(u) if self.stop_routing_gradient else u
    valid = mask[:, None, :]
    assert self.softmax_over == "positions" and self.padding_in_softmax
    for it in range(self.iterations):
        last = it == self.iterations - 1
        weights = tf.nn.softmax(logits, axis=2) * valid
        u_it = u if last else u_routing
        interests = C.squash(tf.einsum("bfl,bfld->bfd", weights, u_it))
        if not last:
            logits = logits + tf.einsum("bfld,bfd->bfl", u_routing, interests)
    return interests, weights


C.CapsuleInterestExtractor.call = call
print("MIND routing logits re-drawn on every call", flush=True)
sys.argv = ["train.py"] + sys.argv[1:]
runpy.run_path("/work/main/train.py", run_name="__main__")
