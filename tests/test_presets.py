"""Presets: save_to_preset -> load_preset round trips, the shipped presets,
and every kind of bad input, with the files on disk left as they were."""

import hashlib
import json
import os
import shutil
import tarfile
import zipfile

import h5py
import keras
import numpy as np
import pytest

from keras_memnet.models import CharMemN2N
from keras_memnet.models import MemN2NLM
from keras_memnet.models import Seq2SeqTranslator
from keras_memnet.presets import PresetMixin
from keras_memnet.presets import list_presets
from keras_memnet.presets import load_preset
from keras_memnet.presets import preset_io
from keras_memnet.presets import save_to_preset
from keras_memnet.presets.paper_presets import PAPER_PRESETS
from keras_memnet.presets.paper_presets import write_paper_presets
from keras_memnet.saving import load_model
from keras_memnet.tokenizers import WordVocabulary

TEXT = "the cat sat on the mat and the dog sat on the log " * 3
WINDOWS = np.array([[2, 3, 4, 5], [0, 0, 6, 7], [8, 9, 2, 3]], dtype="int32")


def _outputs(model, inputs):
    return keras.ops.convert_to_numpy(model(inputs))


def _word_lm(**kwargs):
    vocabulary = WordVocabulary.from_text(TEXT)
    model = MemN2NLM(
        vocabulary_size=vocabulary.size,
        hops=2,
        memory_size=4,
        embedding_dim=8,
        vocabulary=vocabulary,
        **kwargs,
    )
    model.build((None, 4))
    return model


def _translator():
    source = WordVocabulary.from_text("un deux trois quatre")
    target = WordVocabulary.from_text("<s> </s> one two three four")
    model = Seq2SeqTranslator(
        source,
        target,
        embedding_dim=8,
        units=8,
        num_layers=2,
        start_token="<s>",
        end_token="</s>",
    )
    inputs = _translator_inputs()
    model(inputs)
    return model


def _translator_inputs():
    return {
        "source_ids": np.array([[2, 3, 4], [5, 2, 0]], dtype="int32"),
        "decoder_input_ids": np.array([[2, 4, 5], [2, 6, 0]], dtype="int32"),
    }


def _snapshot(path):
    """Every file and folder under `path`, with the files' bytes."""
    found = {}
    for root, folders, files in os.walk(path):
        for name in folders:
            found[os.path.relpath(os.path.join(root, name), path)] = None
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as file:
                found[os.path.relpath(full, path)] = file.read()
    return found


def _sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


# Round trips ---------------------------------------------------------------


def test_word_lm_round_trip(tmp_path):
    model = _word_lm()
    save_to_preset(model, tmp_path / "preset")
    assert sorted(os.listdir(tmp_path / "preset")) == [
        "assets",
        "config.json",
        "metadata.json",
        "model.weights.h5",
        "tokenizer.json",
    ]
    vocabulary_file = tmp_path / "preset/assets/tokenizer/vocabulary.txt"
    lines = vocabulary_file.read_text(encoding="utf-8").splitlines()
    assert lines == model.vocabulary.tokens  # line i is id i
    config = json.loads((tmp_path / "preset/config.json").read_text())
    assert config["registered_name"] == "keras_memnet>MemN2NLM"
    assert config["config"]["vocabulary"] is None
    assert "compile_config" not in config and "build_config" not in config

    restored = load_preset(tmp_path / "preset")
    assert type(restored) is MemN2NLM
    assert restored.vocabulary == model.vocabulary
    assert restored.get_config() == model.get_config()
    np.testing.assert_array_equal(
        _outputs(restored, WINDOWS), _outputs(model, WINDOWS)
    )
    assert restored.generate("the cat", max_length=3) == model.generate(
        "the cat", max_length=3
    )


