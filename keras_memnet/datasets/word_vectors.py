"""Pretrained word vectors (word2vec text/binary, GloVe, NumPy) for MemN2NLM.

Initialising the memory embeddings from pretrained vectors is the next step
the earlier study proposed for the language models of Sukhbaatar et al.,
"End-To-End Memory Networks" (NeurIPS 2015, arXiv:1503.08895); the vectors
are those of Mikolov et al., "Distributed Representations of Words and
Phrases and their Compositionality" (NeurIPS 2013), in word2vec's formats.
"""

import collections.abc
import gzip
import os

import keras
import numpy as np


def load_word_vectors(source, vocabulary, binary=None, case_insensitive=False):
    """Looks up a vector for every token of `vocabulary`.

    Only the vectors of the vocabulary's tokens are kept, so a large file
    (e.g. 3 M GoogleNews vectors) needs little memory. `<pad>` is never
    looked up.

    Args:
        source: one of
            - a path to a word2vec text file (optional `"count dim"` header
              line, then `word v1 ... vdim` per line; GloVe files without a
              header work too), plain or `.gz`;
            - a path to a word2vec binary file (`binary=True`, or a name
              ending in `.bin`/`.bin.gz`);
            - a path to a `.npy` file, or a 2-D NumPy array, with one row per
              vocabulary id;
            - a `(words, array)` pair, or a mapping from word to vector.
        vocabulary: `WordVocabulary` whose tokens to look up.
        binary: bool or None; None guesses from the file name.
        case_insensitive: bool. Also match a token to a source word that
            differs only in case (exact matches win).

    Returns:
        `(vectors, found)`: a float32 array `(vocabulary.size, dim)` with
        zeros in rows not found, and a boolean array `(vocabulary.size,)`;
        `found.sum()` is the number of words found.

    Example:

    >>> from keras_memnet.tokenizers import WordVocabulary
    >>> vocab = WordVocabulary.from_text("the cat sat")
    >>> vectors, found = load_word_vectors(
    ...     {"cat": [1.0, 2.0], "dog": [3.0, 4.0]}, vocab
    ... )
    >>> int(found.sum()), vectors[vocab.token_to_id("cat")].tolist()
    (1, [1.0, 2.0])
    """
    tokens = vocabulary.tokens
    index = {token: i for i, token in enumerate(tokens) if i != 0}
    lower_index = {}
    if case_insensitive:
        for token, i in index.items():
            lower_index.setdefault(token.lower(), []).append(i)

    if isinstance(source, np.ndarray) or (
        isinstance(source, (str, os.PathLike))
        and os.fspath(source).endswith(".npy")
    ):
        array = (
            np.load(source) if not isinstance(source, np.ndarray) else source
        )
        if array.ndim != 2 or array.shape[0] != len(tokens):
            raise ValueError(
                "An array `source` needs one row per vocabulary id, shape "
                f"({len(tokens)}, dim). Got shape {array.shape}."
            )
        found = np.ones(len(tokens), dtype=bool)
        found[0] = False
        vectors = np.array(array, dtype=np.float32)
        vectors[0] = 0.0
        return vectors, found

    if isinstance(source, collections.abc.Mapping):
        pairs = iter(source.items())
    elif isinstance(source, tuple) and len(source) == 2:
        words, array = source
        array = np.asarray(array)
        if array.ndim != 2 or array.shape[0] != len(words):
            raise ValueError(
                "A `(words, array)` source needs one array row per word. Got "
                f"{len(words)} words and an array of shape {array.shape}."
            )
        pairs = zip(words, array)
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No word-vector file at {path!r}.")
        if binary is None:
            binary = path.endswith((".bin", ".bin.gz"))
        pairs = _read_binary(path) if binary else _read_text(path)
    else:
        raise TypeError(
            "`source` must be a file path, a NumPy array, a (words, array) "
            f"pair or a mapping of word to vector. Got: {type(source)}"
        )

    vectors = None
    found = np.zeros(len(tokens), dtype=bool)
    exact = np.zeros(len(tokens), dtype=bool)
    for word, vector in pairs:
        token_id = index.get(word)
        if token_id is not None:
            rows = [token_id] if not exact[token_id] else []
            exact[rows] = True
        elif case_insensitive:
            rows = [
                i for i in lower_index.get(word.lower(), ()) if not found[i]
            ]
        else:
            continue
        if not rows:
            continue
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        if vectors is None:
            vectors = np.zeros((len(tokens), vector.size), dtype=np.float32)
        elif vector.size != vectors.shape[1]:
            raise ValueError(
                f"The vector of {word!r} has {vector.size} values; earlier "
                f"vectors have {vectors.shape[1]}."
            )
        vectors[rows] = vector
        found[rows] = True
    if vectors is None:
        raise ValueError(
            "None of the vocabulary's words is in `source`, so the vectors' "
            "dimension is unknown and nothing can be initialised."
        )
    return vectors, found


