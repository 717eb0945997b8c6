import keras
import numpy as np
import pytest
from keras import ops
from keras.src import testing

from keras_memnet.layers import Seq2SeqLSTM


def numpy_reverse_valid_prefix(x, lengths):
    out = x.copy()
    for row, length in enumerate(lengths):
        out[row, :length] = x[row, :length][::-1]
    return out


def right_padded_mask(lengths, max_length):
    return np.arange(max_length)[None, :] < np.asarray(lengths)[:, None]


def test_reverse_valid_prefix_matches_numpy():
    rng = np.random.default_rng(0)
    lengths = [0, 1, 4, 7, 3]
    x = rng.normal(size=(5, 7, 3)).astype("float32")
    mask = right_padded_mask(lengths, 7)
    reversed_x = ops.convert_to_numpy(Seq2SeqLSTM.reverse_valid_prefix(x, mask))
    np.testing.assert_array_equal(
        reversed_x, numpy_reverse_valid_prefix(x, lengths)
    )
    # Padding stays on the right, so reversing twice is the identity.
    twice = Seq2SeqLSTM.reverse_valid_prefix(reversed_x, mask)
    np.testing.assert_array_equal(ops.convert_to_numpy(twice), x)
    # 2-D ids work too, and no mask reverses whole rows.
    ids = rng.integers(1, 9, size=(5, 7))
    np.testing.assert_array_equal(
        ops.convert_to_numpy(Seq2SeqLSTM.reverse_valid_prefix(ids, mask)),
        numpy_reverse_valid_prefix(ids, lengths),
    )
    np.testing.assert_array_equal(
        ops.convert_to_numpy(Seq2SeqLSTM.reverse_valid_prefix(x)), x[:, ::-1]
    )


def make_pair(units=6, num_layers=2, reverse_source=True, **kwargs):
    layer = Seq2SeqLSTM(
        units, num_layers=num_layers, reverse_source=reverse_source, **kwargs
    )
    layer.build([(None, None, 4), (None, None, 4)])
    return layer


def test_output_shape_and_mask():
    layer = Seq2SeqLSTM(8, num_layers=3)
    source = np.random.rand(2, 5, 4).astype("float32")
    target = np.random.rand(2, 6, 3).astype("float32")
    outputs = layer([source, target])
    assert tuple(outputs.shape) == (2, 6, 8)
    assert layer.compute_output_shape([(2, 5, 4), (2, 6, 3)]) == (2, 6, 8)
    target_mask = np.array([[1, 1, 1, 0, 0, 0], [1] * 6], bool)
    assert (
        layer.compute_mask([source, target], [None, target_mask]) is target_mask
    )
    assert layer.compute_mask([source, target], None) is None
    # 3 encoder + 3 decoder LSTMs, each with kernel, recurrent kernel, bias.
    assert len(layer.trainable_weights) == 18


def test_reversal_reads_valid_prefix_backwards():
    """With reversal, the encoder's states equal those of an unreversed
    encoder (same weights) fed the NumPy-reversed source; padding is
    ignored."""
    rng = np.random.default_rng(1)
    lengths = [3, 5, 1]
    source = rng.normal(size=(3, 5, 4)).astype("float32")
    source[right_padded_mask(lengths, 5) == 0] = 7.0  # garbage in padding
    mask = right_padded_mask(lengths, 5)
    reversing = make_pair(reverse_source=True)
    plain = make_pair(reverse_source=False)
    plain.set_weights(reversing.get_weights())
    states = reversing.encode(source, mask)
    expected = plain.encode(numpy_reverse_valid_prefix(source, lengths), mask)
    for (h, c), (h_ref, c_ref) in zip(states, expected):
        np.testing.assert_allclose(
            ops.convert_to_numpy(h), ops.convert_to_numpy(h_ref), atol=1e-6
        )
        np.testing.assert_allclose(
            ops.convert_to_numpy(c), ops.convert_to_numpy(c_ref), atol=1e-6
        )
    # Row 0 padded to 5 gives the same states as the unpadded 3-step row.
    short = reversing.encode(source[:1, :3], np.ones((1, 3), bool))
    np.testing.assert_allclose(
        ops.convert_to_numpy(short[-1][0]),
        ops.convert_to_numpy(states[-1][0][:1]),
        atol=1e-6,
    )


