import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from keras.src import testing

from keras_memnet.layers import AdaptiveSoftmax
from keras_memnet.models import MemN2NLM
from keras_memnet.tokenizers import WordVocabulary

VOCAB, DIM, CUTOFFS = 40, 16, [8, 20]


def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def numpy_log_probs(layer, hidden):
    """Grave et al.'s adaptive softmax written out in NumPy."""

    def weight(w):
        return None if w is None else keras.ops.convert_to_numpy(w)

    head = hidden @ weight(layer.head_kernel)
    if layer.use_bias:
        head = head + weight(layer.head_bias)
    head = log_softmax(head)
    cutoff = layer.cutoffs[0]
    parts = [head[:, :cutoff]]
    for i, (projection, kernel, bias) in enumerate(
        zip(layer.tail_projections, layer.tail_kernels, layer.tail_biases)
    ):
        tail = hidden @ weight(projection) @ weight(kernel)
        if bias is not None:
            tail = tail + weight(bias)
        parts.append(head[:, cutoff + i : cutoff + i + 1] + log_softmax(tail))
    return np.concatenate(parts, axis=-1)


def make_layer(**kwargs):
    config = dict(vocabulary_size=VOCAB, cutoffs=CUTOFFS, tail_dim_factor=2)
    config.update(kwargs)
    layer = AdaptiveSoftmax(**config)
    layer.build((None, DIM))
    return layer


def random_hidden(batch=12, seed=0):
    return (
        np.random.default_rng(seed).normal(size=(batch, DIM)).astype("float32")
    )


