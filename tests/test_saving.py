import importlib.util
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


def rewrite_member(source, target, name, transform):
    """Copies a zip archive with one member's bytes transformed."""
    with zipfile.ZipFile(source) as original:
        members = {
            info.filename: original.read(info) for info in original.infolist()
        }
    members[name] = transform(members[name])
    with zipfile.ZipFile(target, "w") as copy:
        for member, data in members.items():
            copy.writestr(member, data)


@pytest.mark.parametrize("damage", ["checksum", "content"])
def test_a_damaged_weights_file_is_a_clear_error(tmp_path, damage):
    model = MemN2NLM(vocabulary_size=20, hops=1, memory_size=4, embedding_dim=8)
    model.build((None, 4))
    path = tmp_path / "lm.keras"
    model.save(path)
    damaged = tmp_path / "damaged.keras"
    if damage == "content":
        # A whole zip whose weights file is not HDF5 any more.
        rewrite_member(
            path,
            damaged,
            "model.weights.h5",
            lambda data: data[:100] + b"\0" * (len(data) - 100),
        )
        match = "weights cannot be read"
    else:
        # Bytes flipped in the stored weights: the zip's checksum fails.
        data = bytearray(path.read_bytes())
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("model.weights.h5")
        start = (
            info.header_offset + 30 + len(info.filename) + len(info.extra) + 200
        )
        data[start : start + 64] = b"\xff" * 64
        damaged.write_bytes(bytes(data))
        match = "model.weights.h5.*checksum"
    with pytest.raises(ValueError, match=match):
        load_model(damaged)


@pytest.mark.tensorflow_only  # SavedModel export.
def test_export_with_an_int32_serving_signature(tmp_path):
    import tensorflow as tf

    model = MemN2NLM(vocabulary_size=20, hops=1, memory_size=4, embedding_dim=8)
    model.build((None, 4))
    path = str(tmp_path / "served")
    # As the README shows: without `input_signature` the served ids would
    # be float32.
    model.export(
        path,
        format="tf_saved_model",
        verbose=False,
        input_signature=[keras.InputSpec(shape=(None, 4), dtype="int32")],
    )
    served = tf.saved_model.load(path)
    ids = np.array([[1, 2, 3, 4], [0, 0, 5, 19]], dtype="int32")
    _, inputs = served.signatures["serving_default"].structured_input_signature
    assert [spec.dtype for spec in inputs.values()] == [tf.int32]
    np.testing.assert_allclose(
        served.serve(tf.constant(ids)).numpy(),
        model.predict(ids, verbose=0),
        rtol=1e-6,
        atol=1e-6,
    )


CROSS_BACKEND = """
import sys
import numpy as np
import keras
from keras_memnet.models import MemN2NLM
from keras_memnet.saving import load_model

ids = np.random.default_rng(0).integers(1, 20, (8, 4))
if sys.argv[1] == "save":
    model = MemN2NLM(20, hops=1, memory_size=4, embedding_dim=8)
    model.compile(optimizer="adam", jit_compile=True)
    model.fit(ids, ids[:, 0], verbose=0)
    model.save(sys.argv[2])
else:
    model = load_model(sys.argv[2])
    before = int(model.optimizer.iterations.numpy())
    model.fit(ids, ids[:, 0], verbose=0)
    print(model.jit_compile, before,
          int(model.optimizer.iterations.numpy()))
"""


def run_on(backend, *args):
    import os
    import subprocess
    import sys

    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", CROSS_BACKEND, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.split()


def skip_without(*backends):
    """Skips unless the backends are installed, without importing them
    here: they run in subprocesses, and loading jaxlib or torch beside
    TensorFlow in the test process only risks clashes of native code."""
    for backend in backends:
        if importlib.util.find_spec(backend) is None:
            pytest.skip(f"needs {backend} installed")


@pytest.mark.slow
def test_a_model_saved_on_torch_trains_on_tensorflow_and_jax(tmp_path):
    skip_without("torch", "jax")
    path = str(tmp_path / "torch.keras")
    run_on("torch", "save", path)
    # XLA is the loading backend's default, the optimizer state is kept
    # (one step before, two after) and it trains.
    assert run_on("tensorflow", "load", path) == ["True", "1", "2"]
    assert run_on("jax", "load", path) == ["True", "1", "2"]


@pytest.mark.slow
def test_a_model_saved_with_xla_loads_on_torch_without_its_compiler(
    tmp_path,
):
    skip_without("torch")
    path = str(tmp_path / "tf.keras")
    run_on("tensorflow", "save", path)
    assert run_on("torch", "load", path) == ["False", "1", "2"]
