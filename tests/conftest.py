"""Pytest setup: legacy Keras before TensorFlow loads; the repo on sys.path.

Also splits the CPU into two logical devices before TensorFlow initialises
them, so that the MirroredStrategy tests can run two replicas on a machine
without GPUs (every other test runs on the first device, as usual).
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import pytest  # noqa: E402

SHARED_DATA = os.path.join(os.path.dirname(_ROOT), "shared", "data")
IN_CI = os.environ.get("CI", "").lower() == "true"


def pytest_configure(config):
    import tensorflow as tf

    import dismir_tf  # noqa: F401  (sets the legacy-Keras switch)

    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
        )
    except RuntimeError:
        pass


@pytest.fixture
def shared_data():
    """Path of ../shared/data; skips where absent, but fails in CI."""
    return require_shared_data()


def require_shared_data() -> str:
    """shared_data for module-scoped fixtures."""
    if not os.path.isdir(SHARED_DATA):
        if IN_CI:
            pytest.fail(f"CI=true but the shared data is missing at {SHARED_DATA}")
        pytest.skip("../shared/data is not present on this machine")
    return SHARED_DATA
