import keras
import pytest

from keras_memnet.callbacks import GradientNormClipping
from keras_memnet.callbacks import NaNGuard
from keras_memnet.callbacks import PlateauAnnealing
from keras_memnet.recipes import MemN2NLMRecipe


def test_default_recipe_is_adam_in_the_sequence_form():
    recipe = MemN2NLMRecipe()
    assert recipe.sequence_length == MemN2NLMRecipe.DEFAULT_SEQUENCE_LENGTH
    assert isinstance(recipe.optimizer(), keras.optimizers.Adam)
    assert recipe.learning_rate == pytest.approx(2e-3)
    assert recipe.max_norm == pytest.approx(1.0)
    clipping, guard, annealing = recipe.callbacks()
    assert clipping.max_norm == pytest.approx(1.0)
    # Halved on a plateau, down to the same ratio as the paper's floor.
    assert annealing.factor == 2.0
    assert annealing.min_lr == pytest.approx(2e-6)
    clone = MemN2NLMRecipe.from_config(recipe.get_config())
    assert clone.get_config() == recipe.get_config()


def test_paper_recipe_scales_by_targets_per_step():
    recipe = MemN2NLMRecipe.paper()
    targets = 128 * MemN2NLMRecipe.PAPER_SEQUENCE_LENGTH
    scale = MemN2NLMRecipe.DEFAULT_SEQUENCE_LR_SCALE
    assert recipe.sequence_length == MemN2NLMRecipe.PAPER_SEQUENCE_LENGTH
    assert recipe.optimizer_name == "sgd"
    assert recipe.learning_rate == pytest.approx(0.01 * targets * scale)
    assert recipe.max_norm == pytest.approx(50 / targets)
    # The stopping floor keeps its ratio to the starting rate.
    assert recipe.min_learning_rate == pytest.approx(
        recipe.learning_rate / 1000
    )
    clone = MemN2NLMRecipe.from_config(recipe.get_config())
    assert clone.get_config() == recipe.get_config()
    with pytest.raises(ValueError, match="sequence_length"):
        MemN2NLMRecipe(sequence_length=0)
    with pytest.raises(ValueError, match="sequence_lr_scale"):
        MemN2NLMRecipe(sequence_lr_scale=0)


def test_paper_settings_scaled_for_a_mean_loss():
    recipe = MemN2NLMRecipe.paper(sequence_length=None)
    assert recipe.learning_rate == pytest.approx(1.28)
    assert recipe.max_norm == pytest.approx(50 / 128)
    assert recipe.min_learning_rate == pytest.approx(1.28e-3)
    optimizer = recipe.optimizer()
    assert isinstance(optimizer, keras.optimizers.SGD)
    assert float(optimizer.learning_rate) == pytest.approx(1.28)
    clipping, guard, annealing = recipe.callbacks()
    assert isinstance(clipping, GradientNormClipping)
    # After the clipping, whose logged norm it checks.
    assert isinstance(guard, NaNGuard)
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
    for loss_reduction, lr in (
        ("sum", 0.01),
        ("sum_over_batch_size", 0.01 * batch),
    ):
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


@pytest.mark.parametrize("name, lr", [("adagrad", 0.05), ("adam", 2e-3)])
def test_adaptive_optimizers(name, lr):
    recipe = MemN2NLMRecipe(optimizer=name)
    assert recipe.learning_rate == lr
    assert recipe.optimizer().__class__.__name__.lower() == name


@pytest.mark.parametrize("name, lr", [("adagrad", 0.05), ("adam", 1e-3)])
def test_paper_recipe_with_the_study_optimizers(name, lr):
    # The earlier study's rows: the paper's clipping and annealing.
    recipe = MemN2NLMRecipe.paper(optimizer=name)
    assert recipe.learning_rate == lr
    assert recipe.max_norm == pytest.approx(50 / (128 * 4))
    assert recipe.anneal_factor == 1.5
    assert recipe.optimizer().__class__.__name__.lower() == name


def test_learning_rate_override_keeps_the_floor_ratio():
    recipe = MemN2NLMRecipe.paper(
        batch_size=32, sequence_length=None, learning_rate=0.5
    )
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
        (dict(max_norm=0), "max_norm"),
        (dict(anneal_factor=1.0), "anneal_factor"),
    ],
)
def test_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MemN2NLMRecipe(**kwargs)


def test_train_memn2n_lm_sequence_perplexity_equals_window_form():
    """The run's perplexity in sequence form is the window form's.

    The last row of `Corpus.sequences` is padded with zero-weight targets;
    they must not count.
    """
    import numpy as np

    from keras_memnet.datasets import Corpus
    from keras_memnet.metrics import Perplexity
    from keras_memnet.recipes import train_memn2n_lm
    from keras_memnet.tokenizers import WordVocabulary

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(12)]
    text = " ".join(rng.choice(words, size=400))
    vocabulary = WordVocabulary.from_text(text)
    ids = vocabulary.encode(text)
    corpus = Corpus(ids[:280], ids[280:], ids[280:], vocabulary)
    # 115 valid targets in rows of 50: the last row has 35 padded targets.
    recipe = MemN2NLMRecipe(
        batch_size=4, sequence_length=50, optimizer="adam", learning_rate=0.05
    )
    run = train_memn2n_lm(
        corpus,
        hops=1,
        memory_size=5,
        embedding_dim=8,
        recipe=recipe,
        epochs=1,
        evaluate=("valid",),
        verbose=0,
    )
    model = run["model"]
    model.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[Perplexity(from_logits=True)],
    )
    by_window = model.evaluate(
        corpus.windows("valid", 5, 32, shuffle=False),
        verbose=0,
        return_dict=True,
    )
    np.testing.assert_allclose(
        run["perplexity"]["valid"], by_window["perplexity"], rtol=1e-5
    )
    np.testing.assert_allclose(
        run["history"]["val_perplexity"][-1],
        by_window["perplexity"],
        rtol=1e-5,
    )


