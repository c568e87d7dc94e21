"""TensorFlow Serving's REST JSON -> tensors, for tests of the documented
requests (docs/serving.md).

Follows the conversion of TF Serving's REST API
(tensorflow_serving/util/json_tensor.cc, "RESTful API" guide): the row
format ``{"instances": [...]}`` stacks each instance's value of an input
along a new batch dimension (every instance's value must have the same
shape; a signature with one input may give the bare values), the columnar
format ``{"inputs": ...}`` takes each input's value as the whole tensor;
nested JSON lists give the shape (``[[]]`` is shape [1, 0], so one such
value per instance is [B, 1, 0]); a DT_STRING input takes JSON strings
only and a numeric input JSON numbers only.  Errors are raised as
``ValueError`` with TF Serving's gist.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def _shape(value, where: str) -> tuple[int, ...]:
    if not isinstance(value, list):
        return ()
    if not value:
        return (0,)
    inner = [_shape(v, where) for v in value]
    if any(s != inner[0] for s in inner):
        raise ValueError(f"{where}: all elements of a list must have the same shape")
    return (len(value),) + inner[0]


def _leaves(value):
    if isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def _tensor(value, spec: tf.TensorSpec, where: str) -> np.ndarray:
    shape = _shape(value, where)
    for leaf in _leaves(value):
        if spec.dtype == tf.string:
            if not isinstance(leaf, str):
                raise ValueError(
                    f"{where}: JSON value {leaf!r} is not of expected type: string"
                )
        elif isinstance(leaf, (str, bool)) or not isinstance(leaf, (int, float)):
            raise ValueError(
                f"{where}: JSON value {leaf!r} is not of "
                f"expected type: {spec.dtype.name}"
            )
    dtype = object if spec.dtype == tf.string else spec.dtype.as_numpy_dtype
    flat = np.array(list(_leaves(value)), dtype=dtype)
    return flat.reshape(shape)


def request_to_tensors(
    body: dict, specs: dict[str, tf.TensorSpec]
) -> dict[str, np.ndarray]:
    """The tensors TF Serving feeds the signature whose inputs are
    ``specs`` for the JSON request ``body`` (already parsed)."""
    names = sorted(specs)
    if "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list) or not rows:
            raise ValueError("'instances' must be a non-empty list")
        if all(isinstance(r, dict) for r in rows):
            for r in rows:
                if sorted(r) != names:
                    raise ValueError(
                        f"an instance has inputs {sorted(r)}; "
                        f"the signature takes {names}"
                    )
            columns = {n: [r[n] for r in rows] for n in names}
        elif len(names) == 1:
            columns = {names[0]: rows}
        else:
            raise ValueError(
                "instances must be objects naming the inputs "
                "of a signature with several inputs"
            )
        out = {}
        for n in names:
            values = columns[n]
            _shape(values, f"instances.{n}")  # same shape each
            out[n] = _tensor(values, specs[n], f"instances.{n}")
        return out
    if "inputs" in body:
        inputs = body["inputs"]
        if isinstance(inputs, dict):
            if sorted(inputs) != names:
                raise ValueError(
                    f"inputs {sorted(inputs)}; the signature takes {names}"
                )
            return {n: _tensor(inputs[n], specs[n], f"inputs.{n}") for n in names}
        if len(names) != 1:
            raise ValueError("a bare 'inputs' value needs a one-input signature")
        return {names[0]: _tensor(inputs, specs[names[0]], "inputs")}
    raise ValueError("the request has neither 'instances' nor 'inputs'")


def call(signature, tensors: dict[str, np.ndarray]) -> dict:
    """Calls a loaded signature as TF Serving does (shapes checked against
    its input signature first, as TF Serving's model server does)."""
    specs = signature.structured_input_signature[1]
    args = {}
    for name, value in tensors.items():
        spec = specs[name]
        if len(value.shape) != len(spec.shape):
            raise ValueError(
                f"{name}: a tensor of shape {value.shape} for "
                f"an input of shape {spec.shape}"
            )
        args[name] = tf.constant(value, spec.dtype)
    return signature(**args)
