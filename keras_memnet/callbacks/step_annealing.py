import math

import keras

from keras_memnet.callbacks.plateau_annealing import (
    _check_settable_learning_rate,
)
from keras_memnet.callbacks.plateau_annealing import learning_rate_value
from keras_memnet.utils.arguments import check_float


@keras.saving.register_keras_serializable(package="keras_memnet")
class StepAnnealing(keras.callbacks.Callback):
    """Divides the learning rate by a fixed factor at fixed intervals.

    The fixed schedules of the two papers this package follows:

    - Sukhbaatar et al., 2015 (bAbI, section 4.2): the rate is halved every
      25 epochs: `StepAnnealing(every=25, factor=2.0)`.
    - Sutskever et al., 2014 (section 3.4): after 5 epochs the rate is halved
      every half epoch: `StepAnnealing(every=0.5, factor=2.0, start=5)`.

    The rate at training progress `p` (in epochs, counting finished batches)
    is `initial_lr / factor ** n` with `n = floor((p - start) / every)` for
    `p >= start + every` and `n = 0` before, so the first division happens
    at epoch `start + every`. `initial_lr` is the optimizer's rate when
    training first begins. Fractional `every` or `start` need a known number
    of steps per epoch (`steps_per_epoch`, or a dataset of known size).

    Args:
        every: float > 0. Epochs between divisions. Defaults to `25`.
        factor: float > 1. Divisor of each step. Defaults to `2.0`.
        start: float >= 0. Epoch at which the schedule starts counting.
            Defaults to `0`.
        verbose: int. `1` prints a line whenever the rate changes.

    Example:

    ```python
    import keras
    import numpy as np
    from keras_memnet.callbacks import StepAnnealing

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    model.fit(
        np.ones((16, 4)),
        np.ones((16, 1)),
        epochs=4,
        verbose=0,
        callbacks=[StepAnnealing(every=2, factor=2.0)],
    )
    float(model.optimizer.learning_rate)  # 0.005
    ```
    """

    def __init__(self, every=25, factor=2.0, start=0, verbose=0):
        super().__init__()
        check_float("every", every, minimum=0, min_inclusive=False)
        self.every = every
        self.factor = check_float(
            "factor", factor, minimum=1, min_inclusive=False
        )
        check_float("start", start, minimum=0)
        self.start = start
        self.verbose = verbose
        self.initial_lr = None
        self._divisions = 0
        self._epoch = 0

    def on_train_begin(self, logs=None):
        optimizer = self.model.optimizer
        _check_settable_learning_rate(optimizer)
        if self.initial_lr is None:
            self.initial_lr = learning_rate_value(optimizer)
        self._steps = self.params.get("steps") if self.params else None
        fractional = any(float(v) != int(v) for v in (self.every, self.start))
        if fractional and not self._steps:
            raise ValueError(
                f"`StepAnnealing(every={self.every}, start={self.start})` "
                "changes the rate within an epoch, which needs the number of "
                "steps per epoch. Pass `steps_per_epoch` to `fit`, or use a "
                "dataset of known size."
            )

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._update(epoch)

    def on_train_batch_begin(self, batch, logs=None):
        if self._steps:
            self._update(self._epoch + batch / self._steps)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = learning_rate_value(self.model.optimizer)

    def _update(self, progress):
        divisions = 0
        if progress >= self.start + self.every:
            divisions = math.floor((progress - self.start) / self.every + 1e-9)
        if divisions != self._divisions:
            self._divisions = divisions
            new_lr = self.initial_lr / self.factor**divisions
            self.model.optimizer.learning_rate = new_lr
            if self.verbose:
                print(f"\nStepAnnealing: learning rate set to {new_lr:.4g}.")

    def get_config(self):
        return {
            "every": self.every,
            "factor": self.factor,
            "start": self.start,
            "verbose": self.verbose,
        }
