"""What every model's `fit`, `evaluate` and `predict` do to their data.

The models hold their architecture; this module owns the checks of the
data they are fed, for every kind of container Keras takes:

- NumPy arrays, lists and eager tensors of any backend are checked at
  once (`checked_data`);
- a `tf.data.Dataset` gets the check in its pipeline (`with_id_checks`);
- a Python generator or a `keras.utils.PyDataset` is wrapped to check each
  batch as it comes (`with_python_id_checks`);
- `reraise_data_errors` turns a failed check inside `fit` into a plain
  `ValueError` that names the data.

Out-of-range ids would otherwise be clamped under XLA and train on wrong
tokens, and an out-of-range target turns every weight into NaN.

It also owns what several devices need of the data, so that a model
trains under an engine the user set up with Keras alone (a JAX
`keras.distribution`, a `tf.distribute` strategy) as it does on one
device (`ModelInputsMixin`, `ReplicaPadding`).
"""

import inspect
import re
import types

import keras
import numpy as np
from keras import ops

_ID_CHECK_TAG = "keras_memnet_id_check"


def checked_data(
    x, y=None, vocabulary_size=None, check_shape=None, x_name="x", y_name="y"
):
    """Checks token ids `x` and targets `y`; returns `x`.

    Arrays and eager tensors (NumPy, TensorFlow, JAX, PyTorch) are checked
    here, at once: their shape with `check_shape` (a callable that raises),
    their values against `[0, vocabulary_size)`. A `tf.data.Dataset` is
    returned with checks in its pipeline, a Python generator or a
    `keras.utils.PyDataset` wrapped to check each batch as it comes; run
    `fit` inside `reraise_data_errors()` to get their failure as a
    `ValueError`.
    """
    if is_dataset(x):
        return with_id_checks(x, vocabulary_size, x_name)
    if isinstance(x, (types.GeneratorType, keras.utils.PyDataset)):
        return with_python_id_checks(x, vocabulary_size, x_name)
    token_ids = as_array(x)
    if token_ids is not None:
        if check_shape is not None:
            check_shape(token_ids.shape)
        check_id_range(token_ids, vocabulary_size, x_name)
    targets = as_array(y)
    if targets is not None:
        check_target_range(targets, vocabulary_size, y_name)
    return x


def checked_validation_data(
    validation_data, vocabulary_size=None, check_shape=None
):
    """`fit`'s `validation_data` (a tuple or a dataset), checked as
    `checked_data` checks `x`."""
    if isinstance(validation_data, (list, tuple)) and validation_data:
        x = checked_data(
            validation_data[0],
            validation_data[1] if len(validation_data) > 1 else None,
            vocabulary_size,
            check_shape,
            "validation_data[0]",
            "validation_data[1]",
        )
        return (x, *validation_data[1:])
    return checked_data(
        validation_data,
        vocabulary_size=vocabulary_size,
        check_shape=check_shape,
        x_name="validation_data",
    )


def input_length(x):
    """The static length of token ids given as an array or a dataset."""
    spec = getattr(x, "element_spec", None)
    if spec is not None:
        spec = spec[0] if isinstance(spec, tuple) else spec
        shape = getattr(spec, "shape", None)
        return None if shape is None or len(shape) != 2 else shape[1]
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) != 2:
        return None
    return shape[1]


def is_dataset(x):
    return type(x).__module__.startswith("tensorflow") and hasattr(
        x, "element_spec"
    )


def as_array(x):
    """`x` as a NumPy array if it is an array, a list or an eager tensor of
    any backend; `None` for anything else (datasets, generators, dicts,
    symbolic tensors)."""
    if x is None or isinstance(x, (dict, str)) or is_dataset(x):
        return None
    if isinstance(x, (np.ndarray, list, tuple)):
        return np.asarray(x)
    if not hasattr(x, "__array__") or keras.KerasTensor in type(x).__mro__:
        return None
    try:
        return np.asarray(x)
    except Exception:
        return None  # E.g. a symbolic or on-device tensor; not checked.