def test_char_model_round_trip_with_line_breaks_in_vocabulary(tmp_path):
    # A newline and a backslash are symbols: the asset escapes them.
    model = CharMemN2N.from_text(
        "ab c\nd\\e", hops=2, memory_size=4, embedding_dim=8
    )
    model.build((None, 4))
    save_to_preset(model, tmp_path / "char")
    restored = load_preset(tmp_path / "char", cls=MemN2NLM)
    assert type(restored) is CharMemN2N
    assert restored.vocabulary == model.vocabulary
    assert restored.get_config() == model.get_config()
    ids = model.vocabulary.encode("b\nd\\").reshape(1, 4)
    np.testing.assert_array_equal(_outputs(restored, ids), _outputs(model, ids))


def test_adaptive_output_round_trip(tmp_path):
    model = _word_lm(output="adaptive", adaptive_cutoffs=[6])
    save_to_preset(model, tmp_path / "adaptive")
    restored = load_preset(tmp_path / "adaptive")
    assert restored.output_mode == "adaptive"
    assert restored.adaptive_cutoffs == [6]
    np.testing.assert_array_equal(
        _outputs(restored, WINDOWS), _outputs(model, WINDOWS)
    )


def test_translator_round_trip(tmp_path):
    model = _translator()
    save_to_preset(model, tmp_path / "translator")
    assets = sorted(os.listdir(tmp_path / "translator/assets/tokenizer"))
    assert assets == ["source_vocabulary.txt", "target_vocabulary.txt"]
    restored = load_preset(tmp_path / "translator")
    assert type(restored) is Seq2SeqTranslator
    assert restored.source_vocabulary == model.source_vocabulary
    assert restored.target_vocabulary == model.target_vocabulary
    inputs = _translator_inputs()
    np.testing.assert_array_equal(
        _outputs(restored, inputs), _outputs(model, inputs)
    )
    assert restored.translate(["un deux"], sampler="greedy") == (
        model.translate(["un deux"], sampler="greedy")
    )


@pytest.mark.parametrize(
    "weights_dtype, relative_error", [("float16", 2**-11), ("bfloat16", 2**-8)]
)
def test_half_precision_weights(tmp_path, weights_dtype, relative_error):
    vocabulary = WordVocabulary([f"w{i}" for i in range(600)])
    model = MemN2NLM(
        vocabulary_size=vocabulary.size,
        hops=2,
        memory_size=4,
        embedding_dim=32,
        vocabulary=vocabulary,
    )
    model.build((None, 4))
    save_to_preset(model, tmp_path / "full")
    save_to_preset(model, tmp_path / "half", weights_dtype=weights_dtype)
    full_size = os.path.getsize(tmp_path / "full/model.weights.h5")
    half_size = os.path.getsize(tmp_path / "half/model.weights.h5")
    assert half_size < 0.6 * full_size
    metadata = json.loads((tmp_path / "half/metadata.json").read_text())
    assert metadata["weights_dtype"] == weights_dtype

    restored = load_preset(tmp_path / "half")
    for original, loaded in zip(model.weights, restored.weights):
        assert keras.backend.standardize_dtype(loaded.dtype) == "float32"
        original = keras.ops.convert_to_numpy(original)
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(loaded),
            original,
            rtol=relative_error,
            atol=1e-7,
        )
    np.testing.assert_allclose(
        _outputs(restored, WINDOWS), _outputs(model, WINDOWS), atol=1e-3
    )


def test_keras_file_and_preset_give_the_same_model(tmp_path):
    model = _word_lm(weight_tying="adjacent")
    model.save(tmp_path / "lm.keras")
    from_keras_file = load_model(tmp_path / "lm.keras")
    save_to_preset(from_keras_file, tmp_path / "preset")
    from_preset = load_preset(tmp_path / "preset")
    assert from_preset.get_config() == model.get_config()
    np.testing.assert_array_equal(
        _outputs(from_preset, WINDOWS), _outputs(model, WINDOWS)
    )


