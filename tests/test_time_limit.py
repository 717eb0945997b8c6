import time

import keras
import numpy as np
import pytest

from keras_memnet.callbacks import TimeLimit


def fit(callbacks, epochs, batches_per_epoch=4, seconds_per_batch=0.0):
    """Fits a tiny model; each batch takes at least `seconds_per_batch`."""
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    slow = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: time.sleep(seconds_per_batch)
    )
    x = np.ones((2 * batches_per_epoch, 3), dtype="float32")
    history = model.fit(
        x,
        np.ones((2 * batches_per_epoch, 1), dtype="float32"),
        batch_size=2,
        epochs=epochs,
        verbose=0,
        callbacks=[slow, *callbacks],
    )
    return len(history.history["loss"])


def test_tiny_limit_stops_early():
    limit = TimeLimit(seconds=0.1)
    epochs_run = fit([limit], epochs=50, seconds_per_batch=0.03)
    # Four batches take at least 0.12 s, so the limit is passed within the
    # first epoch (with the first, compiling batch possibly already over).
    assert limit.stopped_early
    assert epochs_run == 1
    assert 1 <= limit.steps <= 4
    assert limit.elapsed > 0.1


def test_big_limit_runs_all_epochs():
    limit = TimeLimit(seconds=3600)
    assert fit([limit], epochs=3) == 3
    assert not limit.stopped_early
    assert limit.steps == 3 * 4
    assert 0 < limit.elapsed < 3600


def test_step_limit_and_fresh_count_per_fit():
    limit = TimeLimit(seconds=3600, max_steps=6)
    assert fit([limit], epochs=5) == 2
    assert limit.stopped_early and limit.steps == 6
    # A second fit counts its own steps and time.
    assert fit([limit], epochs=1) == 1
    assert limit.steps == 4 and not limit.stopped_early


def test_config_round_trip():
    limit = TimeLimit(seconds=90, max_steps=10, verbose=1)
    config = limit.get_config()
    assert config == {"seconds": 90.0, "max_steps": 10, "verbose": 1}
    assert TimeLimit.from_config(config).get_config() == config
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(limit)
    )
    assert isinstance(restored, TimeLimit)
    assert restored.get_config() == config


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(seconds=0), "`seconds` must be a number > 0"),
        (dict(seconds="60"), "`seconds` must be a number > 0"),
        (dict(seconds=60, max_steps=0), "`max_steps` must be an integer >= 1"),
        (dict(seconds=60, max_steps=2.5), "max_steps"),
    ],
)
def test_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TimeLimit(**kwargs)


class _SlowWorkWhilePaused(keras.callbacks.Callback):
    """Sleeps inside `limit.paused()` after every batch."""

    def __init__(self, limit, seconds):
        super().__init__()
        self.limit = limit
        self.seconds = seconds

    def on_train_batch_end(self, batch, logs=None):
        with self.limit.paused():
            time.sleep(self.seconds)


def test_paused_time_does_not_count():
    limit = TimeLimit(seconds=1.5)
    # 12 batches pause for 0.2 s each: 2.4 s that would pass the limit
    # if they counted.
    epochs_run = fit([limit, _SlowWorkWhilePaused(limit, 0.2)], epochs=3)
    assert epochs_run == 3 and not limit.stopped_early
    assert limit.elapsed < 1.5