def with_id_checks(dataset, vocabulary_size, name):
    """`dataset` with a check of the ids and targets of every batch."""
    import tensorflow as tf

    spec = dataset.element_spec
    spec = spec[0] if isinstance(spec, tuple) else spec
    if isinstance(spec, tf.TensorSpec) and not spec.dtype.is_integer:
        raise ValueError(
            f"`{name}` (a tf.data.Dataset) must hold integer token ids. "
            f"Received dtype {spec.dtype.name}."
        )

    def check(*element):
        # `map` passes the parts of an `(x, y, sample_weight)` element.
        inputs = element[0]
        checked = [(f"`{name}`", inputs)]
        if len(element) > 1:
            checked.append((f"The targets of `{name}`", element[1]))
        assertions = []
        for label, tensor in checked:
            if not isinstance(tensor, tf.Tensor):
                continue
            # Two reductions in the ids' own dtype; only scalars are cast.
            low = tf.cast(tf.reduce_min(tensor), tf.float64)
            high = tf.cast(tf.reduce_max(tensor), tf.float64)
            valid = tf.logical_and(low >= 0, high < vocabulary_size)
            if not tensor.dtype.is_integer:
                valid = tf.logical_and(
                    valid, tf.reduce_all(tf.floor(tensor) == tensor)
                )
            assertions.append(
                tf.debugging.Assert(
                    tf.logical_or(tf.size(tensor) == 0, valid),
                    [f"{_ID_CHECK_TAG}|{label}|{vocabulary_size}|", low, high],
                )
            )
        with tf.control_dependencies(assertions):
            element = tf.nest.map_structure(tf.identity, element)
        return element if len(element) > 1 else element[0]

    return dataset.map(check)


def with_python_id_checks(data, vocabulary_size, name):
    """A generator or `PyDataset` that checks each batch it gives."""
    if isinstance(data, keras.utils.PyDataset):
        # Every batch is checked once before training too: a check that
        # fails inside `fit` comes after a step on PyTorch (the batches
        # are read ahead), and on JAX leaves the model without its weights
        # (Keras has moved them into the training state). The cost is one
        # extra read of each batch per `fit`.
        for index in range(data.num_batches or 0):  # None: infinite
            check_python_batch(
                data[index], vocabulary_size, name, "a PyDataset", index
            )

    def check(batch, index, kind):
        check_python_batch(batch, vocabulary_size, name, kind, index)
        return batch

    return map_python_batches(data, check)


def map_python_batches(data, function):
    """A generator or `PyDataset` whose batches are `function(batch, index,
    kind)`, `kind` being `"a PyDataset"` or `"a generator"`."""
    if isinstance(data, keras.utils.PyDataset):
        return MappedPyDataset(data, function)

    def mapped():
        for index, batch in enumerate(data):
            yield function(batch, index, "a generator")

    return mapped()


class MappedPyDataset(keras.utils.PyDataset):
    """A `PyDataset` whose batches are those of another, mapped."""

    def __init__(self, dataset, function):
        super().__init__(
            workers=dataset.workers,
            use_multiprocessing=dataset.use_multiprocessing,
            max_queue_size=dataset.max_queue_size,
        )
        self.dataset = dataset
        self.function = function

    def __len__(self):
        return len(self.dataset)

    @property
    def num_batches(self):
        return self.dataset.num_batches

    def __getitem__(self, index):
        return self.function(self.dataset[index], index, "a PyDataset")

    def on_epoch_begin(self):
        self.dataset.on_epoch_begin()

    def on_epoch_end(self):
        self.dataset.on_epoch_end()


