"""text8 loaders: the full corpus (downloaded or local) and a bundled sample.

text8 is the first 10^8 bytes of cleaned English Wikipedia: lower-case a-z
and single spaces, about 17 M words. Sukhbaatar et al., "End-To-End Memory
Networks" (NeurIPS 2015, arXiv:1503.08895) train language models on it with
the split of Mikolov et al.: the first 90 M characters for training, the next
5 M for validation and the last 5 M for test, with words seen fewer than 10
times in training mapped to `<unk>`.
"""

import gzip
import importlib.resources
import os
import zipfile
import zlib

import keras
import numpy as np

from keras_memnet.datasets.corpus import Corpus
from keras_memnet.tokenizers.char_vocabulary import CharVocabulary
from keras_memnet.tokenizers.word_vocabulary import UNK_TOKEN
from keras_memnet.tokenizers.word_vocabulary import WordVocabulary
from keras_memnet.utils.arguments import check_float
from keras_memnet.utils.arguments import check_int
from keras_memnet.utils.arguments import check_one_of

TEXT8_URL = "http://mattmahoney.net/dc/text8.zip"
TEXT8_ZIP_NAME = "text8.zip"
TEXT8_MEMBER = "text8"
TEXT8_SIZE = 100_000_000
TEXT8_CRC32 = 0x7D6BE66F
SAMPLE_RESOURCE = "text8_head1024000.txt.gz"
SAMPLE_SIZE = 1_024_000

NAMED_SPLITS = ("standard", "study512k")
STANDARD_FRACTIONS = (0.9, 0.05, 0.05)
STANDARD_MIN_COUNT = 10
STUDY_BYTES = 512_000
# The split of the 12 MB text8 prefix (`text8-head12m.txt.gz`) that the
# shipped presets, the examples and the benchmarks train and test on:
# `text8(path, split=TEXT8_12M_SPLIT, min_count=5)`.
TEXT8_12M_SPLIT = {
    "train": (0, 10_000_000),
    "valid": (10_000_000, 11_000_000),
    "test": (11_000_000, None),
}
DEFAULT_VALID_FRACTION = 0.05
# Sub-block size for tokenising, so the word lists of a 100 MB corpus are
# never all in memory at once.
_BLOCK_BYTES = 8 << 20


def text8(
    path=None,
    split="standard",
    level="word",
    min_count=None,
    valid_fraction=None,
    vocabulary=None,
    cache_dir=None,
    origin=TEXT8_URL,
):
    """Loads text8 as a `Corpus` of train/valid/test token ids.

    Splits (`split`):

    - `"standard"`: 90% / 5% / 5% of the bytes, i.e. the paper's
      90M / 5M / 5M characters on the full corpus (on a prefix, the same
      fractions of it). Words seen fewer than `min_count` (default 10) times
      in training become `<unk>`.
    - `"study512k"`: the earlier study's protocol: train on bytes
      `[0, 512000)`, test on `[512000, 1024000)`, a vocabulary of every word
      type of both chunks and no `<unk>` (16,988 types). Validation is the
      last `valid_fraction` (default 0.05) of the training tokens.
    - a dict of byte ranges, e.g. `{"train": (0, 10_000_000), "valid":
      (10_000_000, 11_000_000), "test": (11_000_000, 12_000_000)}`.
      An end of None means the end of the file. `"valid"` may be left out;
      it is then carved from the end of train.
    - a tuple of fractions of the file, `(train, valid, test)` or
      `(train, test)`, laid end to end from byte 0.

    Each byte range is split on whitespace on its own, so a word cut by a
    range boundary becomes two fragments. The vocabulary comes from the
    training range (from both ranges for `"study512k"`).

    Args:
        path: None to download `text8.zip` into the Keras cache (checked
            against its size and CRC-32), or a local path to `text8`,
            `text8.zip` or a prefix of text8, plain or gzip-compressed.
        split: see above.
        level: `"word"`, or `"char"` for the 27 symbols (space, a-z); the
            character vocabulary is fixed, so `min_count` does not apply.
        min_count: int >= 1 or None. Words seen fewer times in training map
            to `<unk>`. None means 10 (1 with no `<unk>` for
            `"study512k"`).
        valid_fraction: float in [0, 1) or None, for splits without a
            validation range: the fraction of the training tokens, taken
            from its end, used for validation. None means 0.05.
        vocabulary: a `WordVocabulary`/`CharVocabulary` to encode with,
            instead of building one (e.g. a trained model's).
        cache_dir: Keras cache folder for the download (default
            `~/.keras`); the file goes in its `datasets/` subfolder.
        origin: URL of `text8.zip`.

    Returns:
        A `Corpus` with `.train`, `.valid`, `.test`, `.vocabulary` and
        `.windows(...)`.

    Example:

    >>> corpus = text8("text8.zip", split="standard")  # doctest: +SKIP
    >>> dataset = corpus.windows("train", memory_size=100, batch_size=128)
    ... # doctest: +SKIP
    """
    data, source = _load_text8_bytes(path, cache_dir=cache_dir, origin=origin)
    return _corpus_from_bytes(
        data,
        source=source,
        split=split,
        level=level,
        min_count=min_count,
        valid_fraction=valid_fraction,
        vocabulary=vocabulary,
    )


