import math

import keras

from keras_memnet.utils.arguments import check_float


@keras.saving.register_keras_serializable(package="keras_memnet")
class PlateauAnnealing(keras.callbacks.Callback):
    """Divides the learning rate when validation stops improving.

    This is the annealing of Sukhbaatar et al., 2015, section 5 ("End-To-End
    Memory Networks"): after each epoch, if the monitored validation cost did
    not decrease, the learning rate is divided by `factor` (1.5 in the
    paper), and training stops once the learning rate falls below `min_lr`.
    As in the authors' code (facebook/MemNN, `MemN2N-lang-model`), an epoch
    counts as an improvement when its cost is below the *previous* epoch's
    cost by more than the relative tolerance `min_delta`.

    It differs from `keras.callbacks.ReduceLROnPlateau`, which compares with
    the best value so far and only clamps at `min_lr`, in that it stops
    training at the floor. Combine it with
    `keras.callbacks.EarlyStopping(restore_best_weights=True, patience=...)`
    to also keep the best weights, and with `keras.callbacks.ModelCheckpoint`
    to save them.

    A non-finite cost (NaN or infinity) never counts as an improvement: the
    rate is divided and the previous finite cost stays the reference.

    The previous cost is the callback's only state. It survives between
    calls of `fit` on the same callback, and `get_state` / `set_state`
    carry it across processes, so that a run resumed after a crash anneals
    exactly where an uninterrupted one would
    (`keras_memnet.callbacks.TrainingCheckpoint` does this). Call
    `reset_state()` to start afresh.

    Args:
        factor: float > 1. The learning rate is divided by this. Defaults to
            `1.5`.
        min_lr: float > 0. Training stops when the learning rate falls below
            it. Defaults to `1e-5` (note the paper's rates are for a summed
            loss; see `keras_memnet.recipes.MemN2NLMRecipe`).
        monitor: str. The logged quantity to watch. Defaults to `"val_loss"`.
        min_delta: float >= 0. Relative improvement needed to count as one.
            Defaults to `1e-4`, as in the paper's code.
        verbose: int. `1` prints a line whenever the rate changes.

    Example:

    ```python
    import keras
    import numpy as np
    from keras_memnet.callbacks import PlateauAnnealing

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    x, y = np.ones((16, 4)), np.ones((16, 1))
    model.fit(
        x,
        y,
        validation_data=(x, y),
        epochs=3,
        verbose=0,
        callbacks=[PlateauAnnealing(factor=1.5, min_lr=1e-5)],
    )
    ```
    """

    def __init__(
        self,
        factor=1.5,
        min_lr=1e-5,
        monitor="val_loss",
        min_delta=1e-4,
        verbose=0,
    ):
        super().__init__()
        self.factor = check_float(
            "factor", factor, minimum=1, min_inclusive=False
        )
        self.min_lr = check_float(
            "min_lr", min_lr, minimum=0, min_inclusive=False
        )
        self.monitor = monitor
        self.min_delta = check_float("min_delta", min_delta, minimum=0)
        self.verbose = verbose
        self.previous = None

    def reset_state(self):
        """Forgets the previous cost: the next epoch cannot anneal."""
        self.previous = None

    def get_state(self):
        """The state to resume from, a JSON-serialisable dict."""
        return {"previous": self.previous}

    def set_state(self, state):
        """Restores a state returned by `get_state`."""
        previous = state["previous"]
        self.previous = None if previous is None else float(previous)

    def on_train_begin(self, logs=None):
        _check_settable_learning_rate(self.model.optimizer)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        if self.monitor not in logs:
            raise ValueError(
                f"`PlateauAnnealing` monitors `{self.monitor}`, which is not "
                f"in the logs (available: {sorted(logs)}). Pass "
                "`validation_data` to `fit` or choose another `monitor`."
            )
        current = float(logs[self.monitor])
        optimizer = self.model.optimizer
        finite = math.isfinite(current)
        if not finite or (
            self.previous is not None
            and current > self.previous * (1.0 - self.min_delta)
        ):
            new_lr = learning_rate_value(optimizer) / self.factor
            optimizer.learning_rate = new_lr
            if self.verbose:
                print(
                    f"\nEpoch {epoch + 1}: {self.monitor} did not improve; "
                    f"learning rate divided by {self.factor:g} to {new_lr:.4g}."
                )
            if new_lr < self.min_lr:
                if self.verbose:
                    print(
                        f"Learning rate {new_lr:.4g} is below min_lr="
                        f"{self.min_lr:g}; stopping."
                    )
                self.model.stop_training = True
        if finite:
            self.previous = current
        logs["learning_rate"] = learning_rate_value(optimizer)

    def get_config(self):
        return {
            "factor": self.factor,
            "min_lr": self.min_lr,
            "monitor": self.monitor,
            "min_delta": self.min_delta,
            "verbose": self.verbose,
        }


def learning_rate_value(optimizer):
    """The optimizer's learning rate as a Python float.

    Under a `tf.distribute` strategy the rate is a `MirroredVariable`,
    which `float()` refuses; every backend's variable has `numpy()`.
    """
    value = optimizer.learning_rate
    return float(value.numpy() if hasattr(value, "numpy") else value)


def _check_settable_learning_rate(optimizer):
    if optimizer is None:
        raise ValueError(
            "This callback needs a compiled model with an optimizer. Call "
            "`model.compile(optimizer=...)` first."
        )
    if isinstance(
        optimizer._learning_rate,
        keras.optimizers.schedules.LearningRateSchedule,
    ) or callable(optimizer._learning_rate):
        raise ValueError(
            "This callback sets the learning rate itself, but the optimizer "
            "uses a learning-rate schedule. Pass a float `learning_rate`."
        )