def assign_word_vectors(
    model,
    source,
    vocabulary=None,
    binary=None,
    case_insensitive=False,
    verbose=True,
):
    """Copies pretrained vectors into every embedding layer of a model.

    Rows of words not found keep their current (random) values, and so does
    `<pad>`. The model must be built.

    Args:
        model: a built `MemN2NLM`, or any model with `embedding_layers`
            whose `.embeddings` are `(vocabulary_size, embedding_dim)`.
        source: as in `load_word_vectors`.
        vocabulary: `WordVocabulary`, or None for `model.vocabulary`.
        binary: as in `load_word_vectors`.
        case_insensitive: as in `load_word_vectors`.
        verbose: bool, print how many words were found.

    Returns:
        The number of vocabulary words found in `source`.

    Example:

    >>> from keras_memnet.models import MemN2NLM
    >>> from keras_memnet.tokenizers import WordVocabulary
    >>> vocab = WordVocabulary.from_text("the cat sat")
    >>> model = MemN2NLM(
    ...     vocab.size, hops=2, memory_size=4, embedding_dim=2, vocabulary=vocab
    ... )
    >>> model.build((None, 4))
    >>> assign_word_vectors(model, {"cat": [1.0, 2.0]}, verbose=False)
    1
    """
    if vocabulary is None:
        vocabulary = getattr(model, "vocabulary", None)
    if vocabulary is None:
        raise ValueError(
            "`vocabulary` is None and the model has none: pass the "
            "vocabulary the model's token ids come from."
        )
    layers = list(getattr(model, "embedding_layers", []))
    if not layers:
        raise ValueError("`model` has no `embedding_layers` to initialise.")
    for layer in layers:
        if not layer.built:
            raise ValueError(
                f"Layer {layer.name!r} is not built yet; build the model "
                "first, e.g. model.build((None, memory_size))."
            )
    vectors, found = load_word_vectors(
        source, vocabulary, binary=binary, case_insensitive=case_insensitive
    )
    for layer in layers:
        current = keras.ops.convert_to_numpy(layer.embeddings).copy()
        if current.shape[0] != vocabulary.size:
            raise ValueError(
                f"Layer {layer.name!r} has {current.shape[0]} rows but the "
                f"vocabulary has {vocabulary.size} tokens."
            )
        if current.shape[1] != vectors.shape[1]:
            raise ValueError(
                f"The word vectors have dimension {vectors.shape[1]} but the "
                f"model's `embedding_dim` is {current.shape[1]}; they must be "
                "equal."
            )
        current[found] = vectors[found]
        layer.embeddings.assign(current)
    count = int(found.sum())
    if verbose:
        print(
            f"Word vectors: found {count:,} of {vocabulary.size - 1:,} "
            "vocabulary words."
        )
    return count


def _open(path):
    with open(path, "rb") as file:
        magic = file.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def _read_text(path):
    """Yields (word, vector) from a word2vec/GloVe text file."""
    with _open(path) as file:
        dimension = None
        for line_number, raw in enumerate(file, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                line = raw.decode("utf-8", errors="replace")
            fields = line.rstrip().split(" ")
            if (
                line_number == 1
                and len(fields) == 2
                and all(f.isdigit() for f in fields)
            ):
                dimension = int(fields[1])
                continue
            if len(fields) < 2:
                if not line.strip():
                    continue
                raise ValueError(
                    f"Line {line_number} of {path} has no vector: {line!r}"
                )
            if dimension is None:
                dimension = len(fields) - 1
            if len(fields) < dimension + 1:
                raise ValueError(
                    f"Line {line_number} of {path} has {len(fields) - 1} "
                    f"values, expected {dimension}."
                )
            # Some GloVe words contain spaces: the vector is the last
            # `dimension` fields.
            word = " ".join(fields[: len(fields) - dimension])
            yield (
                word,
                _VectorText(
                    fields[len(fields) - dimension :], path, line_number
                ),
            )


class _VectorText:
    """Parses a vector's fields only when the word is wanted."""

    def __init__(self, fields, path, line_number):
        self.fields, self.path, self.line_number = fields, path, line_number

    def __array__(self, dtype=None, copy=None):
        try:
            return np.array(self.fields, dtype=dtype or np.float32)
        except ValueError:
            raise ValueError(
                f"Line {self.line_number} of {self.path} has a value that is "
                "not a number."
            ) from None


def _read_binary(path):
    """Yields (word, vector) from a word2vec binary file."""
    with _open(path) as file:
        header = file.readline().split()
        if len(header) != 2 or not all(h.isdigit() for h in header):
            raise ValueError(
                f"{path} does not start with a word2vec binary header "
                "'count dim'."
            )
        count, dimension = int(header[0]), int(header[1])
        record_bytes = 4 * dimension
        for number in range(count):
            word = bytearray()
            while True:
                char = file.read(1)
                if not char:
                    raise ValueError(
                        f"{path} ends early: it declares {count} words but "
                        f"holds {number}."
                    )
                if char == b" ":
                    break
                if char != b"\n":
                    word += char
            data = file.read(record_bytes)
            if len(data) != record_bytes:
                raise ValueError(
                    f"{path} ends early, inside the vector of word {number}."
                )
            yield (
                word.decode("utf-8", errors="replace"),
                np.frombuffer(data, dtype="<f4"),
            )