def test_preset_of_a_compiled_model_holds_no_optimizer_state(tmp_path):
    model = _word_lm()
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(WINDOWS, np.array([2, 3, 4]), epochs=1, verbose=0)
    save_to_preset(model, tmp_path / "trained")
    with h5py.File(tmp_path / "trained/model.weights.h5", "r") as weights:
        assert "optimizer" not in weights
    config = json.loads((tmp_path / "trained/config.json").read_text())
    assert "compile_config" not in config
    restored = load_preset(tmp_path / "trained")
    np.testing.assert_array_equal(
        _outputs(restored, WINDOWS), _outputs(model, WINDOWS)
    )


def test_metadata(tmp_path):
    model = _word_lm()
    save_to_preset(
        model,
        tmp_path / "preset",
        metadata={"data": "a cat", "seed": 3, "perplexity": 12.5},
    )
    metadata = json.loads((tmp_path / "preset/metadata.json").read_text())
    assert metadata["class_name"] == "MemN2NLM"
    assert metadata["parameter_count"] == model.count_params()
    assert metadata["weights"] is True
    assert metadata["weights_dtype"] == "float32"
    assert metadata["keras_version"] == keras.__version__
    assert (metadata["data"], metadata["seed"]) == ("a cat", 3)
    assert metadata["perplexity"] == 12.5


def test_config_only_preset_and_load_weights_false(tmp_path):
    model = _word_lm()
    save_to_preset(model, tmp_path / "config_only", include_weights=False)
    assert not (tmp_path / "config_only/model.weights.h5").exists()
    metadata = json.loads((tmp_path / "config_only/metadata.json").read_text())
    assert metadata["weights"] is False
    restored = load_preset(tmp_path / "config_only")
    assert restored.get_config() == model.get_config()
    save_to_preset(model, tmp_path / "with_weights")
    random = load_preset(tmp_path / "with_weights", load_weights=False)
    assert not np.array_equal(
        _outputs(random, WINDOWS), _outputs(model, WINDOWS)
    )


def test_load_with_another_dtype_policy(word_preset):
    model = load_preset(word_preset, dtype="bfloat16")
    assert model.dtype_policy.name == "bfloat16"
    assert all(
        keras.backend.standardize_dtype(v.dtype) == "bfloat16"
        for v in model.weights
    )
    with pytest.raises(ValueError, match="`dtype` must be a dtype policy"):
        load_preset(word_preset, dtype="float99")


def test_overwrite_replaces_a_preset(tmp_path):
    model = _word_lm()
    save_to_preset(model, tmp_path / "preset")
    (tmp_path / "preset/notes.txt").write_text("old")
    save_to_preset(
        model, tmp_path / "preset", overwrite=True, include_weights=False
    )
    assert sorted(os.listdir(tmp_path / "preset")) == [
        "assets",
        "config.json",
        "metadata.json",
        "tokenizer.json",
    ]
    assert sorted(os.listdir(tmp_path)) == ["preset"]  # no temporary dirs


def test_preset_mixin_methods(tmp_path):
    @keras.saving.register_keras_serializable(package="keras_memnet")
    class PresetTestLM(MemN2NLM):
        pass

    assert issubclass(MemN2NLM, PresetMixin)
    assert issubclass(Seq2SeqTranslator, PresetMixin)

    model = PresetTestLM(
        vocabulary_size=12, hops=1, memory_size=4, embedding_dim=8
    )
    model.build((None, 4))
    model.save_to_preset(tmp_path / "mixin", weights_dtype="float16")
    restored = PresetTestLM.from_preset(tmp_path / "mixin")
    assert type(restored) is PresetTestLM
    with pytest.raises(ValueError, match="holds a MemN2NLM, not a Pre"):
        PresetTestLM.from_preset(_saved(_word_lm(), tmp_path / "plain"))


def _saved(model, preset_dir, **kwargs):
    save_to_preset(model, preset_dir, **kwargs)
    return preset_dir


# Shipped presets -----------------------------------------------------------