def test_sequence_step_is_the_sum_of_its_window_steps():
    """The sequence recipe's SGD step equals the window recipe's T steps.

    Without clipping, from the same weights, one step on a batch of B rows
    of T targets at the sequence learning rate moves every weight by the sum
    of the T steps on the window batches it holds (one window per row) at
    the window learning rate.
    """
    import numpy as np

    from keras_memnet.models import MemN2NLM

    rows, targets, memory = 4, 5, 3
    window = MemN2NLMRecipe.paper(batch_size=rows, sequence_length=None)
    sequence = MemN2NLMRecipe.paper(
        batch_size=rows, sequence_length=targets, sequence_lr_scale=1.0
    )
    assert sequence.learning_rate == pytest.approx(
        window.learning_rate * targets
    )
    assert sequence.max_norm == pytest.approx(window.max_norm / targets)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 20, size=(rows, memory + targets)).astype("int32")

    def step(recipe, x, y):
        keras.utils.set_random_seed(3)
        model = MemN2NLM(20, hops=2, memory_size=memory, embedding_dim=6)
        model.compile(
            optimizer=recipe.optimizer(),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=False,
        )
        model.build((None, memory))
        before = [keras.ops.convert_to_numpy(w) for w in model.weights]
        model.train_on_batch(x, y)
        return [
            keras.ops.convert_to_numpy(w) - b
            for w, b in zip(model.weights, before)
        ]

    by_sequence = step(sequence, ids[:, :-1], ids[:, memory:])
    by_windows = [
        step(window, ids[:, t : t + memory], ids[:, t + memory])
        for t in range(targets)
    ]
    for i, update in enumerate(by_sequence):
        np.testing.assert_allclose(
            update, sum(w[i] for w in by_windows), rtol=1e-4, atol=1e-7
        )


def tiny_corpus():
    import numpy as np

    from keras_memnet.datasets import Corpus
    from keras_memnet.tokenizers import WordVocabulary

    rng = np.random.default_rng(0)
    text = " ".join(rng.choice([f"w{i}" for i in range(12)], size=300))
    vocabulary = WordVocabulary.from_text(text)
    ids = vocabulary.encode(text)
    return Corpus(ids[:200], ids[200:250], ids[250:], vocabulary)


def test_train_memn2n_lm_raises_instead_of_returning_a_nan_model():
    import numpy as np

    from keras_memnet.callbacks import NonFiniteTrainingError
    from keras_memnet.recipes import train_memn2n_lm

    # A rate that overflows within the first epoch.
    recipe = MemN2NLMRecipe.paper(
        batch_size=4,
        sequence_length=5,
        learning_rate=1e30,
        summed_max_norm=1e30,
    )
    with pytest.warns(RuntimeWarning, match="Non-finite"):
        with pytest.raises(NonFiniteTrainingError) as raised:
            train_memn2n_lm(
                tiny_corpus(),
                hops=1,
                memory_size=4,
                embedding_dim=8,
                recipe=recipe,
                epochs=3,
                verbose=0,
            )
    message = str(raised.value)
    assert "at epoch 1, batch" in message and "put back" in message
    # The model holds the last good (here: the initial) weights.
    weights = raised.value.model.get_weights()
    assert all(np.all(np.isfinite(w)) for w in weights)


def test_train_memn2n_lm_checkpoint_dir_arguments(tmp_path):
    from keras_memnet.recipes import train_memn2n_lm

    corpus = tiny_corpus()
    recipe = MemN2NLMRecipe(batch_size=4, sequence_length=5)
    with pytest.raises(ValueError, match="needs a `checkpoint_dir`"):
        train_memn2n_lm(corpus, recipe=recipe, resume=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        train_memn2n_lm(corpus, recipe=recipe, checkpoint_dir=tmp_path / "file")
    kwargs = dict(
        hops=1,
        memory_size=4,
        embedding_dim=8,
        recipe=recipe,
        epochs=2,
        verbose=0,
        evaluate=("valid",),
        checkpoint_dir=tmp_path / "run",
    )
    first = train_memn2n_lm(corpus, **kwargs)
    # A finished checkpoint is not trained into by a new run ...
    with pytest.raises(ValueError, match="already holds a checkpoint"):
        train_memn2n_lm(corpus, **kwargs)
    # ... and resuming it gives the final model back without training.
    again = train_memn2n_lm(corpus, resume=True, **kwargs)
    assert again["history"] == first["history"]
    assert len(again["history"]["loss"]) == 2
    for want, got in zip(
        first["model"].get_weights(), again["model"].get_weights()
    ):
        assert (want == got).all()