def check_python_batch(batch, vocabulary_size, name, kind, index):
    """Checks the ids (and targets) of one batch from Python code.

    The failure is also kept for `reraise_data_errors`: on TensorFlow the
    batch is read inside `tf.data`, which wraps the `ValueError` in an
    error of its own.
    """
    inputs, targets = batch, None
    if isinstance(batch, tuple):
        inputs = batch[0]
        targets = batch[1] if len(batch) > 1 else None
    subject = f"`{name}` ({kind}, batch {index})"
    try:
        token_ids = as_array(inputs)
        if token_ids is not None:
            check_id_range(token_ids, vocabulary_size, subject=subject)
        targets = as_array(targets)
        if targets is not None:
            check_target_range(
                targets, vocabulary_size, subject=f"The targets of {subject}"
            )
    except ValueError as error:
        reraise_data_errors.python_failure = error
        raise


class reraise_data_errors:
    """Turns a failed dataset id check into a clear `ValueError`."""

    # The last failed check of a batch from Python code (a generator or a
    # PyDataset), whatever thread read it.
    python_failure = None

    def __enter__(self):
        reraise_data_errors.python_failure = None
        return self

    def __exit__(self, error_type, error, traceback):
        failure = reraise_data_errors.python_failure
        if error is not None and failure is not None:
            reraise_data_errors.python_failure = None
            if error is failure:
                return False
            raise failure from None
        if error is None or _ID_CHECK_TAG not in str(error):
            return False
        match = re.search(
            # The tag, then the lowest and the highest value as printed.
            _ID_CHECK_TAG + r"\|([^|]+)\|(\d+)\|[^-\d]*(-?[\d.e+]+)"
            r"[^-\d]*(-?[\d.e+]+)",
            str(error),
        )
        if match is None:
            return False
        label, vocabulary_size, low, high = match.groups()
        raise ValueError(
            f"{label} (a tf.data.Dataset) must hold whole-number ids in "
            f"[0, vocabulary_size={vocabulary_size}). A batch holds values "
            f"from {float(low):g} to {float(high):g}."
        ) from None


def check_id_range(token_ids, vocabulary_size, name="token_ids", subject=None):
    """Raises `ValueError` unless all ids are integers in
    `[0, vocabulary_size)`.

    Float ids are refused: a float array truncated to ids hides a mix-up
    of arrays. `subject` is what the message calls the ids (default
    `` `name` ``).
    """
    subject = subject or f"`{name}`"
    token_ids = np.asarray(token_ids)
    if token_ids.size and not np.issubdtype(token_ids.dtype, np.integer):
        raise ValueError(
            f"{subject} must hold integer token ids. Received dtype "
            f"{token_ids.dtype}."
        )
    _check_range(token_ids, vocabulary_size, subject, "ids")


def check_target_range(targets, vocabulary_size, name="y", subject=None):
    """Raises `ValueError` unless all targets are whole numbers in
    `[0, vocabulary_size)` (float arrays of whole numbers pass)."""
    subject = subject or f"`{name}`"
    targets = np.asarray(targets)
    if not targets.size:
        return
    if not np.issubdtype(targets.dtype, np.integer):
        if not np.issubdtype(targets.dtype, np.floating) or not np.all(
            np.floor(targets) == targets
        ):
            raise ValueError(
                f"{subject} must hold integer target ids. Received dtype "
                f"{targets.dtype} with values that are not whole numbers."
            )
    _check_range(targets, vocabulary_size, subject, "target ids")


def _check_range(ids, vocabulary_size, subject, what):
    if ids.size:
        low, high = ids.min(), ids.max()
        if low < 0 or high >= vocabulary_size:
            raise ValueError(
                f"{subject} must hold {what} in [0, vocabulary_size="
                f"{vocabulary_size}). Received {what} from {low} to {high}."
            )


