"""Training on several devices or machines through Keras's own engines.

keras-memnet has no training loop of its own: `fit` runs on several devices
through the engine of the backend, and this module picks it.

- JAX: `keras.distribution.DataParallel` over every device (all GPUs, or
  all CPU devices without one). Across processes or machines, set
  `KERAS_DISTRIBUTION_JOB_ADDRESSES` (the coordinator's `host:port`),
  `KERAS_DISTRIBUTION_NUM_PROCESSES` and `KERAS_DISTRIBUTION_PROCESS_ID` in
  every process: the engine then calls `keras.distribution.initialize()`
  (`jax.distributed.initialize`) first, the mesh holds every process's
  devices, and Keras gives each process its share of every global batch
  of a `tf.data` dataset.
- TensorFlow: `tf.distribute.MirroredStrategy` over every GPU (every
  logical CPU device without one), on one machine. A `TF_CONFIG` that names
  several workers is refused: Keras 3's TensorFlow trainer fails under
  `MultiWorkerMirroredStrategy` (it reduces the scalar logs of each step
  along axis 0, tensorflow/tensorflow#72388, and the first data batch as
  one tensor); several machines train on JAX.
- PyTorch: Keras offers no multi-device engine for it; asking for one is
  an error.

`"model-parallel"` (JAX only) shards the vocabulary-sized weights instead
of copying them to every device: `keras.distribution.ModelParallel` with the
layout of the model class's `get_layout_map` (`MemN2NLM`'s splits the
memory embeddings and the output projection by vocabulary id, and with
them the logits). Each device then holds `1/n` of those weights, of their
optimizer state and of the logits; `benchmarks/model_parallel_memory.py`
measures it.

Both engines split each global batch across the replicas and apply the
gradient of the whole batch, so one step on `n` devices is the step of one
device at the same global batch. `GradientNormClipping` clips the norm of
that global gradient (see its docstring); `MemN2NLM.compile` leaves XLA off
under a TensorFlow strategy with more than one replica.
"""

import contextlib
import json
import os
import re

import keras

from keras_memnet.utils.arguments import check_int
from keras_memnet.utils.arguments import check_one_of

DISTRIBUTE_MODES = ("data-parallel", "model-parallel")

# One MirroredStrategy per device list, made once: its variables and
# collectives belong to it, so every model of the process shares it.
_TF_STRATEGIES = {}


@contextlib.contextmanager
def distribution_scope(distribute="data-parallel", devices=None, model=None):
    """A scope in which models are built and trained on several devices.

    Build, compile, `fit` and `evaluate` the model inside the scope; it
    yields the number of replicas that share each batch. The package's
    models train there on any batches, partial ones included, with the
    losses of one device (`keras_memnet.utils.model_inputs`); other models
    need batches that divide by the replicas (JAX refuses others, and
    TensorFlow weighs the rows of an uneven split unevenly).

    Args:
        distribute: `"data-parallel"` (default): the backend's data-parallel
            engine, described in the module docstring. `"model-parallel"`:
            `model_parallel_engine(model, devices)`, JAX only. `None`: no
            distribution (one replica). Or an engine made by the caller:
            a `keras.distribution.Distribution` (JAX) or a
            `tf.distribute.Strategy` (TensorFlow), used as it is.
        devices: optional list of device names on one machine (`"gpu:0"`
            on JAX, `"/gpu:0"` on TensorFlow). Defaults to every GPU, or
            every CPU device without one.
        model: for `"model-parallel"`, the model class whose
            `get_layout_map(device_mesh)` shards its weights (e.g.
            `MemN2NLM`).

    Yields:
        int, the number of replicas (devices in the batch dimension).

    Raises:
        ValueError: `distribute` is not one of the above, or the backend
            (PyTorch) has no engine for it.

    Example:

    ```python
    import numpy as np
    from keras_memnet.distribution import distribution_scope
    from keras_memnet.models import MemN2NLM

    with distribution_scope("data-parallel") as replicas:
        model = MemN2NLM(
            vocabulary_size=50, hops=2, memory_size=8, embedding_dim=16
        )
        model.compile(optimizer="sgd")
        contexts = np.random.randint(1, 50, size=(8 * replicas, 8))
        targets = np.random.randint(1, 50, size=(8 * replicas,))
        model.fit(contexts, targets, batch_size=4 * replicas, verbose=0)
    ```
    """
    if distribute is None:
        yield 1
        return
    if isinstance(distribute, str) or not hasattr(distribute, "scope"):
        check_one_of("distribute", distribute, DISTRIBUTE_MODES)
        if distribute == "model-parallel":
            if model is None:
                raise ValueError(
                    "distribute='model-parallel' needs `model`, the model "
                    "class whose `get_layout_map` shards the weights."
                )
            distribute = model_parallel_engine(model, devices)
        else:
            distribute = data_parallel_engine(devices)
    with distribute.scope():
        yield _num_replicas(distribute)


