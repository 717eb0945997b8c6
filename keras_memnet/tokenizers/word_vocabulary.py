"""Word-level vocabulary: a fixed mapping between word types and integer ids."""

import collections
import itertools

import keras
import numpy as np

from keras_memnet.tokenizers.vocabulary import PAD_TOKEN
from keras_memnet.tokenizers.vocabulary import UNK_TOKEN
from keras_memnet.tokenizers.vocabulary import Vocabulary
from keras_memnet.utils.arguments import check_int


@keras.saving.register_keras_serializable(package="keras_memnet")
class WordVocabulary(Vocabulary):
    """A word vocabulary with `<pad>` at id 0 and an optional `<unk>` at id 1.

    Ids are laid out as `[<pad>, <unk> (if any), word types...]`. Id 0 is
    always padding, which the models mask. Words are split on whitespace, as
    in the language-model corpora of Sukhbaatar et al., "End-To-End Memory
    Networks" (NeurIPS 2015, arXiv:1503.08895), where text8 and Penn Treebank
    are already lower-cased and tokenised.

    Args:
        tokens: list of str. The ordinary word types in id order, without
            the special tokens. For convenience a list that starts with the
            special tokens in their fixed positions (as `vocab.tokens`
            returns it) is accepted too. Types must be unique and non-empty
            and contain no whitespace.
        unk_token: str or None. Token that unknown words map to (id 1).
            `None` means there is no `<unk>`: encoding an unknown word
            raises `ValueError`.
        pad_token: str. Token for id 0.

    Example:

    >>> vocab = WordVocabulary.from_text("the cat saw the dog")
    >>> vocab.size
    6
    >>> vocab.encode("the dog barked").tolist()
    [2, 5, 1]
    >>> vocab.decode([2, 5, 1])
    'the dog <unk>'
    """

    def __init__(self, tokens, unk_token=UNK_TOKEN, pad_token=PAD_TOKEN):
        if isinstance(tokens, str):
            raise TypeError(
                "`tokens` must be a list of word types, not a single string; "
                "use WordVocabulary.from_text(text) to build one from text."
            )
        super().__init__([str(token) for token in tokens], unk_token, pad_token)
        if len(self._index) != len(self._tokens):
            counts = collections.Counter(self._tokens)
            duplicates = sorted(t for t, c in counts.items() if c > 1)[:5]
            raise ValueError(
                "`tokens` must be unique and must not repeat the special "
                f"tokens {self._tokens[: self.size - len(self._types)]}. "
                f"Repeated: {duplicates}"
            )
        for token in self._types:
            if (
                not token
                or len(token.split()) != 1
                or token.split()[0] != token
            ):
                raise ValueError(
                    "Every entry of `tokens` must be a non-empty word without "
                    f"whitespace. Got: {token!r}"
                )

    @classmethod
    def from_text(
        cls,
        text,
        min_count=1,
        unk_token=UNK_TOKEN,
        max_size=None,
        pad_token=PAD_TOKEN,
    ):
        """Builds a vocabulary from text or from a list of words.

        Word types are ordered by descending count, ties by first
        occurrence. Occurrences of the special tokens in the text (Penn
        Treebank spells unknown words as `<unk>`) are not counted as types.

        Args:
            text: str (split on whitespace), a list of words, or an iterable
                of such lists (e.g. chunks of a large corpus).
            min_count: int >= 1. Types seen fewer times are left out (and
                map to `unk_token` when encoding).
            unk_token: str or None. See the class docstring.
            max_size: int or None. Largest `size`, counting the special
                tokens; the most frequent types are kept.
            pad_token: str. Token for id 0.
        """
        min_count = check_int("min_count", min_count, minimum=1)
        num_specials = 1 + (unk_token is not None)
        # Room for at least one word type besides the special tokens.
        max_size = check_int(
            "max_size", max_size, minimum=num_specials + 1, allow_none=True
        )
        counts = collections.Counter()
        for words in _iterate_word_lists(text):
            counts.update(words)
        for special in (pad_token, unk_token):
            counts.pop(special, None)
        types = [t for t, c in counts.most_common() if c >= min_count]
        if max_size is not None:
            types = types[: max_size - num_specials]
        if not types:
            raise ValueError(
                f"No word type is seen at least `min_count`={min_count} "
                f"times (the text has {len(counts)} types in all), so the "
                "vocabulary would be empty. Lower `min_count` or give more "
                "text."
            )
        return cls(types, unk_token=unk_token, pad_token=pad_token)

    def encode(self, text):
        """Maps text (split on whitespace) or a list of words to int32 ids."""
        words = text.split() if isinstance(text, str) else list(text)
        default = -1 if self._unk_token is None else 1
        ids = np.fromiter(
            map(self._index.get, words, itertools.repeat(default)),
            dtype=np.int32,
            count=len(words),
        )
        if self._unk_token is None and ids.size and ids.min() < 0:
            first = words[int(np.argmax(ids < 0))]
            raise ValueError(
                f"Word {first!r} is not in the vocabulary and it has no "
                "`unk_token`."
            )
        return ids

    def decode(self, ids, skip_pad=True):
        """Joins the tokens of `ids` with spaces, leaving out `<pad>`."""
        return " ".join(self._tokens_of(ids, skip_pad))

    def get_config(self):
        return {
            "tokens": list(self._types),
            "unk_token": self._unk_token,
            "pad_token": self._pad_token,
        }

    def __repr__(self):
        return (
            f"WordVocabulary(size={self.size}, unk_token={self._unk_token!r})"
        )


def _iterate_word_lists(text):
    """Yields lists of words from a str, a list of words or chunks of those."""
    if isinstance(text, str):
        yield text.split()
        return
    if isinstance(text, (list, tuple)) and all(
        isinstance(item, str) for item in text
    ):
        yield text
        return
    for chunk in text:
        if isinstance(chunk, str):
            yield chunk.split()
        else:
            yield list(chunk)