class ModelInputsMixin:
    """`fit`, `evaluate` and `predict` for the package's models.

    A mixin before `keras.Model`, so that each model file holds only its
    model. Before Keras sees the data it checks token ids and targets, if
    the model's `_input_id_checks` names a vocabulary size (see
    `checked_data`).

    And so that a model trains on several devices, through the engine a
    user sets up with Keras alone, with the losses of one device:

    - under a JAX `keras.distribution`, each batch whose rows do not
      divide among the devices (a partial last batch) is padded with
      weight-0 rows that leave the loss as it was (`ReplicaPadding`); JAX
      would refuse it;
    - under a `tf.distribute` strategy, each replica's mean loss becomes
      its share of the mean over all replicas (`compute_loss`,
      `one_device_mean`), where Keras would weigh the targets of a smaller
      share (an uneven split, shorter sentences) more;
    - under a strategy the model is built from the data's spec, not from
      a batch Keras would draw (`_maybe_symbolic_build`), which would
      start a pass over the data: a dataset that draws a new order each
      pass would then train every epoch on the next epoch's order.
    """

    def _input_id_checks(self):
        """`(vocabulary_size, check_shape)` for `checked_data`, or `None`
        for no checks."""
        return None

    def fit(self, x=None, y=None, *args, **kwargs):
        arguments = _bind("fit", (x, y, *args), kwargs)
        checks = self._input_id_checks()
        if checks is not None:
            arguments["x"] = checked_data(x, arguments.get("y"), *checks)
            if arguments.get("validation_data") is not None:
                arguments["validation_data"] = checked_validation_data(
                    arguments["validation_data"], *checks
                )
        padding = ReplicaPadding.of(self)
        if padding is not None:
            arguments = padding.fit_arguments(arguments)
        with reraise_data_errors():
            return super().fit(**arguments)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        arguments = _bind("evaluate", (x, y, *args), kwargs)
        checks = self._input_id_checks()
        if checks is not None:
            arguments["x"] = checked_data(x, arguments.get("y"), *checks)
        padding = ReplicaPadding.of(self)
        # `fit` evaluates its validation data with an iterator made before,
        # and passes that data again only for form's sake.
        if padding is not None and not arguments.get(
            "_use_cached_eval_dataset"
        ):
            arguments = padding.evaluate_arguments(arguments)
        with reraise_data_errors():
            return super().evaluate(**arguments)

    def predict(self, x, *args, **kwargs):
        checks = self._input_id_checks()
        if checks is not None:
            x = checked_data(x, None, *checks)
        with reraise_data_errors():
            return super().predict(x, *args, **kwargs)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        mean_loss = _compiled_mean_loss(self)
        if mean_loss is None or _replica_context() is None:
            return super().compute_loss(
                x, y, y_pred, sample_weight, training=training
            )
        loss = one_device_mean(
            self._compile_loss(y, y_pred, sample_weight),
            y,
            ignore_class=mean_loss.ignore_class,
        )
        for extra_loss in self.losses:
            loss = loss + ops.cast(
                self._aggregate_additional_loss(extra_loss), loss.dtype
            )
        return loss

    def _compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        # Keras's step calls this, which calls `compute_loss`: the models'
        # own `compute_loss` then sees the padding rows weighted as they
        # must be.
        if sample_weight is None or jax_batch_replicas() == 1:
            return super()._compute_loss(
                x, y, y_pred, sample_weight, training=training
            )
        rows, real_rows = _row_counts(sample_weight)
        y, loss_weight = _without_padding_rows(self, y, sample_weight)
        loss = super()._compute_loss(
            x, y, y_pred, loss_weight, training=training
        )
        # Keras adds the value times the batch's rows to its running mean
        # of the loss: the value that adds the real rows' share (the
        # gradient is the loss's own).
        value = loss * ops.cast(real_rows, loss.dtype) / rows
        return loss + ops.stop_gradient(value - loss)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if sample_weight is not None and jax_batch_replicas() > 1:
            rows, real_rows = _row_counts(sample_weight)
            tracker = getattr(self, "_loss_tracker", None)
            if tracker is not None:
                # Keras has just counted the padding rows in its running
                # mean of the loss (with the value `_compute_loss` gave).
                tracker.count.assign_sub(
                    ops.cast(rows - real_rows, tracker.count.dtype)
                )
            # Weight 0 for `ReplicaPadding`'s rows.
            sample_weight = ops.maximum(sample_weight, 0.0)
        return super().compute_metrics(x, y, y_pred, sample_weight)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # TensorFlow, under a strategy: Keras would draw a batch from
        # `iterator` to build the model, which starts a pass over the data.
        # A dataset that draws a new order on each pass (`Corpus.windows`,
        # a reshuffled `tf.data` pipeline, `fit`'s shuffled arrays) would
        # then train each epoch on the order one device sees an epoch
        # later. The data's spec gives the same shapes without a pass.
        if (
            iterator is not None
            and data_batch is None
            and self._distribute_strategy is not None
        ):
            import tensorflow as tf

            spec = iterator.data_adapter.get_tf_dataset().element_spec
            data_batch = tf.nest.map_structure(
                lambda part: keras.KerasTensor(
                    tuple(part.shape), part.dtype.name
                ),
                spec,
            )
            iterator = None
        return super()._maybe_symbolic_build(
            iterator=iterator, data_batch=data_batch
        )