@pytest.mark.parametrize(
    "name, vocabulary_size, hops, memory_size, embedding_dim, linear_units",
    [
        ("memn2n_ptb_paper", 10_000, 7, 200, 150, 75),
        ("memn2n_text8_paper", 44_000, 7, 100, 500, 250),
    ],
)
def test_paper_presets(
    name, vocabulary_size, hops, memory_size, embedding_dim, linear_units
):
    metadata = list_presets()[name]
    assert metadata["weights"] is False
    assert "paper" in metadata and "license" in metadata
    model = load_preset(name, cls=MemN2NLM)
    assert type(model) is MemN2NLM
    assert model.vocabulary is None
    assert (
        model.vocabulary_size,
        model.hops,
        model.memory_size,
        model.embedding_dim,
        model.linear_units,
        model.weight_tying,
    ) == (
        vocabulary_size,
        hops,
        memory_size,
        embedding_dim,
        linear_units,
        "layerwise",
    )
    assert model.count_params() == metadata["parameter_count"]
    logits = _outputs(model, np.ones((1, memory_size), dtype="int32"))
    assert logits.shape == (1, vocabulary_size)


def test_shipped_paper_presets_match_their_generator(tmp_path):
    write_paper_presets(tmp_path)
    shipped_dir = os.path.dirname(preset_io.__file__)
    for name in PAPER_PRESETS:
        for file_name in ("config.json", "tokenizer.json"):
            generated = (tmp_path / name / file_name).read_text()
            with open(os.path.join(shipped_dir, name, file_name)) as file:
                assert file.read() == generated, (name, file_name)
        generated = json.loads((tmp_path / name / "metadata.json").read_text())
        shipped = list_presets()[name]
        for key in ("date_saved", "keras_version", "keras_backend"):
            generated.pop(key), shipped.pop(key)
        assert shipped == generated


# URLs ----------------------------------------------------------------------


def _archive(preset_dir, archive_path, top_folder=True):
    if str(archive_path).endswith(".zip"):
        with zipfile.ZipFile(archive_path, "w") as archive:
            for root, _, files in os.walk(preset_dir):
                for name in files:
                    full = os.path.join(root, name)
                    archive.write(full, os.path.relpath(full, preset_dir))
    else:
        with tarfile.open(archive_path, "w:gz") as archive:
            archive.add(
                preset_dir,
                arcname=os.path.basename(preset_dir) if top_folder else ".",
            )
    return archive_path


@pytest.mark.parametrize("archive_name", ["lm.tar.gz", "lm.zip"])
def test_load_from_url_with_sha256(tmp_path, archive_name):
    model = _word_lm()
    preset_dir = _saved(model, tmp_path / "lm")
    archive = _archive(preset_dir, tmp_path / archive_name)
    restored = load_preset(
        archive.as_uri(),
        file_hash=_sha256(archive),
        cache_dir=tmp_path / "cache",
    )
    np.testing.assert_array_equal(
        _outputs(restored, WINDOWS), _outputs(model, WINDOWS)
    )


def test_sha256_mismatch_removes_the_download(tmp_path):
    archive = _archive(_saved(_word_lm(), tmp_path / "lm"), tmp_path / "a.tgz")
    archive_bytes = archive.read_bytes()
    with pytest.raises(ValueError, match="sha256 .* not the expected .*remov"):
        load_preset(
            archive.as_uri(), file_hash="0" * 64, cache_dir=tmp_path / "cache"
        )
    assert os.listdir(tmp_path / "cache/presets") == []
    assert archive.read_bytes() == archive_bytes


def test_url_needs_a_sha256(tmp_path):
    archive = _archive(_saved(_word_lm(), tmp_path / "lm"), tmp_path / "a.tgz")
    with pytest.raises(ValueError, match="sha256 of its archive"):
        load_preset(archive.as_uri(), cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match="64 hex digits"):
        load_preset(archive.as_uri(), file_hash="abc", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="Unsupported preset URL"):
        load_preset("hf://someone/lm")


