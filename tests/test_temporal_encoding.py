import keras
import numpy as np
import pytest
from keras.src import testing

from keras_memnet.layers import TemporalEncoding


def test_adds_one_learned_vector_per_slot():
    layer = TemporalEncoding(memory_size=5)
    inputs = np.random.normal(size=(3, 5, 4)).astype("float32")
    outputs = keras.ops.convert_to_numpy(layer(inputs))
    table = keras.ops.convert_to_numpy(layer.embeddings)
    assert table.shape == (5, 4)
    np.testing.assert_allclose(outputs, inputs + table[None], rtol=1e-6)
    assert layer.compute_output_shape((None, 5, 4)) == (None, 5, 4)


def test_default_initializer_is_normal_005():
    layer = TemporalEncoding(memory_size=400)
    layer.build((None, 400, 100))
    table = keras.ops.convert_to_numpy(layer.embeddings)
    assert abs(table.std() - 0.05) < 0.005
    assert abs(table.mean()) < 0.005


def test_propagates_mask_in_functional_model():
    ids = keras.Input((6,), dtype="int32")
    embedded = keras.layers.Embedding(10, 4, mask_zero=True)(ids)
    encoded = TemporalEncoding(6)(embedded)
    # A masked mean downstream sees the mask only if the layer passes it on.
    pooled = keras.layers.GlobalAveragePooling1D()(encoded)
    model = keras.Model(ids, [encoded, pooled])
    assert model.output_shape == [(None, 6, 4), (None, 4)]
    x = np.array([[3, 1, 4, 1, 0, 0], [5, 9, 2, 6, 5, 3], [0, 0, 0, 7, 0, 2]])
    encoded, pooled = model.predict(x, verbose=0)
    valid = (x != 0)[..., None]
    expected = (encoded * valid).sum(1) / valid.sum(1)
    np.testing.assert_allclose(pooled, expected, rtol=1e-5, atol=1e-6)
    # The mask is passed on unchanged, as the same booleans.
    layer = model.layers[2]
    assert isinstance(layer, TemporalEncoding)
    mask = keras.ops.convert_to_tensor(x != 0)
    computed = layer.compute_mask(keras.ops.ones((3, 6, 4)), mask)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(computed), x != 0)


def test_serialization_round_trip():
    layer = TemporalEncoding(memory_size=7, name="t_a")
    clone = TemporalEncoding.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert isinstance(restored, TemporalEncoding)
    assert restored.memory_size == 7


@pytest.mark.parametrize("memory_size", [0, -1, 2.5, None])
def test_rejects_bad_memory_size(memory_size):
    with pytest.raises(ValueError, match="memory_size"):
        TemporalEncoding(memory_size=memory_size)


def test_rejects_inputs_of_another_memory_length():
    layer = TemporalEncoding(memory_size=5)
    with pytest.raises(ValueError, match="memory_size=5"):
        layer(np.zeros((2, 6, 3), dtype="float32"))


def test_rejects_wrong_rank():
    with pytest.raises(ValueError, match="memory_size, dim"):
        TemporalEncoding(memory_size=5)(np.zeros((2, 5), dtype="float32"))


class TemporalEncodingLayerTest(testing.TestCase):
    def test_run_layer_test(self):
        self.run_layer_test(
            TemporalEncoding,
            init_kwargs={"memory_size": 5, "embeddings_regularizer": "l2"},
            input_shape=(2, 5, 4),
            expected_output_shape=(2, 5, 4),
            expected_num_trainable_weights=1,
            expected_num_non_trainable_weights=0,
            expected_num_seed_generators=0,
            expected_num_losses=1,
            supports_masking=True,
        )

    def test_run_layer_test_output_values(self):
        inputs = np.arange(24, dtype="float32").reshape((2, 3, 4))
        table = np.linspace(-1, 1, 12, dtype="float32").reshape((3, 4))
        self.run_layer_test(
            TemporalEncoding,
            init_kwargs={
                "memory_size": 3,
                "embeddings_initializer": keras.initializers.Constant(table),
            },
            input_data=inputs,
            # The harness wants the backend's tensor type, not NumPy's.
            expected_output=keras.ops.convert_to_tensor(inputs + table),
            expected_num_trainable_weights=1,
            expected_num_non_trainable_weights=0,
            supports_masking=True,
        )
