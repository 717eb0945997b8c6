"""Data-parallel training through Keras's engines, on two CPU devices.

JAX's `keras.distribution.DataParallel` (two virtual CPU devices) and
TensorFlow's `MirroredStrategy` (two logical CPU devices) run in
subprocesses (`distribution_worker.py`), since the device count is fixed
when the backend starts. Each trains the recipe (clipping that clips every
step, NaN guard, annealing, early stopping, checkpoints) in the window and
the sequence form on one device and on two at the same global batch; the
histories, perplexities and weights must agree within 1e-4. With the
gradient of each replica's share clipped instead of the global gradient,
the weights differ by far more. Two JAX processes on 127.0.0.1, one device
each, joined by `jax.distributed` through Keras's `KERAS_DISTRIBUTION_*`
variables, must also give the weights of one device.
"""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.worker_process import run_worker_process

WORKER = Path(__file__).with_name("distribution_worker.py")
TOLERANCE = 1e-4
TIMEOUT = 300


def environment(backend, **extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND=backend)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(WORKER.parents[1]), env.get("PYTHONPATH", "")]
    )
    env.update(extra)
    return env


def load(path):
    arrays = np.load(path)
    summary = json.loads(str(arrays["summary"]))
    weights = {}
    for key in arrays.files:
        if key != "summary":
            run, index = key.rsplit("/", 1)
            weights.setdefault(run, {})[int(index)] = arrays[key]
    weights = {run: [ws[i] for i in sorted(ws)] for run, ws in weights.items()}
    return summary, weights


def run_compare(backend, tmp_path_factory, mode="compare", devices=2):
    output = tmp_path_factory.mktemp(backend) / "runs.npz"
    extra = {}
    if backend == "jax":
        extra["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    run_worker_process(
        WORKER, [mode, output], environment(backend, **extra), TIMEOUT
    )
    return load(output)


@pytest.fixture(scope="module")
def jax_runs(tmp_path_factory):
    return run_compare("jax", tmp_path_factory)


@pytest.fixture(scope="module")
def jax_mesh_runs(tmp_path_factory):
    return run_compare("jax", tmp_path_factory, mode="mesh", devices=4)


@pytest.fixture(scope="module")
def tf_runs(tmp_path_factory):
    return run_compare("tensorflow", tmp_path_factory)


def assert_same_training(runs, form, exact_val_loss):
    summary, weights = runs
    one, two = summary[f"{form}/one"], summary[f"{form}/two"]
    assert summary["replicas"] == 2
    assert one["steps"] == two["steps"] == 8
    # Every step clipped: the clipping rule decides the weights.
    assert min(one["history"]["gradient_norm"]) > 3 * one["max_norm"]
    names = [
        "loss",
        "perplexity",
        "gradient_norm",
        "learning_rate",
        "val_perplexity",
    ]
    if exact_val_loss:
        names.append("val_loss")
    for name in names:
        np.testing.assert_allclose(
            two["history"][name],
            one["history"][name],
            rtol=TOLERANCE,
            err_msg=name,
        )
    for split in ("train", "valid", "test"):
        np.testing.assert_allclose(
            two["perplexity"][split],
            one["perplexity"][split],
            rtol=TOLERANCE,
            err_msg=split,
        )
    assert len(weights[f"{form}/one"]) == len(weights[f"{form}/two"])
    for a, b in zip(weights[f"{form}/one"], weights[f"{form}/two"]):
        np.testing.assert_allclose(b, a, atol=TOLERANCE)


@pytest.mark.slow
@pytest.mark.parametrize("form", ["window", "sequence", "adaptive"])
def test_jax_data_parallel_matches_one_device(jax_runs, form):
    # JAX pads the last evaluation batch with weight-0 rows, which lowers
    # val_loss by a constant factor; perplexities are exact.
    assert_same_training(jax_runs, form, exact_val_loss=False)
    summary, _ = jax_runs
    assert (
        summary[f"{form}/two"]["history"]["val_loss"][0]
        < summary[f"{form}/one"]["history"]["val_loss"][0]
    )


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_summed_adaptive_loss_trains_as_keras_loss(backend, request):
    # On two replicas, the adaptive softmax's own loss with
    # reduction="sum" must train as Keras's loss does (which, summed, is
    # not divided by the replicas).
    _, weights = request.getfixturevalue(
        "jax_runs" if backend == "jax" else "tf_runs"
    )
    keras_loss, fast_loss = (
        weights["adaptive-sum/keras"],
        weights["adaptive-sum/fast"],
    )
    for a, b in zip(keras_loss, fast_loss):
        np.testing.assert_allclose(b, a, atol=TOLERANCE)