# Read once, at import: a tool that later wraps `keras.Model.fit` in a
# `(*args, **kwargs)` function (a profiler, an autologger) would otherwise
# hide the names of its arguments.
_SIGNATURES = {
    name: inspect.signature(getattr(keras.Model, name))
    for name in ("fit", "evaluate")
}


def _bind(method_name, args, kwargs):
    """The arguments of a call to `keras.Model.<method_name>`, by name."""
    signature = _SIGNATURES[method_name]
    arguments = dict(signature.bind(None, *args, **kwargs).arguments)
    del arguments[next(iter(signature.parameters))]  # `self`
    for name, parameter in signature.parameters.items():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            arguments.update(arguments.pop(name, {}))
    return arguments


def _without_padding_rows(model, y, sample_weight):
    """`(y, sample_weight)` for the loss, with `ReplicaPadding`'s rows
    left out of it: weight 0 and, for a mean over the targets, out of its
    divisor too (the real rows' weights scaled by `rows / real rows`, or,
    for a loss with an `ignore_class`, the padding rows' targets made that
    class)."""
    rows, real_rows = _row_counts(sample_weight)
    padding_rows = _padding_rows(sample_weight)
    sample_weight = ops.maximum(sample_weight, 0.0)
    mean_loss = _compiled_mean_loss(model)
    if mean_loss is None:
        return y, sample_weight
    if mean_loss.ignore_class is not None:
        padding_targets = ops.reshape(
            padding_rows, (rows,) + (1,) * (len(ops.shape(y)) - 1)
        )
        ignored = ops.cast(mean_loss.ignore_class, y.dtype)
        return ops.where(padding_targets, ignored, y), sample_weight
    scale = ops.cast(rows, sample_weight.dtype) / ops.cast(
        ops.maximum(real_rows, 1), sample_weight.dtype
    )
    return y, sample_weight * scale


def _padding_rows(sample_weight):
    """Which rows `ReplicaPadding` added (weight `PADDING_WEIGHT`)."""
    rows = ops.shape(sample_weight)[0]
    padding = ops.less(ops.reshape(sample_weight, (rows, -1)), 0.0)
    return ops.any(padding, axis=1)


def _row_counts(sample_weight):
    """The rows of a batch (a static int) and its real rows (a tensor)."""
    rows = ops.shape(sample_weight)[0]
    padding = ops.sum(ops.cast(_padding_rows(sample_weight), "int32"))
    return rows, rows - padding


class _MeanLoss:
    def __init__(self, ignore_class):
        self.ignore_class = ignore_class


