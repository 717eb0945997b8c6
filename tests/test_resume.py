"""Fault injection: training killed with SIGKILL resumes exactly.

A run is killed at several points, restarted with the same command, and
its final weights are compared with those of an uninterrupted run: they
must be bit-identical (TensorFlow on CPU; 1e-6 elsewhere). The runs are
subprocesses (`fault_injection_worker.py`), on TensorFlow and on PyTorch
where the test says so.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.test_cli import small_text8

WORKER = Path(__file__).with_name("fault_injection_worker.py")
CHAR_EXAMPLE = WORKER.parents[1] / "examples" / "train_char_memn2n.py"
BACKENDS = ["tensorflow", "torch"]


def tolerance(backend=None):
    backend = backend or keras.config.backend()
    return 0.0 if backend == "tensorflow" else 1e-6


def environment(backend=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(WORKER.parents[1]), env.get("PYTHONPATH", "")]
    )
    if backend is not None:
        env["KERAS_BACKEND"] = backend
    return env


def run_worker(run_dir, kill_at=(), backend=None):
    run_dir.mkdir(exist_ok=True)
    command = [
        sys.executable,
        str(WORKER),
        str(run_dir / "checkpoint"),
        str(run_dir / "weights.npz"),
        *map(str, kill_at),
    ]
    return subprocess.run(
        command,
        env=environment(backend),
        capture_output=True,
        text=True,
        timeout=300,
    )


def run_script(run_dir, script, args, kills="-", backend=None):
    """Runs `script` through the worker, killed at the first of `kills`
    (`"EPOCH:BATCH,..."`) not yet met in `run_dir`."""
    run_dir.mkdir(exist_ok=True)
    command = [
        sys.executable,
        str(WORKER),
        "script",
        str(run_dir),
        kills,
        str(script),
        *map(str, args),
    ]
    return subprocess.run(
        command,
        env=environment(backend),
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_same_weights(expected, actual, backend=None):
    assert len(expected) == len(actual)
    for want, got in zip(expected, actual):
        np.testing.assert_allclose(got, want, rtol=0, atol=tolerance(backend))


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_train_memn2n_lm_killed_anywhere_resumes_to_the_same_weights(
    tmp_path, backend
):
    result = run_worker(tmp_path / "uninterrupted", backend=backend)
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(tmp_path / "uninterrupted" / "weights.npz") as saved:
        learning_rates = saved["learning_rate"]
        expected = [saved[f"arr_{i}"] for i in range(len(saved.files) - 1)]
    # The annealing fires at the end of epoch 5: the kill inside epoch 5
    # checks that a resumed run still anneals there.
    assert learning_rates[3] > learning_rates[4], learning_rates
    # (epoch, batch), 1-based; an epoch has 8 batches.
    for epoch, batch in [(5, 4), (2, 8)]:
        run_dir = tmp_path / f"killed_{epoch}_{batch}"
        killed = run_worker(run_dir, (epoch, batch), backend)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
        assert not (run_dir / "weights.npz").exists()
        resumed = run_worker(run_dir, (epoch, batch), backend)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        with np.load(run_dir / "weights.npz") as saved:
            np.testing.assert_array_equal(
                saved["learning_rate"], learning_rates
            )
            actual = [saved[f"arr_{i}"] for i in range(len(saved.files) - 1)]
        assert_same_weights(expected, actual, backend)


def cli_command(data, output, checkpoint_dir=None):
    command = [
        sys.executable,
        "-m",
        "keras_memnet.cli",
        "train",
        "--protocol",
        "text8",
        "--data",
        str(data),
        "--memory-size",
        "5",
        "--hops",
        "2",
        "--embedding-dim",
        "8",
        "--batch-size",
        "8",
        "--epochs",
        "6",
        "--patience",
        "6",
        "--verbose",
        "0",
        "--output",
        str(output),
    ]
    if checkpoint_dir is not None:
        command += ["--checkpoint-dir", str(checkpoint_dir), "--resume"]
    return command


def kill_after_epoch(command, checkpoint_dir, epoch):
    """Starts `command` and SIGKILLs it once `epoch` epochs are saved."""
    metadata = checkpoint_dir / "training_metadata.json"
    process = subprocess.Popen(
        command,
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        try:
            saved_epoch = int(metadata.read_text().split(":")[1].split(",")[0])
        except (OSError, ValueError, IndexError):
            saved_epoch = 0
        if saved_epoch >= epoch:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    return process.wait(timeout=120)


def model_weights(path):
    from keras_memnet.saving import load_model

    return [np.asarray(w) for w in load_model(path).get_weights()]


@pytest.mark.slow
def test_cli_train_killed_twice_resumes_to_the_same_model(tmp_path):
    data = small_text8(tmp_path / "small.txt", num_bytes=40000)
    uninterrupted = tmp_path / "uninterrupted.keras"
    result = subprocess.run(
        cli_command(data, uninterrupted),
        env=environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    output = tmp_path / "resumed.keras"
    checkpoint_dir = tmp_path / "checkpoint"
    command = cli_command(data, output, checkpoint_dir)
    # Killed while training epoch 2, then (restarted) while training 4.
    for epoch in (1, 3):
        assert kill_after_epoch(command, checkpoint_dir, epoch) == (
            -signal.SIGKILL
        )
        assert not output.exists()
    result = subprocess.run(
        command, env=environment(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_weights(model_weights(uninterrupted), model_weights(output))


def char_example_args(run_dir, form, checkpoint=True):
    # --fast: 2 hops, memory 32, 3 epochs of 10 steps (--max-steps 30),
    # sequence rows of 62 targets. 1024 rows a batch make a pass over the
    # bundled sample's 900,000 training characters 14 batches, so the
    # run crosses passes (at steps 14 and 28) and the kills below resume
    # inside pass 0 (step 10) and pass 1 (step 20).
    # The window form draws 1024 random windows a batch (RandomWindows).
    args = [
        "--fast",
        "--models",
        "memn2n",
        "--batch-size",
        "1024",
        "--form",
        form,
        "--output",
        run_dir / "model.keras",
    ]
    if checkpoint:
        args += ["--checkpoint-dir", run_dir / "checkpoint", "--resume"]
    return args


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend, form",
    [
        ("tensorflow", "sequence"),
        ("torch", "sequence"),
        ("tensorflow", "window"),
    ],
)
def test_char_example_killed_twice_resumes_to_the_same_weights(
    tmp_path, backend, form
):
    plain = tmp_path / "uninterrupted"
    result = run_script(
        plain,
        CHAR_EXAMPLE,
        char_example_args(plain, form, checkpoint=False),
        backend=backend,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    run_dir = tmp_path / "killed"
    args = char_example_args(run_dir, form)
    # Killed in epoch 2 (resumes at step 10), then in epoch 3 (resumes at
    # step 20), each mid-epoch.
    for _ in range(2):
        killed = run_script(run_dir, CHAR_EXAMPLE, args, "2:5,3:3", backend)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
        assert not (run_dir / "model.keras").exists()
    resumed = run_script(run_dir, CHAR_EXAMPLE, args, "2:5,3:3", backend)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # The step budget carried over: 30 steps in all, not 30 after the
    # last restart.
    assert "Trained 30 steps" in resumed.stdout, resumed.stdout[-3000:]
    assert_same_weights(
        model_weights(plain / "model.keras"),
        model_weights(run_dir / "model.keras"),
        backend,
    )


def test_sentence_pair_order_is_a_function_of_the_epoch():
    from keras_memnet.datasets import sentence_pairs as sp

    pairs = [(f"s{i} a", f"t{i} b") for i in range(23)]
    source_vocab, target_vocab = sp.build_vocabularies(pairs)

    def passes(initial_epoch, count):
        dataset = sp.sentence_pair_dataset(
            pairs,
            source_vocab,
            target_vocab,
            batch_size=5,
            seed=7,
            initial_epoch=initial_epoch,
        )
        return [
            [
                inputs["source_ids"].numpy()[:, 0].tolist()
                for inputs, _ in dataset
            ]
            for _ in range(count)
        ]

    epoch_0, epoch_1, epoch_2 = passes(0, 3)
    assert epoch_0 != epoch_1 != epoch_2
    # Each pass holds every pair once.
    assert sorted(sum(epoch_1, [])) == sorted(sum(epoch_0, []))
    # A resumed pipeline gives the epochs an uninterrupted one would have.
    assert passes(1, 2) == [epoch_1, epoch_2]


class Crash(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 2:
            raise RuntimeError("crash")


def test_time_limit_budget_carries_over_a_resume(tmp_path):
    from keras_memnet.callbacks import TimeLimit
    from keras_memnet.callbacks import TrainingCheckpoint

    x, y = np.ones((8, 2)), np.ones((8, 1))

    def fit(*callbacks):
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        limit = TimeLimit(3600, max_steps=10)
        model.fit(
            x,
            y,
            batch_size=2,
            epochs=100,
            verbose=0,
            callbacks=[
                limit,
                TrainingCheckpoint(tmp_path, [limit]),
                *callbacks,
            ],
        )
        return limit

    # Epochs of 4 steps; the crash comes after 2, the restart may run 2
    # more steps only.
    with pytest.raises(RuntimeError, match="crash"):
        fit(Crash())
    resumed = fit()
    assert resumed.steps == 10 and resumed.stopped_early
    assert resumed.elapsed > 0


TRANSLATE_EXAMPLE = WORKER.parents[1] / "examples" / "translate_fra_eng.py"


def tiny_pairs_file(path, count=120):
    """`count` made-up English-French pairs, word for word."""
    words = {
        "i": "je",
        "you": "tu",
        "see": "vois",
        "like": "aime",
        "the": "le",
        "cat": "chat",
        "dog": "chien",
        "car": "voiture",
        "big": "grand",
        "small": "petit",
        "red": "rouge",
    }
    english = sorted(words)
    rng = np.random.default_rng(0)
    lines = []
    for _ in range(count):
        sentence = list(rng.choice(english, size=rng.integers(2, 6)))
        lines.append(
            " ".join(sentence)
            + " .\t"
            + " ".join(words[w] for w in sentence)
            + " ."
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def translate_args(run_dir, data, checkpoint=True):
    # 116 training pairs in batches of 16: 8 steps an epoch, 3 epochs.
    args = [
        "--data",
        data,
        "--test-size",
        "4",
        "--min-count",
        "1",
        "--num-layers",
        "1",
        "--units",
        "16",
        "--embedding-dim",
        "8",
        "--batch-size",
        "16",
        "--epochs",
        "3",
        "--num-beams",
        "2",
        "--no-replace-unknown",
        "--save",
        run_dir / "model.keras",
        "--output",
        run_dir / "results.json",
    ]
    if checkpoint:
        args += ["--checkpoint-dir", run_dir / "checkpoint", "--resume"]
    return args


@pytest.mark.slow
def test_translate_example_killed_twice_resumes_to_the_same_weights(
    tmp_path,
):
    import json

    data = tiny_pairs_file(tmp_path / "pairs.txt")
    plain = tmp_path / "uninterrupted"
    result = run_script(
        plain,
        TRANSLATE_EXAMPLE,
        translate_args(plain, data, checkpoint=False),
        backend="tensorflow",
    )
    assert result.returncode == 0, result.stderr[-3000:]

    run_dir = tmp_path / "killed"
    args = translate_args(run_dir, data)
    # Killed in epoch 2 and, restarted from epoch 2, in epoch 3.
    for _ in range(2):
        killed = run_script(
            run_dir, TRANSLATE_EXAMPLE, args, "2:3,3:2", "tensorflow"
        )
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
        assert not (run_dir / "model.keras").exists()
    resumed = run_script(
        run_dir, TRANSLATE_EXAMPLE, args, "2:3,3:2", "tensorflow"
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_weights(
        model_weights(plain / "model.keras"),
        model_weights(run_dir / "model.keras"),
        "tensorflow",
    )
    want, got = (
        json.loads((d / "results.json").read_text())["models"][0]
        for d in (plain, run_dir)
    )
    # The steps and the history carried over the restarts.
    assert got["steps"] == want["steps"] == 24
    assert got["final_train_loss"] == want["final_train_loss"]
    assert got["bleu_greedy"] == want["bleu_greedy"]
