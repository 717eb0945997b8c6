"""The models on several devices through Keras's own engines, as users
set them up: a JAX `keras.distribution` or a `tf.distribute` strategy,
then `fit` and `evaluate` on their own data.

The runs happen in subprocesses (`keras_distribution_worker.py`), on two
virtual JAX devices and two logical TensorFlow devices, since the device
count is fixed when the backend starts. For each of the three models and
the kinds of data `fit` takes, every split ends with a partial batch of
an odd number of rows, the recipe's callbacks (clipping, NaN guard,
annealing) and a checkpoint run, and the histories and evaluations on two
devices must be those of one device, without an engine, within 1e-3
(they agree within about 1e-6). The fast tests below check the padding
of JAX batches itself.
"""

import json
import os
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_memnet.utils.model_inputs import PADDING_WEIGHT
from keras_memnet.utils.model_inputs import ReplicaPadding
from keras_memnet.utils.model_inputs import _without_padding_rows
from tests.worker_process import run_worker_process

WORKER = Path(__file__).with_name("keras_distribution_worker.py")
TOLERANCE = 1e-3
TIMEOUT = 600
CASES = [
    "memn2n-windows",
    "memn2n-sequences",
    "char-pydataset",
    "translator-tfdata",
    "translator-arrays",
]


def run_worker(backend, tmp_path_factory):
    output = tmp_path_factory.mktemp(backend) / "runs.json"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND=backend)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(WORKER.parents[1]), env.get("PYTHONPATH", "")]
    )
    if backend == "jax":
        env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    run_worker_process(WORKER, [output], env, TIMEOUT)
    return json.loads(output.read_text())


@pytest.fixture(scope="module")
def jax_runs(tmp_path_factory):
    return run_worker("jax", tmp_path_factory)


@pytest.fixture(scope="module")
def tf_runs(tmp_path_factory):
    return run_worker("tensorflow", tmp_path_factory)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
@pytest.mark.parametrize("case", CASES)
def test_two_devices_train_as_one(backend, case, request):
    runs = request.getfixturevalue(
        f"{'jax' if backend == 'jax' else 'tf'}_runs"
    )
    run = runs[case]
    # Every batch size is even: odd row counts leave a partial last batch
    # that does not divide between the two devices.
    assert all(rows % 2 for rows in run["rows"].values()), run["rows"]
    one, two = run["one"], run["two"]
    history = one["history"]
    assert len(history["loss"]) == 3
    assert "gradient_norm" in history and "learning_rate" in history
    assert two["history"].keys() == history.keys()
    for name, values in history.items():
        np.testing.assert_allclose(
            two["history"][name], values, rtol=TOLERANCE, err_msg=name
        )
    assert two["evaluate"].keys() == one["evaluate"].keys()
    for name, value in one["evaluate"].items():
        np.testing.assert_allclose(
            two["evaluate"][name], value, rtol=TOLERANCE, err_msg=name
        )


@pytest.mark.slow
def test_annealing_acts_in_the_compared_runs(jax_runs, tf_runs):
    # The plateau annealing halves the rate in some run, so that its
    # decision is part of what the two devices must reproduce.
    rates = [
        rate
        for runs in (jax_runs, tf_runs)
        for run in runs.values()
        for rate in run["one"]["history"]["learning_rate"]
    ]
    assert min(rates) < max(rates)


def test_padding_repeats_rows_with_the_padding_weight():
    contexts = np.arange(12).reshape(3, 4)
    targets = np.array([5, 6, 7])
    x, y, weights = ReplicaPadding(2)._pad_python_batch((contexts, targets))
    np.testing.assert_array_equal(x, np.concatenate([contexts, contexts[:1]]))
    np.testing.assert_array_equal(y, [5, 6, 7, 5])
    np.testing.assert_array_equal(weights, [1, 1, 1, PADDING_WEIGHT])
    # A batch that divides is left as it is (with weights of 1).
    x, y, weights = ReplicaPadding(3)._pad_python_batch((contexts, targets))
    np.testing.assert_array_equal(x, contexts)
    np.testing.assert_array_equal(weights, [1, 1, 1])


def test_padding_of_a_dataset_keeps_dicts_and_sample_weights():
    import tensorflow as tf

    x = {
        "source_ids": np.ones((5, 3), "int32"),
        "decoder_input_ids": np.full((5, 2), 2, "int32"),
    }
    y = np.arange(10, dtype="int32").reshape(5, 2)
    weights = np.full((5, 2), 0.5, "float32")
    dataset = tf.data.Dataset.from_tensor_slices((x, y, weights)).batch(4)
    batches = list(ReplicaPadding(2).dataset(dataset))
    assert [len(b[1]) for b in batches] == [4, 2]
    last_x, last_y, last_weights = batches[1]
    assert last_x["source_ids"].shape == (2, 3)
    np.testing.assert_array_equal(last_y, [[8, 9], [8, 9]])
    np.testing.assert_array_equal(
        last_weights, [[0.5, 0.5], [PADDING_WEIGHT] * 2]
    )
    # Batches of a static size that divides need no padding.
    full = tf.data.Dataset.from_tensor_slices((x, y)).batch(
        2, drop_remainder=True
    )
    assert ReplicaPadding(2).dataset(full) is full


class _Compiled:
    """Just what `_without_padding_rows` reads of a compiled model."""

    def __init__(self, loss):
        self.loss = loss
        self._compile_loss = object()


def test_padding_rows_leave_the_mean_loss_as_it_was():
    weights = np.array([1.0, 0.5, 1.0, PADDING_WEIGHT], "float32")
    targets = np.array([3, 4, 5, 3])
    losses = np.array([2.0, 4.0, 6.0, 2.0], "float32")
    model = _Compiled(keras.losses.SparseCategoricalCrossentropy())
    y, loss_weights = _without_padding_rows(model, targets, weights)
    loss_weights = keras.ops.convert_to_numpy(loss_weights)
    # Keras's mean divides by all 4 rows: the real rows count 4 / 3.
    np.testing.assert_allclose(
        np.sum(losses * loss_weights) / 4, (2.0 + 2.0 + 6.0) / 3, rtol=1e-6
    )
    assert loss_weights[3] == 0


def test_padding_rows_take_the_ignored_class():
    weights = np.array([[1.0, 1.0], [PADDING_WEIGHT] * 2], "float32")
    targets = np.array([[3, 4], [3, 4]], "int32")
    model = _Compiled(
        keras.losses.SparseCategoricalCrossentropy(ignore_class=0)
    )
    y, loss_weights = _without_padding_rows(model, targets, weights)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(y), [[3, 4], [0, 0]]
    )
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loss_weights), [[1, 1], [0, 0]]
    )


def test_no_padding_without_a_distribution():
    from keras_memnet.models import MemN2NLM

    model = MemN2NLM(10, hops=1, memory_size=3, embedding_dim=4)
    model.compile()
    assert ReplicaPadding.of(model) is None