def test_decode_step_matches_teacher_forcing():
    rng = np.random.default_rng(2)
    layer = make_pair(units=5, num_layers=3)
    source = rng.normal(size=(2, 4, 4)).astype("float32")
    target = rng.normal(size=(2, 6, 4)).astype("float32")
    full = ops.convert_to_numpy(layer([source, target]))
    states = layer.encode(source)
    steps = []
    for t in range(6):
        output, states = layer.decode_step(target[:, t], states)
        steps.append(ops.convert_to_numpy(output))
    np.testing.assert_allclose(np.stack(steps, axis=1), full, atol=1e-5)


def test_target_mask_leaves_valid_outputs_unchanged():
    rng = np.random.default_rng(3)
    layer = make_pair()
    source = rng.normal(size=(1, 4, 4)).astype("float32")
    target = rng.normal(size=(1, 6, 4)).astype("float32")
    target_mask = right_padded_mask([4], 6)
    padded = layer([source, target], mask=[None, target_mask])
    short = layer([source, target[:, :4]])
    np.testing.assert_allclose(
        ops.convert_to_numpy(padded)[:, :4],
        ops.convert_to_numpy(short),
        atol=1e-6,
    )


def test_paper_initializer_and_distinct_draws():
    layer = make_pair(
        units=6,
        num_layers=2,
        kernel_initializer=keras.initializers.RandomUniform(
            -0.08, 0.08, seed=5
        ),
        recurrent_initializer=keras.initializers.RandomUniform(-0.08, 0.08),
    )
    kernels = [lstm.cell.kernel for lstm in layer.encoder_layers[1:]]
    kernels += [lstm.cell.kernel for lstm in layer.decoder_layers[1:]]
    kernels += [lstm.cell.recurrent_kernel for lstm in layer.encoder_layers]
    values = [ops.convert_to_numpy(k) for k in kernels]
    for value in values:
        assert np.abs(value).max() <= 0.08
    # Equal-shaped weights of different LSTMs are not copies of each other.
    assert not np.allclose(values[0], values[1])
    assert not np.allclose(values[2], values[3])


def test_inside_user_model_trains_and_round_trips(tmp_path):
    keras.utils.set_random_seed(0)
    vocabulary_size, length = 8, 5
    source_ids = keras.Input((None,), dtype="int32", name="source_ids")
    target_ids = keras.Input((None,), dtype="int32", name="target_ids")
    source = keras.layers.Embedding(vocabulary_size, 8, mask_zero=True)(
        source_ids
    )
    target = keras.layers.Embedding(vocabulary_size, 8, mask_zero=True)(
        target_ids
    )
    outputs = Seq2SeqLSTM(16, num_layers=2, dropout=0.1, seed=3)(
        [source, target]
    )
    logits = keras.layers.Dense(vocabulary_size)(outputs)
    model = keras.Model([source_ids, target_ids], logits)
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=0
        ),
    )
    rng = np.random.default_rng(0)
    x_source = rng.integers(1, vocabulary_size, size=(64, length))
    x_source[::2, 3:] = 0
    x_target = rng.integers(1, vocabulary_size, size=(64, length))
    y = np.roll(x_target, -1, axis=1)
    history = model.fit(
        [x_source, x_target], y, epochs=5, batch_size=16, verbose=0
    )
    assert history.history["loss"][-1] < history.history["loss"][0]
    expected = model.predict([x_source, x_target], verbose=0)
    path = tmp_path / "user_model.keras"
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(
        restored.predict([x_source, x_target], verbose=0), expected
    )
    layer = [l for l in restored.layers if isinstance(l, Seq2SeqLSTM)][0]
    assert layer.get_config()["dropout"] == 0.1


