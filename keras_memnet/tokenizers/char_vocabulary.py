"""Character-level vocabulary: single characters to integer ids."""

import keras
import numpy as np

from keras_memnet.tokenizers.vocabulary import PAD_TOKEN
from keras_memnet.tokenizers.vocabulary import Vocabulary
from keras_memnet.utils.arguments import check_int

TEXT8_SYMBOLS = " abcdefghijklmnopqrstuvwxyz"


@keras.saving.register_keras_serializable(package="keras_memnet")
class CharVocabulary(Vocabulary):
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
        super().__init__(list(symbols), unk_token, pad_token)
        symbols = self._types
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
        # Lookup table from code point to id; -1 marks unknown characters.
        first_id = self.size - len(symbols)
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
        min_count = check_int("min_count", min_count, minimum=1)
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
    def symbols(self):
        """The ordinary symbols, as one string."""
        return "".join(self._types)

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
        return "".join(self._tokens_of(ids, skip_pad))

    def get_config(self):
        return {
            "symbols": self.symbols,
            "unk_token": self._unk_token,
            "pad_token": self._pad_token,
        }

    def __repr__(self):
        return (
            f"CharVocabulary(size={self.size}, symbols={self.symbols!r}, "
            f"unk_token={self._unk_token!r})"
        )


def _code_points(text):
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
