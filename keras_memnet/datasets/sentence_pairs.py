"""Tab-separated sentence-pair files (e.g. Tatoeba's `fra-eng.txt`) for
sequence-to-sequence translation (Sutskever, Vinyals & Le, 2014,
"Sequence to Sequence Learning with Neural Networks", NeurIPS,
https://arxiv.org/abs/1409.3215).

The functions here load and clean the pairs, make a fixed held-out split,
tokenise, build vocabularies with start and end tokens, encode the pairs for
teacher forcing, and wrap them in a `tf.data` pipeline.

Example:

```python
from keras_memnet.datasets import sentence_pairs as sp

pairs = sp.load_sentence_pairs("fra-eng.txt.gz")
train_pairs, test_pairs = sp.split_sentence_pairs(pairs, test_size=1000)
source_vocab, target_vocab = sp.build_vocabularies(train_pairs)
dataset = sp.sentence_pair_dataset(
    train_pairs, source_vocab, target_vocab, batch_size=128
)
```
"""

import gzip
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


def load_sentence_pairs(path, max_pairs=None, encoding="utf-8"):
    """Reads `source<TAB>target` lines from a text file (or `.gz`).

    Text is cleaned with `normalize_text` (this maps U+202F to a space).
    Columns after the second (Tatoeba's attribution) are ignored and blank
    lines are skipped.

    Args:
        path: str or path-like. The file; gzip-compressed if it ends `.gz`.
        max_pairs: int >= 1 or None. Stop after this many pairs.
        encoding: str. Text encoding.

    Returns:
        A list of `(source, target)` string tuples, in file order.

    Raises:
        ValueError: naming the line number, for a line without a tab or
            with an empty source or target.
    """
    if max_pairs is not None and (
        isinstance(max_pairs, bool)
        or not isinstance(max_pairs, (int, np.integer))
        or max_pairs < 1
    ):
        raise ValueError(
            "`max_pairs` must be None or an integer >= 1. "
            f"Received: max_pairs={max_pairs!r}"
        )
    path = str(path)
    opener = gzip.open if path.endswith(".gz") else open
    pairs = []
    with opener(path, "rt", encoding=encoding) as lines:
        for line_number, line in enumerate(lines, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            if "\t" not in line:
                raise ValueError(
                    f"{path}, line {line_number}: expected "
                    "'source<TAB>target' but the line has no tab: "
                    f"{line[:80]!r}"
                )
            columns = line.split("\t")
            source = normalize_text(columns[0])
            target = normalize_text(columns[1])
            if not source or not target:
                side = "source" if not source else "target"
                raise ValueError(
                    f"{path}, line {line_number}: the {side} sentence is "
                    f"empty: {line[:80]!r}"
                )
            pairs.append((source, target))
            if max_pairs is not None and len(pairs) >= max_pairs:
                break
    if not pairs:
        raise ValueError(f"{path} holds no sentence pairs.")
    return pairs


def split_sentence_pairs(pairs, test_size=1000, seed=0):
    """Splits pairs into a training and a held-out test part.

    All pairs that share a source sentence go to the same side, so no test
    source is seen in training (Tatoeba lists many sentences with several
    translations). Source sentences are drawn in a fixed random order given
    by `seed` until the test part holds at least `test_size` pairs; both
    parts keep the input order.

    Args:
        pairs: list of `(source, target)` tuples.
        test_size: int >= 1. Least number of test pairs.
        seed: int. Seed of the split; the default gives the package's fixed
            split.

    Returns:
        `(train_pairs, test_pairs)`, two lists.
    """
    if (
        isinstance(test_size, bool)
        or not isinstance(test_size, (int, np.integer))
        or not 1 <= test_size < len(pairs)
    ):
        raise ValueError(
            f"`test_size` must be an integer in [1, {len(pairs)}) (fewer "
            f"than the {len(pairs)} pairs). Received: test_size={test_size!r}"
        )
    sources = sorted({source for source, _ in pairs})
    counts = {}
    for source, _ in pairs:
        counts[source] = counts.get(source, 0) + 1
    order = np.random.default_rng(seed).permutation(len(sources))
    test_sources = set()
    num_test = 0
    for index in order:
        if num_test >= test_size:
            break
        test_sources.add(sources[index])
        num_test += counts[sources[index]]
    if num_test == len(pairs):
        raise ValueError(
            f"`test_size`={test_size} leaves no training pairs once pairs "
            "with the same source are kept together."
        )
    train = [pair for pair in pairs if pair[0] not in test_sources]
    test = [pair for pair in pairs if pair[0] in test_sources]
    return train, test


def group_references(pairs):
    """Groups pairs by source, for multi-reference BLEU.

    Returns:
        `(sources, references)`: the distinct sources in first-seen order
        and, for each, the list of its targets.
    """
    grouped = {}
    for source, target in pairs:
        grouped.setdefault(source, []).append(target)
    return list(grouped), list(grouped.values())


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


def pad_sequences(sequences, length=None):
    """Right-pads int sequences with 0 into a `(len(sequences), length)`
    int32 array; `length` defaults to the longest sequence."""
    longest = max((len(s) for s in sequences), default=0)
    length = longest if length is None else length
    if length < longest:
        raise ValueError(
            f"`length`={length} is shorter than the longest sequence "
            f"({longest})."
        )
    padded = np.zeros((len(sequences), length), dtype="int32")
    for row, sequence in enumerate(sequences):
        padded[row, : len(sequence)] = sequence
    return padded


def sentence_pair_dataset(
    pairs,
    source_vocabulary,
    target_vocabulary,
    batch_size=128,
    shuffle=True,
    seed=None,
    start_token=START_TOKEN,
    end_token=END_TOKEN,
):
    """Makes a `tf.data.Dataset` of teacher-forcing batches.

    Each element is `({"source_ids": (batch, source_length),
    "decoder_input_ids": (batch, target_length)}, labels)` with `labels`
    `(batch, target_length)`, all int32 and right-padded with 0 to the
    longest sentence of the batch. The size of the dataset is known, which
    `keras_memnet.callbacks.StepAnnealing` needs for fractional epochs.

    Args:
        pairs: list of `(source, target)` tuples.
        source_vocabulary, target_vocabulary: `WordVocabulary`s, e.g. from
            `build_vocabularies`.
        batch_size: int >= 1.
        shuffle: bool. Reshuffle the pairs every epoch.
        seed: int or None. Shuffling seed.
        start_token, end_token: str. See `build_vocabularies`.
    """
    import tensorflow as tf

    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):
        raise ValueError(
            "`batch_size` must be an integer >= 1. "
            f"Received: batch_size={batch_size!r}"
        )
    source_ids, decoder_input_ids, label_ids = encode_sentence_pairs(
        pairs, source_vocabulary, target_vocabulary, start_token, end_token
    )
    def ragged(sequences):
        return tf.RaggedTensor.from_row_lengths(
            np.concatenate(sequences).astype("int32"),
            np.array([len(s) for s in sequences], dtype="int64"),
        )

    dataset = tf.data.Dataset.from_tensor_slices(
        (
            {
                "source_ids": ragged(source_ids),
                "decoder_input_ids": ragged(decoder_input_ids),
            },
            ragged(label_ids),
        )
    )
    if shuffle:
        dataset = dataset.shuffle(
            len(pairs), seed=seed, reshuffle_each_iteration=True
        )
    def to_padded(inputs, labels):
        return (
            {name: ids.to_tensor() for name, ids in inputs.items()},
            labels.to_tensor(),
        )

    dataset = dataset.ragged_batch(batch_size).map(to_padded)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _special_id(vocabulary, token, argument):
    if token not in vocabulary:
        raise ValueError(
            f"The target vocabulary has no `{argument}` {token!r}. Build it "
            "with `keras_memnet.datasets.sentence_pairs.build_vocabularies`, "
            "which adds the start and end tokens."
        )
    return vocabulary.token_to_id(token)


def corpus_bleu(hypotheses, references):
    """Corpus BLEU (0-100) with `keras_hub.metrics.Bleu` (SacreBLEU's
    13a tokeniser, 4-grams, no smoothing), case-insensitive.

    Both sides are first lower-cased and split with `tokenize_sentence`, so
    that punctuation and apostrophes are scored the same way on both sides.

    Args:
        hypotheses: list of str, one translation per source sentence.
        references: list of lists of str; all reference translations of
            each source sentence.
    """
    import keras_hub
    import tensorflow as tf

    if len(hypotheses) != len(references) or not hypotheses:
        raise ValueError(
            "`hypotheses` and `references` must be non-empty and of equal "
            f"length. Received: {len(hypotheses)} and {len(references)}."
        )

    def clean(text):
        return " ".join(tokenize_sentence(text))

    metric = keras_hub.metrics.Bleu()
    metric.update_state(
        tf.ragged.constant(
            [[clean(r) for r in refs] for refs in references]
        ),
        tf.constant([clean(h) for h in hypotheses]),
    )
    return 100.0 * float(metric.result())
