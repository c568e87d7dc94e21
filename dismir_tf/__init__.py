"""dismir-tf: disentangled multi-interest sequential recommendation in TF.

TensorFlow Recommenders only works with Keras 2, so the legacy Keras switch
is set here, before anything imports TensorFlow.  Importing the package does
no I/O and touches no network.
"""

import os as _os

_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
