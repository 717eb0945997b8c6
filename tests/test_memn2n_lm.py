import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_memnet.models import MemN2NLM
from keras_memnet.tokenizers import WordVocabulary

VOCAB, MEMORY, DIM = 30, 6, 8


def small_model(**kwargs):
    config = dict(
        vocabulary_size=VOCAB, hops=3, memory_size=MEMORY, embedding_dim=DIM
    )
    config.update(kwargs)
    model = MemN2NLM(**config)
    model.build((None, config["memory_size"]))
    return model


def random_ids(batch=4, low=1, seed=0):
    return np.random.default_rng(seed).integers(low, VOCAB, (batch, MEMORY))


def numpy_forward(model, ids):
    """The paper's layer-wise language model written out in NumPy."""
    weights = {w.path.split("/", 1)[1]: keras.ops.convert_to_numpy(w)
               for w in model.weights}
    a = weights["memory_embedding_0/embeddings"][ids]
    a = a + weights["temporal_encoding_0/embeddings"]
    c = weights["memory_embedding_1/embeddings"][ids]
    c = c + weights["temporal_encoding_1/embeddings"]
    h = weights["memory_hop/query_kernel"]
    mask = ids != 0
    u = np.full((len(ids), model.embedding_dim), 0.1, dtype="float32")
    for _ in range(model.hops):
        scores = np.where(mask, np.einsum("bd,bmd->bm", u, a), -np.inf)
        p = np.exp(scores - scores.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        u = u @ h + np.einsum("bm,bmd->bd", p, c)
        u[:, model.linear_units:] = np.maximum(u[:, model.linear_units:], 0)
    return u @ weights["output_projection/kernel"]


def test_forward_matches_numpy_reference():
    model = small_model()
    ids = random_ids()
    ids[0, :2] = 0  # Left padding is masked.
    np.testing.assert_allclose(
        model.predict(ids, verbose=0), numpy_forward(model, ids),
        rtol=1e-4, atol=1e-5,
    )


def test_defaults_are_the_papers_language_model():
    model = MemN2NLM(vocabulary_size=1000)
    model.build((None, 100))
    assert (model.hops, model.memory_size, model.embedding_dim) == (6, 100, 150)
    assert model.linear_units == 75
    assert model.query_value == 0.1
    names = sorted(w.path.split("/", 1)[1] for w in model.weights)
    # A, C, T_A, T_C, H and the output map: shared by all hops, no biases.
    assert names == [
        "memory_embedding_0/embeddings",
        "memory_embedding_1/embeddings",
        "memory_hop/query_kernel",
        "output_projection/kernel",
        "temporal_encoding_0/embeddings",
        "temporal_encoding_1/embeddings",
    ]
    for weight in model.weights:
        values = keras.ops.convert_to_numpy(weight)
        assert abs(values.std() - 0.05) < 0.005, weight.path


def test_adjacent_tying_shares_embeddings_between_neighbouring_hops():
    model = small_model(weight_tying="adjacent", hops=4)
    assert len(model.embedding_layers) == 5
    assert len(model.temporal_encodings) == 5
    assert len(model.memory_hops) == 4
    assert model.output_projection is None
    assert model.predict(random_ids(), verbose=0).shape == (4, VOCAB)
    # The logits use the last memory embedding, transposed.
    assert not any("output_projection" in w.path for w in model.weights)


@pytest.mark.parametrize("hops", [1, 2, 12])
def test_hops_range(hops):
    assert small_model(hops=hops).predict(random_ids(), verbose=0).shape == (
        4, VOCAB
    )


def test_fit_reduces_loss():
    keras.utils.set_random_seed(0)
    model = small_model(dropout=0.1)
    model.compile(
        optimizer=keras.optimizers.Adam(0.02),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    ids = random_ids(batch=512, seed=1)
    targets = ids[:, -2]  # Copy the second newest word: needs attention.
    history = model.fit(ids, targets, epochs=12, batch_size=64, verbose=0)
    assert history.history["loss"][-1] < 0.3 * history.history["loss"][0]
    results = model.evaluate(ids, targets, verbose=0, return_dict=True)
    assert results["loss"] < history.history["loss"][0]


@pytest.mark.parametrize(
    "argument, value",
    [
        ("hops", 0),
        ("memory_size", 0),
        ("vocabulary_size", 1),
        ("embedding_dim", 0),
        ("linear_units", 9),
        ("weight_tying", "none"),
        ("dropout", 1.0),
    ],
)
def test_rejects_bad_arguments(argument, value):
    with pytest.raises(ValueError, match=argument):
        small_model(**{argument: value})


def test_rejects_contexts_of_the_wrong_length():
    model = small_model()
    with pytest.raises(ValueError, match="memory_size=6"):
        model.predict(np.ones((2, 5), dtype="int32"), verbose=0)
    with pytest.raises(ValueError, match="memory_size=6"):
        model(np.ones((2, 7), dtype="int32"))


def test_rejects_token_ids_out_of_range():
    model = small_model()
    ids = random_ids()
    ids[1, 3] = VOCAB
    with pytest.raises(ValueError, match="vocabulary_size=30"):
        model.predict(ids, verbose=0)
    with pytest.raises(ValueError, match="vocabulary_size=30"):
        model.evaluate(ids, np.zeros(4), verbose=0)
    with pytest.raises(ValueError, match=r"\[0, vocabulary_size"):
        model.generate(np.array([1, 2, -1]), max_length=2)


def test_rejects_vocabulary_of_another_size():
    vocabulary = WordVocabulary.from_text("a b c")
    with pytest.raises(ValueError, match="vocabulary_size"):
        small_model(vocabulary=vocabulary)


def argmax_without_padding(logits):
    return logits[:, 1:].argmax(-1) + 1


def test_greedy_generation_equals_stepwise_argmax():
    model = small_model()
    prompts = random_ids(batch=3, seed=5)
    generated = model.generate(prompts, max_length=7)
    window = prompts.copy()
    expected = []
    for _ in range(7):
        next_ids = argmax_without_padding(model.predict(window, verbose=0))
        expected.append(next_ids)
        window = np.concatenate([window[:, 1:], next_ids[:, None]], axis=1)
    np.testing.assert_array_equal(generated, np.stack(expected, axis=1))


def test_short_prompts_are_left_padded():
    model = small_model()
    prompt = np.array([4, 9])
    padded = np.zeros((1, MEMORY), dtype="int32")
    padded[0, -2:] = prompt
    first = model.generate(prompt, max_length=1)
    assert first.shape == (1,)
    assert first[0] == argmax_without_padding(model.predict(padded, verbose=0))[0]


def test_seeded_sampling_is_reproducible():
    model = small_model()
    prompt = random_ids(batch=2)
    first = model.generate(prompt, 10, sampler="random", seed=7)
    again = model.generate(prompt, 10, sampler="random", seed=7)
    other = model.generate(prompt, 10, sampler="random", seed=8)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    top_k = model.generate(prompt, 10, sampler="top_k", top_k=3, seed=7)
    np.testing.assert_array_equal(
        top_k, model.generate(prompt, 10, sampler="top_k", top_k=3, seed=7)
    )


def test_beam_search_with_one_beam_equals_greedy():
    model = small_model()
    prompt = random_ids(batch=3)
    np.testing.assert_array_equal(
        model.generate(prompt, 6, sampler="beam", num_beams=1),
        model.generate(prompt, 6, sampler="greedy"),
    )


def test_generation_takes_and_returns_text():
    vocabulary = WordVocabulary.from_text("the cat sat on the mat")
    model = small_model(vocabulary_size=vocabulary.size, vocabulary=vocabulary)
    text = model.generate("the cat", max_length=4)
    assert isinstance(text, str) and len(text.split()) <= 4
    texts = model.generate(["the cat", "on the mat"], max_length=3)
    assert isinstance(texts, list) and len(texts) == 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(prompt=""), "empty"),
        (dict(prompt=np.zeros(3, dtype="int32")), "empty"),
        (dict(prompt=np.array([1, 2]), max_length=0), "max_length"),
        (dict(prompt=np.array([1, 2]), sampler="nucleus"), "sampler"),
        (dict(prompt=np.array([1, 2]), temperature=0), "temperature"),
    ],
)
def test_generation_rejects_bad_input(kwargs, message):
    vocabulary = WordVocabulary.from_text("the cat sat on the mat")
    model = small_model(vocabulary_size=vocabulary.size, vocabulary=vocabulary)
    kwargs.setdefault("max_length", 3)
    with pytest.raises(ValueError, match=message):
        model.generate(**kwargs)


