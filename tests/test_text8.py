import collections
import gzip
import zipfile

import numpy as np
import pytest

from keras_memnet.datasets import Corpus
from keras_memnet.datasets import text8
from keras_memnet.datasets import text8_sample
from keras_memnet.datasets.text8 import read_verified_zip
from keras_memnet.tokenizers import CharVocabulary
from keras_memnet.tokenizers import WordVocabulary

REPRODUCTION_SPLIT = {
    "train": (0, 10_000_000),
    "valid": (10_000_000, 11_000_000),
    # The shared prefix is 11,999,999 bytes; None means "to the end".
    "test": (11_000_000, None),
}


def test_sample_study512k_counts():
    corpus = text8_sample()
    assert isinstance(corpus, Corpus)
    assert isinstance(corpus.vocabulary, WordVocabulary)
    # 16,988 word types from both chunks, no <unk>, plus <pad>.
    assert corpus.vocabulary.size == 16_989
    assert corpus.vocabulary.unk_id is None
    assert corpus.train.size + corpus.valid.size == 85_161
    assert corpus.test.size == 86_163
    # Validation is the last 5% of the training chunk.
    assert corpus.valid.size == round(0.05 * 85_161)
    for ids in (corpus.train, corpus.valid, corpus.test):
        assert ids.dtype == np.int32 and ids.ndim == 1
        assert ids.min() >= 1 and ids.max() < 16_989
    whole = text8_sample(valid_fraction=0.0)
    assert whole.valid.size == 0
    np.testing.assert_array_equal(
        whole.train, np.concatenate([corpus.train, corpus.valid])
    )


def test_sample_is_the_first_1024000_bytes_of_text8(
    text8_prefix_path, text8_prefix_bytes
):
    corpus = text8_sample(valid_fraction=0.0)
    train_words = text8_prefix_bytes[:512_000].decode().split()
    test_words = text8_prefix_bytes[512_000:1_024_000].decode().split()
    # A word cut at byte 512,000 gives two fragments.
    assert len(train_words) == 85_161 and len(test_words) == 86_163
    assert len(set(train_words) | set(test_words)) == 16_988
    assert corpus.vocabulary.decode(corpus.train) == " ".join(train_words)
    assert corpus.vocabulary.decode(corpus.test) == " ".join(test_words)
    from_prefix = text8(text8_prefix_path, split="study512k")
    assert from_prefix.vocabulary == text8_sample().vocabulary
    np.testing.assert_array_equal(from_prefix.test, corpus.test)


def test_sample_char_level():
    corpus = text8_sample(level="char")
    assert isinstance(corpus.vocabulary, CharVocabulary)
    assert corpus.vocabulary.size == 28
    assert corpus.level == "char"
    assert corpus.train.size + corpus.valid.size == 512_000
    assert corpus.test.size == 512_000
    assert corpus.vocabulary.decode(corpus.train[:30]) == (
        " anarchism originated as a ter"
    )


def test_standard_split_on_the_12m_prefix(
    text8_prefix_path, text8_prefix_bytes
):
    corpus = text8(text8_prefix_path, split="standard")
    num_bytes = len(text8_prefix_bytes)
    assert num_bytes == 11_999_999
    cut_1, cut_2 = round(0.9 * num_bytes), round(0.95 * num_bytes)
    assert corpus.metadata["byte_ranges"] == {
        "train": [0, cut_1],
        "valid": [cut_1, cut_2],
        "test": [cut_2, num_bytes],
    }
    train_words = text8_prefix_bytes[:cut_1].decode().split()
    assert corpus.train.size == len(train_words) == 1_842_662
    assert corpus.valid.size == len(text8_prefix_bytes[cut_1:cut_2].split())
    assert corpus.test.size == len(text8_prefix_bytes[cut_2:].split())
    counts = collections.Counter(train_words)
    kept = sum(count >= 10 for count in counts.values())
    # Word types seen >= 10 times in training, plus <unk> and <pad>.
    assert corpus.vocabulary.size == kept + 2 == 12_736
    assert corpus.vocabulary.unk_id == 1
    # <unk> mapping: exactly the rare training words map to id 1.
    rare = np.array([counts[word] < 10 for word in train_words])
    np.testing.assert_array_equal(corpus.train == 1, rare)
    expected = " ".join(
        word if counts[word] >= 10 else "<unk>" for word in train_words[:5000]
    )
    assert corpus.vocabulary.decode(corpus.train[:5000]) == expected


