import json

import keras
import numpy as np
import pytest

from keras_memnet.tokenizers import WordVocabulary


def test_layout_counts_and_lookups():
    vocab = WordVocabulary.from_text("b a b c b a")
    assert vocab.tokens == ["<pad>", "<unk>", "b", "a", "c"]
    assert vocab.size == len(vocab) == 5
    assert vocab.pad_id == 0 and vocab.unk_id == 1
    assert vocab.unk_token == "<unk>"
    assert vocab.token_to_id("a") == 3
    assert vocab.token_to_id("zebra") == 1
    assert vocab.id_to_token(4) == "c"
    assert "c" in vocab and "zebra" not in vocab


def test_ties_keep_first_occurrence_order():
    vocab = WordVocabulary.from_text("z y x y z x", unk_token=None)
    assert vocab.tokens == ["<pad>", "z", "y", "x"]


def test_encode_decode_round_trip():
    vocab = WordVocabulary.from_text("the cat saw the dog")
    ids = vocab.encode("the dog barked at the cat")
    assert ids.dtype == np.int32
    np.testing.assert_array_equal(ids, [2, 5, 1, 1, 2, 3])
    assert vocab.decode(ids) == "the dog <unk> <unk> the cat"
    assert vocab.decode([0, 2, 0]) == "the"
    assert vocab.decode([0, 2], skip_pad=False) == "<pad> the"
    np.testing.assert_array_equal(vocab.encode(["cat", "dog"]), [3, 5])


def test_min_count_and_max_size():
    text = "a a a b b c"
    assert WordVocabulary.from_text(text, min_count=2).tokens == [
        "<pad>",
        "<unk>",
        "a",
        "b",
    ]
    assert WordVocabulary.from_text(text, max_size=3).tokens == [
        "<pad>",
        "<unk>",
        "a",
    ]


def test_special_tokens_in_text_are_not_types():
    # Penn Treebank writes unknown words as the literal "<unk>".
    vocab = WordVocabulary.from_text("a <unk> b <unk> <unk>")
    assert vocab.tokens == ["<pad>", "<unk>", "a", "b"]
    np.testing.assert_array_equal(vocab.encode("<unk> a"), [1, 2])


def test_no_unk_token_rejects_unknown_words():
    vocab = WordVocabulary.from_text("a b", unk_token=None)
    assert vocab.unk_id is None and vocab.size == 3
    with pytest.raises(ValueError, match="'c' is not in the vocabulary"):
        vocab.encode("a c")
    with pytest.raises(ValueError, match="not in the vocabulary"):
        vocab.token_to_id("c")


def test_chunks_are_counted_together():
    vocab = WordVocabulary.from_text([["a", "b"], "b c", ["b"]], unk_token=None)
    assert vocab.tokens == ["<pad>", "b", "a", "c"]


def test_serialization_round_trip():
    vocab = WordVocabulary.from_text("x y y z z z", min_count=2)
    config = keras.saving.serialize_keras_object(vocab)
    json.dumps(config)
    restored = keras.saving.deserialize_keras_object(config)
    assert isinstance(restored, WordVocabulary)
    assert restored == vocab
    assert restored.tokens == ["<pad>", "<unk>", "z", "y"]
    # The full token list (as .tokens gives it) is accepted as well.
    assert WordVocabulary(vocab.tokens) == vocab


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"min_count": 0}, "`min_count` must be an integer >= 1"),
        ({"max_size": 2}, "`max_size` must be an integer >= 3 or None"),
        ({"min_count": 5}, "vocabulary would be empty"),
    ],
)
def test_from_text_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WordVocabulary.from_text("a b b", **kwargs)


def test_constructor_validation():
    with pytest.raises(ValueError, match="must be unique"):
        WordVocabulary(["a", "b", "a"])
    with pytest.raises(ValueError, match="without whitespace"):
        WordVocabulary(["a b"])
    with pytest.raises(ValueError, match="`unk_token` and `pad_token` must"):
        WordVocabulary(["a"], unk_token="<pad>")
    with pytest.raises(TypeError, match="list of word types"):
        WordVocabulary("abc")
    vocab = WordVocabulary(["a"])
    with pytest.raises(
        ValueError, match=r"`token_id` must be an integer in \[0, 2\]"
    ):
        vocab.id_to_token(3)
    with pytest.raises(ValueError, match=r"`ids` must be in \[0, 2\]"):
        vocab.decode([5])
