"""Tokenisation of sentence pairs for sequence-to-sequence translation
(Sutskever, Vinyals & Le, 2014, https://arxiv.org/abs/1409.3215).

Sentences are normalised, lower-cased and split into words and punctuation
marks; `build_vocabularies` makes the source and target `WordVocabulary`s,
the target one with the decoder's start and end tokens, and
`encode_sentence_pairs` frames the pairs for teacher forcing.

Example:

```python
from keras_memnet.tokenizers import build_vocabularies
from keras_memnet.tokenizers import encode_sentence_pairs

pairs = [("I am here.", "Je suis là."), ("Go!", "Va !")]
source_vocab, target_vocab = build_vocabularies(pairs)
source_ids, decoder_input_ids, label_ids = encode_sentence_pairs(
    pairs, source_vocab, target_vocab
)
```
"""

import re
import unicodedata

import numpy as np

from keras_memnet.tokenizers.word_vocabulary import WordVocabulary

START_TOKEN = "<start>"
END_TOKEN = "<end>"

# A word (letters, digits, underscore) keeps a trailing apostrophe when a
# letter follows ("j'ai" -> "j'", "ai"; "can't" -> "can'", "t"); every other
# non-space character is a token of its own.
_TOKEN_PATTERN = re.compile(r"\w+(?:'(?=\w))?|[^\w\s]")
# Narrow and ordinary no-break spaces (French puts them before "!", "?",
# ":" and ";") become plain spaces.
_SPACE_PATTERN = re.compile(r"[\s\u00a0\u202f\u2007]+")


def normalize_text(text):
    """NFC-normalises `text`, maps no-break spaces (U+202F, U+00A0) and
    other whitespace runs to one plain space, and straightens curly
    apostrophes."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\u2019", "'")
    return _SPACE_PATTERN.sub(" ", text).strip()


def tokenize_sentence(text):
    """Lower-cases `text` and splits it into words and punctuation marks.

    Example:

    >>> tokenize_sentence("J'ai faim\u202f!")
    ["j'", 'ai', 'faim', '!']
    """
    return _TOKEN_PATTERN.findall(normalize_text(text).lower())


def build_vocabularies(
    pairs,
    min_count=1,
    max_source_size=None,
    max_target_size=None,
    start_token=START_TOKEN,
    end_token=END_TOKEN,
):
    """Builds source and target `WordVocabulary`s from tokenised pairs.

    Both have `<pad>` at id 0 and `<unk>` at id 1. The target vocabulary
    also holds `start_token` (id 2) and `end_token` (id 3), which the
    decoder starts from and ends with.

    Args:
        pairs: list of `(source, target)` tuples.
        min_count: int >= 1. Rarer words map to `<unk>`.
        max_source_size, max_target_size: int or None. Largest sizes,
            counting the special tokens.
        start_token, end_token: str. The decoder's start and end tokens.

    Returns:
        `(source_vocabulary, target_vocabulary)`.
    """
    source_vocabulary = WordVocabulary.from_text(
        [tokenize_sentence(source) for source, _ in pairs],
        min_count=min_count,
        max_size=max_source_size,
    )
    target_words = WordVocabulary.from_text(
        [tokenize_sentence(target) for _, target in pairs],
        min_count=min_count,
        max_size=None if max_target_size is None else max_target_size - 2,
    )
    num_specials = 1 + (target_words.unk_token is not None)
    target_vocabulary = WordVocabulary(
        [start_token, end_token] + target_words.tokens[num_specials:],
        unk_token=target_words.unk_token,
    )
    return source_vocabulary, target_vocabulary


def encode_sentence_pairs(
    pairs,
    source_vocabulary,
    target_vocabulary,
    start_token=START_TOKEN,
    end_token=END_TOKEN,
):
    """Tokenises and encodes pairs for teacher forcing.

    Args:
        pairs: list of `(source, target)` tuples.
        source_vocabulary, target_vocabulary: `WordVocabulary`s, e.g. from
            `build_vocabularies`.
        start_token, end_token: str. See `build_vocabularies`.

    Returns:
        Three lists of int32 arrays, one entry per pair: source ids,
        decoder input ids (`start_token` + target) and labels
        (target + `end_token`).
    """
    start_id = _special_id(target_vocabulary, start_token, "start_token")
    end_id = _special_id(target_vocabulary, end_token, "end_token")
    source_ids, decoder_input_ids, label_ids = [], [], []
    for index, pair in enumerate(pairs):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(
                f"`pairs[{index}]` must be a (source, target) pair. "
                f"Received: {pair!r}"
            )
        source_tokens = tokenize_sentence(pair[0])
        target_tokens = tokenize_sentence(pair[1])
        if not source_tokens or not target_tokens:
            side = "source" if not source_tokens else "target"
            raise ValueError(
                f"`pairs[{index}]` has an empty {side} sentence: {pair!r}"
            )
        target = target_vocabulary.encode(target_tokens)
        source_ids.append(source_vocabulary.encode(source_tokens))
        decoder_input_ids.append(
            np.concatenate([[start_id], target]).astype("int32")
        )
        label_ids.append(np.concatenate([target, [end_id]]).astype("int32"))
    return source_ids, decoder_input_ids, label_ids


def _special_id(vocabulary, token, argument):
    if token not in vocabulary:
        raise ValueError(
            f"The target vocabulary has no `{argument}` {token!r}. Build it "
            "with `keras_memnet.tokenizers.build_vocabularies`, which adds "
            "the start and end tokens."
        )
    return vocabulary.token_to_id(token)
