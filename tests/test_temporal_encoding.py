import keras
import numpy as np
import pytest

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
    model = keras.Model(ids, encoded)
    mask = model.layers[-1].compute_mask(embedded, embedded._keras_mask)
    assert mask is not None
    assert model.output_shape == (None, 6, 4)


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
