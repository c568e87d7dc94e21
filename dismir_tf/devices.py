"""Devices and distribution strategies: logical CPUs, MirroredStrategy,
MultiWorkerMirroredStrategy (docs/multi_worker.md), and which task this
process is."""

from __future__ import annotations

import os

import tensorflow as tf

from dismir_tf.config import RunConfig
from dismir_tf.errors import ConfigError


# ------------------------------------------------------------------ devices
def configure_logical_cpus(n: int) -> None:
    """Splits the CPU into n logical devices (before TF initialises them)."""
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * n
        )
    except RuntimeError:
        # Already initialised (e.g. by an earlier call in this process);
        # fine if there are enough logical devices.
        pass
    have = len(tf.config.list_logical_devices("CPU"))
    if have < n:
        raise ConfigError(
            f"the mirrored strategy needs {n} logical CPU devices but the "
            f"process has {have}; TensorFlow was initialised before the "
            "strategy was chosen"
        )


def make_strategy(config: RunConfig) -> tf.distribute.Strategy:
    """The tf.distribute strategy named by ``config.train.strategy``."""
    name = config.train.strategy
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            return tf.distribute.MirroredStrategy()
        n = config.train.logical_cpus
        configure_logical_cpus(n)
        devices = [d.name for d in tf.config.list_logical_devices("CPU")][:n]
        return tf.distribute.MirroredStrategy(
            devices=devices, cross_device_ops=tf.distribute.ReductionToOneDevice()
        )
    if name == "multi_worker":
        # The cluster and this process's task come from TF_CONFIG
        # (docs/multi_worker.md).  Without it TensorFlow would quietly train
        # a one-worker "cluster", which is never what was meant.
        if not os.environ.get("TF_CONFIG"):
            raise ConfigError(
                "--strategy multi_worker needs the TF_CONFIG environment "
                "variable (the cluster's addresses and this worker's task); "
                "see docs/multi_worker.md"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ConfigError(f"unknown strategy {name!r}")


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def task_name(strategy: tf.distribute.Strategy) -> str:
    """'worker-1', 'chief-0', ... or 'local' outside a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return "local"
    return f"{resolver.task_type}-{resolver.task_id}"


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker"
        and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict()
    )
