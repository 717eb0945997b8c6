"""Fault injection: training killed with SIGKILL resumes exactly.

A run is killed at several points, restarted with the same command, and
its final weights are compared with those of an uninterrupted run: they
must be bit-identical (TensorFlow on CPU; 1e-6 elsewhere).
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
TOLERANCE = 0.0 if keras.config.backend() == "tensorflow" else 1e-6


def environment():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(WORKER.parents[1]), env.get("PYTHONPATH", "")]
    )
    return env


def run_worker(run_dir, kill_at=()):
    run_dir.mkdir(exist_ok=True)
    command = [sys.executable, str(WORKER), str(run_dir / "checkpoint"),
               str(run_dir / "weights.npz"), *map(str, kill_at)]
    return subprocess.run(command, env=environment(), capture_output=True,
                          text=True, timeout=120)


def assert_same_weights(expected, actual):
    assert len(expected) == len(actual)
    for want, got in zip(expected, actual):
        np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE)


@pytest.mark.slow
def test_train_memn2n_lm_killed_anywhere_resumes_to_the_same_weights(
    tmp_path,
):
    result = run_worker(tmp_path / "uninterrupted")
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
        killed = run_worker(run_dir, (epoch, batch))
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
        assert not (run_dir / "weights.npz").exists()
        resumed = run_worker(run_dir, (epoch, batch))
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        with np.load(run_dir / "weights.npz") as saved:
            np.testing.assert_array_equal(
                saved["learning_rate"], learning_rates
            )
            actual = [saved[f"arr_{i}"] for i in range(len(saved.files) - 1)]
        assert_same_weights(expected, actual)


def cli_command(data, output, checkpoint_dir=None):
    command = [
        sys.executable, "-m", "keras_memnet.cli", "train", "--protocol",
        "text8", "--data", str(data), "--memory-size", "5", "--hops", "2",
        "--embedding-dim", "8", "--batch-size", "8", "--epochs", "6",
        "--patience", "6", "--verbose", "0", "--output", str(output),
    ]
    if checkpoint_dir is not None:
        command += ["--checkpoint-dir", str(checkpoint_dir), "--resume"]
    return command


def kill_after_epoch(command, checkpoint_dir, epoch):
    """Starts `command` and SIGKILLs it once `epoch` epochs are saved."""
    metadata = checkpoint_dir / "training_metadata.json"
    process = subprocess.Popen(command, env=environment(),
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
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
    result = subprocess.run(cli_command(data, uninterrupted),
                            env=environment(), capture_output=True,
                            text=True, timeout=120)
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
    result = subprocess.run(command, env=environment(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_weights(model_weights(uninterrupted), model_weights(output))
