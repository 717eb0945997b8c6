"""Translator presets: Keras's int8 quantization through the preset layout,
and `examples/translate_fra_eng.py --save-preset`."""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from keras_memnet.datasets.sentence_pairs import group_references
from keras_memnet.datasets.sentence_pairs import load_sentence_pairs
from keras_memnet.models import Seq2SeqTranslator
from keras_memnet.presets import load_preset
from keras_memnet.presets import save_to_preset
from keras_memnet.presets.weights_file import copy_weights_file
from keras_memnet.tokenizers import build_vocabularies
from tests.test_resume import tiny_pairs_file

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "translate_fra_eng.py"
PAIRS = [
    ("tom runs fast", "tom court vite"),
    ("i see a cat", "je vois un chat"),
    ("the cat runs", "le chat court"),
    ("i run", "je cours"),
] * 4
SOURCES = ["tom runs fast", "i see a cat", "the cat runs", "i run"]
QUANTIZED_LAYERS = [
    "source_embedding",
    "target_embedding",
    "output_projection",
    "attention_output",
]


def trained_translator(epochs=20):
    keras.utils.set_random_seed(0)
    model = Seq2SeqTranslator(
        *build_vocabularies(PAIRS), embedding_dim=16, units=16, num_layers=2
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    x, y = model.encode_pairs(PAIRS)
    model.fit(x, y, epochs=epochs, batch_size=8, verbose=0)
    return model, x


def logits(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


def quantized(model):
    with warnings.catch_warnings():
        # Keras warns for the layers it cannot quantize (LSTM cells).
        warnings.simplefilter("ignore")
        model.quantize("int8")
    return model


def quantization_modes(model):
    prefix = model.path + "/"
    return {
        layer.path[len(prefix) :]: layer.quantization_mode
        for layer in model._flatten_layers(include_self=False)
        if layer.quantization_mode is not None
    }


@pytest.mark.parametrize("weights_dtype", [None, "float16"])
def test_int8_translator_round_trips_through_a_preset(tmp_path, weights_dtype):
    model, x = trained_translator()
    translations = model.translate(SOURCES, num_beams=3, replace_unknown=True)
    quantized(model)
    assert quantization_modes(model) == dict.fromkeys(QUANTIZED_LAYERS, "int8")
    expected = logits(model, x)
    expected_translations = model.translate(
        SOURCES, num_beams=3, replace_unknown=True
    )
    # This small model translates its training pairs alike in int8.
    assert expected_translations == translations

    save_to_preset(model, tmp_path / "int8", weights_dtype=weights_dtype)
    metadata = json.loads((tmp_path / "int8" / "metadata.json").read_text())
    assert [e["layer"] for e in metadata["quantization"]] == QUANTIZED_LAYERS
    assert {e["mode"] for e in metadata["quantization"]} == {"int8"}
    int8_weights = []
    with h5py.File(tmp_path / "int8" / "model.weights.h5") as weights:
        weights.visititems(
            lambda name, item: (
                int8_weights.append(name)
                if isinstance(item, h5py.Dataset) and item.dtype == np.int8
                else None
            )
        )
    # The two embeddings and the two dense kernels.
    assert len(int8_weights) == 4, int8_weights

    restored = Seq2SeqTranslator.from_preset(tmp_path / "int8")
    assert quantization_modes(restored) == quantization_modes(model)
    # float16 storage rounds the LSTM weights and the scales only.
    tolerance = 1e-5 if weights_dtype is None else 0.05
    np.testing.assert_allclose(
        logits(restored, x), expected, atol=tolerance, rtol=0
    )
    assert (
        restored.translate(SOURCES, num_beams=3, replace_unknown=True)
        == expected_translations
    )


def test_quantize_drops_the_compiled_decoders():
    model, _ = trained_translator(epochs=1)
    model.translate(SOURCES[:1], num_beams=2)
    assert model._search_models
    quantized(model)
    assert not model._search_models


def test_unquantized_preset_records_no_quantization(tmp_path):
    model, _ = trained_translator(epochs=1)
    save_to_preset(model, tmp_path / "float")
    metadata = json.loads((tmp_path / "float" / "metadata.json").read_text())
    assert "quantization" not in metadata


def test_quantization_metadata_is_reserved_and_checked(tmp_path):
    model, _ = trained_translator(epochs=1)
    with pytest.raises(ValueError, match="may not set \\['quantization'\\]"):
        save_to_preset(model, tmp_path / "p", metadata={"quantization": "int8"})
    save_to_preset(quantized(model), tmp_path / "p")
    path = tmp_path / "p" / "metadata.json"
    metadata = json.loads(path.read_text())
    metadata["quantization"][0]["layer"] = "no_such_layer"
    path.write_text(json.dumps(metadata))
    with pytest.raises(ValueError, match="metadata.json.*no_such_layer"):
        load_preset(tmp_path / "p")
    metadata["quantization"] = "int8"
    path.write_text(json.dumps(metadata))
    with pytest.raises(ValueError, match="metadata.json.*'quantization'"):
        load_preset(tmp_path / "p")


def test_half_precision_keeps_a_weight_it_cannot_hold(tmp_path):
    with h5py.File(tmp_path / "full.h5", "w") as file:
        file["small"] = np.array([0.5, -2.0], dtype="float32")
        file["huge"] = np.array([1.0, 1e9], dtype="float32")
        file["ids"] = np.array([1, -3], dtype="int8")
    copy_weights_file(tmp_path / "full.h5", tmp_path / "half.h5", "float16")
    with h5py.File(tmp_path / "half.h5") as file:
        assert file["small"].dtype == np.float16
        assert file["huge"].dtype == np.float32
        np.testing.assert_array_equal(file["huge"][()], [1.0, 1e9])
        assert file["ids"].dtype == np.int8


def run_example(*args):
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        # This checkout's package, not an installed copy.
        env=dict(
            os.environ,
            TF_CPP_MIN_LOG_LEVEL="3",
            PYTHONPATH=os.pathsep.join(
                filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
            ),
        ),
    )


TINY = [
    "--test-size",
    "20",
    "--min-count",
    "1",
    "--num-layers",
    "1",
    "--units",
    "16",
    "--embedding-dim",
    "16",
    "--batch-size",
    "16",
    "--epochs",
    "3",
    "--num-beams",
    "2",
]


@pytest.mark.slow
def test_example_writes_scores_and_packages_presets(tmp_path):
    data = tiny_pairs_file(tmp_path / "pairs.txt", count=200)
    run = run_example(
        "--data",
        data,
        *TINY,
        "--save",
        tmp_path / "model.keras",
        "--output",
        tmp_path / "train.json",
        "--save-preset",
        tmp_path / "float16",
        "--heldout-sample",
        tmp_path / "sample.tsv",
        "--heldout-sample-size",
        "5",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    metadata = json.loads((tmp_path / "float16" / "metadata.json").read_text())
    assert metadata["class_name"] == "Seq2SeqTranslator"
    assert metadata["weights_dtype"] == "float16"
    assert "Tatoeba" in metadata["license"]
    assert "CC-BY 2.0 FR" in metadata["license"]
    assert metadata["seed"] == 1
    assert "--save-preset" in metadata["packaging_command"]
    assert len(metadata["training"]["train_loss_per_epoch"]) == 3
    figures = metadata["figures"]
    assert figures["headline"] == "bleu_beam2_unk_replaced"
    assert figures["bleu"] == figures["stored"]["bleu_beam2_unk_replaced"]
    assert 0 < figures["weights_zipped_bytes"] < figures["preset_zipped_bytes"]
    sample = figures["heldout_sample"]
    assert sample["sources"] == 5
    sources, references = group_references(
        load_sentence_pairs(tmp_path / "sample.tsv")
    )
    assert len(sources) == 5 and sum(map(len, references)) == sample["pairs"]

    # The same trained model, packaged in int8 without training again.
    run = run_example(
        "--data",
        data,
        *TINY,
        "--load-model",
        tmp_path / "model.keras",
        "--training-results",
        tmp_path / "train.json",
        "--quantize",
        "int8",
        "--save-preset",
        tmp_path / "int8",
        "--output",
        tmp_path / "int8.json",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    int8 = json.loads((tmp_path / "int8" / "metadata.json").read_text())
    assert {e["mode"] for e in int8["quantization"]} == {"int8"}
    assert int8["figures"]["quantization"] == "int8"
    assert int8["training"]["command"] == metadata["training"]["command"]
    assert int8["figures"]["weights_file_bytes"] < figures["weights_file_bytes"]
    # The int8 preset scores as a loaded model.
    run = run_example("--data", data, *TINY, "--load-model", tmp_path / "int8")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "bleu_beam2_unk_replaced" in run.stdout


def test_example_refuses_bad_preset_options(tmp_path):
    data = tiny_pairs_file(tmp_path / "pairs.txt", count=200)
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("mine")
    for args, message in [
        (["--quantize", "int8"], "--quantize needs --save-preset"),
        (
            ["--save-preset", tmp_path / "folder"],
            "is not a preset directory",
        ),
        (
            ["--save-preset", tmp_path / "p", "--reverse-source", "both"],
            "saves one model",
        ),
        (["--load-model", tmp_path / "missing.keras"], "not a .keras file"),
        (
            ["--training-results", tmp_path / "train.json"],
            "goes with --load-model",
        ),
    ]:
        run = run_example("--data", data, *TINY, *args)
        assert run.returncode == 2, (args, run.stderr[-2000:])
        assert message in run.stderr, (args, run.stderr[-2000:])
    assert os.listdir(tmp_path / "folder") == ["notes.txt"]
