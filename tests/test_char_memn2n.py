import json
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_memnet.datasets import text8_sample
from keras_memnet.metrics import BitsPerCharacter
from keras_memnet.models import CharMemN2N
from keras_memnet.models import MemN2NLM
from keras_memnet.tokenizers import CharVocabulary
from keras_memnet.tokenizers import WordVocabulary

REPO_ROOT = Path(__file__).resolve().parents[1]
MEMORY = 16


def small_model(**kwargs):
    config = dict(hops=2, memory_size=MEMORY, embedding_dim=12)
    config.update(kwargs)
    model = CharMemN2N(**config)
    model.build((None, config["memory_size"]))
    return model


def test_defaults_are_the_studys_character_model():
    model = CharMemN2N()
    assert (model.hops, model.memory_size, model.embedding_dim) == (
        12,
        400,
        100,
    )
    assert isinstance(model, MemN2NLM)
    assert model.vocabulary == CharVocabulary.text8()
    assert model.vocabulary_size == 28


def test_output_shape_and_padding_mask():
    model = small_model()
    ids = np.random.default_rng(0).integers(1, 28, (3, MEMORY))
    assert model.predict(ids, verbose=0).shape == (3, 28)
    # Left padding is masked: what the padding id embeds to is never read.
    ids[:, :10] = 0
    before = model.predict(ids, verbose=0)
    for embedding in model.embedding_layers:
        table = keras.ops.convert_to_numpy(embedding.embeddings).copy()
        table[0] = 5.0
        embedding.embeddings.assign(table)
    np.testing.assert_allclose(
        model.predict(ids, verbose=0), before, rtol=1e-5, atol=1e-6
    )


def test_generation_takes_and_returns_text():
    model = small_model()
    text = model.generate("the cat sat ", max_length=15)
    assert isinstance(text, str) and len(text) == 15
    assert set(text) <= set(model.vocabulary.symbols)
    texts = model.generate(["a", "the quick brown fox "], max_length=4)
    assert [len(t) for t in texts] == [4, 4]
    ids = model.generate(model.vocabulary.encode("the cat"), max_length=5)
    assert ids.shape == (5,) and ids.min() >= 1
    assert model.vocabulary.decode(ids) == model.generate("the cat", 5)


def test_unknown_character_is_named():
    model = small_model()
    with pytest.raises(ValueError, match="'H'"):
        model.generate("Hello", max_length=3)
    with pytest.raises(ValueError, match="'!'"):
        model.generate("hello!", max_length=3)


def test_vocabulary_from_text_maps_unknown_characters_to_unk():
    model = CharMemN2N.from_text(
        "Hello, World!", hops=1, memory_size=8, embedding_dim=8
    )
    assert model.vocabulary.unk_token == "<unk>"
    assert model.vocabulary_size == len(set("Hello, World!")) + 2
    assert model.vocabulary.encode("H?").tolist() == [
        model.vocabulary.token_to_id("H"),
        1,
    ]
    assert isinstance(model.generate("Hi?", max_length=3), str)


def test_rejects_a_word_vocabulary():
    with pytest.raises(ValueError, match="vocabulary"):
        CharMemN2N(vocabulary=WordVocabulary.from_text("a b c"))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(prompt=""), "empty"),
        (dict(prompt="abc", max_length=0), "max_length"),
        (dict(prompt="abc", sampler="best"), "sampler"),
    ],
)
def test_generation_rejects_bad_input(kwargs, message):
    kwargs.setdefault("max_length", 3)
    with pytest.raises(ValueError, match=message):
        small_model().generate(**kwargs)


def test_get_config_round_trip():
    vocabulary = CharVocabulary.from_text("abc de", unk_token="<unk>")
    model = small_model(
        vocabulary=vocabulary, dropout=0.1, weight_tying="adjacent"
    )
    config = model.get_config()
    assert "vocabulary_size" not in config
    json.dumps(config)
    clone = CharMemN2N.from_config(config)
    assert clone.get_config() == config
    assert clone.vocabulary == vocabulary
    assert keras.saving.get_registered_name(CharMemN2N) == (
        "keras_memnet>CharMemN2N"
    )


