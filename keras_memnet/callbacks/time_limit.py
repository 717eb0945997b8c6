import contextlib
import time

import keras

from keras_memnet.utils.arguments import check_float
from keras_memnet.utils.arguments import check_int


@keras.saving.register_keras_serializable(package="keras_memnet")
class TimeLimit(keras.callbacks.Callback):
    """Stops `fit` once a wall-clock time limit (or a step count) is passed.

    The limit is checked after every training batch and at the end of every
    epoch, so validation time counts too; training stops after the batch
    or epoch that passes it. The clock starts when training begins, and
    each `fit` call starts it (and the step count) afresh.

    After `fit`, the callback reports what happened:

    - `steps`: training batches run in the last `fit`;
    - `elapsed`: seconds since that `fit` began training (updated after
      every batch and epoch, and when training ends);
    - `stopped_early`: whether this callback stopped training.

    `with limit.paused():` stops the clock, for work inside `fit` that
    should not count (a learning curve scored from another callback).

    `get_state` / `set_state` carry the budget over a resume: listed
    before a `keras_memnet.callbacks.TrainingCheckpoint` that is given
    this callback, a run restarted from a checkpoint goes on with the
    steps and training seconds of the checkpointed epochs already spent
    (the time lost in the epoch that was killed, and the time to start
    again, are not counted), so the resumed run stops where an
    uninterrupted one would have, give or take the clock.

    Args:
        seconds: number > 0. The wall-clock limit, in seconds.
        max_steps: int >= 1 or `None`. Also stop after this many training
            batches. Defaults to `None` (no step limit).
        verbose: int. `1` prints a line when the callback stops training.

    Example:

    ```python
    import keras
    import numpy as np
    from keras_memnet.callbacks import TimeLimit

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    limit = TimeLimit(seconds=60.0, max_steps=3)
    model.fit(
        np.ones((16, 4)),
        np.ones((16, 1)),
        batch_size=4,
        epochs=5,
        verbose=0,
        callbacks=[limit],
    )
    limit.steps, limit.stopped_early  # (3, True)
    ```
    """

    def __init__(self, seconds, max_steps=None, verbose=0):
        super().__init__()
        self.seconds = check_float(
            "seconds", seconds, minimum=0, min_inclusive=False
        )
        self.max_steps = check_int(
            "max_steps", max_steps, minimum=1, allow_none=True
        )
        self.verbose = verbose
        self.steps = 0
        self.elapsed = 0.0
        self.stopped_early = False
        self._started = None

    def get_state(self):
        """The steps and seconds spent so far, a JSON-serialisable dict."""
        return {"steps": self.steps, "elapsed": self._seconds_so_far()}

    def set_state(self, state):
        """Continues the budget of a `get_state` (call after
        `on_train_begin`, as `TrainingCheckpoint` does)."""
        self.steps = int(state["steps"])
        # Moving the start back makes the resumed seconds count.
        self._started = time.monotonic() - float(state["elapsed"])
        self.elapsed = float(state["elapsed"])

    def on_train_begin(self, logs=None):
        # A monotonic clock: unaffected by changes of the system time.
        self._started = time.monotonic()
        self.steps = 0
        self.elapsed = 0.0
        self.stopped_early = False

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        self._stop_if_over()

    def on_epoch_end(self, epoch, logs=None):
        self._stop_if_over()

    def on_train_end(self, logs=None):
        self.elapsed = time.monotonic() - self._started

    @contextlib.contextmanager
    def paused(self):
        """Stops the clock for the duration of a `with` block.

        For work done inside `fit` that is not training, such as scoring
        a learning curve from a callback: the time it takes does not count
        against the limit, nor in `elapsed`.
        """
        paused_at = time.monotonic()
        try:
            yield
        finally:
            self._started += time.monotonic() - paused_at

    def _seconds_so_far(self):
        if self._started is None:
            return self.elapsed
        return time.monotonic() - self._started

    def _stop_if_over(self):
        self.elapsed = time.monotonic() - self._started
        over_time = self.elapsed > self.seconds
        over_steps = self.max_steps is not None and (
            self.steps >= self.max_steps
        )
        if (over_time or over_steps) and not self.model.stop_training:
            self.model.stop_training = True
            self.stopped_early = True
            if self.verbose:
                reason = (
                    f"{self.seconds:g} s"
                    if over_time
                    else f"{self.max_steps} steps"
                )
                print(
                    f"\nTimeLimit: stopped after {self.steps} steps and "
                    f"{self.elapsed:.1f} s (limit {reason})."
                )

    def get_config(self):
        return {
            "seconds": self.seconds,
            "max_steps": self.max_steps,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
