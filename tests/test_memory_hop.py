import keras
import numpy as np
import pytest

from keras_memnet.layers import MemoryHop
from keras_memnet.layers import TemporalEncoding


def numpy_hop(query, keys, values, kernel, mask=None, linear_units=None):
    scores = np.einsum("bd,bmd->bm", query, keys)
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    scores = scores - scores.max(axis=-1, keepdims=True)
    probabilities = np.exp(scores)
    probabilities /= probabilities.sum(axis=-1, keepdims=True)
    read = np.einsum("bm,bmd->bd", probabilities, values)
    outputs = (query @ kernel if kernel is not None else query) + read
    if linear_units is not None:
        outputs[:, linear_units:] = np.maximum(outputs[:, linear_units:], 0)
    return outputs, probabilities


def random_inputs(batch=3, memory=7, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(batch, dim)).astype("float32"),
        rng.normal(size=(batch, memory, dim)).astype("float32"),
        rng.normal(size=(batch, memory, dim)).astype("float32"),
    )


@pytest.mark.parametrize("linear_units", [None, 0, 3, 6])
def test_matches_numpy_reference(linear_units):
    query, keys, values = random_inputs()
    mask = np.ones((3, 7), dtype=bool)
    mask[0, :3] = False
    mask[2, 5:] = False
    hop = MemoryHop(linear_units=linear_units)
    outputs, probabilities = hop(
        query, keys, values, mask=mask, return_attention_scores=True
    )
    kernel = keras.ops.convert_to_numpy(hop.query_kernel)
    expected, expected_p = numpy_hop(
        query, keys, values, kernel, mask, linear_units
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(outputs), expected, rtol=1e-5, atol=1e-5
    )
    probabilities = keras.ops.convert_to_numpy(probabilities)
    np.testing.assert_allclose(probabilities, expected_p, atol=1e-6)
    assert np.all(probabilities[~mask] < 1e-6)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-6)


def test_without_query_projection_adds_query():
    query, keys, values = random_inputs()
    hop = MemoryHop(use_query_projection=False)
    outputs = keras.ops.convert_to_numpy(hop(query, keys, values))
    expected, _ = numpy_hop(query, keys, values, kernel=None)
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-5)
    assert hop.weights == []


def test_reusing_one_instance_ties_weights_across_hops():
    query, keys, values = random_inputs()
    hop = MemoryHop(linear_units=3)
    state = query
    for _ in range(4):
        state = hop(state, keys, values)
    assert len(hop.weights) == 1
    assert hop.query_kernel.shape == (6, 6)
    state_np = query
    kernel = keras.ops.convert_to_numpy(hop.query_kernel)
    for _ in range(4):
        state_np, _ = numpy_hop(state_np, keys, values, kernel, None, 3)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(state), state_np, rtol=1e-4, atol=1e-5
    )


def test_functional_model_of_temporal_encoding_and_hops_trains():
    """The layers alone make a working memory network in a user's model."""
    memory, dim, vocab = 5, 16, 12
    ids = keras.Input((memory,), dtype="int32")
    query = keras.Input((dim,))
    embed_a = keras.layers.Embedding(vocab, dim)
    embed_c = keras.layers.Embedding(vocab, dim)
    keys = TemporalEncoding(memory)(embed_a(ids))
    values = TemporalEncoding(memory)(embed_c(ids))
    hop = MemoryHop(linear_units=dim // 2)
    state = query
    for _ in range(3):
        state = hop(state, keys, values)
    logits = keras.layers.Dense(vocab, use_bias=False)(state)
    trainer = keras.Model([ids, query], logits)
    assert trainer.output_shape == (None, vocab)
    trainer.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    x = rng.integers(1, vocab, size=(256, memory))
    y = x[:, 1]  # The answer is in memory slot 1.
    q = np.full((256, dim), 0.1, dtype="float32")
    history = trainer.fit([x, q], y, epochs=15, batch_size=32, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]


def test_attention_scores_as_functional_output():
    query = keras.Input((6,))
    memory = keras.Input((7, 6))
    state, attention = MemoryHop()(
        query, memory, memory, return_attention_scores=True
    )
    model = keras.Model([query, memory], [state, attention])
    assert model.output_shape == [(None, 6), (None, 7)]
    _, probabilities = model.predict(list(random_inputs()[:2]), verbose=0)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)


def test_gradients_reach_kernel_keys_and_values():
    query, keys, values = random_inputs()
    hop = MemoryHop(linear_units=3)
    hop(query, keys, values)
    if keras.config.backend() != "tensorflow":
        pytest.skip("gradient tape check written for TensorFlow")
    import tensorflow as tf

    keys_t, values_t = tf.constant(keys), tf.constant(values)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([keys_t, values_t])
        loss = tf.reduce_sum(hop(query, keys_t, values_t) ** 2)
    for tensor in (hop.query_kernel, keys_t, values_t):
        gradient = tape.gradient(loss, tensor)
        assert gradient is not None
        assert float(tf.reduce_sum(tf.abs(gradient))) > 0


def test_serialization_round_trip():
    hop = MemoryHop(linear_units=4, use_query_projection=False, name="hop")
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(hop)
    )
    assert restored.get_config() == hop.get_config()


def test_rejects_bad_linear_units():
    with pytest.raises(ValueError, match="linear_units"):
        MemoryHop(linear_units=-1)
    hop = MemoryHop(linear_units=9)
    with pytest.raises(ValueError, match="linear_units"):
        hop(*random_inputs())


def test_rejects_mismatched_widths():
    query, keys, values = random_inputs()
    with pytest.raises(ValueError, match="values"):
        MemoryHop()(query, keys, values[..., :4])