def test_reproduction_byte_range_split(text8_prefix_path, text8_prefix_bytes):
    corpus = text8(text8_prefix_path, split=REPRODUCTION_SPLIT, min_count=5)
    counts = collections.Counter(
        text8_prefix_bytes[:10_000_000].decode().split()
    )
    kept = sum(count >= 5 for count in counts.values())
    # The reproduction issue's 19,502 counts the 19,501 kept word types plus
    # <unk>; with <pad> the vocabulary size is 19,503.
    assert kept == 19_501
    assert corpus.vocabulary.size == 19_503
    assert corpus.metadata["byte_ranges"]["test"] == [11_000_000, 11_999_999]
    assert corpus.train.size == len(text8_prefix_bytes[:10_000_000].split())
    assert corpus.valid.size == len(
        text8_prefix_bytes[10_000_000:11_000_000].split()
    )


def test_fractional_split_and_char_level_on_prefix(
    text8_prefix_path, text8_prefix_bytes
):
    corpus = text8(
        text8_prefix_path, split=(0.5, 0.25), level="char", valid_fraction=0.1
    )
    half = round(0.5 * len(text8_prefix_bytes))
    assert corpus.train.size + corpus.valid.size == half
    assert corpus.valid.size == round(0.1 * half)
    assert corpus.test.size == round(0.75 * len(text8_prefix_bytes)) - half
    lookup = np.frombuffer(text8_prefix_bytes[:1000], np.uint8)
    expected = np.where(lookup == 32, 1, lookup.astype(np.int32) - 95)
    np.testing.assert_array_equal(corpus.train[:1000], expected)


def test_local_zip_and_raw_file(tmp_path, text8_head_bytes):
    head = text8_head_bytes[:200_000]
    raw = tmp_path / "text8"
    raw.write_bytes(head)
    archive = tmp_path / "text8.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("text8", head)
    from_raw = text8(raw, split=(0.8, 0.1, 0.1), min_count=2)
    from_zip = text8(archive, split=(0.8, 0.1, 0.1), min_count=2)
    assert from_raw.vocabulary == from_zip.vocabulary
    np.testing.assert_array_equal(from_raw.test, from_zip.test)


def _fake_text8_zip(path, data=b" fake text eight corpus"):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as out:
        out.writestr("text8", data)
    return path


def _download_fails(tmp_path, source, message):
    cache_dir = tmp_path / "cache"
    with pytest.raises(ValueError, match=message) as info:
        text8(origin=source.as_uri(), cache_dir=str(cache_dir))
    assert "cache entry was deleted" in str(info.value)
    assert not (cache_dir / "datasets" / "text8.zip").exists()


def test_download_of_a_wrong_file_is_deleted(tmp_path):
    # get_file copies the file:// URL into the cache; the size check fails.
    source = _fake_text8_zip(tmp_path / "served.zip")
    _download_fails(tmp_path, source, "not the expected 100,000,000")