@pytest.mark.parametrize("use_bias", [False, True])
@pytest.mark.parametrize("cutoffs", [[8, 20], [1], [39], [5, 6, 30]])
def test_log_probs_match_numpy_and_are_normalised(cutoffs, use_bias):
    layer = make_layer(
        cutoffs=cutoffs, use_bias=use_bias, bias_initializer="random_normal"
    )
    hidden = random_hidden()
    log_probs = keras.ops.convert_to_numpy(layer(hidden))
    assert log_probs.shape == (12, VOCAB) and log_probs.dtype == np.float32
    np.testing.assert_allclose(
        log_probs, numpy_log_probs(layer, hidden), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(np.exp(log_probs).sum(-1), 1.0, rtol=1e-5)


def test_extra_leading_axes_are_normalised():
    layer = make_layer()
    hidden = np.random.default_rng(1).normal(size=(2, 3, DIM))
    log_probs = keras.ops.convert_to_numpy(layer(hidden.astype("float32")))
    assert log_probs.shape == (2, 3, VOCAB)
    np.testing.assert_allclose(np.exp(log_probs).sum(-1), 1.0, rtol=1e-5)


def test_tail_widths_shrink_by_the_factor():
    layer = AdaptiveSoftmax(1000, [100, 300, 600], tail_dim_factor=4)
    layer.build((None, 256))
    assert layer.tail_dims(256) == [64, 16, 4]
    shapes = {w.path.split("/", 1)[1]: tuple(w.shape) for w in layer.weights}
    assert shapes == {
        "head_kernel": (256, 103),
        "tail_projection_0": (256, 64),
        "tail_kernel_0": (64, 200),
        "tail_projection_1": (256, 16),
        "tail_kernel_1": (16, 300),
        "tail_projection_2": (256, 4),
        "tail_kernel_2": (4, 400),
    }


@pytest.mark.parametrize("batch", [1, 7, 64])
@pytest.mark.parametrize("targets_from", ["head", "tails", "mixed", "last"])
def test_fast_nll_equals_full_log_probs(batch, targets_from):
    # Cover every buffer size of the fast path: no target in a cluster, a
    # few, and all of them.
    rng = np.random.default_rng(batch)
    low, high = {
        "head": (0, CUTOFFS[0]),
        "tails": (CUTOFFS[0], VOCAB),
        "mixed": (0, VOCAB),
        "last": (CUTOFFS[-1], VOCAB),
    }[targets_from]
    targets = rng.integers(low, high, batch)
    layer = make_layer()
    hidden = random_hidden(batch, seed=batch)
    log_probs = keras.ops.convert_to_numpy(layer(hidden))
    nll = keras.ops.convert_to_numpy(
        layer.negative_log_likelihood(hidden, targets)
    )
    assert nll.shape == (batch,)
    np.testing.assert_allclose(
        nll, -log_probs[np.arange(batch), targets], rtol=1e-5, atol=1e-5
    )


def test_small_fit_reduces_loss_and_every_weight_learns():
    keras.utils.set_random_seed(0)
    layer = AdaptiveSoftmax(VOCAB, CUTOFFS, tail_dim_factor=2, use_bias=True)
    model = keras.Sequential([keras.Input((DIM,)), layer])
    model.compile(
        optimizer=keras.optimizers.Adam(0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    targets = rng.integers(0, VOCAB, 256)
    # Each target has its own (noisy) input pattern, so it can be learned.
    codes = rng.normal(size=(VOCAB, DIM)).astype("float32")
    hidden = codes[targets] + 0.1 * rng.normal(size=(256, DIM))
    before = [keras.ops.convert_to_numpy(w).copy() for w in layer.weights]
    history = model.fit(hidden, targets, epochs=20, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < 0.3 * history.history["loss"][0]
    for weight, old in zip(layer.weights, before):
        assert not np.allclose(keras.ops.convert_to_numpy(weight), old), (
            weight.path
        )


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        (dict(cutoffs=[]), "cutoffs"),
        (dict(cutoffs=[0, 10]), "cutoffs"),
        (dict(cutoffs=[10, 10]), "cutoffs"),
        (dict(cutoffs=[20, 10]), "cutoffs"),
        (dict(cutoffs=[10, VOCAB]), "cutoffs"),
        (dict(cutoffs=[2.5]), "cutoffs"),
        (dict(cutoffs=10), "cutoffs"),
        (dict(vocabulary_size=1, cutoffs=[1]), "vocabulary_size"),
        (dict(tail_dim_factor=0.5), "tail_dim_factor"),
    ],
)
def test_rejects_bad_arguments(kwargs, argument):
    config = dict(vocabulary_size=VOCAB, cutoffs=CUTOFFS)
    config.update(kwargs)
    with pytest.raises(ValueError, match=argument):
        AdaptiveSoftmax(**config)


def test_get_config_round_trip():
    layer = make_layer(use_bias=True, tail_dim_factor=3)
    clone = AdaptiveSoftmax.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    json.dumps(layer.get_config())


# MemN2NLM(output="adaptive")

MEMORY = 6


def adaptive_model(**kwargs):
    config = dict(
        vocabulary_size=VOCAB,
        hops=2,
        memory_size=MEMORY,
        embedding_dim=DIM,
        output="adaptive",
        adaptive_cutoffs=CUTOFFS,
    )
    config.update(kwargs)
    model = MemN2NLM(**config)
    model.build((None, MEMORY))
    return model


def copy_task(batch=256, seed=1):
    ids = np.random.default_rng(seed).integers(1, VOCAB, (batch, MEMORY))
    return ids, ids[:, -2]  # The second newest id: needs attention.


def test_model_outputs_normalised_log_probs():
    model = adaptive_model()
    ids, _ = copy_task(8)
    log_probs = model.predict(ids, verbose=0)
    assert log_probs.shape == (8, VOCAB) and log_probs.dtype == np.float32
    np.testing.assert_allclose(np.exp(log_probs).sum(-1), 1.0, rtol=1e-5)
    names = sorted(w.path.split("/", 1)[1] for w in model.weights)
    assert "adaptive_softmax/head_kernel" in names
    assert not any("output_projection" in name for name in names)


def test_default_cutoffs_fit_the_vocabulary():
    assert MemN2NLM(50_000, output="adaptive").adaptive_cutoffs == [2000, 10000]
    assert MemN2NLM(5000, output="adaptive").adaptive_cutoffs == [2000]
    assert MemN2NLM(30, output="adaptive").adaptive_cutoffs == [15]
    assert MemN2NLM(30).adaptive_cutoffs is None


def cross_entropy(y_true, y_pred):
    """The same loss as the class, but not eligible for the fast path."""
    return keras.losses.sparse_categorical_crossentropy(
        y_true, y_pred, from_logits=True
    )


@pytest.mark.parametrize(
    "tying, jit_compile", [("layerwise", "auto"), ("adjacent", False)]
)
def test_fit_uses_the_fast_loss_with_the_same_updates(tying, jit_compile):
    ids, targets = copy_task(64)
    targets[:20] = np.arange(20, 40)  # Targets in every cluster.
    weights = adaptive_model(weight_tying=tying).get_weights()
    results = {}
    for name, loss in (
        ("fast", keras.losses.SparseCategoricalCrossentropy(from_logits=True)),
        ("full", cross_entropy),
    ):
        model = adaptive_model(weight_tying=tying)
        model.set_weights(weights)
        calls = []
        original = model.output_projection.negative_log_likelihood
        model.output_projection.negative_log_likelihood = lambda *args: (
            calls.append(1) or original(*args)
        )
        # The model's default on TensorFlow is XLA; check graphs as well.
        model.compile(
            optimizer=keras.optimizers.SGD(2.0),
            loss=loss,
            jit_compile=jit_compile,
        )
        history = model.fit(
            ids, targets, batch_size=64, epochs=1, shuffle=False, verbose=0
        )
        results[name] = (history.history["loss"][0], model.get_weights())
        assert bool(calls) == (name == "fast")
    fast_loss, fast_weights = results["fast"]
    full_loss, full_weights = results["full"]
    np.testing.assert_allclose(fast_loss, full_loss, rtol=1e-5)
    for fast, full, before in zip(fast_weights, full_weights, weights):
        assert not np.allclose(fast, before)  # Every weight gets a gradient.
        np.testing.assert_allclose(fast, full, rtol=1e-4, atol=1e-6)


def test_fast_loss_with_a_partial_last_batch():
    # On TensorFlow the last, smaller batch makes the batch size unknown
    # when the step is traced; the fast loss must stay exact there too.
    ids, targets = copy_task(100)
    targets[:30] = np.arange(10, 40)
    weights = adaptive_model().get_weights()
    updated = {}
    for name, loss in (
        ("fast", keras.losses.SparseCategoricalCrossentropy(from_logits=True)),
        ("full", cross_entropy),
    ):
        model = adaptive_model()
        model.set_weights(weights)
        model.compile(optimizer=keras.optimizers.SGD(1.0), loss=loss)
        model.fit(
            ids, targets, batch_size=32, epochs=1, shuffle=False, verbose=0
        )
        updated[name] = model.get_weights()
    for fast, full in zip(updated["fast"], updated["full"]):
        np.testing.assert_allclose(fast, full, rtol=1e-4, atol=1e-6)


def test_fast_loss_honours_sample_weights_and_sum_reduction():
    model = adaptive_model()
    ids, targets = copy_task(16)
    weights = np.linspace(0.0, 2.0, 16).astype("float32")
    log_probs = model(ids, training=True)
    loss = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction="sum"
    )
    model.compile(optimizer="sgd", loss=loss)
    fast = model.compute_loss(ids, targets, log_probs, weights, training=True)
    expected = loss(targets, log_probs, sample_weight=weights)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(fast),
        keras.ops.convert_to_numpy(expected),
        rtol=1e-5,
    )