def text8_sample(
    split="study512k",
    level="word",
    min_count=None,
    valid_fraction=None,
    vocabulary=None,
):
    """Loads the bundled first 1,024,000 bytes of text8, offline.

    The sample ships with the package, so it needs no download. Its default
    split `"study512k"` gives 16,988 word types (vocabulary size 16,989 with
    `<pad>`), 85,161 training words (of which the last 5% are validation)
    and 86,163 test words. Other splits are as in `text8()`, within the
    sample's 1,024,000 bytes.

    Args:
        split: as in `text8()`; default `"study512k"`.
        level: `"word"` or `"char"`.
        min_count: as in `text8()`.
        valid_fraction: as in `text8()`.
        vocabulary: as in `text8()`.

    Returns:
        A `Corpus`, as `text8()` returns.

    Example:

    >>> corpus = text8_sample()
    >>> corpus.vocabulary.size
    16989
    >>> corpus.train.size + corpus.valid.size, corpus.test.size
    (85161, 86163)
    """
    resource = importlib.resources.files("keras_memnet.datasets").joinpath(
        "data", SAMPLE_RESOURCE
    )
    data = gzip.decompress(resource.read_bytes())
    return _corpus_from_bytes(
        data,
        source="text8_sample",
        split=split,
        level=level,
        min_count=min_count,
        valid_fraction=valid_fraction,
        vocabulary=vocabulary,
    )


