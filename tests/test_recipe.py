import keras
import pytest

from keras_memnet.callbacks import GradientNormClipping
from keras_memnet.callbacks import PlateauAnnealing
from keras_memnet.recipes import MemN2NLMRecipe


def test_paper_settings_scaled_for_a_mean_loss():
    recipe = MemN2NLMRecipe()
    assert recipe.learning_rate == pytest.approx(1.28)
    assert recipe.max_norm == pytest.approx(50 / 128)
    assert recipe.min_learning_rate == pytest.approx(1.28e-3)
    optimizer = recipe.optimizer()
    assert isinstance(optimizer, keras.optimizers.SGD)
    assert float(optimizer.learning_rate) == pytest.approx(1.28)
    clipping, annealing = recipe.callbacks()
    assert isinstance(clipping, GradientNormClipping)
    assert clipping.max_norm == pytest.approx(0.390625)
    assert isinstance(annealing, PlateauAnnealing)
    assert annealing.factor == 1.5
    assert annealing.min_lr == pytest.approx(1.28e-3)


def test_mean_loss_sgd_step_equals_summed_loss_step():
    """lr * batch on the mean loss gives the paper's summed-loss update."""
    import numpy as np

    batch = 16
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, 4)).astype("float32")
    y = rng.integers(0, 3, batch)
    updates = []
    for loss_reduction, lr in (("sum", 0.01), ("sum_over_batch_size", 0.01 * batch)):
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        start = keras.ops.convert_to_numpy(model.weights[0]).copy()
        model.compile(
            optimizer=keras.optimizers.SGD(lr),
            loss=keras.losses.SparseCategoricalCrossentropy(
                from_logits=True, reduction=loss_reduction
            ),
        )
        model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)
        updates.append(keras.ops.convert_to_numpy(model.weights[0]) - start)
    np.testing.assert_allclose(updates[0], updates[1], rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("name, lr", [("adagrad", 0.05), ("adam", 1e-3)])
def test_adaptive_optimizers(name, lr):
    recipe = MemN2NLMRecipe(optimizer=name)
    assert recipe.learning_rate == lr
    assert recipe.optimizer().__class__.__name__.lower() == name


def test_learning_rate_override_keeps_the_floor_ratio():
    recipe = MemN2NLMRecipe(batch_size=32, learning_rate=0.5)
    assert recipe.learning_rate == 0.5
    assert recipe.min_learning_rate == pytest.approx(0.5e-3)
    assert recipe.max_norm == pytest.approx(50 / 32)


def test_config_round_trip():
    recipe = MemN2NLMRecipe(batch_size=64, optimizer="adam")
    clone = MemN2NLMRecipe.from_config(recipe.get_config())
    assert clone.get_config() == recipe.get_config()


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(batch_size=0), "batch_size"),
        (dict(optimizer="rmsprop"), "optimizer"),
        (dict(summed_max_norm=0), "summed_max_norm"),
        (dict(learning_rate=-1.0), "learning_rate"),
    ],
)
def test_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MemN2NLMRecipe(**kwargs)
