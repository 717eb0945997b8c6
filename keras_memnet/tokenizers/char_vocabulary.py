"""Character-level vocabulary: single characters to integer ids."""

import keras
import numpy as np

from keras_memnet.tokenizers.word_vocabulary import PAD_TOKEN

TEXT8_SYMBOLS = " abcdefghijklmnopqrstuvwxyz"


@keras.saving.register_keras_serializable(package="keras_memnet")
class CharVocabulary:
    """A character vocabulary with `<pad>` at id 0 and an optional `<unk>`.

    Ids are laid out as `[<pad>, <unk> (if any), symbols...]`. text8's 27
    symbols (space and a-z) give ids 1-27, so `size` is 28. Used by the
    character-level language models (`CharMemN2N`), following the
    character-level experiments in the line of work of Sukhbaatar et al.,
    "End-To-End Memory Networks" (NeurIPS 2015, arXiv:1503.08895).

    Encoding is vectorised over the text's code points, so a 100 MB corpus
    encodes in about a second.

    Args:
        symbols: str or list of single-character str, the symbols in id
            order. A list that starts with the special tokens in their fixed
            positions (as `vocab.tokens` returns it) is accepted too.
        unk_token: str or None. Token that unknown characters map to (id 1).
            `None` means encoding an unknown character raises `ValueError`.
        pad_token: str. Token for id 0.

    Example:

    >>> vocab = CharVocabulary.text8()
    >>> vocab.size
    28
    >>> vocab.encode("a cab").tolist()
    [2, 1, 4, 2, 3]
    >>> vocab.decode([2, 1, 4, 2, 3])
    'a cab'
    """

    def __init__(self, symbols, unk_token=None, pad_token=PAD_TOKEN):
        if not isinstance(pad_token, str) or not pad_token:
            raise ValueError(
                f"`pad_token` must be a non-empty string. Got: {pad_token!r}"
            )
        if unk_token is not None and (
            not isinstance(unk_token, str) or not unk_token
        ):
            raise ValueError(
                "`unk_token` must be a non-empty string or None. "
                f"Got: {unk_token!r}"
            )
        if unk_token == pad_token:
            raise ValueError(
                "`unk_token` and `pad_token` must differ. "
                f"Both are {pad_token!r}."
            )
        symbols = list(symbols)
        specials = [pad_token] + ([unk_token] if unk_token is not None else [])
        if symbols[: len(specials)] == specials:
            symbols = symbols[len(specials) :]
        if not symbols:
            raise ValueError("`symbols` must contain at least one character.")
        for symbol in symbols:
            if not isinstance(symbol, str) or len(symbol) != 1:
                raise ValueError(
                    "Every entry of `symbols` must be a single character. "
                    f"Got: {symbol!r}"
                )
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"`symbols` must be unique. Got: {symbols!r}")
        self._pad_token = pad_token
        self._unk_token = unk_token
        self._symbols = symbols
        self._tokens = specials + symbols
        self._index = {token: i for i, token in enumerate(self._tokens)}
        # Lookup table from code point to id; -1 marks unknown characters.
        first_id = len(specials)
        code_points = np.array([ord(s) for s in symbols], dtype=np.int64)
        self._table = np.full(int(code_points.max()) + 1, -1, dtype=np.int32)
        self._table[code_points] = np.arange(
            first_id, first_id + len(symbols), dtype=np.int32
        )

    @classmethod
    def text8(cls):
        """The 27 symbols of text8 (space and a-z), no `<unk>`; size 28."""
        return cls(TEXT8_SYMBOLS, unk_token=None)

    @classmethod
    def from_text(cls, text, min_count=1, unk_token=None, pad_token=PAD_TOKEN):
        """Builds a vocabulary of the characters in `text`, by code point.

        Args:
            text: str, or an iterable of str.
            min_count: int >= 1. Characters seen fewer times are left out.
            unk_token: str or None. Needed when `min_count` > 1 leaves
                characters out and text with them is encoded later.
            pad_token: str. Token for id 0.
        """
        if isinstance(min_count, bool) or not isinstance(
            min_count, (int, np.integer)
        ) or min_count < 1:
            raise ValueError(
                f"`min_count` must be an integer >= 1. Got: {min_count!r}"
            )
        texts = [text] if isinstance(text, str) else list(text)
        counts = {}
        for part in texts:
            code_points = _code_points(part)
            values, value_counts = np.unique(code_points, return_counts=True)
            for value, count in zip(values.tolist(), value_counts.tolist()):
                counts[value] = counts.get(value, 0) + count
        symbols = [chr(v) for v in sorted(counts) if counts[v] >= min_count]
        if not symbols:
            raise ValueError(
                f"No character is seen at least `min_count`={min_count} "
                "times, so the vocabulary would be empty."
            )
        return cls(symbols, unk_token=unk_token, pad_token=pad_token)

    @property
    def size(self):
        """Number of ids, counting `<pad>` and `<unk>`."""
        return len(self._tokens)

    def __len__(self):
        return self.size

    def __contains__(self, token):
        return token in self._index

    @property
    def tokens(self):
        """All tokens; the list index is the id."""
        return list(self._tokens)

    @property
    def symbols(self):
        """The ordinary symbols, as one string."""
        return "".join(self._symbols)

    @property
    def pad_id(self):
        return 0

    @property
    def pad_token(self):
        return self._pad_token

    @property
    def unk_id(self):
        return None if self._unk_token is None else 1

    @property
    def unk_token(self):
        return self._unk_token

    def token_to_id(self, token):
        """Id of `token`; unknown tokens give `unk_id` or raise."""
        token_id = self._index.get(token)
        if token_id is None:
            if self._unk_token is None:
                raise ValueError(
                    f"Character {token!r} is not in the vocabulary and it "
                    "has no `unk_token`."
                )
            return 1
        return token_id

    def id_to_token(self, token_id):
        """Token for `token_id`, which must be in `[0, size)`."""
        if not 0 <= int(token_id) < self.size:
            raise ValueError(
                f"`token_id` must be in [0, {self.size}). Got: {token_id}"
            )
        return self._tokens[int(token_id)]

    def encode(self, text):
        """Maps each character of `text` to its int32 id."""
        if not isinstance(text, str):
            text = "".join(text)
        return self.encode_code_points(_code_points(text))

    def encode_code_points(self, code_points):
        """Maps an integer array of code points (or bytes) to int32 ids."""
        code_points = np.asarray(code_points)
        in_table = code_points < self._table.size
        ids = self._table[np.where(in_table, code_points, 0)]
        unknown = (ids < 0) | ~in_table
        if unknown.any():
            if self._unk_token is None:
                position = int(np.argmax(unknown))
                raise ValueError(
                    f"Character {chr(int(code_points[position]))!r} at "
                    f"position {position} is not in the vocabulary "
                    f"({self.symbols!r}) and it has no `unk_token`."
                )
            ids = np.where(unknown, 1, ids).astype(np.int32)
        return ids

    def decode(self, ids, skip_pad=True):
        """Concatenates the tokens of `ids`, leaving out `<pad>`."""
        ids = np.asarray(ids).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.size):
            raise ValueError(
                f"`ids` must be in [0, {self.size}). Got values from "
                f"{ids.min()} to {ids.max()}."
            )
        tokens = self._tokens
        return "".join(
            tokens[i] for i in ids.tolist() if not (skip_pad and i == 0)
        )

    def get_config(self):
        return {
            "symbols": self.symbols,
            "unk_token": self._unk_token,
            "pad_token": self._pad_token,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return (
            isinstance(other, CharVocabulary)
            and self._tokens == other._tokens
            and self._unk_token == other._unk_token
        )

    def __repr__(self):
        return (
            f"CharVocabulary(size={self.size}, symbols={self.symbols!r}, "
            f"unk_token={self._unk_token!r})"
        )


def _code_points(text):
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