def test_adaptive_model_fit_reduces_loss_and_generates():
    keras.utils.set_random_seed(0)
    model = adaptive_model(dropout=0.1)
    model.compile(
        optimizer=keras.optimizers.Adam(0.02),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        # XLA compiles slowly on TensorFlow for a test this small, but JAX
        # without jit runs op by op, far slower.
        jit_compile=keras.config.backend() == "jax",
    )
    ids, targets = copy_task(512)
    history = model.fit(ids, targets, epochs=12, batch_size=64, verbose=0)
    # The 4-dimensional last tail learns slower than a full softmax would.
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    results = model.evaluate(ids, targets, verbose=0, return_dict=True)
    assert results["loss"] < history.history["loss"][0]
    generated = model.generate(ids[:3], max_length=4)
    assert generated.shape == (3, 4) and generated.min() >= 1


@pytest.mark.parametrize("weighted", [False, True])
def test_training_perplexity_reads_the_fast_loss(monkeypatch, weighted):
    from keras_memnet.metrics import Perplexity

    read = []
    reading = Perplexity.reading

    def spy(nll):
        read.append(nll)
        return reading(nll)

    monkeypatch.setattr(Perplexity, "reading", spy)
    model = adaptive_model()
    # A step of size 0: the weights the training metric sees are the ones
    # `evaluate` scores afterwards.
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    ids, targets = copy_task(64)
    weights = np.linspace(0, 2, 64) if weighted else None
    history = model.fit(
        ids, targets, sample_weight=weights, batch_size=64, verbose=0
    )
    expected = model.evaluate(
        ids, targets, sample_weight=weights, verbose=0, return_dict=True
    )["perplexity"]
    assert history.history["perplexity"][0] == pytest.approx(expected, rel=1e-5)
    # JAX computes the loss inside its own gradient trace, so the metrics
    # there score `y_pred` as usual.
    assert bool(read) == (keras.config.backend() != "jax")