def _compiled_mean_loss(model):
    """The compiled loss if it is one mean over the targets (Keras's
    default reduction, with or without an `ignore_class`), else `None`."""
    loss = getattr(model, "loss", None)
    compiled = getattr(model, "_compile_loss", None)
    if compiled is None or getattr(compiled, "_user_loss_weights", None):
        return None
    if isinstance(loss, keras.losses.Loss):
        if loss.reduction not in ("sum_over_batch_size", "mean"):
            return None
        return _MeanLoss(getattr(loss, "ignore_class", None))
    # A name or a function: Keras wraps it with the default reduction.
    return _MeanLoss(None) if isinstance(loss, str) or callable(loss) else None


def _replica_context():
    """TensorFlow's replica context inside a step of a strategy of
    several replicas; `None` otherwise (and on other backends)."""
    if keras.config.backend() != "tensorflow":
        return None
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context


def one_device_mean(loss, y, ignore_class=None):
    """A replica's mean loss, turned into its share of one device's.

    Under a `tf.distribute` strategy Keras averages the loss over each
    replica's own targets (those not of `ignore_class`), divides by the
    replicas and sums the replicas' gradients. Where the replicas hold
    different numbers of targets (a partial last batch split unevenly,
    sentences of other lengths) that weighs the targets of the smaller
    share more than one device does. Here each replica's gradient is that
    of its sum over the targets of all replicas, as on one device, while
    the value is the one Keras expects for its running mean of the loss
    (weighted by the replica's rows). Elsewhere `loss` is returned as it
    is.

    Args:
        loss: the replica's loss as Keras reduces it, its sum over the
            replica's targets divided by their number and by the replicas.
        y: the replica's targets, `(rows, ...)`.
        ignore_class: the target id the loss leaves out, or `None`.
    """
    context = _replica_context()
    if context is None:
        return loss
    import tensorflow as tf

    replicas = context.num_replicas_in_sync
    rows = tf.cast(tf.shape(y)[0], loss.dtype)
    if ignore_class is None:
        # Every row holds as many targets.
        targets = rows
    else:
        targets = tf.reduce_sum(
            tf.cast(tf.not_equal(y, ignore_class), loss.dtype)
        )
    all_targets, all_rows = context.all_reduce(
        tf.distribute.ReduceOp.SUM, [targets, rows]
    )
    # Sum over this replica's targets, divided by the targets of all.
    share = tf.math.divide_no_nan(loss * targets * replicas, all_targets)
    # Keras's running mean weighs the value by this replica's rows.
    value = tf.math.divide_no_nan(share * all_rows, rows * replicas)
    return share + tf.stop_gradient(value - share)


def jax_batch_replicas():
    """How many devices split each batch under the current JAX
    `keras.distribution` (its batch axis); 1 without one, and on the other
    backends."""
    if keras.config.backend() != "jax":
        return 1
    from keras_memnet.distribution import _num_replicas

    engine = keras.distribution.distribution()
    return 1 if engine is None else _num_replicas(engine)


# The sample weight of a padding row, which `ModelInputsMixin` reads back
# and replaces before the loss and the metrics see it.
PADDING_WEIGHT = -1.0


