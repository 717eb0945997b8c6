import warnings

import keras
import numpy as np
import pytest

from keras_memnet.callbacks import GradientNormClipping
from keras_memnet.callbacks import NaNGuard
from keras_memnet.callbacks import PlateauAnnealing
from keras_memnet.callbacks import StepAnnealing
from keras_memnet.callbacks import TrainingCheckpoint


def linear_model(lr=0.1, **optimizer_kwargs):
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(1, use_bias=False)]
    )
    model.layers[0].kernel.assign(np.zeros((3, 1), dtype="float32"))
    model.compile(
        optimizer=keras.optimizers.SGD(lr, **optimizer_kwargs), loss="mse"
    )
    return model


def test_logs_pre_clip_norm_and_clips_the_update():
    model = linear_model(lr=0.1)
    x = np.array([[1.0, 2.0, 2.0]], dtype="float32")
    y = np.array([[3.0]], dtype="float32")
    # mse gradient at w = 0: 2 * (0 - 3) * x = [-6, -12, -12], norm 18.
    history = model.fit(
        x, y, epochs=1, verbose=0, callbacks=[GradientNormClipping(1.5)]
    )
    np.testing.assert_allclose(history.history["gradient_norm"], [18.0])
    kernel = keras.ops.convert_to_numpy(model.layers[0].kernel)[:, 0]
    # The step is lr * 1.5 along the gradient's direction.
    np.testing.assert_allclose(kernel, 0.1 * 1.5 * np.array([1, 2, 2]) / 3)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_norm_of_embedding_gradients_counts_repeated_rows(jit_compile):
    # On TensorFlow an embedding's gradient is sparse, with one row per
    # lookup: rows read twice must be summed before taking the norm.
    model = keras.Sequential(
        [
            keras.Input((3,), dtype="int32"),
            keras.layers.Embedding(5, 2, embeddings_initializer="zeros"),
            keras.layers.GlobalAveragePooling1D(),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss="mse",
        jit_compile=jit_compile,
    )
    ids = np.array([[1, 1, 3]], dtype="int32")
    y = np.array([[3.0, 3.0]], dtype="float32")
    history = model.fit(
        ids, y, epochs=1, verbose=0, callbacks=[GradientNormClipping(1.0)]
    )
    # The output is the mean of the 3 rows read; mse's gradient there is
    # -y, so row 1 gets 2/3 * -y and row 3 gets 1/3 * -y.
    dense_gradient = np.zeros((5, 2), dtype="float32")
    dense_gradient[1], dense_gradient[3] = -2.0, -1.0
    norm = np.linalg.norm(dense_gradient)
    np.testing.assert_allclose(
        history.history["gradient_norm"], [norm], rtol=1e-5
    )
    embeddings = keras.ops.convert_to_numpy(model.layers[0].embeddings)
    np.testing.assert_allclose(
        embeddings, -0.1 * dense_gradient / norm, rtol=1e-5, atol=1e-7
    )


def test_small_gradients_are_untouched_and_optimizer_is_restored():
    model = linear_model(lr=0.1)
    variables_before = len(model.optimizer.variables)
    x = np.array([[0.1, 0.0, 0.0]], dtype="float32")
    y = np.array([[0.5]], dtype="float32")
    model.fit(x, y, epochs=1, verbose=0, callbacks=[GradientNormClipping(10)])
    kernel = keras.ops.convert_to_numpy(model.layers[0].kernel)[:, 0]
    np.testing.assert_allclose(kernel, [0.1 * 2 * 0.5 * 0.1, 0, 0], rtol=1e-5)
    assert len(model.optimizer.variables) == variables_before
    assert "_clip_gradients" not in vars(model.optimizer)
    # A later fit without the callback does not clip.
    model.fit(x * 100, y, epochs=1, verbose=0)


def test_nan_gradients_show_in_the_logs():
    model = linear_model()
    x = np.array([[np.nan, 1.0, 1.0]], dtype="float32")
    history = model.fit(
        x,
        np.ones((1, 1)),
        epochs=1,
        verbose=0,
        callbacks=[GradientNormClipping(1.0)],
    )
    assert np.isnan(history.history["gradient_norm"][0])


def test_refuses_a_second_clipping_setting():
    model = linear_model(global_clipnorm=1.0)
    with pytest.raises(ValueError, match="global_clipnorm"):
        model.fit(
            np.ones((2, 3)),
            np.ones((2, 1)),
            verbose=0,
            callbacks=[GradientNormClipping(1.0)],
        )


def test_mid_fit_checkpoints_hold_the_whole_optimizer_state(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    x, y = np.ones((8, 3), "float32"), np.zeros((8, 2), "float32")
    path = str(tmp_path / "mid_fit.keras")
    with warnings.catch_warnings():
        # Keras only warns when it skips an optimizer's variables.
        warnings.simplefilter("error", UserWarning)
        model.fit(
            x,
            y,
            batch_size=2,
            epochs=2,
            verbose=0,
            callbacks=[
                GradientNormClipping(1.0),
                keras.callbacks.ModelCheckpoint(path),
            ],
        )
        restored = keras.saving.load_model(path)
    expected = [v.numpy() for v in model.optimizer.variables]
    assert len(expected) == len(restored.optimizer.variables)
    for want, variable in zip(expected, restored.optimizer.variables):
        np.testing.assert_array_equal(variable.numpy(), want)
    # Iterations, and Adam's moments, were restored.
    assert int(restored.optimizer.iterations.numpy()) == 8


def test_backup_listed_before_clipping_restores_the_annealed_rate(tmp_path):
    backup = str(tmp_path / "backup")
    x, y = np.ones((4, 3), "float32"), np.ones((4, 1), "float32")

    def fit(epochs, callbacks=()):
        model = linear_model(lr=0.1)
        model.fit(
            x,
            y,
            epochs=epochs,
            verbose=0,
            callbacks=[
                *callbacks,
                keras.callbacks.BackupAndRestore(
                    backup, delete_checkpoint=False
                ),
                GradientNormClipping(1.0),
            ],
        )
        return model

    class Halve(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.optimizer.learning_rate = 0.05

    first = fit(1, [Halve()])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        resumed = fit(2)
    assert float(resumed.optimizer.learning_rate) == pytest.approx(0.05)
    assert int(resumed.optimizer.iterations.numpy()) == 2
    assert int(first.optimizer.iterations.numpy()) == 1


@pytest.mark.parametrize("max_norm", [0, -1.0, float("inf"), "5"])
def test_rejects_bad_max_norm(max_norm):
    with pytest.raises(ValueError, match="max_norm"):
        GradientNormClipping(max_norm)


class FakeModel:
    def __init__(self, lr):
        self.optimizer = keras.optimizers.SGD(lr)
        self.stop_training = False


def run_epochs(callback, model, values, monitor="val_loss"):
    callback.set_model(model)
    callback.on_train_begin()
    rates = []
    for epoch, value in enumerate(values):
        logs = {monitor: value}
        callback.on_epoch_end(epoch, logs)
        rates.append(logs["learning_rate"])
        if model.stop_training:
            break
    return rates


def test_plateau_annealing_divides_when_cost_does_not_improve():
    model = FakeModel(lr=1.5)
    rates = run_epochs(
        PlateauAnnealing(factor=1.5, min_lr=1e-5),
        model,
        [5.0, 4.0, 4.0, 3.0, 3.5, 3.4],
    )
    # Compared with the previous epoch, as in the paper's code.
    np.testing.assert_allclose(
        rates, [1.5, 1.5, 1.0, 1.0, 2 / 3, 2 / 3], rtol=1e-6
    )
    assert not model.stop_training


def test_plateau_annealing_nan_is_not_an_improvement():
    model = FakeModel(lr=1.0)
    rates = run_epochs(
        PlateauAnnealing(factor=2.0, min_lr=1e-5),
        model,
        [5.0, float("nan"), 4.0, float("inf")],
    )
    # NaN anneals and is no reference: 4.0 improves on 5.0.
    np.testing.assert_allclose(rates, [1.0, 0.5, 0.5, 0.25])


def test_plateau_annealing_state_survives_fits_and_processes():
    model = FakeModel(lr=1.0)
    annealing = PlateauAnnealing(factor=2.0)
    run_epochs(annealing, model, [5.0])
    # A second fit (or a resumed run) compares with the last epoch.
    assert run_epochs(annealing, model, [6.0]) == [0.5]
    state = annealing.get_state()
    resumed = PlateauAnnealing(factor=2.0)
    resumed.set_state(state)
    assert run_epochs(resumed, model, [7.0]) == [0.25]
    resumed.reset_state()
    assert run_epochs(resumed, model, [8.0]) == [0.25]


def diverging_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(1e3), loss="mse")
    return model


def test_nan_guard_stops_and_keeps_the_last_good_weights():
    model = diverging_model()
    x = np.ones((32, 3), "float32")
    y = np.full((32, 1), 1e3, "float32")
    good = []

    class KeepFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                good.append(self.model.get_weights())

    # An epoch of one step stays finite; then the steps explode.
    model.fit(x[:1], y[:1], verbose=0, callbacks=[KeepFirstEpoch()])
    guard = NaNGuard()
    with pytest.warns(RuntimeWarning, match="Non-finite loss"):
        history = model.fit(
            x, y, batch_size=4, epochs=5, verbose=0, callbacks=[guard]
        )
    assert len(history.history["loss"]) == 1
    assert guard.failure.startswith("Non-finite loss (")
    assert "at epoch 1, batch" in guard.failure
    assert "weights from the start of training were put back" in (guard.failure)
    for want, got in zip(good[0], model.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_nan_guard_catches_a_nan_gradient_norm():
    model = linear_model()
    x = np.array([[np.nan, 1.0, 1.0]], dtype="float32")
    guard = NaNGuard(monitor="gradient_norm")
    with pytest.warns(RuntimeWarning, match="gradient_norm"):
        model.fit(
            x,
            np.ones((1, 1)),
            epochs=2,
            verbose=0,
            callbacks=[GradientNormClipping(1.0), guard],
        )
    assert "Non-finite gradient_norm (nan) at epoch 1, batch 1" in (
        guard.failure
    )
    assert np.all(np.isfinite(model.get_weights()[0]))


def test_nan_guard_rejects_bad_monitor():
    with pytest.raises(ValueError, match="monitor"):
        NaNGuard(monitor=())


def test_training_checkpoint_never_saves_after_a_nan(tmp_path):
    model = diverging_model()
    x = np.ones((4, 3), "float32")
    y = np.full((4, 1), 1e3, "float32")
    guard = NaNGuard()
    checkpoint = TrainingCheckpoint(str(tmp_path), [])
    # One step an epoch: finite for 4 epochs, then the loss overflows.
    with pytest.warns(RuntimeWarning, match="Non-finite loss"):
        history = model.fit(
            x, y, epochs=8, verbose=0, callbacks=[guard, checkpoint]
        )
    good_epochs = len(history.history["loss"]) - 1
    assert good_epochs >= 2
    assert f"end of epoch {good_epochs} were put back" in guard.failure
    metadata = (tmp_path / "training_metadata.json").read_text()
    assert f'"epoch": {good_epochs},' in metadata
    saved = diverging_model()
    saved.load_weights(tmp_path / "latest.weights.h5")
    for want, got in zip(model.get_weights(), saved.get_weights()):
        assert np.all(np.isfinite(got))
        np.testing.assert_array_equal(got, want)
    assert not (tmp_path / "final.weights.h5").exists()


def test_training_checkpoint_resumes_callback_state(tmp_path):
    x, y = np.ones((4, 3), "float32"), np.ones((4, 1), "float32")

    class Crash(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    def fit(epochs, crash=()):
        model = linear_model(lr=0.01)
        annealing = PlateauAnnealing(monitor="loss", min_delta=0.5)
        stopping = keras.callbacks.EarlyStopping(
            "loss", patience=10, restore_best_weights=True
        )
        checkpoint = TrainingCheckpoint(str(tmp_path), [annealing, stopping])
        model.fit(
            x,
            y,
            epochs=epochs,
            verbose=0,
            callbacks=[annealing, stopping, checkpoint, *crash],
        )
        return model, annealing, stopping, checkpoint

    with pytest.raises(KeyboardInterrupt):
        fit(3, [Crash()])
    model, annealing, stopping, checkpoint = fit(3)
    assert checkpoint.resumed_epoch == 2
    assert len(checkpoint.history["loss"]) == 3
    # Without the restored reference, epoch 3 could not have annealed.
    assert (
        checkpoint.history["learning_rate"][2]
        < (checkpoint.history["learning_rate"][1])
    )
    assert stopping.best_weights is not None
    assert stopping.best_epoch == 2


def test_plateau_annealing_stops_below_the_floor():
    model = FakeModel(lr=0.01)
    rates = run_epochs(
        PlateauAnnealing(factor=2.0, min_lr=0.004), model, [1.0] * 10
    )
    assert model.stop_training
    np.testing.assert_allclose(rates, [0.01, 0.005, 0.0025], rtol=1e-6)


def test_plateau_annealing_names_a_missing_monitor():
    callback = PlateauAnnealing()
    callback.set_model(FakeModel(0.1))
    callback.on_train_begin()
    with pytest.raises(ValueError, match="val_loss.*validation_data"):
        callback.on_epoch_end(0, {"loss": 1.0})


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(factor=1.0), "factor"),
        (dict(min_lr=0), "min_lr"),
        (dict(min_delta=-1), "min_delta"),
    ],
)
def test_plateau_annealing_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        PlateauAnnealing(**kwargs)


def test_step_annealing_every_n_epochs():
    model = linear_model(lr=0.08)
    rates = []
    recorder = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: rates.append(
            float(model.optimizer.learning_rate)
        )
    )
    model.fit(
        np.ones((4, 3)),
        np.ones((4, 1)),
        epochs=7,
        verbose=0,
        callbacks=[StepAnnealing(every=2, factor=2.0), recorder],
    )
    np.testing.assert_allclose(
        rates, [0.08, 0.08, 0.04, 0.04, 0.02, 0.02, 0.01], rtol=1e-6
    )