# Bad input: loading --------------------------------------------------------


@pytest.fixture
def word_preset(tmp_path):
    return _saved(_word_lm(), tmp_path / "word_preset")


def _assert_load_fails_and_changes_nothing(preset_dir, match, **kwargs):
    before = _snapshot(preset_dir)
    with pytest.raises(ValueError, match=match):
        load_preset(preset_dir, **kwargs)
    assert _snapshot(preset_dir) == before


def test_unknown_preset_name_lists_the_shipped_ones():
    with pytest.raises(
        ValueError, match="Unknown preset 'memn2n_nope'.*memn2n_ptb_paper"
    ):
        load_preset("memn2n_nope")


def test_keras_file_is_not_a_preset(tmp_path):
    model = _word_lm()
    model.save(tmp_path / "lm.keras")
    with pytest.raises(ValueError, match="is a file.*load_model"):
        load_preset(tmp_path / "lm.keras")


@pytest.mark.parametrize(
    "file_name", ["config.json", "metadata.json", "tokenizer.json"]
)
def test_missing_json_file(word_preset, file_name):
    os.remove(word_preset / file_name)
    _assert_load_fails_and_changes_nothing(
        word_preset, f"`{file_name}` of the preset .* is missing"
    )


@pytest.mark.parametrize(
    "file_name", ["config.json", "metadata.json", "tokenizer.json"]
)
def test_corrupt_json_file(word_preset, file_name):
    path = word_preset / file_name
    path.write_bytes(path.read_bytes()[:-30])
    _assert_load_fails_and_changes_nothing(
        word_preset, f"`{file_name}` .* is not valid JSON"
    )


def test_missing_weights_file(word_preset):
    os.remove(word_preset / "model.weights.h5")
    _assert_load_fails_and_changes_nothing(
        word_preset, "`model.weights.h5` .* is missing"
    )


def test_truncated_weights_file(word_preset):
    path = word_preset / "model.weights.h5"
    path.write_bytes(path.read_bytes()[:3000])
    _assert_load_fails_and_changes_nothing(
        word_preset, "`model.weights.h5` .* is corrupt, truncated"
    )


def test_weights_of_another_model(word_preset, tmp_path):
    other = MemN2NLM(
        vocabulary_size=12, hops=2, memory_size=4, embedding_dim=16
    )
    other.build((None, 4))
    save_to_preset(other, tmp_path / "other")
    shutil.copy(
        tmp_path / "other/model.weights.h5", word_preset / "model.weights.h5"
    )
    _assert_load_fails_and_changes_nothing(
        word_preset, "`model.weights.h5` .* does not match config.json"
    )


def test_missing_vocabulary_asset(word_preset):
    os.remove(word_preset / "assets/tokenizer/vocabulary.txt")
    _assert_load_fails_and_changes_nothing(
        word_preset, "`assets/tokenizer/vocabulary.txt` .* is missing"
    )


def test_truncated_vocabulary_asset(word_preset):
    path = word_preset / "assets/tokenizer/vocabulary.txt"
    path.write_text("<pad>\n<unk>\nthe\n", encoding="utf-8")
    _assert_load_fails_and_changes_nothing(
        word_preset, "`assets/tokenizer/vocabulary.txt` .* holds 3 tokens"
    )


def test_tokenizer_file_from_a_newer_version(word_preset):
    path = word_preset / "tokenizer.json"
    spec = json.loads(path.read_text())
    spec["format_version"] = 2
    path.write_text(json.dumps(spec))
    _assert_load_fails_and_changes_nothing(
        word_preset, "`tokenizer.json` .* has format_version 2"
    )


def test_asset_outside_the_preset_is_refused(word_preset):
    path = word_preset / "tokenizer.json"
    spec = json.loads(path.read_text())
    spec["vocabularies"][0]["asset"] = "assets/tokenizer/../../../secret.txt"
    path.write_text(json.dumps(spec))
    _assert_load_fails_and_changes_nothing(word_preset, "not under assets")


