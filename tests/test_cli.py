import re
import subprocess
import sys

import pytest

from keras_memnet.cli import main

FAST = ["--epochs", "1", "--hops", "1", "--embedding-dim", "8",
        "--verbose", "0"]


def perplexities(output):
    return {
        split: float(value)
        for split, value in re.findall(
            r"^\s+(train|valid|test)\s+([\d.]+)$", output, flags=re.M
        )
    }


def test_train_then_generate(tmp_path, capsys):
    model_path = tmp_path / "lm.keras"
    assert main(["train", *FAST, "--output", str(model_path)]) == 0
    output = capsys.readouterr().out
    assert "16,989 (with <pad>)" in output
    assert set(perplexities(output)) == {"train", "valid", "test"}
    assert "greedy (ML):" in output and "random (RC):" in output
    assert model_path.exists()

    assert main(["generate", "--model", str(model_path), "--prompt",
                 "the history of", "--max-length", "5", "--seed", "1"]) == 0
    output = capsys.readouterr().out
    assert "greedy (ML)" in output and "random (RC)" in output
    assert main(["generate", "--model", str(model_path), "--prompt", "the",
                 "--sampler", "top_k", "--sampler", "beam"]) == 0
    output = capsys.readouterr().out
    assert "top_k" in output and "beam" in output


def test_generate_reports_bad_files_and_prompts(tmp_path, capsys):
    not_a_model = tmp_path / "model.keras"
    not_a_model.write_text("not a model")
    assert main(["generate", "--model", str(not_a_model), "--prompt", "a"]) == 2
    assert "not a Keras" in capsys.readouterr().err


def test_bad_flag_values_are_reported(capsys):
    assert main(["train", "--hops", "0", "--epochs", "1"]) == 2
    assert "hops" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--optimizer", "rmsprop"])


@pytest.mark.slow
def test_main_job_beats_the_study_one_hop_result(tmp_path):
    """`keras-memnet train` with its defaults, as the README runs it."""
    result = subprocess.run(
        [sys.executable, "-m", "keras_memnet.cli", "train", "--verbose", "2",
         "--output", str(tmp_path / "lm.keras")],
        capture_output=True, text=True, timeout=1800,
    )
    # Kept next to the model, for a look after the run.
    (tmp_path / "stdout.txt").write_text(result.stdout)
    assert result.returncode == 0, result.stderr[-3000:]
    test_perplexity = perplexities(result.stdout)["test"]
    # The earlier study's best (1 hop, Adagrad) was 1870.63.
    assert test_perplexity < 1870, result.stdout