@pytest.mark.slow
def test_jax_model_parallel_matches_one_device(jax_runs):
    assert_same_training(jax_runs, "model", exact_val_loss=True)
    summary, weights = jax_runs
    vocabulary_size = len(weights["model/one"][0])
    assert vocabulary_size == 18
    # Every vocabulary-sized dimension (18) holds half its ids per device;
    # the rest is copied.
    for weight, shard in zip(
        weights["model/two"], summary["model/two"]["first_shard_shapes"]
    ):
        assert shard == [9 if size == 18 else size for size in weight.shape]
    assert summary["model/one"]["first_shard_shapes"][0] == [18, 8]
    assert (
        "does not split evenly across the 2 devices"
        in (summary["odd_vocabulary_error"])
    )


@pytest.mark.slow
def test_jax_model_and_data_parallel_mesh_matches_one_device(jax_mesh_runs):
    # A 2 x 2 mesh: the batch split between two copies of the model, the
    # vocabulary-sized weights between the two devices of each copy; the
    # padded last evaluation batch lowers val_loss as in data parallelism.
    assert_same_training(jax_mesh_runs, "mesh", exact_val_loss=False)
    summary, weights = jax_mesh_runs
    for weight, shard in zip(
        weights["mesh/two"], summary["mesh/two"]["first_shard_shapes"]
    ):
        assert shard == [9 if size == 18 else size for size in weight.shape]


@pytest.mark.slow
@pytest.mark.parametrize("form", ["window", "sequence", "adaptive"])
def test_tf_mirrored_strategy_matches_one_device(tf_runs, form):
    assert_same_training(tf_runs, form, exact_val_loss=True)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_partial_last_training_batch_is_dropped(backend, request):
    # 37 training rows at a global batch of 8: 4 steps an epoch, no error.
    summary, weights = request.getfixturevalue(
        "jax_runs" if backend == "jax" else "tf_runs"
    )
    partial = summary["partial/two"]
    assert partial["steps"] == 8
    assert all(np.isfinite(w).all() for w in weights["partial/two"])
    assert all(np.isfinite(v) for v in partial["perplexity"].values())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_environment(port, index):
    """One of two JAX processes on 127.0.0.1, named by Keras's
    `KERAS_DISTRIBUTION_*` variables."""
    return environment(
        "jax",
        XLA_FLAGS="",
        KERAS_DISTRIBUTION_JOB_ADDRESSES=f"127.0.0.1:{port}",
        KERAS_DISTRIBUTION_NUM_PROCESSES="2",
        KERAS_DISTRIBUTION_PROCESS_ID=str(index),
    )


