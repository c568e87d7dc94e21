"""dismir-tf: disentangled multi-interest sequential recommendation in TF.

TensorFlow Recommenders only works with Keras 2, so the legacy Keras switch
is set here, before anything imports TensorFlow.  Importing the package does
no I/O and touches no network.
"""

import os as _os

# Whether the user set TensorFlow's own logging variables: then the entry
# points leave TensorFlow's start-up lines alone (cli.quiet_startup).
USER_TF_LOGGING = any(
    v in _os.environ
    for v in ("TF_CPP_MIN_LOG_LEVEL", "TF_CPP_MAX_VLOG_LEVEL", "TF_CPP_VMODULE")
)

_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

# `python -m dismir_tf.<module>` (argv[0] is '-m' while the package is
# imported to find the module): some of these modules import TensorFlow at
# once, so its start-up lines are filtered from here (cli.quiet_startup).
import sys as _sys  # noqa: E402

if _sys.argv[:1] == ["-m"]:
    from dismir_tf.cli import quiet_startup as _quiet_startup

    _quiet_startup()
