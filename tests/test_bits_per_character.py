import json
import math

import keras
import numpy as np

from keras_memnet.metrics import BitsPerCharacter
from keras_memnet.metrics import Perplexity


def log_softmax(logits):
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def test_streams_total_nll_over_total_tokens_in_bits():
    rng = np.random.default_rng(0)
    metric = BitsPerCharacter(from_logits=True)
    perplexity = Perplexity(from_logits=True)
    total_nll, total_tokens = 0.0, 0
    for batch_size in (5, 1, 40, 3):  # Unequal batches.
        logits = rng.normal(size=(batch_size, 28)).astype("float32")
        targets = rng.integers(0, 28, batch_size)
        metric.update_state(targets, logits)
        perplexity.update_state(targets, logits)
        total_nll -= log_softmax(logits)[np.arange(batch_size), targets].sum()
        total_tokens += batch_size
    expected = total_nll / total_tokens / math.log(2)
    np.testing.assert_allclose(float(metric.result()), expected, rtol=1e-5)
    np.testing.assert_allclose(
        2.0 ** float(metric.result()), float(perplexity.result()), rtol=1e-5
    )
    metric.reset_state()
    assert float(metric.result()) == 0.0


def test_uniform_prediction_over_four_symbols_is_two_bits():
    metric = BitsPerCharacter(from_logits=True)
    metric.update_state(np.array([1, 2, 3]), np.zeros((3, 4)))
    np.testing.assert_allclose(float(metric.result()), 2.0, rtol=1e-6)


def test_masks_padding_in_sequences():
    rng = np.random.default_rng(1)
    metric = BitsPerCharacter(from_logits=True, mask_token_id=0)
    logits = rng.normal(size=(2, 6, 9)).astype("float32")
    targets = rng.integers(1, 9, (2, 6))
    targets[1, 2:] = 0
    metric.update_state(targets, logits)
    nll = -np.take_along_axis(log_softmax(logits), targets[..., None], -1)
    expected = nll[..., 0][targets != 0].mean() / math.log(2)
    np.testing.assert_allclose(float(metric.result()), expected, rtol=1e-5)


def test_works_in_compile_and_round_trips():
    metric = BitsPerCharacter(from_logits=True, name="bpc")
    clone = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(metric)
    )
    assert isinstance(clone, BitsPerCharacter)
    assert clone.get_config() == metric.get_config()
    json.dumps(metric.get_config())
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(5)])
    model.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[clone],
    )
    x = np.random.default_rng(2).normal(size=(16, 3))
    y = np.arange(16) % 5
    results = model.evaluate(x, y, verbose=0, return_dict=True)
    np.testing.assert_allclose(
        results["bpc"], results["loss"] / math.log(2), rtol=1e-4
    )
