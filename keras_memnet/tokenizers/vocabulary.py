"""What word and character vocabularies share: the fixed id layout."""

import numpy as np

from keras_memnet.utils.arguments import check_int

PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"


class Vocabulary:
    """Base of `WordVocabulary` and `CharVocabulary`.

    Ids are laid out as `[<pad>, <unk> (if any), types...]`: id 0 is always
    padding, which the models mask, and id 1 is `<unk>` when there is one.
    Subclasses define how text is split into tokens (`encode`, `decode`).

    Args:
        types: list of str, the ordinary tokens in id order. A list that
            starts with the special tokens in their fixed positions (as
            `vocab.tokens` returns it) is accepted too.
        unk_token: str or None.
        pad_token: str.
    """

    def __init__(self, types, unk_token, pad_token):
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
        specials = [pad_token] + ([unk_token] if unk_token is not None else [])
        types = list(types)
        if types[: len(specials)] == specials:
            types = types[len(specials) :]
        self._pad_token = pad_token
        self._unk_token = unk_token
        self._types = types
        self._tokens = specials + types
        self._index = {token: i for i, token in enumerate(self._tokens)}

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
        """Token for `token_id`, an int in `[0, size)`."""
        token_id = check_int(
            "token_id", token_id, minimum=0, maximum=self.size - 1
        )
        return self._tokens[token_id]

    def _tokens_of(self, ids, skip_pad):
        """The tokens of `ids`, checked to be in range."""
        ids = np.asarray(ids).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.size):
            raise ValueError(
                f"`ids` must be in [0, {self.size - 1}]. Received: values "
                f"from {ids.min()} to {ids.max()}."
            )
        tokens = self._tokens
        return [tokens[i] for i in ids.tolist() if not (skip_pad and i == 0)]

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return (
            type(other) is type(self)
            and self._tokens == other._tokens
            and self._unk_token == other._unk_token
        )

    def __hash__(self):
        return hash((type(self).__name__, tuple(self._tokens)))
