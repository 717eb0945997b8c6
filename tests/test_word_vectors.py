import gzip

import keras
import numpy as np
import pytest

from keras_memnet.datasets import assign_word_vectors
from keras_memnet.datasets import load_word_vectors
from keras_memnet.models import MemN2NLM
from keras_memnet.tokenizers import WordVocabulary

VECTORS = {
    "the": [0.5, -1.0, 2.0],
    "Cat": [1.0, 2.0, 3.0],
    "dog": [-4.0, 0.25, 8.0],
    "zebra": [9.0, 9.0, 9.0],
}


@pytest.fixture
def vocab():
    return WordVocabulary.from_text("the cat sat on the dog")


def _write_text(path, header=True):
    lines = [f"{len(VECTORS)} 3"] if header else []
    lines += [
        f"{w} " + " ".join(str(v) for v in vec) for w, vec in VECTORS.items()
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _write_binary(path):
    with open(path, "wb") as file:
        file.write(f"{len(VECTORS)} 3\n".encode())
        for word, vector in VECTORS.items():
            file.write(word.encode() + b" ")
            file.write(np.asarray(vector, "<f4").tobytes())
            file.write(b"\n")
    return path


def _check(vocab, vectors, found, case_insensitive=False):
    assert vectors.shape == (vocab.size, 3) and vectors.dtype == np.float32
    expected = {"the": "the", "dog": "dog"}
    if case_insensitive:
        expected["cat"] = "Cat"
    for token in vocab.tokens:
        row = vocab.token_to_id(token)
        if token in expected:
            assert found[row]
            np.testing.assert_array_equal(
                vectors[row], VECTORS[expected[token]]
            )
        else:
            assert not found[row]
            np.testing.assert_array_equal(vectors[row], 0.0)
    assert found.sum() == len(expected)


@pytest.mark.parametrize("header", [True, False])
def test_text_format(tmp_path, vocab, header):
    path = _write_text(tmp_path / "vectors.txt", header=header)
    _check(vocab, *load_word_vectors(path, vocab))
    _check(
        vocab,
        *load_word_vectors(path, vocab, case_insensitive=True),
        case_insensitive=True,
    )


def test_gzipped_text_and_binary_formats(tmp_path, vocab):
    text = _write_text(tmp_path / "vectors.txt")
    packed = tmp_path / "vectors.txt.gz"
    packed.write_bytes(gzip.compress(text.read_bytes()))
    _check(vocab, *load_word_vectors(packed, vocab))
    binary = _write_binary(tmp_path / "vectors.bin")
    _check(vocab, *load_word_vectors(binary, vocab))
    _check(
        vocab,
        *load_word_vectors(binary, vocab, case_insensitive=True),
        case_insensitive=True,
    )


def test_mapping_pair_and_array_sources(tmp_path, vocab):
    _check(vocab, *load_word_vectors(VECTORS, vocab))
    words = list(VECTORS)
    array = np.array([VECTORS[w] for w in words])
    _check(vocab, *load_word_vectors((words, array), vocab))
    aligned = np.random.default_rng(0).normal(size=(vocab.size, 3))
    vectors, found = load_word_vectors(aligned, vocab)
    assert found.sum() == vocab.size - 1 and not found[0]
    np.testing.assert_allclose(vectors[1:], aligned[1:], rtol=1e-6)
    np.save(tmp_path / "aligned.npy", aligned)
    vectors_npy, _ = load_word_vectors(str(tmp_path / "aligned.npy"), vocab)
    np.testing.assert_array_equal(vectors_npy, vectors)


def test_assign_into_memn2n_lm(vocab):
    model = MemN2NLM(
        vocab.size, hops=2, memory_size=4, embedding_dim=3, vocabulary=vocab
    )
    model.build((None, 4))
    before = [
        keras.ops.convert_to_numpy(layer.embeddings).copy()
        for layer in model.embedding_layers
    ]
    assert assign_word_vectors(model, VECTORS, verbose=False) == 2
    for old, layer in zip(before, model.embedding_layers):
        new = keras.ops.convert_to_numpy(layer.embeddings)
        for token in ("the", "dog"):
            row = vocab.token_to_id(token)
            np.testing.assert_allclose(new[row], VECTORS[token])
        untouched = [
            vocab.token_to_id(t) for t in ("<pad>", "<unk>", "cat", "sat", "on")
        ]
        np.testing.assert_array_equal(new[untouched], old[untouched])
    # The model still trains after the assignment.
    assert model.predict(np.ones((2, 4), "int32"), verbose=0).shape == (
        2,
        vocab.size,
    )


def test_errors(tmp_path, vocab):
    model = MemN2NLM(
        vocab.size, hops=2, memory_size=4, embedding_dim=5, vocabulary=vocab
    )
    with pytest.raises(
        ValueError, match="dimension 3 but the model's `embedding_dim` is 5"
    ):
        assign_word_vectors(model, VECTORS, verbose=False)
    unnamed = MemN2NLM(vocab.size, hops=2, memory_size=4, embedding_dim=3)
    with pytest.raises(ValueError, match="`vocabulary` is None"):
        assign_word_vectors(unnamed, VECTORS)
    with pytest.raises(ValueError, match="None of the vocabulary's words"):
        load_word_vectors({"zebra": [1.0]}, vocab)
    with pytest.raises(ValueError, match=r"one row per vocabulary id"):
        load_word_vectors(np.zeros((3, 2)), vocab)
    with pytest.raises(ValueError, match="has 2 values; earlier"):
        load_word_vectors({"the": [1.0, 2.0, 3.0], "dog": [1.0, 2.0]}, vocab)
    bad = tmp_path / "bad.txt"
    bad.write_text("the 1.0 2.0\ndog 1.0 x\n")
    with pytest.raises(ValueError, match="Line 2 .* not a number"):
        load_word_vectors(bad, vocab)
    short = tmp_path / "short.txt"
    short.write_text("the 1.0 2.0\ndog 1.0\n")
    with pytest.raises(ValueError, match="Line 2 .* 1 values, expected 2"):
        load_word_vectors(short, vocab)
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(_write_binary(tmp_path / "v.bin").read_bytes()[:30])
    with pytest.raises(ValueError, match="ends early"):
        load_word_vectors(truncated, vocab)
    with pytest.raises(FileNotFoundError):
        load_word_vectors(tmp_path / "missing.txt", vocab)
    with pytest.raises(TypeError, match="`source` must be"):
        load_word_vectors(42, vocab)