def run_two_jax_processes(tmp_path, distribute):
    """Runs two `worker` processes to the end; returns their exit codes and
    the tails of their logs."""
    port = free_port()
    processes, logs = [], []
    try:
        for index in range(2):
            logs.append(open(tmp_path / f"worker{index}.log", "w"))
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        str(WORKER),
                        "worker",
                        str(tmp_path / f"worker{index}.npz"),
                        distribute,
                    ],
                    env=worker_environment(port, index),
                    stdout=subprocess.DEVNULL,
                    stderr=logs[-1],
                    start_new_session=True,
                )
            )
        codes = [process.wait(timeout=TIMEOUT) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for log in logs:
            log.close()
    tails = [
        (tmp_path / f"worker{index}.log").read_text()[-3000:]
        for index in range(2)
    ]
    return codes, tails


@pytest.mark.slow
def test_two_jax_processes_match_one_device(tmp_path):
    # Each process holds one CPU device; the engine joins them through
    # jax.distributed (gloo collectives) and Keras shards each batch.
    codes, tails = run_two_jax_processes(tmp_path, "data-parallel")
    for code, tail in zip(codes, tails):
        assert code == 0, tail
    run_worker_process(
        WORKER,
        ["single", tmp_path / "single.npz"],
        environment("jax", XLA_FLAGS=""),
        TIMEOUT,
    )
    (s0, w0), (s1, w1) = (
        load(tmp_path / f"worker{index}.npz") for index in range(2)
    )
    reference, reference_weights = load(tmp_path / "single.npz")
    assert s0["replicas"] == s1["replicas"] == 2
    assert reference["replicas"] == 1
    assert reference["run"]["steps"] == s0["run"]["steps"] == 6
    history = s0["run"]["history"]
    assert min(history["gradient_norm"]) > 3 * s0["run"]["max_norm"]
    assert history["loss"][-1] < history["loss"][0]
    for a, b, c in zip(w0["run"], w1["run"], reference_weights["run"]):
        np.testing.assert_allclose(a, b, atol=1e-6)
        np.testing.assert_allclose(a, c, atol=TOLERANCE)
    for name in ("loss", "gradient_norm", "val_perplexity"):
        np.testing.assert_allclose(
            history[name],
            reference["run"]["history"][name],
            rtol=TOLERANCE,
            err_msg=name,
        )
    for split in ("train", "valid", "test"):
        np.testing.assert_allclose(
            s0["run"]["perplexity"][split],
            reference["run"]["perplexity"][split],
            rtol=TOLERANCE,
        )


@pytest.mark.slow
def test_model_parallel_across_processes_is_refused(tmp_path):
    codes, tails = run_two_jax_processes(tmp_path, "model-parallel")
    for code, tail in zip(codes, tails):
        assert code != 0
        assert "runs in one process" in tail, tail


# In-process checks of the option itself.


def test_unknown_mode_is_refused():
    from keras_memnet.distribution import distribution_scope

    with pytest.raises(ValueError, match="`distribute` must be one of"):
        with distribution_scope("model-paralel"):
            pass


def test_pytorch_has_no_engine(monkeypatch):
    from keras_memnet import distribution

    monkeypatch.setattr(keras.config, "backend", lambda: "torch")
    with pytest.raises(ValueError, match="no multi-device training engine"):
        distribution.data_parallel_engine()


def test_tensorflow_multi_worker_is_refused(monkeypatch):
    from keras_memnet import distribution

    config = {
        "cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
        "task": {"type": "worker", "index": 0},
    }
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    monkeypatch.setattr(keras.config, "backend", lambda: "tensorflow")
    with pytest.raises(ValueError, match="TF_CONFIG names several workers"):
        distribution.data_parallel_engine()


@pytest.mark.skipif(
    keras.config.backend() != "jax", reason="jax.distributed is JAX's"
)
def test_bad_process_count_is_refused(monkeypatch):
    from keras_memnet.distribution import data_parallel_engine

    monkeypatch.setenv("KERAS_DISTRIBUTION_NUM_PROCESSES", "two")
    with pytest.raises(ValueError, match="must be a whole number"):
        data_parallel_engine()


def test_no_distribution_is_one_replica():
    from keras_memnet.distribution import distribution_scope

    with distribution_scope(None) as replicas:
        assert replicas == 1


class ThreeReplicas:
    """Stands for a strategy of three replicas (no devices needed)."""

    num_replicas_in_sync = 3

    def scope(self):
        import contextlib

        return contextlib.nullcontext()


def test_recipe_refuses_batch_that_does_not_split():
    from keras_memnet.datasets import Corpus
    from keras_memnet.recipes import MemN2NLMRecipe
    from keras_memnet.recipes import train_memn2n_lm
    from keras_memnet.tokenizers import WordVocabulary

    vocabulary = WordVocabulary.from_text("a b c d e")
    ids = vocabulary.encode("a b c d e " * 20)
    corpus = Corpus(ids, ids, ids, vocabulary)
    with pytest.raises(ValueError, match="does not split evenly across 3"):
        train_memn2n_lm(
            corpus,
            hops=1,
            memory_size=3,
            embedding_dim=4,
            recipe=MemN2NLMRecipe(batch_size=8),
            distribute=ThreeReplicas(),
        )


@pytest.mark.tensorflow_only
def test_pad_batches_weights_padding_zero():
    import tensorflow as tf

    from keras_memnet.distribution import pad_batches

    x = np.arange(15, dtype="int32").reshape(5, 3)
    y = np.arange(5, dtype="int32")
    batches = list(
        pad_batches(tf.data.Dataset.from_tensor_slices((x, y)).batch(4), 3)
    )
    assert [b[0].shape[0] for b in batches] == [6, 3]
    assert batches[0][2].numpy().tolist() == [1, 1, 1, 1, 0, 0]
    # The padding repeats real rows.
    assert batches[0][0].numpy()[4:].tolist() == x[:2].tolist()
    assert batches[1][2].numpy().tolist() == [1, 0, 0]
    assert batches[1][1].numpy().tolist() == [4, 4, 4]


def test_cli_refuses_unknown_distribute(capsys):
    from keras_memnet.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--distribute", "everything"])
    assert "--distribute" in capsys.readouterr().err


@pytest.mark.skipif(
    keras.config.backend() == "jax", reason="model parallelism runs on JAX"
)
def test_cli_refuses_model_parallel_off_jax(capsys):
    from keras_memnet.cli import main

    assert main(["train", "--distribute", "model-parallel"]) == 2
    assert "needs the JAX backend" in capsys.readouterr().err


def one_device_mesh():
    return keras.distribution.DeviceMesh(
        shape=(1, 1), axis_names=("batch", "model"), devices=["cpu:0"]
    )


@pytest.mark.parametrize(
    "output, weight_tying",
    [
        ("softmax", "layerwise"),
        ("adaptive", "layerwise"),
        # The logits read the last memory embedding, transposed.
        ("softmax", "adjacent"),
    ],
)
def test_layout_map_splits_the_vocabulary_sized_weights(output, weight_tying):
    from keras_memnet.models import MemN2NLM

    layout_map = MemN2NLM.get_layout_map(one_device_mesh())
    model = MemN2NLM(
        30,
        hops=2,
        memory_size=4,
        embedding_dim=6,
        output=output,
        weight_tying=weight_tying,
    )
    model.build((None, 4))
    split = {}
    for variable in model.weights:
        layout = layout_map[variable.path]
        split[variable.path] = None if layout is None else layout.axes
    embeddings = [p for p in split if "memory_embedding" in p]
    assert len(embeddings) == (2 if weight_tying == "layerwise" else 3)
    for path in embeddings:
        assert split[path] == ("model", None), path
    projection = [p for p in split if "output_projection" in p]
    if output == "softmax" and weight_tying == "layerwise":
        assert split[projection[0]] == (None, "model")
    else:
        assert not projection
    # Everything else (temporal encodings, H, the adaptive head) is copied.
    others = [p for p in split if p not in embeddings + projection]
    assert others and all(split[p] is None for p in others)


def test_layout_map_refuses_a_mesh_without_the_axis():
    from keras_memnet.models import MemN2NLM

    with pytest.raises(ValueError, match="no axis 'tensor'"):
        MemN2NLM.get_layout_map(
            one_device_mesh(), model_parallel_dim_name="tensor"
        )
    with pytest.raises(ValueError, match="`device_mesh` must be"):
        MemN2NLM.get_layout_map("batch,model")


def test_model_parallel_needs_jax_and_a_layout(monkeypatch):
    from keras_memnet import distribution
    from keras_memnet.models import MemN2NLM

    monkeypatch.setattr(keras.config, "backend", lambda: "tensorflow")
    with pytest.raises(ValueError, match="needs the JAX backend"):
        distribution.model_parallel_engine(MemN2NLM)
    monkeypatch.setattr(keras.config, "backend", lambda: "jax")
    with pytest.raises(ValueError, match="with `get_layout_map`"):
        distribution.model_parallel_engine(keras.Model)
    with pytest.raises(ValueError, match="needs `model`"):
        with distribution.distribution_scope("model-parallel"):
            pass


@pytest.mark.skipif(
    keras.config.backend() != "jax", reason="keras.distribution is JAX's"
)
def test_model_parallel_size_must_divide_the_devices():
    from keras_memnet.distribution import model_parallel_engine
    from keras_memnet.models import MemN2NLM

    devices = keras.distribution.list_devices()
    with pytest.raises(ValueError, match="does not divide"):
        model_parallel_engine(
            MemN2NLM, devices, model_parallel_size=len(devices) + 1
        )
    engine = model_parallel_engine(MemN2NLM, devices)
    assert engine.device_mesh.shape == (1, len(devices))
