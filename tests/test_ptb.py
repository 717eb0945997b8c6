import hashlib
import io
import tarfile

import numpy as np
import pytest

from keras_memnet.datasets import ptb
from keras_memnet.datasets.ptb import PTB_FILES
from keras_memnet.tokenizers import CharVocabulary
from keras_memnet.tokenizers import WordVocabulary

# Lines in the layout of Mikolov's files: a leading space, <unk> for rare
# words, N for numbers.
FILES = {
    "train": " the cat sat on the mat \n the <unk> sat \n a dog ran N miles \n",
    "valid": " the dog sat \n a zebra ran \n",
    "test": " the cat ran \n",
}


@pytest.fixture
def ptb_dir(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for name, text in FILES.items():
        (folder / PTB_FILES[name]).write_text(text)
    return folder


def test_word_level(ptb_dir):
    corpus = ptb(ptb_dir)
    vocab = corpus.vocabulary
    assert isinstance(vocab, WordVocabulary)
    train_types = set(FILES["train"].split()) - {"<unk>"}
    # <pad>, <unk>, <eos> and the training types.
    assert vocab.size == len(train_types) + 3
    assert vocab.unk_id == 1 and vocab.token_to_id("<unk>") == 1
    assert corpus.train.size == len(FILES["train"].split()) + 3
    assert vocab.decode(corpus.train) == (
        "the cat sat on the mat <eos> the <unk> sat <eos> "
        "a dog ran N miles <eos>"
    )
    # "zebra" is not in the training file.
    assert vocab.decode(corpus.valid) == "the dog sat <eos> a <unk> ran <eos>"
    assert vocab.decode(corpus.test) == "the cat ran <eos>"
    windows = corpus.windows("train", 3, 4, shuffle=False)
    context, target = next(iter(windows))
    np.testing.assert_array_equal(context[0], corpus.train[:3])
    assert int(target[0]) == corpus.train[3]


def test_char_level(ptb_dir):
    corpus = ptb(ptb_dir, level="char")
    vocab = corpus.vocabulary
    assert isinstance(vocab, CharVocabulary)
    assert vocab.decode(corpus.test) == "the cat ran\n"
    assert vocab.decode(corpus.valid) == "the dog sat\na <unk>e<unk>ra ran\n"
    assert "\n" in vocab and " " in vocab


def test_dict_and_archive_paths(ptb_dir, tmp_path):
    from_dir = ptb(ptb_dir)
    from_dict = ptb({name: ptb_dir / PTB_FILES[name] for name in FILES})
    archive = tmp_path / "simple-examples.tgz"
    with tarfile.open(archive, "w:gz") as out:
        for name, text in FILES.items():
            data = text.encode()
            info = tarfile.TarInfo(f"./simple-examples/data/{PTB_FILES[name]}")
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    from_archive = ptb(archive)
    for corpus in (from_dict, from_archive):
        assert corpus.vocabulary == from_dir.vocabulary
        np.testing.assert_array_equal(corpus.train, from_dir.train)


def test_download_checks_md5_and_deletes_bad_file(ptb_dir, tmp_path):
    cache_dir = tmp_path / "cache"
    with pytest.raises(
        ValueError,
        match="MD5 is .* not f26c4b92c5fdc7b3f8c7cdcb991d8420.*deleted",
    ) as info:
        ptb(origin=ptb_dir.as_uri(), cache_dir=str(cache_dir))
    assert hashlib.md5(FILES["train"].encode()).hexdigest() in str(info.value)
    assert not (cache_dir / "datasets" / "ptb.train.txt").exists()


def test_offline_message(tmp_path):
    cache_dir = tmp_path / "cache"
    with pytest.raises(FileNotFoundError, match="put it at .*ptb.train.txt"):
        ptb(origin=(tmp_path / "nowhere").as_uri(), cache_dir=str(cache_dir))


def test_bad_input(ptb_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a folder"):
        ptb(tmp_path / "missing")
    with pytest.raises(ValueError, match="exactly the keys"):
        ptb({"train": ptb_dir / "ptb.train.txt"})
    with pytest.raises(ValueError, match="`level` must be"):
        ptb(ptb_dir, level="byte")
    (ptb_dir / "ptb.test.txt").write_bytes(b" the \xe9 cat \n")
    with pytest.raises(
        ValueError, match="not valid UTF-8: byte 0xe9 at offset 5"
    ):
        ptb(ptb_dir)
    (ptb_dir / "ptb.test.txt").write_text("")
    with pytest.raises(ValueError, match="file .*ptb.test.txt is empty"):
        ptb(ptb_dir)
    (ptb_dir / "ptb.valid.txt").unlink()
    with pytest.raises(FileNotFoundError, match="valid file"):
        ptb(ptb_dir)
    truncated = tmp_path / "bad.tgz"
    with tarfile.open(truncated, "w:gz") as out:
        data = b"x" * 100_000
        info = tarfile.TarInfo("ptb.train.txt")
        info.size = len(data)
        out.addfile(info, io.BytesIO(data))
    truncated.write_bytes(truncated.read_bytes()[:60])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        ptb(truncated)
    text_file = tmp_path / "notes.txt"
    text_file.write_text("hello")
    with pytest.raises(FileNotFoundError, match="neither a folder"):
        ptb(text_file)