class ReplicaPadding:
    """Pads batches to a multiple of the devices that split them (JAX).

    A padding row repeats a real row of its batch (an all-padding window
    is no valid input) and has the sample weight `PADDING_WEIGHT`, by
    which `ModelInputsMixin` recognises it in the step: the loss leaves it
    out of its sum and of its divisor (`_without_padding_rows`), Keras's
    running mean of the loss does not count it, and the metrics read
    weight 0 for it. So each step's loss, gradient and weighted metrics,
    and the epoch's figures, are those of one device; only metrics passed
    as `metrics` (not `weighted_metrics`), which ignore weights, also
    score the padding rows. (Negative sample weights of one's own are
    read as padding too: weight 0.)

    Args:
        replicas: int >= 2, the devices each batch is split between.
    """

    def __init__(self, replicas):
        self.replicas = replicas

    @classmethod
    def of(cls, model):
        """The padding `model`'s batches need now, or `None`."""
        replicas = jax_batch_replicas()
        return None if replicas == 1 else cls(replicas)

    def fit_arguments(self, arguments):
        """`fit`'s arguments with padded batches."""
        arguments = dict(arguments)
        batch_size = arguments.get("batch_size") or 32
        split = arguments.get("validation_split") or 0.0
        if (
            split
            and arguments.get("validation_data") is None
            and _is_array_data(arguments.get("x"))
        ):
            # Keras's split: the last rows, before any shuffling.
            validation_data, arguments = _split_off(arguments, split)
            arguments["validation_data"] = validation_data
        arguments.update(
            self._padded(
                arguments,
                batch_size,
                arguments.get("shuffle", True),
            )
        )
        validation_data = arguments.get("validation_data")
        if validation_data is not None:
            if isinstance(validation_data, (list, tuple)):
                parts = dict(zip(("x", "y", "sample_weight"), validation_data))
            else:
                parts = {"x": validation_data}
            padded = self._padded(
                parts,
                arguments.get("validation_batch_size") or batch_size,
                shuffle=False,
            )
            if padded:
                parts.update(padded)
                parts.pop("batch_size", None)
                parts = [parts.get(k) for k in ("x", "y", "sample_weight")]
                while parts and parts[-1] is None:
                    parts.pop()
                arguments["validation_data"] = (
                    parts[0] if len(parts) == 1 else tuple(parts)
                )
                arguments.pop("validation_batch_size", None)
        return arguments

    def evaluate_arguments(self, arguments):
        """`evaluate`'s arguments with padded batches."""
        arguments = dict(arguments)
        arguments.update(
            self._padded(
                arguments, arguments.get("batch_size") or 32, shuffle=False
            )
        )
        return arguments

    def _padded(self, arguments, batch_size, shuffle):
        """The arguments that change when the data `x` (with `y` and
        `sample_weight`) is padded; empty if nothing needs padding."""
        x = arguments.get("x")
        if is_dataset(x):
            return {"x": self.dataset(x)}
        if isinstance(x, (types.GeneratorType, keras.utils.PyDataset)):
            return {"x": map_python_batches(x, self._pad_python_batch)}
        if not _is_array_data(x):
            return {}
        rows = _rows(x)
        if not batch_size % self.replicas and not (
            rows % batch_size % self.replicas
        ):
            return {}  # Keras's batches of these arrays divide already.
        return {
            "x": self.array_batches(
                x,
                arguments.get("y"),
                arguments.get("sample_weight"),
                batch_size,
                shuffle,
            ),
            "y": None,
            "sample_weight": None,
            "batch_size": None,
        }

    def dataset(self, dataset):
        """A `tf.data.Dataset` of `(x, y[, sample_weight])` batches, padded
        (itself if its batches divide by the replicas already)."""
        import tensorflow as tf

        spec = dataset.element_spec
        x_spec = tf.nest.flatten(spec[0] if isinstance(spec, tuple) else spec)
        rows = x_spec[0].shape[0]
        if rows is not None and rows % self.replicas == 0:
            return dataset
        return dataset.map(self._pad_tensors)

    def array_batches(self, x, y, sample_weight, batch_size, shuffle):
        """Arrays as padded `tf.data` batches, in Keras's order: rows in
        order, or reshuffled every epoch (`shuffle=True`), or batches
        reshuffled (`shuffle="batch"`)."""
        import tensorflow as tf

        parts = tuple(p for p in (x, y, sample_weight) if p is not None)
        parts = keras.tree.map_structure(np.asarray, parts)
        dataset = tf.data.Dataset.from_tensor_slices(parts)
        # Seeded from NumPy, so that `keras.utils.set_random_seed` fixes it.
        seed = int(np.random.randint(2**31))
        if shuffle is True:
            dataset = dataset.shuffle(_rows(x), seed=seed)
        dataset = dataset.batch(batch_size)
        if shuffle == "batch":
            dataset = dataset.shuffle(-(-_rows(x) // batch_size), seed=seed)
        return self.dataset(dataset.prefetch(tf.data.AUTOTUNE))

    def _pad_tensors(self, x, y=None, sample_weight=None):
        import tensorflow as tf

        rows = tf.shape(tf.nest.flatten(x)[0])[0]
        # Repeats real rows: an all-padding window is no valid input.
        extra = tf.range((-rows) % self.replicas) % tf.maximum(rows, 1)

        def padded(tensor):
            return tf.concat([tensor, tf.gather(tensor, extra)], 0)

        x = tf.nest.map_structure(padded, x)
        if y is None:
            return x
        if sample_weight is None:
            sample_weight = tf.ones(tf.shape(y), tf.float32)
        sample_weight = tf.cast(sample_weight, tf.float32)
        weight_padding = tf.fill(
            tf.shape(tf.gather(sample_weight, extra)), PADDING_WEIGHT
        )
        return (
            x,
            padded(y),
            tf.concat([sample_weight, weight_padding], 0),
        )

    def _pad_python_batch(self, batch, index=None, kind=None):
        """`_pad_tensors` for a batch of NumPy arrays (or eager tensors)."""
        parts = batch if isinstance(batch, tuple) else (batch,)
        x = keras.tree.map_structure(np.asarray, parts[0])
        rows = _rows(x)
        extra = np.arange(-rows % self.replicas) % max(rows, 1)

        def padded(array):
            return np.concatenate([array, array[extra]])

        x = keras.tree.map_structure(padded, x)
        if len(parts) < 2 or parts[1] is None:
            return x
        y = np.asarray(parts[1])
        sample_weight = parts[2] if len(parts) > 2 else None
        if sample_weight is None:
            sample_weight = np.ones(y.shape, np.float32)
        sample_weight = np.asarray(sample_weight, np.float32)
        weight_padding = np.full_like(sample_weight[extra], PADDING_WEIGHT)
        return (
            x,
            padded(y),
            np.concatenate([sample_weight, weight_padding]),
        )


def _is_array_data(x):
    """Whether `x` is an array, or a dict, list or tuple of arrays, that
    Keras batches itself."""
    if x is None or is_dataset(x):
        return False
    if isinstance(x, dict) or (
        isinstance(x, (list, tuple))
        and x
        and all(hasattr(part, "shape") for part in x)
    ):
        return all(as_array(part) is not None for part in keras.tree.flatten(x))
    return as_array(x) is not None


def _rows(x):
    first = keras.tree.flatten(x)[0] if not hasattr(x, "shape") else x
    return int(np.shape(first)[0])


def _split_off(arguments, split):
    """`(validation_data, arguments)`: the last `split` of the rows of
    `x`, `y` and `sample_weight` as validation data, as Keras splits
    them, and the arguments with the rest."""
    arguments = dict(arguments)
    rows = _rows(arguments["x"])
    split_at = int(np.floor(rows * (1.0 - split)))
    if split_at in (0, rows):
        raise ValueError(
            f"`validation_split`={split} leaves no rows for training or "
            f"for validation of the {rows} rows of `x`."
        )
    validation = []
    for name in ("x", "y", "sample_weight"):
        part = arguments.get(name)
        if part is None:
            continue
        arrays = keras.tree.map_structure(np.asarray, part)
        arguments[name] = keras.tree.map_structure(
            lambda a: a[:split_at], arrays
        )
        validation.append(
            keras.tree.map_structure(lambda a: a[split_at:], arrays)
        )
    arguments["validation_split"] = 0.0
    return tuple(validation), arguments
