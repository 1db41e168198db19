"""The one place a tf.distribute.Strategy is built, and the XLA policy that goes with it."""

from __future__ import annotations

import functools
import json
import os
import tempfile

import tensorflow as tf

from ktrain.errors import KtrainError


@functools.cache
def build_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """One strategy per name and process: collectives of two MirroredStrategy objects in one process
    can collide, so every job and method of a process shares the same one.

    ``auto``: MirroredStrategy over all GPUs when there are several, else one device.

    ``one``: the first GPU, or the CPU. ``mirrored``: every GPU, or every logical CPU when there is
    no GPU (how the tests get a real two-replica strategy on a CPU machine). ``multiworker``:
    MultiWorkerMirroredStrategy over the cluster described by ``TF_CONFIG``; it must be built before
    any other TensorFlow work, which is why every job builds its strategy first.
    """
    if name == "multiworker":
        # Before listing devices: that initialises the runtime, after which collectives cannot be set up.
        check_tf_config(os.environ.get("TF_CONFIG"))
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = [device.name for device in tf.config.list_logical_devices("GPU")]
    cpus = [device.name for device in tf.config.list_logical_devices("CPU")]
    if name == "auto":
        return tf.distribute.MirroredStrategy(gpus) if len(gpus) > 1 else _one_device(gpus, cpus)
    if name == "one":
        return _one_device(gpus, cpus)
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(gpus or cpus)
    raise KtrainError(f"--strategy is '{name}': use auto, one, mirrored or multiworker")


TF_CONFIG_FORM = '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": N}}'


def check_tf_config(text: str | None) -> None:
    """Refuse a missing or malformed ``TF_CONFIG`` in one line naming what is wrong (TensorFlow
    fails on it later, with a traceback or a hang waiting for workers that do not exist)."""
    if not text:
        raise KtrainError(f"--strategy multiworker needs TF_CONFIG: set it on every worker to {TF_CONFIG_FORM}")
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise KtrainError(f"TF_CONFIG is not JSON ({exc}): set it to {TF_CONFIG_FORM}") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise KtrainError(f"TF_CONFIG needs a 'cluster' and a 'task' object: set it to {TF_CONFIG_FORM}")
    roles = set(cluster) - {"chief", "worker"}
    if roles or "worker" not in cluster and "chief" not in cluster:
        raise KtrainError(
            f"TF_CONFIG cluster has {', '.join(sorted(roles)) or 'no workers'}: MultiWorkerMirroredStrategy takes "
            f"'chief' and 'worker' tasks only, as in {TF_CONFIG_FORM}"
        )
    if not isinstance(config.get("rpc_layer", "grpc"), str):
        raise KtrainError(f'TF_CONFIG rpc_layer is {config["rpc_layer"]!r}: give a name such as "grpc", or drop it')
    for role, addresses in cluster.items():
        if (
            not isinstance(addresses, list)
            or not addresses
            or not all(isinstance(address, str) and address.rpartition(":")[2].isdigit() for address in addresses)
        ):
            raise KtrainError(
                f"TF_CONFIG cluster '{role}' is {addresses!r}: give a list of 'host:port' strings, as in "
                f"{TF_CONFIG_FORM}"
            )
    role, index = task.get("type"), task.get("index")
    if not isinstance(role, str) or role not in cluster:
        raise KtrainError(f"TF_CONFIG task type is {role!r}, which is not in its cluster ({', '.join(cluster)})")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(cluster[role]):
        raise KtrainError(
            f"TF_CONFIG task index is {index!r}: give a whole number from 0 to {len(cluster[role]) - 1} "
            f"(the cluster has {len(cluster[role])} {role}s)"
        )


def _one_device(gpus: list[str], cpus: list[str]) -> tf.distribute.Strategy:
    return tf.distribute.OneDeviceStrategy((gpus or cpus)[0])


def uses_gpu(strategy: tf.distribute.Strategy) -> bool:
    return any("GPU" in device.upper() for device in strategy.extended.worker_devices)


def jit_enabled(mode: str, strategy: tf.distribute.Strategy) -> bool:
    """``auto`` compiles with XLA on GPUs only: on the 2-core CPU machine an XLA-compiled conv step ran
    2-3x slower than the default kernels (benchmarks/step_throughput.py measures it)."""
    if mode == "on":
        return True
    if mode == "off":
        return False
    return uses_gpu(strategy)


def describe(strategy: tf.distribute.Strategy) -> dict:
    return {
        "name": type(strategy).__name__,
        "replicas": strategy.num_replicas_in_sync,
        "devices": list(strategy.extended.worker_devices),
    }


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes outputs: always, except on non-chief workers of a multi-worker run."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type in (None, "chief") or (
        task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().as_dict()
    )


def output_folder(strategy: tf.distribute.Strategy, folder: str) -> str:
    """The chief writes to ``folder``; other workers write to a throwaway temporary folder."""
    return folder if is_chief(strategy) else tempfile.mkdtemp(prefix="ktrain-worker-")


def needs_copies(strategy: tf.distribute.Strategy, precision: str) -> bool:
    """Whether a caller's model object must be copied into the strategy's scope before training: a
    multi-device strategy mirrors variables created in its scope only, and a mixed precision policy
    applies to layers when they are built."""
    return not isinstance(strategy, tf.distribute.OneDeviceStrategy) or precision != "float32"


def host_only(strategy: tf.distribute.Strategy) -> bool:
    """One replica on the host CPU: input batches need no distributing. A distributed dataset's
    iterator starts tf.data autotuning threads of its own, and releasing one waited on them: 0.2 s
    per epoch on two cores, minutes in all for a run on one core (a process pinned to one CPU)."""
    if not isinstance(strategy, tf.distribute.OneDeviceStrategy):
        return False
    return all(tf.DeviceSpec.from_string(device).device_type == "CPU" for device in strategy.extended.worker_devices)