def test_download_of_a_truncated_zip_is_deleted(tmp_path):
    whole = _fake_text8_zip(tmp_path / "whole.zip").read_bytes()
    source = tmp_path / "truncated.zip"
    source.write_bytes(whole[: len(whole) // 2])
    _download_fails(tmp_path, source, "corrupt or truncated")


def test_verify_detects_bad_checksum_and_corrupt_data(tmp_path):
    data = b" anarchism originated as a term of abuse"
    good = _fake_text8_zip(tmp_path / "good.zip", data)
    assert (
        read_verified_zip(good, expected_size=len(data), expected_crc32=None)
        == data
    )
    with pytest.raises(
        ValueError,
        match="has CRC-32 0x[0-9a-f]{8}, not the "
        "expected 0x7d6be66f.*cache entry was deleted",
    ):
        read_verified_zip(good, expected_size=len(data), delete_if_bad=True)
    assert not good.exists()
    # Flip one stored byte: the header's CRC-32 no longer matches the data.
    corrupt = _fake_text8_zip(tmp_path / "corrupt.zip", data)
    raw = bytearray(corrupt.read_bytes())
    where = bytes(raw).index(b"anarchism")
    raw[where] ^= 0xFF
    corrupt.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="Bad CRC-32.*left in place"):
        read_verified_zip(corrupt, expected_size=None, expected_crc32=None)
    assert corrupt.exists()
    with pytest.raises(ValueError, match="corrupt or truncated"):
        text8(corrupt)


def test_offline_without_file_says_where_to_put_it(tmp_path):
    cache_dir = tmp_path / "cache"
    missing = (tmp_path / "nowhere" / "text8.zip").as_uri()
    with pytest.raises(FileNotFoundError) as info:
        text8(origin=missing, cache_dir=str(cache_dir))
    message = str(info.value)
    assert str(cache_dir / "datasets" / "text8.zip") in message
    assert "path=" in message
    assert not (cache_dir / "datasets" / "text8.zip").exists()
    with pytest.raises(FileNotFoundError, match="is not a file"):
        text8(tmp_path / "missing.txt")


@pytest.mark.parametrize(
    "split, message",
    [
        ("mikolov", "Unknown `split` 'mikolov'"),
        ({"train": (0, 600), "test": (500, 900)}, "overlap"),
        ({"train": (0, 600), "test": (600, 5000)}, "within the file's 1,000"),
        (
            {"train": (0, 600), "dev": (600, 700), "test": (700, 900)},
            "nothing else",
        ),
        ({"train": (0, 600), "test": (700, 700)}, "non-empty"),
        ((0.9, 0.2), "sum to at most 1"),
        ((0.5,), r"\(train, valid, test\) or \(train, test\)"),
        (
            {"train": (0, 600.5), "test": (700, None)},
            r"`split\['train'\]\[1\]` must be an integer",
        ),
        ((0.5, 1.5), r"`split\[1\]` must be a number in \[0, 1\]"),
    ],
)
def test_bad_splits(tmp_path, split, message, text8_head_bytes):
    path = tmp_path / "text8"
    path.write_bytes(text8_head_bytes[:1000])
    with pytest.raises(ValueError, match=message):
        text8(path, split=split)


def test_bad_input(tmp_path, text8_head_bytes):
    path = tmp_path / "text8"
    path.write_bytes(text8_head_bytes[:1000])
    with pytest.raises(ValueError, match="study512k.*within the file"):
        text8(path, split="study512k")
    with pytest.raises(ValueError, match="vocabulary would be empty"):
        text8(path, split=(0.8, 0.2), min_count=1000)
    with pytest.raises(ValueError, match="`min_count` must be None or 1"):
        text8_sample(min_count=5)
    with pytest.raises(
        ValueError, match=r"`valid_fraction` must be a number in \[0, 1\)"
    ):
        text8_sample(valid_fraction=1.0)
    with pytest.raises(ValueError, match="`valid_fraction` applies only"):
        text8(path, split=(0.8, 0.1, 0.1), valid_fraction=0.1)
    with pytest.raises(ValueError, match=r"`level` must be one of \('word'"):
        text8_sample(level="byte")
    with pytest.raises(ValueError, match="`min_count` applies only"):
        text8_sample(level="char", min_count=3)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="is empty"):
        text8(empty)
    bad = tmp_path / "bad"
    bad.write_bytes(b" some words \xff\xfe more words here")
    with pytest.raises(
        ValueError, match="not valid UTF-8: byte 0xff at offset 12"
    ):
        text8(bad, split=(0.5, 0.5))
    with pytest.raises(ValueError, match="not valid UTF-8"):
        text8(bad, split=(0.5, 0.5), level="char")
    upper = tmp_path / "upper"
    upper.write_bytes(b" some Words")
    with pytest.raises(ValueError, match="Character 'W'"):
        text8(upper, split=(0.5, 0.5), level="char")
    truncated_gz = tmp_path / "t.gz"
    truncated_gz.write_bytes(gzip.compress(text8_head_bytes[:5000])[:-20])
    with pytest.raises(ValueError, match="Bad gzip file"):
        text8(truncated_gz)


def test_given_vocabulary_is_used():
    vocabulary = text8_sample().vocabulary
    corpus = text8_sample(split=(0.5, 0.5), vocabulary=vocabulary)
    assert corpus.vocabulary is vocabulary
    with pytest.raises(ValueError, match="needs a CharVocabulary"):
        text8_sample(level="char", vocabulary=vocabulary)
