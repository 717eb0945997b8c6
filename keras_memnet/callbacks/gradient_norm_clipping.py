import contextlib

import keras
from keras import ops

from keras_memnet.utils.arguments import check_float

_NORM_VARIABLE = "_keras_memnet_gradient_norm"


@keras.saving.register_keras_serializable(package="keras_memnet")
class GradientNormClipping(keras.callbacks.Callback):
    """Clips the global gradient norm and logs the norm before clipping.

    End-To-End Memory Networks are trained with the global L2 norm of the
    gradient rescaled to at most `max_norm` (Sukhbaatar et al., 2015,
    section 5: 50 on the summed loss), and Sutskever et al., 2014 cap it at
    5. Clipping alone hides trouble, so this callback also reports the norm
    *before* clipping as `gradient_norm` in the logs: per batch in the
    progress bar, and as the mean over the epoch in the epoch logs and
    `History`. Exploding or NaN gradients show up there at once.

    Clipping happens inside the optimizer's update, on every backend, as
    with the optimizer argument `global_clipnorm`; use this callback instead
    of that argument when you want the norm logged. While training, the
    optimizer holds one extra scalar variable for the norm; it is removed when
    `fit` ends, and it is never written: a checkpoint saved during `fit`
    (`keras.callbacks.BackupAndRestore`, `keras.callbacks.ModelCheckpoint`)
    holds the same optimizer variables as a fresh optimizer, so the
    iteration count, the learning rate and an adaptive optimizer's moments
    are all restored from it. Sparse
    embedding gradients (TensorFlow's `IndexedSlices`) stay sparse, so only
    the rows read are updated, and the norm is that of the dense gradient.

    On several devices the norm is that of the global gradient, summed over
    the replicas, as on one device at the same global batch. Under JAX's
    `keras.distribution` the gradients are already global arrays. Under a
    `tf.distribute` strategy each replica holds its share: this callback
    sums the gradients across replicas (one all-reduce, which the
    optimizer then skips, so nothing is sent twice) and clips the sum.
    (Keras's own `global_clipnorm` clips each replica's share instead.)

    Note that `max_norm` applies to the gradient of the loss Keras minimises,
    which is the *mean* over the batch. A clip of `c` on a summed loss is
    `c / batch_size` here; `keras_memnet.recipes.MemN2NLMRecipe` does this
    conversion for the paper's settings.

    Args:
        max_norm: float > 0. The largest allowed global gradient norm.
        log_name: str. Name of the logged pre-clip norm. Defaults to
            `"gradient_norm"`.

    Example:

    ```python
    import keras
    import numpy as np
    from keras_memnet.callbacks import GradientNormClipping

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(
        np.ones((8, 4)),
        np.ones((8, 1)),
        epochs=2,
        verbose=0,
        callbacks=[GradientNormClipping(max_norm=1.0)],
    )
    history.history["gradient_norm"]  # pre-clip norm, one value per epoch
    ```
    """

    def __init__(self, max_norm, log_name="gradient_norm"):
        super().__init__()
        # `check_float` also rejects infinities.
        self.max_norm = check_float(
            "max_norm", max_norm, minimum=0, min_inclusive=False
        )
        self.log_name = log_name
        self._optimizer = None

    def on_train_begin(self, logs=None):
        optimizer = self.model.optimizer
        if optimizer is None:
            raise ValueError(
                "`GradientNormClipping` needs a compiled model with an "
                "optimizer. Call `model.compile(optimizer=...)` first."
            )
        for argument in ("clipnorm", "clipvalue", "global_clipnorm"):
            if getattr(optimizer, argument, None):
                raise ValueError(
                    f"The optimizer already clips gradients with "
                    f"`{argument}={getattr(optimizer, argument)}`. Remove it "
                    "and let `GradientNormClipping` do the clipping."
                )
        # The norm must live in an optimizer variable: on JAX the optimizer
        # update is stateless and only optimizer variables come back out.
        # Under a tf.distribute strategy it is mirrored; every replica
        # holds the same global norm, so the first replica's is written.
        with _strategy_scope(self.model):
            norm_variable = optimizer.add_variable(
                shape=(),
                dtype="float32",
                aggregation="only_first_replica",
                name="gradient_norm",
            )
        setattr(optimizer, _NORM_VARIABLE, norm_variable)
        max_norm = self.max_norm
        sums_replicas = keras.config.backend() == "tensorflow"

        def clip_gradients(grads):
            if sums_replicas:
                grads = _sum_over_replicas(grads)
            norm = ops.sqrt(
                sum(squared_norm(g) for g in grads if g is not None)
            )
            norm_variable.assign(norm)
            scale = ops.minimum(1.0, max_norm / ops.maximum(norm, 1e-12))
            # `ops.multiply` keeps sparse embedding gradients sparse, so
            # that the optimizer updates only the rows that were read.
            return [
                None if g is None else ops.multiply(g, ops.cast(scale, g.dtype))
                for g in grads
            ]

        # Keras optimizers route every update through `_clip_gradients`; an
        # instance attribute overrides it for this optimizer only.
        optimizer._clip_gradients = clip_gradients
        if sums_replicas:
            # The gradients were summed in `clip_gradients` already.
            optimizer._all_reduce_sum_gradients = list
        _hide_from_saving(optimizer, norm_variable)
        self._optimizer = optimizer
        self._epoch_norms = []
        self._force_retrace()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_norms = []

    def on_train_batch_end(self, batch, logs=None):
        norm = self._current_norm()
        self._epoch_norms.append(norm)
        if logs is not None:
            logs[self.log_name] = norm

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self._epoch_norms:
            logs[self.log_name] = sum(self._epoch_norms) / len(
                self._epoch_norms
            )

    def on_train_end(self, logs=None):
        optimizer = self._optimizer
        if optimizer is None:
            return
        norm_variable = getattr(optimizer, _NORM_VARIABLE)
        optimizer._variables = [
            v for v in optimizer._variables if v is not norm_variable
        ]
        del optimizer._clip_gradients
        optimizer.__dict__.pop("_all_reduce_sum_gradients", None)
        del optimizer.save_own_variables
        del optimizer.load_own_variables
        delattr(optimizer, _NORM_VARIABLE)
        self._optimizer = None
        self._force_retrace()

    def _current_norm(self):
        if keras.config.backend() == "jax":
            # JAX keeps the training state outside the variables until synced.
            self.model.jax_state_sync()
        return float(getattr(self._optimizer, _NORM_VARIABLE).numpy())

    def _force_retrace(self):
        # A train function compiled before (or during) this fit must be
        # rebuilt so that it sees the optimizer as it is now.
        self.model.train_function = None
        self.model.make_train_function(force=True)

    def get_config(self):
        return {"max_norm": self.max_norm, "log_name": self.log_name}