def test_keras_round_trip_in_a_new_process_generates_identical_text(
    tmp_path,
):
    keras.utils.set_random_seed(3)
    model = small_model(init_stddev=0.3)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    path = tmp_path / "char.keras"
    model.save(path)
    prompt = "anarchism originated as a term of abuse "
    expected = {
        "greedy": model.generate(prompt, max_length=40),
        "random": model.generate(prompt, 40, sampler="random", seed=11),
        "top_p": model.generate(prompt, 40, sampler="top_p", top_p=0.8, seed=5),
    }
    script = textwrap.dedent(
        f"""
        import json
        from keras_memnet.saving import load_model
        model = load_model({str(path)!r})
        prompt = {prompt!r}
        print(json.dumps({{
            "class": type(model).__name__,
            "greedy": model.generate(prompt, max_length=40),
            "random": model.generate(prompt, 40, sampler="random", seed=11),
            "top_p": model.generate(prompt, 40, sampler="top_p", top_p=0.8,
                                    seed=5),
        }}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded.pop("class") == "CharMemN2N"
    assert loaded == expected


def test_fit_on_the_text8_sample_learns_more_than_character_frequencies():
    keras.utils.set_random_seed(0)
    corpus = text8_sample(
        split={"train": (0, 900_000), "test": (1_000_000, None)},
        level="char",
    )
    memory = 32
    model = CharMemN2N(
        hops=4,
        memory_size=memory,
        embedding_dim=64,
        vocabulary=corpus.vocabulary,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(5e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[BitsPerCharacter(from_logits=True)],
    )
    test = corpus.windows("test", memory, batch_size=256, shuffle=False)
    before = model.evaluate(test, verbose=0, return_dict=True)
    model.fit(
        corpus.windows(
            "train", memory, batch_size=128, num_windows=128 * 100, seed=0
        ),
        epochs=4,
        shuffle=False,  # The random-window dataset is already shuffled.
        verbose=0,
    )
    after = model.evaluate(test, verbose=0, return_dict=True)
    assert after["loss"] < before["loss"] - 0.5, (before, after)
    # The unigram baseline: training-set character frequencies.
    counts = np.bincount(corpus.train, minlength=28)[1:] + 1.0
    unigram_bits = -np.log2(
        (counts / counts.sum())[corpus.test[memory:] - 1]
    ).mean()
    assert after["bits_per_character"] < unigram_bits - 0.4, (
        after,
        unigram_bits,
    )
    greedy = model.generate("the history of the united states ", 40)
    assert greedy.strip(), "greedy decoding predicts only spaces"


@pytest.mark.slow
def test_example_runs_fast(tmp_path):
    results_json = tmp_path / "char_memn2n.json"
    result = subprocess.run(
        [
            sys.executable,
            "examples/train_char_memn2n.py",
            "--fast",
            "--results-json",
            str(results_json),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for expected in (
        "unigram",
        "CharMemN2N",
        "LSTM",
        "ML:",
        "RC:",
        "sequence form: 32 rows of 62 targets",
    ):
        assert expected in result.stdout
    record = json.loads(results_json.read_text())
    memn2n = record["char_memn2n"]
    assert (memn2n["form"], memn2n["sequence_length"]) == ("sequence", 62)
    assert memn2n["steps"] == 30 and "lstm" in record


def test_example_forms_parse():
    sys.path.insert(0, str(REPO_ROOT / "examples"))
    import train_char_memn2n as example

    # The sequence form by default, in the character preset's shape
    # (memory 50): T = round((M - 1) / 0.5), so half of the targets get
    # short contexts, and the largest power-of-two batch up to 32 whose
    # per-hop scores stay under 100 MB.
    args = example.parse_args([])
    assert (args.form, args.memory_size) == ("sequence", 50)
    assert (args.sequence_length, args.batch_size) == (98, 32)
    assert args.steps_per_epoch == 400
    assert example.short_fraction(args) == 0.5
    args = example.parse_args(["--short-context-fraction", "0.25"])
    assert args.sequence_length == 196
    # A long memory shrinks the batch to keep the scores under 100 MB.
    args = example.parse_args(["--memory-size", "400"])
    assert (args.sequence_length, args.batch_size) == (798, 16)
    assert args.batch_size * 798 * (400 + 798 - 1) * 4 < 100 * 10**6
    args = example.parse_args(["--fast"])
    assert (args.form, args.sequence_length) == ("sequence", 62)
    args = example.parse_args(["--form", "window"])
    assert (args.sequence_length, args.batch_size, args.steps_per_epoch) == (
        None,
        128,
        250,
    )
    with pytest.raises(SystemExit):
        example.parse_args(["--form", "window", "--sequence-length", "10"])
