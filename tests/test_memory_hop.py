import keras
import numpy as np
import pytest
from keras.src import testing

from keras_memnet.layers import MemoryHop
from keras_memnet.layers import TemporalEncoding
from keras_memnet.layers.memory_hop import window_band
from keras_memnet.layers.memory_hop import window_unband


def numpy_hop(query, keys, values, kernel, mask=None, linear_units=None):
    scores = np.einsum("bd,bmd->bm", query, keys)
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    # A fully masked row gets no attention at all (Keras's masked softmax
    # gives zeros there), so its read is 0.
    top = scores.max(axis=-1, keepdims=True)
    probabilities = np.exp(scores - np.where(np.isfinite(top), top, 0))
    total = probabilities.sum(axis=-1, keepdims=True)
    probabilities /= np.where(total > 0, total, 1)
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


@pytest.mark.tensorflow_only  # The gradient check uses tf.GradientTape.
def test_gradients_reach_kernel_keys_and_values():
    query, keys, values = random_inputs()
    hop = MemoryHop(linear_units=3)
    hop(query, keys, values)
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


# Sequence form: T queries, each reading a window of M positions of a
# (batch, T + M - 1) memory; query t reads positions t .. t + M - 1.

SEQ_BATCH, SEQ_T, SEQ_M, SEQ_DIM = 3, 5, 4, 6
SEQ_LENGTH = SEQ_T + SEQ_M - 1


def numpy_sequence_hop(
    query,
    keys,
    values,
    kernel,
    mask=None,
    linear_units=None,
    key_encodings=None,
    value_encodings=None,
):
    """The sequence form as T separate windows of `numpy_hop`."""
    num_queries, length = query.shape[1], keys.shape[1]
    memory = length - num_queries + 1
    outputs, probabilities = [], []
    for t in range(num_queries):
        window_keys = keys[:, t : t + memory]
        window_values = values[:, t : t + memory]
        if key_encodings is not None:
            window_keys = window_keys + key_encodings
        if value_encodings is not None:
            window_values = window_values + value_encodings
        window_mask = None if mask is None else mask[:, t : t + memory]
        output, p = numpy_hop(
            query[:, t],
            window_keys,
            window_values,
            kernel,
            window_mask,
            linear_units,
        )
        outputs.append(output)
        probabilities.append(p)
    return np.stack(outputs, axis=1), np.stack(probabilities, axis=1)


def random_sequence_inputs(seed=0):
    rng = np.random.default_rng(seed)
    shape = (SEQ_BATCH, SEQ_LENGTH, SEQ_DIM)
    return (
        rng.normal(size=(SEQ_BATCH, SEQ_T, SEQ_DIM)).astype("float32"),
        rng.normal(size=shape).astype("float32"),
        rng.normal(size=shape).astype("float32"),
        rng.normal(size=(SEQ_M, SEQ_DIM)).astype("float32"),
        rng.normal(size=(SEQ_M, SEQ_DIM)).astype("float32"),
    )


def sequence_mask():
    mask = np.ones((SEQ_BATCH, SEQ_LENGTH), dtype=bool)
    mask[0, :2] = False  # Left padding: the first windows are partly empty.
    mask[1, :SEQ_M] = False  # Left padding: window 0 is wholly empty.
    mask[2, 5] = False  # A hole inside some windows.
    return mask


@pytest.mark.parametrize("use_query_projection", [True, False])
@pytest.mark.parametrize("with_encodings", [True, False])
@pytest.mark.parametrize("linear_units", [None, 0, 3, 6])
def test_sequence_form_matches_numpy_reference(
    linear_units, with_encodings, use_query_projection
):
    query, keys, values, key_enc, value_enc = random_sequence_inputs()
    if not with_encodings:
        key_enc = value_enc = None
    mask = sequence_mask()
    hop = MemoryHop(
        linear_units=linear_units, use_query_projection=use_query_projection
    )
    outputs, probabilities = hop(
        query,
        keys,
        values,
        mask=mask,
        key_encodings=key_enc,
        value_encodings=value_enc,
        return_attention_scores=True,
    )
    kernel = (
        keras.ops.convert_to_numpy(hop.query_kernel)
        if use_query_projection
        else None
    )
    expected, expected_p = numpy_sequence_hop(
        query, keys, values, kernel, mask, linear_units, key_enc, value_enc
    )
    outputs = keras.ops.convert_to_numpy(outputs)
    probabilities = keras.ops.convert_to_numpy(probabilities)
    assert outputs.shape == (SEQ_BATCH, SEQ_T, SEQ_DIM)
    assert probabilities.shape == (SEQ_BATCH, SEQ_T, SEQ_M)
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(probabilities, expected_p, atol=1e-6)