def test_config_that_is_not_a_model(word_preset):
    path = word_preset / "config.json"
    config = json.loads(path.read_text())
    config["config"]["hops"] = -1
    path.write_text(json.dumps(config))
    _assert_load_fails_and_changes_nothing(
        word_preset, "`config.json` .* does not describe a valid model"
    )


def test_preset_of_another_package(word_preset):
    path = word_preset / "config.json"
    config = json.loads(path.read_text())
    config["registered_name"] = "keras_hub>GPT2Backbone"
    path.write_text(json.dumps(config))
    _assert_load_fails_and_changes_nothing(
        word_preset, "'keras_hub>GPT2Backbone', which is not a keras-memnet"
    )


def test_preset_of_another_class(word_preset, tmp_path):
    translator_preset = _saved(_translator(), tmp_path / "translator")
    _assert_load_fails_and_changes_nothing(
        translator_preset,
        "holds a Seq2SeqTranslator, not a MemN2NLM",
        cls=MemN2NLM,
    )
    _assert_load_fails_and_changes_nothing(
        word_preset, "holds a MemN2NLM, not a CharMemN2N", cls=CharMemN2N
    )


# Bad input: saving ---------------------------------------------------------


def test_save_into_a_non_empty_directory(tmp_path):
    model = _word_lm()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy/notes.txt").write_text("keep me")
    before = _snapshot(tmp_path)
    with pytest.raises(ValueError, match="is not empty. Pass `overwrite=True`"):
        save_to_preset(model, tmp_path / "busy")
    # `overwrite` replaces presets only, never another folder.
    with pytest.raises(ValueError, match="holds no preset"):
        save_to_preset(model, tmp_path / "busy", overwrite=True)
    assert _snapshot(tmp_path) == before


def test_save_over_a_preset_without_overwrite(tmp_path):
    preset_dir = _saved(_word_lm(), tmp_path / "preset")
    before = _snapshot(tmp_path)
    with pytest.raises(ValueError, match="is not empty"):
        save_to_preset(_word_lm(), preset_dir)
    assert _snapshot(tmp_path) == before


def test_failed_save_leaves_the_old_preset_intact(tmp_path, monkeypatch):
    preset_dir = _saved(_word_lm(), tmp_path / "preset")
    before = _snapshot(tmp_path)

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(preset_io, "copy_weights_file", fail)
    with pytest.raises(OSError, match="disk full"):
        save_to_preset(_word_lm(), preset_dir, overwrite=True)
    assert _snapshot(tmp_path) == before
    with pytest.raises(OSError, match="disk full"):
        save_to_preset(_word_lm(), tmp_path / "new")
    assert _snapshot(tmp_path) == before


def test_save_an_unbuilt_model(tmp_path):
    model = MemN2NLM(vocabulary_size=12, hops=1, memory_size=4, embedding_dim=8)
    with pytest.raises(ValueError, match="is not built"):
        save_to_preset(model, tmp_path / "preset")
    assert os.listdir(tmp_path) == []


def test_save_argument_checks(tmp_path):
    model = _word_lm()
    with pytest.raises(ValueError, match="`weights_dtype` must be one of"):
        save_to_preset(model, tmp_path / "p", weights_dtype="int8")
    with pytest.raises(ValueError, match="`overwrite` must be True or False"):
        save_to_preset(model, tmp_path / "p", overwrite="yes")
    with pytest.raises(ValueError, match="may not set \\['weights'\\]"):
        save_to_preset(model, tmp_path / "p", metadata={"weights": 1})
    with pytest.raises(ValueError, match="JSON-serialisable"):
        save_to_preset(model, tmp_path / "p", metadata={"seed": object()})
    with pytest.raises(ValueError, match="saves keras-memnet models"):
        save_to_preset(keras.Sequential([keras.layers.Dense(1)]), tmp_path)
    assert os.listdir(tmp_path) == []