def data_parallel_engine(devices=None):
    """The data-parallel engine of the backend, made (once) for `devices`.

    JAX: a `keras.distribution.DataParallel`, over the devices of every
    process when Keras's `KERAS_DISTRIBUTION_*` variables name several
    (it joins them first: call this before JAX computes anything);
    TensorFlow: a `tf.distribute.MirroredStrategy`. `distribution_scope`
    uses it; call it directly to make the engine early or to hold it.

    Args:
        devices: optional list of device names, as in `distribution_scope`.

    Returns:
        The engine; both kinds have a `scope()` context manager.

    Raises:
        ValueError: on PyTorch, which Keras gives no such engine, and on
            TensorFlow when `TF_CONFIG` names several workers (see the
            module docstring).

    Example:

    ```python
    from keras_memnet.distribution import data_parallel_engine

    engine = data_parallel_engine()
    with engine.scope():
        pass  # build, compile and fit the model here
    ```
    """
    backend = keras.config.backend()
    if backend == "jax":
        _initialize_jax_processes()
        if devices is None:
            devices = keras.distribution.list_devices()
        return keras.distribution.DataParallel(devices=devices)
    if backend == "tensorflow":
        return _tf_strategy(devices)
    raise ValueError(
        f"distribute='data-parallel' needs the JAX or TensorFlow backend; "
        f"KERAS_BACKEND is {backend!r}. Keras has no multi-device training "
        "engine for PyTorch (keras.distribution runs on JAX only, "
        "tf.distribute on TensorFlow only). Set KERAS_BACKEND=jax or "
        "KERAS_BACKEND=tensorflow, or train on one device with "
        "distribute=None."
    )


def model_parallel_engine(model, devices=None, model_parallel_size=None):
    """JAX's `keras.distribution.ModelParallel` with `model`'s layout.

    The devices form a `("batch", "model")` mesh: `model_parallel_size`
    devices share each copy of the model, the weights that
    `model.get_layout_map` names split between them, and the copies split
    each batch as under data parallelism. One process only: with several
    (`KERAS_DISTRIBUTION_*`) it is refused, since the package's training
    copies weights to the host, which JAX cannot do for weights split
    across processes.

    Args:
        model: a model class (or instance) with keras-hub's
            `get_layout_map(device_mesh, model_parallel_dim_name,
            data_parallel_dim_name)`, e.g. `MemN2NLM`.
        devices: optional list of device names; defaults to every GPU, or
            every CPU device without one.
        model_parallel_size: int, devices per copy of the model; must
            divide the number of devices. Defaults to all of them (one
            copy, whole batches).

    Returns:
        A `keras.distribution.ModelParallel`.

    Raises:
        ValueError: the backend is not JAX, several processes train
            together, `model` has no `get_layout_map`, or
            `model_parallel_size` does not divide the devices.

    Example:

    ```python
    from keras_memnet.distribution import model_parallel_engine
    from keras_memnet.models import MemN2NLM

    engine = model_parallel_engine(MemN2NLM)
    with engine.scope():
        model = MemN2NLM(
            vocabulary_size=64, hops=2, memory_size=8, embedding_dim=16
        )
    ```
    """
    backend = keras.config.backend()
    if backend != "jax":
        raise ValueError(
            "distribute='model-parallel' needs the JAX backend "
            f"(keras.distribution); KERAS_BACKEND is {backend!r}. Set "
            "KERAS_BACKEND=jax, or use distribute='data-parallel'."
        )
    if not hasattr(model, "get_layout_map"):
        raise ValueError(
            f"`model` must be a model class with `get_layout_map`, such as "
            f"MemN2NLM; received {model!r}."
        )
    _initialize_jax_processes()
    processes = process_count()
    if processes > 1:
        raise ValueError(
            "distribute='model-parallel' runs in one process (on all of its "
            f"devices); this is one of {processes} JAX processes. "
            "keras-memnet's training copies the weights to the host (the "
            "NaN guard, early stopping's best weights, checkpoints, "
            "saving), which JAX cannot do for weights split across "
            "processes. Train across processes with 'data-parallel'."
        )
    if devices is None:
        devices = keras.distribution.list_devices()
    model_parallel_size = check_int(
        "model_parallel_size",
        len(devices) if model_parallel_size is None else model_parallel_size,
        minimum=1,
    )
    if len(devices) % model_parallel_size:
        raise ValueError(
            f"`model_parallel_size`={model_parallel_size} does not divide "
            f"the {len(devices)} devices."
        )
    mesh = keras.distribution.DeviceMesh(
        shape=(len(devices) // model_parallel_size, model_parallel_size),
        axis_names=("batch", "model"),
        devices=devices,
    )
    return keras.distribution.ModelParallel(
        layout_map=model.get_layout_map(mesh), batch_dim_name="batch"
    )


def model_axis_size():
    """How many ways the current distribution splits the model's weights.

    Returns:
        int: the devices of a JAX `ModelParallel` mesh outside its batch
        axis (those that share one copy of the model); 1 under any other
        engine or none.

    Example:

    ```python
    from keras_memnet.distribution import model_axis_size

    model_axis_size()  # 1: no distribution
    ```
    """
    engine = (
        keras.distribution.distribution()
        if keras.config.backend() == "jax"
        else None
    )
    if not isinstance(engine, keras.distribution.ModelParallel):
        return 1
    mesh = engine.device_mesh
    return mesh.devices.size // _num_replicas(engine)


def _tf_strategy(devices):
    if _tf_config_workers() > 1:
        raise ValueError(
            "TF_CONFIG names several workers, but Keras 3's TensorFlow "
            "trainer cannot train under MultiWorkerMirroredStrategy: `fit` "
            "reduces each step's scalar logs along axis 0 "
            "(tensorflow/tensorflow#72388). Train on several machines with "
            "KERAS_BACKEND=jax and KERAS_DISTRIBUTION_JOB_ADDRESSES, "
            "KERAS_DISTRIBUTION_NUM_PROCESSES and "
            "KERAS_DISTRIBUTION_PROCESS_ID set in every process, or unset "
            "TF_CONFIG to use this machine's devices."
        )
    import tensorflow as tf

    if devices is None:
        # MirroredStrategy's own default is every GPU, or one CPU without
        # one; every logical CPU device matches JAX's default instead.
        devices = [
            device.name
            for device in tf.config.list_logical_devices("GPU")
            or tf.config.list_logical_devices("CPU")
        ]
    key = tuple(devices)
    if key not in _TF_STRATEGIES:
        _TF_STRATEGIES[key] = tf.distribute.MirroredStrategy(list(devices))
    return _TF_STRATEGIES[key]


def _initialize_jax_processes():
    """Joins the JAX processes named by Keras's environment variables.

    Once per process, and before JAX computes anything: afterwards
    `jax.distributed.initialize` is refused.
    """
    import jax

    processes = os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES") or "1"
    if not re.fullmatch(r"\s*[1-9][0-9]*\s*", processes):
        raise ValueError(
            "KERAS_DISTRIBUTION_NUM_PROCESSES must be a whole number of "
            f"processes, at least 1. Received: {processes!r}"
        )
    if int(processes) > 1 and not jax.distributed.is_initialized():
        keras.distribution.initialize()


def process_count():
    """The number of processes training together.

    Returns:
        int: JAX's process count (more than 1 once `data_parallel_engine`
        has joined the processes named by `KERAS_DISTRIBUTION_*`); 1 on
        other backends, whose engines here run in one process.

    Example:

    ```python
    from keras_memnet.distribution import process_count

    process_count()  # 1 in a single process
    ```
    """
    if keras.config.backend() != "jax":
        return 1
    import jax

    return jax.process_count()


def _tf_config_workers():
    cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {})
    return len(cluster.get("worker", ())) + len(cluster.get("chief", ()))


