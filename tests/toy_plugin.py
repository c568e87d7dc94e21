"""The toy model as a plugin: a module that registers its spec when
imported, named in $DISMIR_TF_MODELS (``tests/test_registry.py``)."""

from dismir_tf import model_specs
from tests.toy_model import SPEC

model_specs.register(SPEC)  # the one registry line