def test_mixed_bfloat16_keeps_float32_log_probs_without_nans():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        keras.utils.set_random_seed(0)
        model = adaptive_model()
        model.compile(
            optimizer=keras.optimizers.SGD(0.5),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=keras.config.backend() == "jax",  # As above.
        )
        ids, targets = copy_task(256)
        history = model.fit(ids, targets, epochs=5, batch_size=32, verbose=0)
        log_probs = model.predict(ids[:4], verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert np.all(np.isfinite(history.history["loss"]))
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert log_probs.dtype == np.float32
    np.testing.assert_allclose(np.exp(log_probs).sum(-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        (dict(output="hierarchical"), "output"),
        (dict(adaptive_cutoffs=[VOCAB]), "adaptive_cutoffs"),
        (dict(adaptive_cutoffs=[9, 3]), "adaptive_cutoffs"),
        (dict(output="softmax", adaptive_cutoffs=[8]), "adaptive_cutoffs"),
    ],
)
def test_model_rejects_bad_output_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        adaptive_model(**kwargs)


def test_model_get_config_round_trip():
    model = adaptive_model(adaptive_cutoffs=[5, 30])
    clone = MemN2NLM.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert model.get_config()["output"] == "adaptive"
    assert model.get_config()["adaptive_cutoffs"] == [5, 30]


def test_keras_round_trip_in_a_new_process_is_exact(tmp_path):
    words = " ".join(f"w{i % 23}" for i in range(400))
    vocabulary = WordVocabulary.from_text(words)
    model = adaptive_model(
        vocabulary_size=vocabulary.size,
        vocabulary=vocabulary,
        adaptive_cutoffs=[4, 12],
    )
    model.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    ids = np.random.default_rng(3).integers(1, vocabulary.size, (5, MEMORY))
    model.fit(ids, ids[:, -1], epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    np.save(tmp_path / "ids.npy", ids)
    np.save(tmp_path / "expected.npy", model.predict(ids, verbose=0))
    script = textwrap.dedent(
        f"""
        import numpy as np, keras
        import keras_memnet  # noqa: F401
        model = keras.saving.load_model({str(path)!r}, safe_mode=True)
        ids = np.load({str(tmp_path / "ids.npy")!r})
        expected = np.load({str(tmp_path / "expected.npy")!r})
        np.testing.assert_array_equal(model.predict(ids, verbose=0), expected)
        assert type(model.output_projection).__name__ == "AdaptiveSoftmax"
        print(model.generate("w1 w2 w3", max_length=3))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == model.generate("w1 w2 w3", max_length=3)


def test_compile_defaults_to_xla_on_tensorflow_and_survives_loading(tmp_path):
    model = adaptive_model()
    model.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    expected = keras.config.backend() in ("tensorflow", "jax")
    assert bool(model.jit_compile) == expected
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.compiled and loaded.optimizer is not None
    assert loaded.jit_compile == model.jit_compile
    model.compile(optimizer="sgd", loss=cross_entropy, jit_compile=False)
    assert not model.jit_compile


class AdaptiveSoftmaxLayerTest(testing.TestCase):
    def test_run_layer_test(self):
        self.run_layer_test(
            AdaptiveSoftmax,
            init_kwargs={
                "vocabulary_size": VOCAB,
                "cutoffs": CUTOFFS,
                "use_bias": True,
                "kernel_regularizer": "l2",
            },
            input_shape=(4, DIM),
            expected_output_shape=(4, VOCAB),
            # Normalised in float32, under mixed precision too.
            expected_output_dtype="float32",
            # The head's kernel and bias, and per tail cluster a
            # projection, a kernel and a bias.
            expected_num_trainable_weights=8,
            expected_num_non_trainable_weights=0,
            expected_num_seed_generators=0,
            # One regularization loss per kernel and projection.
            expected_num_losses=5,
        )

    def test_run_layer_test_extra_leading_axes(self):
        self.run_layer_test(
            AdaptiveSoftmax,
            init_kwargs={
                "vocabulary_size": VOCAB,
                "cutoffs": [5, 6, 30],
                "tail_dim_factor": 2,
            },
            input_shape=(2, 3, DIM),
            expected_output_shape=(2, 3, VOCAB),
            expected_output_dtype="float32",
            expected_num_trainable_weights=7,
            expected_num_non_trainable_weights=0,
        )

    def test_run_layer_test_output_values(self):
        # With zero kernels the logits are the biases alone. A seeded
        # initializer gives the same values on every call, so the expected
        # log-probabilities can be computed before the layer exists:
        # log_softmax(head bias) for the head ids, plus log_softmax(tail
        # bias) for the ids of each tail cluster.
        bias_initializer = keras.initializers.RandomNormal(seed=7)
        sizes = [CUTOFFS[1] - CUTOFFS[0], VOCAB - CUTOFFS[1]]
        head = log_softmax(
            keras.ops.convert_to_numpy(bias_initializer((CUTOFFS[0] + 2,)))
        )
        row = [head[: CUTOFFS[0]]]
        for i, size in enumerate(sizes):
            tail = keras.ops.convert_to_numpy(bias_initializer((size,)))
            row.append(head[CUTOFFS[0] + i] + log_softmax(tail))
        expected = np.tile(np.concatenate(row), (3, 1)).astype("float32")
        self.run_layer_test(
            AdaptiveSoftmax,
            init_kwargs={
                "vocabulary_size": VOCAB,
                "cutoffs": CUTOFFS,
                "use_bias": True,
                "kernel_initializer": "zeros",
                "bias_initializer": bias_initializer,
            },
            input_data=random_hidden(batch=3),
            # The harness wants the backend's tensor type, not NumPy's.
            expected_output=keras.ops.convert_to_tensor(expected),
            expected_num_trainable_weights=8,
            expected_num_non_trainable_weights=0,
        )