def _num_replicas(engine):
    if hasattr(engine, "num_replicas_in_sync"):  # A tf.distribute.Strategy.
        return int(engine.num_replicas_in_sync)
    mesh = engine.device_mesh
    return int(mesh.shape[mesh.axis_names.index(engine.batch_dim_name)])


def pad_batches(dataset, multiple):
    """Pads every batch of a `tf.data.Dataset` to a multiple of rows.

    For evaluation under JAX's `keras.distribution`, which refuses a batch
    that does not divide across its devices (and, across processes, one
    whose size is not static: pad to the batch size, so that every batch is
    full). The extra rows repeat the batch's first rows with sample weight
    0, so weighted metrics (`Perplexity`) are exact; the mean loss of a
    padded batch is divided by its padded size, which lowers `val_loss` by
    the same factor in every epoch (so annealing and early stopping decide
    as without it).
    A dataset of `(x, y)` gets a third element, the weights, of `y`'s
    shape.

    Args:
        dataset: batches of `(x, y)` or `(x, y, sample_weight)` tensors.
        multiple: int >= 1, the row count every batch is padded to a
            multiple of (the number of replicas, or the batch size).

    Returns:
        The padded dataset of `(x, y, sample_weight)`.

    Example:

    ```python
    import numpy as np
    import tensorflow as tf
    from keras_memnet.distribution import pad_batches

    data = tf.data.Dataset.from_tensor_slices(
        (np.ones((5, 3), "int32"), np.ones(5, "int32"))
    ).batch(4)
    [w.numpy().tolist() for _, _, w in pad_batches(data, 2)]
    # [[1.0, 1.0, 1.0, 1.0], [1.0, 0.0]]
    ```
    """
    import tensorflow as tf

    multiple = check_int("multiple", multiple, minimum=1)

    def pad(x, y, sample_weight=None):
        if sample_weight is None:
            sample_weight = tf.ones(tf.shape(y), tf.float32)
        rows = tf.shape(x)[0]
        # Repeats real rows: an all-padding window is no valid input.
        extra = tf.range((-rows) % multiple) % tf.maximum(rows, 1)
        weight_pad = tf.zeros_like(tf.gather(sample_weight, extra))
        return (
            tf.concat([x, tf.gather(x, extra)], 0),
            tf.concat([y, tf.gather(y, extra)], 0),
            tf.concat([sample_weight, weight_pad], 0),
        )

    return dataset.map(pad)
