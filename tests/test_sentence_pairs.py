import gzip
from collections import Counter

import numpy as np
import pytest

from keras_memnet.datasets import sentence_pairs as sp


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_load_normalises_and_skips_blank_lines(tmp_path):
    path = write(
        tmp_path / "pairs.txt",
        "Go.\tVa\u202f!\tCC-BY attribution\n\n  Hi.  \t Salut\u00a0 !\n",
    )
    assert sp.load_sentence_pairs(path) == [("Go.", "Va !"), ("Hi.", "Salut !")]


def test_load_gzip_and_max_pairs(tmp_path):
    path = tmp_path / "pairs.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("a\tb\nc\td\ne\tf\n")
    assert sp.load_sentence_pairs(path, max_pairs=2) == [("a", "b"), ("c", "d")]


def test_load_reports_line_without_tab(tmp_path):
    path = write(tmp_path / "pairs.txt", "a\tb\n\nno tab here\n")
    with pytest.raises(ValueError, match="line 3.*no tab"):
        sp.load_sentence_pairs(path)


def test_load_reports_empty_side(tmp_path):
    path = write(tmp_path / "pairs.txt", "a\tb\n \tb\n")
    with pytest.raises(
        ValueError, match="line 2: the source sentence is empty"
    ):
        sp.load_sentence_pairs(path)
    path = write(tmp_path / "pairs2.txt", "a\t\u202f\n")
    with pytest.raises(
        ValueError, match="line 1: the target sentence is empty"
    ):
        sp.load_sentence_pairs(path)


def test_load_rejects_bad_max_pairs(tmp_path):
    path = write(tmp_path / "pairs.txt", "a\tb\n")
    with pytest.raises(ValueError, match="max_pairs"):
        sp.load_sentence_pairs(path, max_pairs=0)


def test_split_keeps_sources_apart_and_is_fixed():
    pairs = [(f"s{i % 40}", f"t{i}") for i in range(100)]
    train, test = sp.split_sentence_pairs(pairs, test_size=30, seed=0)
    assert len(test) >= 30 and len(train) + len(test) == 100
    assert not {s for s, _ in train} & {s for s, _ in test}
    assert sorted(train + test) == sorted(pairs)
    assert sp.split_sentence_pairs(pairs, test_size=30, seed=0) == (train, test)
    assert sp.split_sentence_pairs(pairs, test_size=30, seed=1) != (train, test)


@pytest.mark.parametrize("test_size", [0, 100, 2.5])
def test_split_rejects_bad_test_size(test_size):
    pairs = [(f"s{i}", f"t{i}") for i in range(100)]
    with pytest.raises(ValueError, match="test_size"):
        sp.split_sentence_pairs(pairs, test_size=test_size)


def test_fra_eng_file_and_fixed_split(fra_eng_path):
    pairs = sp.load_sentence_pairs(fra_eng_path)
    assert len(pairs) == 18065
    assert not any("\u202f" in s or "\u202f" in t for s, t in pairs)
    train, test = sp.split_sentence_pairs(pairs)
    assert len(test) >= 1000
    assert not {s for s, _ in train} & {s for s, _ in test}
    sources, references = sp.group_references(test)
    assert sum(len(r) for r in references) == len(test)
    assert len(sources) == len(set(sources))


def test_group_references():
    pairs = [("a", "x"), ("b", "y"), ("a", "z")]
    assert sp.group_references(pairs) == (["a", "b"], [["x", "z"], ["y"]])


def test_sentence_pair_dataset_batches_everything_once():
    pairs = [
        (" ".join("abcde"[: 1 + i % 5]), " ".join("vwxyz"[: 1 + i % 3]))
        for i in range(23)
    ]
    source_vocab, target_vocab = sp.build_vocabularies(pairs)
    dataset = sp.sentence_pair_dataset(
        pairs, source_vocab, target_vocab, batch_size=5, seed=0
    )
    assert int(dataset.cardinality()) == 5
    seen = Counter()
    end = target_vocab.token_to_id("<end>")
    for inputs, labels in dataset:
        source = inputs["source_ids"].numpy()
        decoder_input = inputs["decoder_input_ids"].numpy()
        labels = labels.numpy()
        assert decoder_input.shape == labels.shape
        # Labels are the decoder inputs shifted by one, ending in <end>.
        np.testing.assert_array_equal(
            decoder_input[:, 1:][labels[:, 1:] != 0],
            labels[:, :-1][labels[:, 1:] != 0],
        )
        assert ((labels == end).sum(axis=1) == 1).all()
        # Right padding only.
        for row in source:
            length = (row != 0).sum()
            assert (row[:length] != 0).all() and (row[length:] == 0).all()
        for row in source:
            seen[source_vocab.decode(row)] += 1
    assert seen == Counter(" ".join(s.split()) for s, _ in pairs)


def test_sentence_pair_dataset_rejects_bad_batch_size():
    source_vocab, target_vocab = sp.build_vocabularies([("a", "x")])
    with pytest.raises(ValueError, match="batch_size"):
        sp.sentence_pair_dataset(
            [("a", "x")], source_vocab, target_vocab, batch_size=0
        )


def test_moved_names_stay_importable_from_here():
    # Tokenisation lives in `tokenizers/` and BLEU in `metrics/`; the old
    # import paths are the same objects.
    from keras_memnet import metrics
    from keras_memnet import tokenizers

    assert sp.tokenize_sentence is tokenizers.tokenize_sentence
    assert sp.build_vocabularies is tokenizers.build_vocabularies
    assert sp.encode_sentence_pairs is tokenizers.encode_sentence_pairs
    assert sp.normalize_text is tokenizers.normalize_text
    assert (sp.START_TOKEN, sp.END_TOKEN) == ("<start>", "<end>")
    assert sp.corpus_bleu is metrics.corpus_bleu