def test_text_prompt_needs_a_vocabulary():
    with pytest.raises(ValueError, match="vocabulary"):
        small_model().generate("hello", max_length=2)


def test_get_config_is_complete():
    vocabulary = WordVocabulary.from_text("a b c d e")
    model = small_model(
        vocabulary_size=vocabulary.size,
        vocabulary=vocabulary,
        weight_tying="adjacent",
        dropout=0.25,
        linear_units=2,
        query_value=0.2,
        init_stddev=0.1,
    )
    clone = MemN2NLM.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert clone.vocabulary.tokens == vocabulary.tokens
    json.dumps(model.get_config())


def test_keras_round_trip_in_a_new_process_is_exact(tmp_path):
    vocabulary = WordVocabulary.from_text("the cat sat on the mat and ran")
    model = small_model(vocabulary_size=vocabulary.size, vocabulary=vocabulary)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    ids = np.random.default_rng(3).integers(1, vocabulary.size, (5, MEMORY))
    path = tmp_path / "model.keras"
    model.save(path)
    np.save(tmp_path / "ids.npy", ids)
    np.save(tmp_path / "expected.npy", model.predict(ids, verbose=0))
    script = textwrap.dedent(
        f"""
        import numpy as np, keras
        import keras_memnet  # noqa: F401  (registers nothing extra: check)
        model = keras.saving.load_model({str(path)!r}, safe_mode=True)
        ids = np.load({str(tmp_path / "ids.npy")!r})
        expected = np.load({str(tmp_path / "expected.npy")!r})
        np.testing.assert_array_equal(model.predict(ids, verbose=0), expected)
        assert model.vocabulary.tokens[:3] == ["<pad>", "<unk>", "the"]
        print(model.generate("the cat", max_length=3))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == model.generate("the cat", max_length=3)
