"""Word-level vocabulary: a fixed mapping between word types and integer ids."""

import collections
import itertools

import keras
import numpy as np

PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"


@keras.saving.register_keras_serializable(package="keras_memnet")
class WordVocabulary:
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
        tokens = [str(token) for token in tokens]
        specials = [pad_token] + ([unk_token] if unk_token is not None else [])
        if tokens[: len(specials)] == specials:
            tokens = tokens[len(specials) :]
        self._pad_token = pad_token
        self._unk_token = unk_token
        self._tokens = specials + tokens
        self._index = {token: i for i, token in enumerate(self._tokens)}
        if len(self._index) != len(self._tokens):
            counts = collections.Counter(self._tokens)
            duplicates = sorted(t for t, c in counts.items() if c > 1)[:5]
            raise ValueError(
                "`tokens` must be unique and must not repeat the special "
                f"tokens {specials}. Repeated: {duplicates}"
            )
        for token in tokens:
            if not token or len(token.split()) != 1 or token.split()[0] != token:
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
        if isinstance(min_count, bool) or not isinstance(
            min_count, (int, np.integer)
        ) or min_count < 1:
            raise ValueError(
                f"`min_count` must be an integer >= 1. Got: {min_count!r}"
            )
        num_specials = 1 + (unk_token is not None)
        if max_size is not None and (
            isinstance(max_size, bool)
            or not isinstance(max_size, (int, np.integer))
            or max_size <= num_specials
        ):
            raise ValueError(
                "`max_size` must be None or an integer greater than the "
                f"number of special tokens ({num_specials}). Got: {max_size!r}"
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
                    f"Token {token!r} is not in the vocabulary and it has no "
                    "`unk_token`."
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
        ids = np.asarray(ids).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.size):
            raise ValueError(
                f"`ids` must be in [0, {self.size}). Got values from "
                f"{ids.min()} to {ids.max()}."
            )
        tokens = self._tokens
        return " ".join(
            tokens[i] for i in ids.tolist() if not (skip_pad and i == 0)
        )

    def get_config(self):
        num_specials = 1 + (self._unk_token is not None)
        return {
            "tokens": self._tokens[num_specials:],
            "unk_token": self._unk_token,
            "pad_token": self._pad_token,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return (
            isinstance(other, WordVocabulary)
            and self._tokens == other._tokens
            and self._unk_token == other._unk_token
        )

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