def test_get_config_round_trip():
    layer = Seq2SeqLSTM(
        12,
        num_layers=3,
        reverse_source=False,
        dropout=0.25,
        kernel_initializer=keras.initializers.RandomUniform(-0.08, 0.08),
        unit_forget_bias=False,
        seed=4,
        name="s2s",
    )
    config = layer.get_config()
    clone = Seq2SeqLSTM.from_config(config)
    assert clone.get_config() == config
    assert isinstance(
        clone.kernel_initializer, keras.initializers.RandomUniform
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"units": 0}, "units"),
        ({"units": 4, "num_layers": 0}, "num_layers"),
        ({"units": 4, "num_layers": 1.5}, "num_layers"),
        ({"units": 4, "dropout": 1.0}, "dropout"),
    ],
)
def test_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Seq2SeqLSTM(**kwargs)
    with pytest.raises(ValueError, match="`reverse_source` must be True or"):
        Seq2SeqLSTM(4, reverse_source="yes")


def test_rejects_mismatched_batch_sizes():
    layer = Seq2SeqLSTM(4, num_layers=1)
    with pytest.raises(ValueError, match="batch sizes must match.*3.*2"):
        layer([np.zeros((3, 5, 2), "float32"), np.zeros((2, 4, 2), "float32")])
    with pytest.raises(ValueError, match="batch sizes must match"):
        layer.compute_output_shape([(3, 5, 2), (2, 4, 2)])


def test_rejects_bad_inputs_and_states():
    layer = Seq2SeqLSTM(4, num_layers=2)
    with pytest.raises(
        ValueError, match="source_embeddings, target_embeddings"
    ):
        layer(np.zeros((2, 5, 3), "float32"))
    layer = make_pair(units=4, num_layers=2)
    states = layer.encode(np.zeros((2, 3, 4), "float32"))
    with pytest.raises(ValueError, match="2 \\(h, c\\) pairs"):
        layer.decode_step(np.zeros((2, 4), "float32"), states[:1])


class Seq2SeqLSTMLayerTest(testing.TestCase):
    # Inputs are a tuple, not a list: the harness's training step feeds a
    # generator, and TensorFlow's `from_generator` takes no list of specs.

    def test_run_layer_test(self):
        self.run_layer_test(
            Seq2SeqLSTM,
            init_kwargs={"units": 6, "num_layers": 2},
            input_shape=((2, 5, 4), (2, 3, 3)),
            expected_output_shape=(2, 3, 6),
            # 2 encoder + 2 decoder LSTMs: kernel, recurrent kernel, bias.
            expected_num_trainable_weights=12,
            expected_num_non_trainable_weights=0,
            # Keras's LSTM cells hold one each, even without dropout.
            expected_num_seed_generators=4,
            supports_masking=True,
        )

    def test_run_layer_test_with_dropout(self):
        # Under mixed precision the dropout layers must compute in float16
        # too, or the output comes back as float32.
        self.run_layer_test(
            Seq2SeqLSTM,
            init_kwargs={
                "units": 6,
                "num_layers": 2,
                "dropout": 0.25,
                "seed": 3,
                "reverse_source": False,
            },
            input_shape=((2, 5, 4), (2, 3, 4)),
            expected_output_shape=(2, 3, 6),
            expected_num_trainable_weights=12,
            expected_num_non_trainable_weights=0,
            # 4 LSTM cells, plus one dropout per LSTM input and one on the
            # decoder output.
            expected_num_seed_generators=7,
            supports_masking=True,
        )

    def test_run_layer_test_with_masks(self):
        rng = np.random.default_rng(0)
        source = rng.normal(size=(3, 5, 4)).astype("float32")
        target = rng.normal(size=(3, 4, 4)).astype("float32")
        self.run_layer_test(
            Seq2SeqLSTM,
            init_kwargs={"units": 6, "num_layers": 1},
            input_data=(source, target),
            call_kwargs={
                "mask": [
                    right_padded_mask([5, 2, 1], 5),
                    right_padded_mask([4, 4, 2], 4),
                ]
            },
            expected_output_shape=(3, 4, 6),
            expected_num_trainable_weights=6,
            expected_num_non_trainable_weights=0,
            supports_masking=True,
        )