def test_sequence_form_attention_is_a_distribution_over_valid_slots():
    query, keys, values, key_enc, value_enc = random_sequence_inputs(seed=1)
    mask = sequence_mask()
    _, probabilities = MemoryHop()(
        query,
        keys,
        values,
        mask=mask,
        key_encodings=key_enc,
        value_encodings=value_enc,
        return_attention_scores=True,
    )
    probabilities = keras.ops.convert_to_numpy(probabilities)
    assert probabilities.shape == (SEQ_BATCH, SEQ_T, SEQ_M)
    # Slot i of query t is memory position t + i (slot 0 the oldest).
    slots = np.arange(SEQ_T)[:, None] + np.arange(SEQ_M)[None, :]
    window_mask = mask[:, slots]
    assert np.all(probabilities >= 0)
    assert np.all(probabilities[~window_mask] == 0)
    sums = probabilities.sum(-1)
    has_memory = window_mask.any(-1)
    np.testing.assert_allclose(sums[has_memory], 1.0, rtol=1e-6)
    # Only row 1's first window is all padding: it reads nothing.
    assert has_memory.sum() == has_memory.size - 1
    np.testing.assert_array_equal(sums[~has_memory], 0.0)


def test_sequence_form_equals_window_calls_of_the_same_hop():
    query, keys, values, key_enc, value_enc = random_sequence_inputs(seed=2)
    mask = sequence_mask()
    hop = MemoryHop(linear_units=2)
    outputs = keras.ops.convert_to_numpy(
        hop(
            query,
            keys,
            values,
            mask=mask,
            key_encodings=key_enc,
            value_encodings=value_enc,
        )
    )
    for t in range(SEQ_T):
        window = hop(
            query[:, t],
            keys[:, t : t + SEQ_M] + key_enc,
            values[:, t : t + SEQ_M] + value_enc,
            mask=mask[:, t : t + SEQ_M],
        )
        np.testing.assert_allclose(
            outputs[:, t],
            keras.ops.convert_to_numpy(window),
            rtol=1e-5,
            atol=1e-6,
        )


def test_sequence_form_with_one_query_is_the_window_form():
    query, keys, values, key_enc, value_enc = random_sequence_inputs(seed=3)
    keys, values = keys[:, :SEQ_M], values[:, :SEQ_M]
    hop = MemoryHop(linear_units=3)
    sequence = hop(
        query[:, :1],
        keys,
        values,
        key_encodings=key_enc,
        value_encodings=value_enc,
    )
    window = hop(query[:, 0], keys + key_enc, values + value_enc)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(sequence)[:, 0],
        keras.ops.convert_to_numpy(window),
        rtol=1e-5,
        atol=1e-6,
    )


def test_sequence_form_in_a_functional_model():
    query = keras.Input((SEQ_T, SEQ_DIM))
    memory = keras.Input((SEQ_LENGTH, SEQ_DIM))
    hop = MemoryHop(linear_units=3)
    encodings = np.random.default_rng(4).normal(size=(SEQ_M, SEQ_DIM))
    state, attention = hop(
        query,
        memory,
        memory,
        key_encodings=encodings.astype("float32"),
        return_attention_scores=True,
    )
    model = keras.Model([query, memory], [state, attention])
    assert model.output_shape == [(None, SEQ_T, SEQ_DIM), (None, SEQ_T, SEQ_M)]
    q, k, _, _, _ = random_sequence_inputs(seed=4)
    state, probabilities = model.predict([q, k], verbose=0)
    expected, expected_p = numpy_sequence_hop(
        q,
        k,
        k,
        keras.ops.convert_to_numpy(hop.query_kernel),
        None,
        3,
        encodings,
    )
    np.testing.assert_allclose(state, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(probabilities, expected_p, atol=1e-6)


@pytest.mark.parametrize("name", ["key_encodings", "value_encodings"])
def test_sequence_form_rejects_encodings_with_the_wrong_slots(name):
    query, keys, values, key_enc, value_enc = random_sequence_inputs()
    encodings = dict(key_encodings=key_enc, value_encodings=value_enc)
    encodings[name] = np.concatenate([encodings[name], encodings[name][:1]])
    with pytest.raises(ValueError, match=name) as error:
        MemoryHop()(query, keys, values, **encodings)
    assert f"{SEQ_M + 1} slots" in str(error.value)
    assert f"windows of {SEQ_M}" in str(error.value)


def test_sequence_form_rejects_fewer_positions_than_queries():
    query, keys, values, _, _ = random_sequence_inputs()
    with pytest.raises(ValueError, match="at least as many memory positions"):
        MemoryHop()(query, keys[:, : SEQ_T - 1], values[:, : SEQ_T - 1])


@pytest.mark.parametrize(
    "num_queries, length, memory_size",
    [(5, 8, 4), (5, 8, 2), (1, 4, 4), (4, 4, 1), (3, 9, 7)],
)
def test_window_band_takes_out_t_i_equals_x_t_t_plus_i(
    num_queries, length, memory_size
):
    x = (
        np.random.default_rng(5)
        .normal(size=(2, num_queries, length))
        .astype("float32")
    )
    band = keras.ops.convert_to_numpy(window_band(x, memory_size))
    assert band.shape == (2, num_queries, memory_size)
    t = np.arange(num_queries)[:, None]
    i = np.arange(memory_size)[None, :]
    np.testing.assert_array_equal(band, x[:, t, t + i])


@pytest.mark.parametrize(
    "num_queries, memory_size, length",
    [(5, 4, 8), (1, 4, 4), (4, 1, 4), (3, 7, 9), (5, 2, 9)],
)
def test_window_unband_places_out_t_t_plus_i(num_queries, memory_size, length):
    rng = np.random.default_rng(6)
    band = rng.normal(size=(2, num_queries, memory_size)).astype("float32")
    expected = np.zeros((2, num_queries, length), dtype="float32")
    for t in range(num_queries):
        for i in range(memory_size):
            expected[:, t, t + i] = band[:, t, i]
    unband = keras.ops.convert_to_numpy(window_unband(band, length))
    np.testing.assert_array_equal(unband, expected)
    # And back: band(unband(b)) is b.
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(window_band(unband, memory_size)), band
    )


