import json

import keras
import numpy as np
import pytest

from keras_memnet.tokenizers import CharVocabulary


def test_text8_symbols():
    vocab = CharVocabulary.text8()
    assert vocab.size == 28
    assert vocab.tokens[0] == "<pad>" and vocab.pad_id == 0
    assert vocab.unk_id is None
    assert vocab.symbols == " abcdefghijklmnopqrstuvwxyz"
    assert vocab.token_to_id(" ") == 1
    assert vocab.token_to_id("z") == 27
    ids = vocab.encode("hello world")
    assert ids.dtype == np.int32
    assert vocab.decode(ids) == "hello world"
    np.testing.assert_array_equal(
        vocab.encode_code_points(np.frombuffer(b"ab z", np.uint8)),
        [2, 3, 1, 27],
    )


def test_unknown_characters():
    with pytest.raises(ValueError, match=r"Character 'Q' at position 1"):
        CharVocabulary.text8().encode("aQ")
    vocab = CharVocabulary("ab", unk_token="<unk>")
    np.testing.assert_array_equal(vocab.encode("abcé€"), [2, 3, 1, 1, 1])
    assert vocab.decode([2, 1, 0]) == "a<unk>"


def test_from_text_orders_by_code_point():
    vocab = CharVocabulary.from_text(["cab", "b\n"])
    assert vocab.symbols == "\nabc"
    vocab = CharVocabulary.from_text("aaab", min_count=2, unk_token="<unk>")
    assert vocab.tokens == ["<pad>", "<unk>", "a"]


def test_serialization_round_trip():
    vocab = CharVocabulary("xyz", unk_token="?")
    config = keras.saving.serialize_keras_object(vocab)
    json.dumps(config)
    restored = keras.saving.deserialize_keras_object(config)
    assert restored == vocab
    assert CharVocabulary(vocab.tokens, unk_token="?") == vocab


def test_validation():
    with pytest.raises(ValueError, match="single character"):
        CharVocabulary(["ab"])
    with pytest.raises(ValueError, match="must be unique"):
        CharVocabulary("aba")
    with pytest.raises(ValueError, match="at least one character"):
        CharVocabulary("")
    with pytest.raises(ValueError, match="`min_count` must be"):
        CharVocabulary.from_text("a", min_count=0)
    with pytest.raises(ValueError, match=r"\[0, 27\]"):
        CharVocabulary.text8().id_to_token(28)
