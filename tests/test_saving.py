import zipfile

import keras
import numpy as np
import pytest

from keras_memnet.models import MemN2NLM
from keras_memnet.saving import load_model


def test_loads_a_keras_memnet_model(tmp_path):
    model = MemN2NLM(vocabulary_size=20, hops=2, memory_size=4, embedding_dim=8)
    model.build((None, 4))
    path = tmp_path / "lm.keras"
    model.save(path)
    restored = load_model(path)
    ids = np.arange(1, 9).reshape(2, 4)
    np.testing.assert_array_equal(
        restored.predict(ids, verbose=0), model.predict(ids, verbose=0)
    )


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="No model file"):
        load_model(tmp_path / "nothing.keras")


def test_not_a_keras_file(tmp_path):
    path = tmp_path / "notes.keras"
    path.write_text("hello")
    with pytest.raises(ValueError, match="not a Keras"):
        load_model(path)
    empty_zip = tmp_path / "empty.keras"
    with zipfile.ZipFile(empty_zip, "w"):
        pass
    with pytest.raises(ValueError, match="not a Keras"):
        load_model(empty_zip)


def test_a_keras_model_that_is_not_ours(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    path = tmp_path / "dense.keras"
    model.save(path)
    with pytest.raises(ValueError, match="not a keras-memnet model"):
        load_model(path)
