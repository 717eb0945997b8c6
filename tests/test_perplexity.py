import keras
import numpy as np
import pytest

from keras_memnet.metrics import Perplexity


def log_softmax(logits):
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def test_streams_exp_of_total_nll_over_total_tokens():
    rng = np.random.default_rng(0)
    metric = Perplexity(from_logits=True)
    total_nll, total_tokens = 0.0, 0
    for batch_size in (7, 1, 30, 2):  # Unequal batches.
        logits = rng.normal(size=(batch_size, 11)).astype("float32")
        targets = rng.integers(0, 11, batch_size)
        metric.update_state(targets, logits)
        total_nll -= log_softmax(logits)[np.arange(batch_size), targets].sum()
        total_tokens += batch_size
    np.testing.assert_allclose(
        float(metric.result()), np.exp(total_nll / total_tokens), rtol=1e-5
    )
    metric.reset_state()
    assert float(metric.result()) == 0.0


def test_masks_padding_in_sequences():
    rng = np.random.default_rng(1)
    metric = Perplexity(from_logits=True, mask_token_id=0)
    logits = rng.normal(size=(3, 5, 9)).astype("float32")
    targets = rng.integers(1, 9, (3, 5))
    targets[0, 3:] = 0
    targets[2, 1:] = 0
    metric.update_state(targets, logits)
    valid = targets != 0
    nll = -np.take_along_axis(log_softmax(logits), targets[..., None], -1)[
        ..., 0
    ]
    np.testing.assert_allclose(
        float(metric.result()), np.exp(nll[valid].mean()), rtol=1e-5
    )


def test_per_sequence_weights_count_every_token():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(2, 4, 6)).astype("float32")
    targets = rng.integers(0, 6, (2, 4))
    weights = np.array([1.0, 0.0])  # Keep the first sequence only.
    metric = Perplexity(from_logits=True)
    metric.update_state(targets, logits, sample_weight=weights)
    nll = -np.take_along_axis(log_softmax(logits), targets[..., None], -1)
    np.testing.assert_allclose(
        float(metric.result()), np.exp(nll[0].mean()), rtol=1e-5
    )


def test_probabilities_input():
    probabilities = np.full((4, 8), 1 / 8, dtype="float32")
    metric = Perplexity()
    metric.update_state(np.arange(4), probabilities)
    np.testing.assert_allclose(float(metric.result()), 8.0, rtol=1e-5)


def test_evaluate_over_a_dataset_equals_corpus_perplexity():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(5)])
    model.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[Perplexity(from_logits=True)],
    )
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 3)).astype("float32")
    y = rng.integers(0, 5, 50)
    result = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    logits = model.predict(x, verbose=0)
    nll = -log_softmax(logits)[np.arange(50), y]
    np.testing.assert_allclose(
        result["perplexity"], np.exp(nll.mean()), rtol=1e-4
    )
    np.testing.assert_allclose(result["loss"], nll.mean(), rtol=1e-4)


def test_serialization_round_trip():
    metric = Perplexity(from_logits=True, mask_token_id=0, name="ppl")
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(metric)
    )
    assert isinstance(restored, Perplexity)
    assert restored.get_config() == metric.get_config()


def test_rejects_integer_dtype():
    with pytest.raises(ValueError, match="dtype"):
        Perplexity(dtype="int32")