def test_window_unband_of_band_keeps_exactly_the_band():
    num_queries, memory_size = 5, 4
    length = num_queries + memory_size - 1
    x = (
        np.random.default_rng(7)
        .normal(size=(3, num_queries, length))
        .astype("float32")
        + 10.0
    )  # No zeros inside the band.
    kept = keras.ops.convert_to_numpy(
        window_unband(window_band(x, memory_size), length)
    )
    t = np.arange(num_queries)[:, None]
    j = np.arange(length)[None, :]
    in_band = (j >= t) & (j < t + memory_size)
    np.testing.assert_array_equal(kept, np.where(in_band, x, 0.0))
    assert np.all(kept[:, in_band] != 0)


@pytest.mark.tensorflow_only  # The gradient check uses tf.GradientTape.
def test_sequence_form_gradients_match_window_calls():
    import tensorflow as tf

    query, keys, values, key_enc, value_enc = random_sequence_inputs(seed=8)
    mask = sequence_mask()
    hop = MemoryHop(linear_units=3)
    hop(
        query,
        keys,
        values,
        mask=mask,
        key_encodings=key_enc,
        value_encodings=value_enc,
    )
    weights = (
        np.random.default_rng(9)
        .normal(size=(SEQ_BATCH, SEQ_T, SEQ_DIM))
        .astype("float32")
    )
    tensors = [tf.constant(a) for a in (keys, values, key_enc, value_enc)]

    def gradients(sequence_form):
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            k, v, ke, ve = tensors
            if sequence_form:
                out = hop(
                    query, k, v, mask=mask, key_encodings=ke, value_encodings=ve
                )
            else:
                out = tf.stack(
                    [
                        hop(
                            query[:, t],
                            k[:, t : t + SEQ_M] + ke,
                            v[:, t : t + SEQ_M] + ve,
                            mask=mask[:, t : t + SEQ_M],
                        )
                        for t in range(SEQ_T)
                    ],
                    axis=1,
                )
            loss = tf.reduce_sum(out * weights)
        return tape.gradient(loss, tensors + [hop.query_kernel])

    for sequence, window in zip(gradients(True), gradients(False)):
        np.testing.assert_allclose(
            sequence.numpy(), window.numpy(), rtol=1e-4, atol=1e-5
        )


# Keras's own layer harness: serialization, build, symbolic and eager calls,
# weight and loss counts, a compiled training step and mixed precision.


