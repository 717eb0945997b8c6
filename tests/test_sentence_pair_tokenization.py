import pytest

from keras_memnet.tokenizers import build_vocabularies
from keras_memnet.tokenizers import encode_sentence_pairs
from keras_memnet.tokenizers import normalize_text
from keras_memnet.tokenizers import tokenize_sentence


def test_normalize_text():
    assert normalize_text("  Va\u202f!\u00a0 Tom\u2019s\t") == "Va ! Tom's"


def test_tokenize_sentence():
    assert tokenize_sentence("J'ai faim\u202f!") == ["j'", "ai", "faim", "!"]
    assert tokenize_sentence("Tom, don't go.") == [
        "tom",
        ",",
        "don'",
        "t",
        "go",
        ".",
    ]
    assert tokenize_sentence("Peut-être\u2019s") == [
        "peut",
        "-",
        "être'",
        "s",
    ]
    assert tokenize_sentence("  ") == []


def test_build_vocabularies_adds_start_and_end():
    pairs = [("I am here.", "Je suis là."), ("I am.", "Je suis.")]
    source_vocab, target_vocab = build_vocabularies(pairs)
    assert source_vocab.tokens[:2] == ["<pad>", "<unk>"]
    assert target_vocab.tokens[:4] == ["<pad>", "<unk>", "<start>", "<end>"]
    assert "là" in target_vocab and "here" in source_vocab


def test_encode_pairs_frames_targets():
    pairs = [("a b", "x y"), ("c", "z")]
    source_vocab, target_vocab = build_vocabularies(pairs)
    sources, decoder_inputs, labels = encode_sentence_pairs(
        pairs, source_vocab, target_vocab
    )
    start = target_vocab.token_to_id("<start>")
    end = target_vocab.token_to_id("<end>")
    x, y = target_vocab.token_to_id("x"), target_vocab.token_to_id("y")
    assert decoder_inputs[0].tolist() == [start, x, y]
    assert labels[0].tolist() == [x, y, end]
    assert sources[1].tolist() == [source_vocab.token_to_id("c")]


def test_encode_pairs_rejects_empty_sentence():
    source_vocab, target_vocab = build_vocabularies([("a", "x")])
    with pytest.raises(ValueError, match=r"pairs\[1\].*empty target"):
        encode_sentence_pairs(
            [("a", "x"), ("a", " ")], source_vocab, target_vocab
        )


def test_encode_pairs_needs_start_and_end_tokens():
    source_vocab, _ = build_vocabularies([("a", "x")])
    with pytest.raises(ValueError, match="no `start_token` '<start>'"):
        encode_sentence_pairs([("a", "x")], source_vocab, source_vocab)