class RateRecorder(keras.callbacks.Callback):
    """The rate each batch starts with, read through `self.model`: on JAX
    that syncs the training state first (mid-epoch, the optimizer's own
    variables hold no value)."""

    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_begin(self, batch, logs=None):
        self.rates.append(float(self.model.optimizer.learning_rate))


def test_step_annealing_every_half_epoch_after_a_start():
    """Sutskever et al.: after 5 epochs, halve every half epoch."""
    model = linear_model(lr=0.8)
    recorder = RateRecorder()
    model.fit(
        np.ones((4, 3)),
        np.ones((4, 1)),
        batch_size=1,
        epochs=7,
        verbose=0,
        callbacks=[StepAnnealing(every=0.5, factor=2.0, start=5), recorder],
    )
    per_epoch = np.array(recorder.rates).reshape(7, 4)
    np.testing.assert_allclose(per_epoch[:5], 0.8, rtol=1e-6)
    np.testing.assert_allclose(per_epoch[5], [0.8, 0.8, 0.4, 0.4], rtol=1e-6)
    np.testing.assert_allclose(per_epoch[6], [0.2, 0.2, 0.1, 0.1], rtol=1e-6)


def test_step_annealing_needs_steps_for_fractions():
    import tensorflow as tf

    model = linear_model()
    unknown_size = (
        tf.data.Dataset.from_tensors((np.ones((1, 3)), np.ones((1, 1))))
        .repeat(2)
        .filter(lambda x, y: True)
    )
    with pytest.raises(ValueError, match="steps per epoch"):
        model.fit(
            unknown_size,
            epochs=1,
            verbose=0,
            callbacks=[StepAnnealing(every=0.5)],
        )


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(every=0), "every"),
        (dict(factor=0.5), "factor"),
        (dict(start=-1), "start"),
    ],
)
def test_step_annealing_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        StepAnnealing(**kwargs)


def test_callbacks_refuse_learning_rate_schedules():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mse")
    with pytest.raises(ValueError, match="schedule"):
        model.fit(
            np.ones((2, 3)),
            np.ones((2, 1)),
            verbose=0,
            callbacks=[StepAnnealing(every=1)],
        )
