"""Every layer's docstring Example runs as printed (doctest)."""

import doctest
import importlib
import pkgutil

import pytest

import dismir_tf.layers as layers

MODULES = sorted(
    m.name for m in pkgutil.iter_modules(layers.__path__) if m.name != "ops"
)


@pytest.mark.parametrize("name", MODULES)
def test_layer_docstring_example(name):
    module = importlib.import_module(f"dismir_tf.layers.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 3, f"{name} has no Example"
    assert result.failed == 0
