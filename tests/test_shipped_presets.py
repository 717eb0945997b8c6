"""The shipped presets with weights, loaded as a new user would: in a fresh
process with the network cut off, scored on held-out text that ships with
the tests, against the figure their `metadata.json` records."""

import json
import os
import subprocess
import sys
import zipfile

import pytest

from keras_memnet.presets import list_presets

HERE = os.path.dirname(os.path.abspath(__file__))
WHEEL_LIMIT_BYTES = 25 * 1024 * 1024

TRAINED = sorted(
    name for name, metadata in list_presets().items() if metadata["weights"]
)

# Runs in a fresh interpreter: any attempt to connect or resolve a name
# fails, so a preset that needed a download would error out instead of
# fetching.
OFFLINE_SCRIPT = """
import gzip, json, socket, sys

def no_network(*args, **kwargs):
    raise OSError("network access during an offline preset load")

socket.socket.connect = no_network
socket.socket.connect_ex = no_network
socket.create_connection = no_network
socket.getaddrinfo = no_network

from keras_memnet.models import MemN2NLM

name, text_path = sys.argv[1], sys.argv[2]
model = MemN2NLM.from_preset(name)
with gzip.open(text_path, "rt", encoding="ascii") as file:
    text = file.read()
figures = model.evaluate_text(text)
figures["greedy"] = model.generate("the history of the", max_length=12)
figures["sampled"] = model.generate(
    "the history of the", max_length=12, sampler="top_k", seed=1
)
print("RESULT " + json.dumps(figures))
"""


def test_both_trained_presets_are_shipped():
    assert TRAINED == ["char_memn2n_text8", "memn2n_text8_12m"]


@pytest.mark.parametrize("name", TRAINED)
def test_shipped_preset_scores_its_recorded_figure_offline(name):
    metadata = list_presets()[name]
    recorded = metadata["figures"]["heldout_slice"]
    text_path = os.path.join(os.path.dirname(HERE), recorded["file"])
    result = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT, name, text_path],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "KERAS_HOME": "/nonexistent-keras-home"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = [
        row for row in result.stdout.splitlines() if row.startswith("RESULT ")
    ][-1]
    figures = json.loads(line[len("RESULT ") :])
    assert figures["targets"] == recorded["targets"]
    assert figures["perplexity"] == pytest.approx(
        recorded["perplexity"], rel=0.01
    )
    # Far better than a uniform guess over the vocabulary.
    vocabulary_size = json.load(
        open(
            os.path.join(
                os.path.dirname(HERE),
                "keras_memnet",
                "presets",
                name,
                "tokenizer.json",
            )
        )
    )["vocabularies"][0]["size"]
    assert figures["perplexity"] < vocabulary_size / 4
    for key in ("greedy", "sampled"):
        assert isinstance(figures[key], str) and figures[key].strip()


def test_trained_presets_beat_their_baselines():
    figures = list_presets()["memn2n_text8_12m"]["figures"]
    # The Kneser-Ney trigram scores 332 on the same split.
    assert figures["test_perplexity"] < 332
    # float16 storage costs at most 0.5% perplexity.
    for name in TRAINED:
        cost = list_presets()[name]["figures"]["weights_dtype_cost_percent"]
        assert abs(cost) <= 0.5


def test_wheel_size(tmp_path):
    """Builds the wheel and prints its size: the presets must fit in 25 MB."""
    root = os.path.dirname(HERE)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            root,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        pytest.fail(result.stdout[-2000:] + result.stderr[-2000:])
    wheel = next(p for p in os.listdir(tmp_path) if p.endswith(".whl"))
    size = os.path.getsize(tmp_path / wheel)
    print(f"\nwheel {wheel}: {size / 2**20:.1f} MiB")
    assert size < WHEEL_LIMIT_BYTES
    with zipfile.ZipFile(tmp_path / wheel) as archive:
        names = archive.namelist()
    for name in TRAINED:
        for file_name in (
            "config.json",
            "metadata.json",
            "model.weights.h5",
            "tokenizer.json",
        ):
            assert f"keras_memnet/presets/{name}/{file_name}" in names
