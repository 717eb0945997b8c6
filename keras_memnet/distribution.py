"""Training on several devices or machines through Keras's own engines.

keras-memnet has no training loop of its own: `fit` runs on several devices
through the engine of the backend, and this module picks it.

- JAX: `keras.distribution.DataParallel` over every device (all GPUs, or
  all CPU devices without one). Across machines, call
  `keras.distribution.initialize()` (`jax.distributed.initialize`) first in
  every process; the mesh then holds every process's devices.
- TensorFlow: `tf.distribute.MirroredStrategy` over every GPU (every
  logical CPU device without one), or
  `tf.distribute.MultiWorkerMirroredStrategy` when `TF_CONFIG` names more
  than one worker (not yet working: with Keras 3.15 `fit` fails under it
  in tests/test_distribution.py's two-process run).
- PyTorch: Keras offers no multi-device engine for it; asking for one is
  an error.

Both engines split each global batch across the replicas and apply the
gradient of the whole batch, so one step on `n` devices is the step of one
device at the same global batch. `GradientNormClipping` clips the norm of
that global gradient (see its docstring); `MemN2NLM.compile` leaves XLA off
under a TensorFlow strategy with more than one replica.
"""

import contextlib
import json
import os

import keras

from keras_memnet.utils.arguments import check_one_of

DISTRIBUTE_MODES = ("data-parallel",)

# TensorFlow allows one MultiWorkerMirroredStrategy per process, made before
# any collective op: the strategy is made once and reused.
_TF_STRATEGIES = {}


@contextlib.contextmanager
def distribution_scope(distribute="data-parallel", devices=None):
    """A scope in which models are built and trained on several devices.

    Build, compile, `fit` and `evaluate` the model inside the scope; it
    yields the number of replicas that share each batch, by which the
    global batch size must be divisible (a partial last batch is split
    unevenly on TensorFlow, and refused by JAX: drop it when training, as
    `Corpus.windows(..., drop_remainder=True)` does, and pad it for
    evaluation with weight-0 rows).

    Args:
        distribute: `"data-parallel"` (default): the backend's data-parallel
            engine, described in the module docstring. `None`: no
            distribution (one replica). Or an engine made by the caller:
            a `keras.distribution.Distribution` (JAX) or a
            `tf.distribute.Strategy` (TensorFlow), used as it is.
        devices: optional list of device names for `"data-parallel"` on one
            machine (`"gpu:0"` on JAX, `"/gpu:0"` on TensorFlow). Defaults
            to every GPU, or every CPU device without one.

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
        distribute = data_parallel_engine(devices)
    with distribute.scope():
        yield _num_replicas(distribute)


def data_parallel_engine(devices=None):
    """The data-parallel engine of the backend, made (once) for `devices`.

    JAX: a `keras.distribution.DataParallel`; TensorFlow: a
    `tf.distribute.MirroredStrategy`, or the process's
    `tf.distribute.MultiWorkerMirroredStrategy` when `TF_CONFIG` names
    several workers (TensorFlow wants it made before any other TensorFlow
    op, so call this first thing in a worker). `distribution_scope` uses
    it; call it directly to make the engine early or to hold it.

    Args:
        devices: optional list of device names, as in `distribution_scope`.

    Returns:
        The engine; both kinds have a `scope()` context manager.

    Raises:
        ValueError: on PyTorch, which Keras gives no such engine.

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


def _tf_strategy(devices):
    import tensorflow as tf

    if _tf_config_workers() > 1:
        if devices is not None:
            raise ValueError(
                "`devices` applies to one machine; with several workers in "
                "TF_CONFIG each worker uses all of its GPUs."
            )
        key = "multi-worker"
        if key not in _TF_STRATEGIES:
            _TF_STRATEGIES[key] = tf.distribute.MultiWorkerMirroredStrategy()
        return _TF_STRATEGIES[key]
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
    that does not divide across its devices. The extra rows repeat the
    batch's first rows with sample weight 0, so weighted metrics
    (`Perplexity`) are exact; the mean loss of a padded batch is divided
    by its padded size, which lowers `val_loss` by the same small factor in
    every epoch (so annealing and early stopping decide as without it).
    A dataset of `(x, y)` gets a third element, the weights, of `y`'s
    shape.

    Args:
        dataset: batches of `(x, y)` or `(x, y, sample_weight)` tensors.
        multiple: int >= 1, the row count every batch is padded to a
            multiple of (the number of replicas).

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

    from keras_memnet.utils.arguments import check_int

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
