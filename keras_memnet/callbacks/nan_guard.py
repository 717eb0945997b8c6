import math
import warnings

import keras
import numpy as np

# Set on the model while a guard's failure stands, so that checkpointing
# callbacks can refuse to save (see `TrainingCheckpoint`).
FAILURE_ATTRIBUTE = "_keras_memnet_non_finite_failure"


class NonFiniteTrainingError(FloatingPointError):
    """Training met a non-finite loss or gradient norm and was stopped.

    Attributes:
        model: the model, holding the last good weights.
        history: the `History` dict up to the failure.
    """

    def __init__(self, message, model=None, history=None):
        super().__init__(message)
        self.model = model
        self.history = history


@keras.saving.register_keras_serializable(package="keras_memnet")
class NaNGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite loss or gradient norm.

    The earlier study of this model lost a week to NaNs that only showed
    in the final perplexities. This callback watches, after every batch,
    the logged quantities in `monitor` (by default the loss and the
    pre-clip `gradient_norm` of `keras_memnet.callbacks.GradientNormClipping`,
    which must come before it in the callback list), and at the end of each
    epoch the validation ones too. At the first NaN or infinity it:

    - stops training (`model.stop_training`);
    - puts back the last good weights: those at the end of the last epoch
      whose logs and weights were all finite (or at the start of `fit`);
    - warns with a message that says what went wrong and when, also kept
      in `failure` (`None` while all is well);
    - marks the model so that `keras_memnet.callbacks.TrainingCheckpoint`
      does not save over a good checkpoint.

    Args:
        monitor: logged names to check. Defaults to
            `("loss", "gradient_norm")`; at the end of an epoch their
            `val_` forms are checked too. Names missing from the logs are
            skipped.

    Example:

    ```python
    import keras
    import numpy as np
    from keras_memnet.callbacks import NaNGuard

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(1e6), loss="mse")
    guard = NaNGuard()
    model.fit(
        np.ones((64, 4)),
        1e6 * np.ones((64, 1)),
        epochs=3,
        batch_size=8,
        verbose=0,
        callbacks=[guard],
    )
    guard.failure  # "Non-finite loss (inf) at epoch 1, batch 3; ..."
    ```
    """

    def __init__(self, monitor=("loss", "gradient_norm")):
        super().__init__()
        if isinstance(monitor, str):
            monitor = (monitor,)
        if not monitor or not all(isinstance(m, str) for m in monitor):
            raise ValueError(
                "`monitor` must be a non-empty sequence of logged names. "
                f"Received: monitor={monitor!r}"
            )
        self.monitor = tuple(monitor)
        self.failure = None
        self._good_weights = None
        self._good_epoch = None
        self._epoch = 0

    def on_train_begin(self, logs=None):
        self.failure = None
        setattr(self.model, FAILURE_ATTRIBUTE, None)
        self._keep_weights_if_finite(epoch=None)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.failure is None:
            self._check(logs, self.monitor, f"batch {batch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        if self.failure is not None:
            # Again: JAX writes its training state back into the variables
            # when the epoch ends.
            self._restore_good_weights()
            return
        names = self.monitor + tuple(f"val_{name}" for name in self.monitor)
        self._check(logs, names, "its end")
        if self.failure is None:
            self._keep_weights_if_finite(epoch)

    def on_train_end(self, logs=None):
        if self.failure is not None:
            self._restore_good_weights()

    def _restore_good_weights(self):
        if self._good_weights is not None:
            self.model.set_weights(self._good_weights)

    def _check(self, logs, names, when):
        for name in names:
            value = (logs or {}).get(name)
            if value is None:
                continue
            value = float(value)
            if not math.isfinite(value):
                self._fail(f"{name} ({value})", when)
                return

    def _keep_weights_if_finite(self, epoch):
        weights = self.model.get_weights()
        if all(np.all(np.isfinite(w)) for w in weights if _is_float(w)):
            self._good_weights = weights
            self._good_epoch = epoch
        elif self._good_weights is not None:
            self._fail("weights", "its end")

    def _fail(self, what, when):
        if self._good_epoch is None:
            kept = "the weights from the start of training were put back"
        else:
            kept = (
                "the weights from the end of epoch "
                f"{self._good_epoch + 1} were put back"
            )
        self.failure = (
            f"Non-finite {what} at epoch {self._epoch + 1}, {when}; training "
            f"stopped and {kept}. Lower the learning rate or clip the "
            "gradients harder."
        )
        self._restore_good_weights()
        self.model.stop_training = True
        setattr(self.model, FAILURE_ATTRIBUTE, self.failure)
        warnings.warn(self.failure, RuntimeWarning, stacklevel=2)

    def get_config(self):
        return {"monitor": list(self.monitor)}


def _is_float(array):
    return np.issubdtype(np.asarray(array).dtype, np.floating)