def _strategy_scope(model):
    # `distribute_strategy` exists on the TensorFlow backend only; `fit`
    # may run outside the strategy's scope, but the variable must be made
    # inside it to be mirrored.
    strategy = getattr(model, "distribute_strategy", None)
    if strategy is None:
        return contextlib.nullcontext()
    return strategy.scope()


def _sum_over_replicas(grads):
    """TensorFlow: the gradients summed over the replicas of a strategy.

    Inside a `tf.distribute` replica each gradient is that replica's share
    of the global one (Keras scales the loss by `1 / replicas`), so the
    norm of the global gradient needs the sum, not the shares' norms.
    """
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return grads
    present = [g for g in grads if g is not None]
    summed = iter(context.all_reduce(tf.distribute.ReduceOp.SUM, present))
    return [None if g is None else next(summed) for g in grads]


def _hide_from_saving(optimizer, hidden_variable):
    """Saves and loads the optimizer's variables without `hidden_variable`.

    Keras writes an optimizer's variables by position and refuses (with
    only a warning) to load a different number of them. The norm variable
    is the last one added, so leaving it out makes a checkpoint written
    during `fit` match a fresh optimizer, and lets a checkpoint written
    without it load into the optimizer during `fit`.
    """
    optimizer_class = type(optimizer)

    def without_hidden_variable(method):
        def call(store):
            variables = optimizer._variables
            optimizer._variables = [
                v for v in variables if v is not hidden_variable
            ]
            try:
                method(optimizer, store)
            finally:
                optimizer._variables = variables

        return call

    # Instance attributes: Keras's saving calls these on the object.
    optimizer.save_own_variables = without_hidden_variable(
        optimizer_class.save_own_variables
    )
    optimizer.load_own_variables = without_hidden_variable(
        optimizer_class.load_own_variables
    )


def squared_norm(gradient):
    """The squared L2 norm of a gradient, dense or sparse.

    TensorFlow gives embedding lookups sparse gradients (`IndexedSlices`:
    rows and their indices), where a row read twice appears twice. The norm
    of the dense gradient needs those rows summed first; the norm of the
    values alone would be too small. Summing into a dense table costs one
    pass over it, far less than a dense update would.
    """
    if not _is_indexed_slices(gradient):
        return ops.sum(ops.square(ops.cast(gradient, "float32")))
    rows = ops.segment_sum(
        ops.cast(gradient.values, "float32"),
        ops.reshape(gradient.indices, (-1,)),
        num_segments=gradient.dense_shape[0],
    )
    return ops.sum(ops.square(rows))


def _is_indexed_slices(gradient):
    # Duck-typed, so that this module does not import TensorFlow.
    return all(
        hasattr(gradient, name) for name in ("values", "indices", "dense_shape")
    )