@keras.saving.register_keras_serializable(package="keras_memnet_tests")
class MemoryHopOnOneInput(keras.layers.Layer):
    """Test-only: a `MemoryHop` called on one `(query, keys, values, mask)`.

    `run_layer_test` trains a layer by calling it on a single input, but
    `MemoryHop` takes the query, keys, values and mask as separate
    arguments, so the harness can build, serialize and call the hop itself
    (`MemoryHopLayerTest` below) but not train it. This wrapper lets the
    harness's compiled training step and mixed-precision check run the hop
    too. With `memory_size` it owns `(memory_size, dim)` slot encodings and
    passes them as `key_encodings` and `value_encodings`, as
    `MemN2NBackbone` does, so the step trains through them as well.
    """

    def __init__(self, linear_units=None, memory_size=None, **kwargs):
        super().__init__(**kwargs)
        self.linear_units = linear_units
        self.memory_size = memory_size
        self.hop = MemoryHop(
            linear_units=linear_units, dtype=self.dtype_policy, name="hop"
        )

    def build(self, input_shape):
        query_shape, keys_shape, values_shape = input_shape[:3]
        self.hop.build(query_shape, keys_shape, values_shape)
        self.key_encodings = self.value_encodings = None
        if self.memory_size is not None:
            shape = (self.memory_size, query_shape[-1])
            self.key_encodings = self.add_weight(
                name="key_encodings", shape=shape
            )
            self.value_encodings = self.add_weight(
                name="value_encodings", shape=shape
            )

    def call(self, inputs):
        query, keys, values, mask = inputs
        return self.hop(
            query,
            keys,
            values,
            mask=mask,
            key_encodings=self.key_encodings,
            value_encodings=self.value_encodings,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {"linear_units": self.linear_units, "memory_size": self.memory_size}
        )
        return config


class MemoryHopLayerTest(testing.TestCase):
    def test_window_form(self):
        mask = np.ones((2, 7), dtype=bool)
        mask[0, :3] = False
        self.run_layer_test(
            MemoryHop,
            init_kwargs={"linear_units": 2, "kernel_regularizer": "l2"},
            input_shape={
                "query_shape": (2, 6),
                "keys_shape": (2, 7, 6),
                "values_shape": (2, 7, 6),
            },
            call_kwargs={"mask": mask, "return_attention_scores": True},
            expected_output_shape=((2, 6), (2, 7)),
            expected_num_trainable_weights=1,
            expected_num_non_trainable_weights=0,
            expected_num_seed_generators=0,
            expected_num_losses=1,
            supports_masking=True,
            # The training step calls the layer on one input; see
            # `MemoryHopOnOneInput`.
            run_training_check=False,
        )

    def test_window_form_without_query_projection(self):
        self.run_layer_test(
            MemoryHop,
            init_kwargs={"use_query_projection": False},
            input_shape={
                "query_shape": (2, 6),
                "keys_shape": (2, 7, 6),
                "values_shape": (2, 7, 6),
            },
            expected_output_shape=(2, 6),
            expected_num_trainable_weights=0,
            expected_num_non_trainable_weights=0,
            supports_masking=True,
            run_training_check=False,
        )

    def test_sequence_form(self):
        rng = np.random.default_rng(1)
        encodings = rng.normal(size=(2, SEQ_M, SEQ_DIM)).astype("float32")
        self.run_layer_test(
            MemoryHop,
            init_kwargs={"linear_units": 3},
            input_shape={
                "query_shape": (SEQ_BATCH, SEQ_T, SEQ_DIM),
                "keys_shape": (SEQ_BATCH, SEQ_LENGTH, SEQ_DIM),
                "values_shape": (SEQ_BATCH, SEQ_LENGTH, SEQ_DIM),
            },
            call_kwargs={
                "mask": sequence_mask(),
                "key_encodings": encodings[0],
                "value_encodings": encodings[1],
                "return_attention_scores": True,
            },
            expected_output_shape=(
                (SEQ_BATCH, SEQ_T, SEQ_DIM),
                (SEQ_BATCH, SEQ_T, SEQ_M),
            ),
            expected_num_trainable_weights=1,
            expected_num_non_trainable_weights=0,
            supports_masking=True,
            run_training_check=False,
        )

    def test_window_form_trains(self):
        query, keys, values = random_inputs(memory=SEQ_M)
        mask = np.ones(keys.shape[:2], dtype=bool)
        mask[0, :2] = False
        self.run_layer_test(
            MemoryHopOnOneInput,
            init_kwargs={"linear_units": 3, "memory_size": SEQ_M},
            input_data=(query, keys, values, mask),
            expected_output_shape=query.shape,
            expected_num_trainable_weights=3,
            expected_num_non_trainable_weights=0,
        )

    def test_sequence_form_trains(self):
        query, keys, values, _, _ = random_sequence_inputs()
        self.run_layer_test(
            MemoryHopOnOneInput,
            init_kwargs={"linear_units": 3, "memory_size": SEQ_M},
            input_data=(query, keys, values, sequence_mask()),
            expected_output_shape=query.shape,
            expected_num_trainable_weights=3,
            expected_num_non_trainable_weights=0,
        )