def read_verified_zip(
    path,
    member=TEXT8_MEMBER,
    expected_size=TEXT8_SIZE,
    expected_crc32=TEXT8_CRC32,
    delete_if_bad=False,
):
    """Reads `member` of the zip at `path`, checking its size and CRC-32.

    `zipfile` also checks the data against the header's CRC-32 as it reads.

    Args:
        path: path of the zip file.
        member: name of the member to read.
        expected_size: int or None, the member's uncompressed size.
        expected_crc32: int or None, the member's CRC-32.
        delete_if_bad: bool, delete the file when a check fails (for a
            cache entry, so the next call downloads it again).

    Returns:
        The member's bytes.

    Raises:
        ValueError: the zip is corrupt or truncated, lacks `member`, or its
            size or checksum differ; the message says whether the file was
            deleted.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            try:
                info = archive.getinfo(member)
            except KeyError:
                raise _BadArchive(
                    f"it has no member named {member!r} (members: "
                    f"{archive.namelist()[:5]})"
                )
            if expected_size is not None and info.file_size != expected_size:
                raise _BadArchive(
                    f"its member {member!r} is {info.file_size:,} bytes, not "
                    f"the expected {expected_size:,}"
                )
            if expected_crc32 is not None and info.CRC != expected_crc32:
                raise _BadArchive(
                    f"its member {member!r} has CRC-32 {info.CRC:#010x}, not "
                    f"the expected {expected_crc32:#010x}"
                )
            data = archive.read(member)
    except (
        _BadArchive,
        zipfile.BadZipFile,
        EOFError,
        zlib.error,
        OSError,
    ) as err:
        reason = (
            str(err)
            if isinstance(err, _BadArchive)
            else (f"it is corrupt or truncated ({type(err).__name__}: {err})")
        )
        if delete_if_bad and os.path.exists(path):
            os.remove(path)
            action = (
                "The bad cache entry was deleted; call again to download "
                "it anew."
            )
        else:
            action = "The file was left in place."
        raise ValueError(f"Bad zip file {path}: {reason}. {action}") from None
    return data


class _BadArchive(Exception):
    pass


def _keras_cache_path(fname, cache_dir):
    """Where `keras.utils.get_file(fname, cache_subdir="datasets")` puts it."""
    if cache_dir is None:
        cache_dir = os.environ.get(
            "KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras")
        )
    base = os.path.expanduser(cache_dir)
    if not os.access(base, os.W_OK):
        base = os.path.join("/tmp", ".keras")
    return os.path.join(base, "datasets", fname)


def download_to_cache(fname, origin, cache_dir=None, what=None):
    """Fetches `origin` into the Keras cache with `keras.utils.get_file`.

    A file already in the cache is reused. Without network and without the
    file, raises `FileNotFoundError` saying where to put it.
    """
    if cache_dir is not None:
        # get_file falls back to /tmp/.keras when the folder does not exist.
        os.makedirs(os.path.expanduser(cache_dir), exist_ok=True)
    target = _keras_cache_path(fname, cache_dir)
    try:
        return keras.utils.get_file(
            fname=fname,
            origin=origin,
            cache_dir=cache_dir,
            cache_subdir="datasets",
        )
    except Exception as err:
        # get_file removes its partial download itself; make sure of it.
        if os.path.exists(target) and os.path.getsize(target) == 0:
            os.remove(target)
        raise FileNotFoundError(
            f"Could not download {what or fname} from {origin} ({err}). "
            f"Without network access, get the file elsewhere and put it at "
            f"{target}, or pass `path=` pointing at a local copy."
        ) from None


def _load_text8_bytes(path, cache_dir, origin):
    """Returns (bytes, description) of text8 from the cache or a local file."""
    if path is None:
        zip_path = download_to_cache(
            TEXT8_ZIP_NAME, origin, cache_dir=cache_dir, what="text8"
        )
        data = read_verified_zip(zip_path, delete_if_bad=True)
        return data, zip_path
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"`path` {path!r} is not a file. Give the path of text8, "
            "text8.zip or a prefix of text8 (plain or .gz), or path=None to "
            "download it."
        )
    with open(path, "rb") as file:
        magic = file.read(4)
    if magic.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, EOFError, OSError) as err:
            raise ValueError(
                f"Bad zip file {path}: it is corrupt or truncated "
                f"({type(err).__name__}: {err}). The file was left in place."
            ) from None
        if not names:
            raise ValueError(f"Bad zip file {path}: it has no members.")
        member = TEXT8_MEMBER if TEXT8_MEMBER in names else names[0]
        full = member == TEXT8_MEMBER and len(names) == 1
        # A complete text8.zip is checked against the known size and
        # CRC-32 only if its member claims to be the full corpus.
        data = read_verified_zip(
            path,
            member=member,
            expected_size=None,
            expected_crc32=None,
        )
        if full and len(data) == TEXT8_SIZE:
            if zlib.crc32(data) != TEXT8_CRC32:
                raise ValueError(
                    f"{path} holds 100,000,000 bytes but not text8: its "
                    f"CRC-32 is {zlib.crc32(data):#010x}, not "
                    f"{TEXT8_CRC32:#010x}."
                )
        return data, path
    if magic.startswith(b"\x1f\x8b"):
        try:
            with gzip.open(path, "rb") as file:
                return file.read(), path
        except (EOFError, OSError, zlib.error) as err:
            raise ValueError(
                f"Bad gzip file {path}: it is corrupt or truncated "
                f"({type(err).__name__}: {err})."
            ) from None
    with open(path, "rb") as file:
        return file.read(), path


def resolve_byte_ranges(split, num_bytes):
    """Turns `split` into `(ranges, protocol)` for a file of `num_bytes`.

    `ranges` maps split names to `(start, end)` byte ranges; `protocol` is
    `"study512k"` or `"train-vocabulary"`.
    """
    if isinstance(split, str):
        if split == "standard":
            return _fraction_ranges(STANDARD_FRACTIONS, num_bytes), "standard"
        if split == "study512k":
            ranges = {
                "train": (0, STUDY_BYTES),
                "test": (STUDY_BYTES, 2 * STUDY_BYTES),
            }
            try:
                _check_ranges(ranges, num_bytes)
            except ValueError as err:
                raise ValueError(
                    f"The 'study512k' split needs the first "
                    f"{2 * STUDY_BYTES:,} bytes of text8: {err}"
                ) from None
            return ranges, "study512k"
        raise ValueError(
            f"Unknown `split` {split!r}. Use one of {NAMED_SPLITS}, a dict of "
            "byte ranges such as {'train': (0, 10_000_000), 'valid': "
            "(10_000_000, 11_000_000), 'test': (11_000_000, 12_000_000)}, or "
            "a tuple of fractions such as (0.9, 0.05, 0.05)."
        )
    if isinstance(split, dict):
        unknown = set(split) - {"train", "valid", "test"}
        if unknown or "train" not in split or "test" not in split:
            raise ValueError(
                "A dict `split` needs byte ranges for 'train' and 'test' and "
                f"optionally 'valid', nothing else. Got keys: {sorted(split)}"
            )
        ranges = {}
        for name, bounds in split.items():
            try:
                start, end = bounds
            except (TypeError, ValueError):
                raise ValueError(
                    f"`split[{name!r}]` must be a (start, end) byte range. "
                    f"Got: {bounds!r}"
                ) from None
            if end is None:
                end = num_bytes
            ranges[name] = (
                check_int(f"split[{name!r}][0]", start),
                check_int(f"split[{name!r}][1]", end),
            )
        _check_ranges(ranges, num_bytes)
        return ranges, "custom"
    if isinstance(split, (tuple, list)):
        return _fraction_ranges(split, num_bytes), "custom"
    raise ValueError(
        f"`split` must be a name in {NAMED_SPLITS}, a dict of byte ranges or "
        f"a tuple of fractions. Got: {split!r}"
    )


def _fraction_ranges(fractions, num_bytes):
    if len(fractions) not in (2, 3):
        raise ValueError(
            "A fractional `split` is (train, valid, test) or (train, test). "
            f"Got: {fractions!r}"
        )
    names = (
        ("train", "valid", "test") if len(fractions) == 3 else ("train", "test")
    )
    fractions = [
        check_float(f"split[{index}]", value, minimum=0, maximum=1)
        for index, value in enumerate(fractions)
    ]
    if sum(fractions) > 1 + 1e-9:
        raise ValueError(
            f"Fractions in `split` must sum to at most 1. Got: {fractions!r} "
            f"(sum {sum(fractions)})"
        )
    ranges = {}
    start = 0
    total = 0.0
    for name, fraction in zip(names, fractions):
        total += fraction
        end = min(num_bytes, int(round(total * num_bytes)))
        if name != "valid" or end > start:
            ranges[name] = (start, end)
        start = end
    _check_ranges(ranges, num_bytes)
    return ranges


def _check_ranges(ranges, num_bytes):
    for name, (start, end) in ranges.items():
        if not 0 <= start < end <= num_bytes:
            raise ValueError(
                f"Byte range {name}=[{start:,}, {end:,}) must be non-empty "
                f"and lie within the file's {num_bytes:,} bytes."
            )
    ordered = sorted(ranges.items(), key=lambda item: item[1])
    for (name_a, (_, end_a)), (name_b, (start_b, _)) in zip(
        ordered, ordered[1:]
    ):
        if start_b < end_a:
            raise ValueError(
                f"Byte ranges {name_a}={list(ranges[name_a])} and "
                f"{name_b}={list(ranges[name_b])} overlap."
            )


def _check_utf8(data, start, end):
    try:
        data[start:end].decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"The text is not valid UTF-8: byte {data[start + err.start]:#04x} "
            f"at offset {start + err.start:,} ({err.reason})."
        ) from None


def _word_blocks(data, start, end):
    """Yields the whitespace-split words of `data[start:end]` block by block.

    Blocks end at a space, so no word is cut except at `start`/`end`.
    """
    position = start
    while position < end:
        stop = min(end, position + _BLOCK_BYTES)
        if stop < end:
            space = data.rfind(b" ", position, stop)
            if space > position:
                stop = space
        try:
            text = data[position:stop].decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(
                "The text is not valid UTF-8: byte "
                f"{data[position + err.start]:#04x} at offset "
                f"{position + err.start:,} ({err.reason})."
            ) from None
        yield text.split()
        position = stop


def _encode_range(vocabulary, data, start, end):
    parts = [
        vocabulary.encode(words) for words in _word_blocks(data, start, end)
    ]
    if not parts:
        return np.zeros(0, np.int32)
    return np.concatenate(parts)


def _valid_fraction(valid_fraction, needed):
    if valid_fraction is None:
        return DEFAULT_VALID_FRACTION if needed else 0.0
    if not needed:
        raise ValueError(
            "`valid_fraction` applies only to splits without a 'valid' "
            f"range; this split has one. Got valid_fraction={valid_fraction}."
        )
    return check_float(
        "valid_fraction",
        valid_fraction,
        minimum=0,
        maximum=1,
        max_inclusive=False,
    )


def _corpus_from_bytes(
    data, source, split, level, min_count, valid_fraction, vocabulary
):
    check_one_of("level", level, ("word", "char"))
    if not data:
        raise ValueError(f"The corpus from {source} is empty (0 bytes).")
    ranges, protocol = resolve_byte_ranges(split, len(data))
    carve_fraction = _valid_fraction(valid_fraction, "valid" not in ranges)

    if level == "char":
        if min_count is not None:
            raise ValueError(
                "`min_count` applies only to level='word'; the character "
                f"vocabulary is fixed. Got min_count={min_count}."
            )
        vocabulary = vocabulary or CharVocabulary.text8()
        if not isinstance(vocabulary, CharVocabulary):
            raise ValueError(
                "level='char' needs a CharVocabulary as `vocabulary`. Got: "
                f"{vocabulary!r}"
            )
        arrays = {}
        all_bytes = np.frombuffer(data, dtype=np.uint8)
        for name, (start, end) in ranges.items():
            _check_utf8(data, start, end)
            try:
                arrays[name] = vocabulary.encode_code_points(
                    all_bytes[start:end]
                )
            except ValueError as err:
                raise ValueError(
                    f"In the {name!r} range starting at byte {start:,}: {err}"
                ) from None
        min_count_used = None
    else:
        if protocol == "study512k":
            if min_count not in (None, 1):
                raise ValueError(
                    "The 'study512k' split keeps every word type (no "
                    f"<unk>), so `min_count` must be None or 1. Got: "
                    f"{min_count!r}"
                )
            min_count_used = 1
        else:
            min_count_used = (
                STANDARD_MIN_COUNT if min_count is None else min_count
            )
        if vocabulary is not None and not isinstance(
            vocabulary, WordVocabulary
        ):
            raise ValueError(
                "level='word' needs a WordVocabulary as `vocabulary`. Got: "
                f"{vocabulary!r}"
            )
        if vocabulary is None:
            if protocol == "study512k":
                blocks = [
                    words
                    for start, end in ranges.values()
                    for words in _word_blocks(data, start, end)
                ]
                vocabulary = WordVocabulary.from_text(blocks, unk_token=None)
            else:
                start, end = ranges["train"]
                try:
                    vocabulary = WordVocabulary.from_text(
                        _word_blocks(data, start, end),
                        min_count=min_count_used,
                        unk_token=UNK_TOKEN,
                    )
                except ValueError as err:
                    raise ValueError(
                        f"{err} (training bytes [{start:,}, {end:,}) of "
                        f"{source})"
                    ) from None
        arrays = {
            name: _encode_range(vocabulary, data, start, end)
            for name, (start, end) in ranges.items()
        }

    if "valid" not in arrays:
        train = arrays["train"]
        num_valid = int(round(carve_fraction * train.size))
        arrays["valid"] = train[train.size - num_valid :]
        arrays["train"] = train[: train.size - num_valid]
    metadata = {
        "source": str(source),
        "split": split if isinstance(split, str) else "custom",
        "byte_ranges": {name: list(bounds) for name, bounds in ranges.items()},
        "min_count": min_count_used,
        "valid_fraction": carve_fraction if "valid" not in ranges else None,
    }
    name = f"text8/{split if isinstance(split, str) else 'custom'}/{level}"
    return Corpus(
        arrays["train"],
        arrays["valid"],
        arrays["test"],
        vocabulary,
        name=name,
        level=level,
        metadata=metadata,
    )
