"""Tab-separated sentence-pair files (e.g. Tatoeba's `fra-eng.txt`) for
sequence-to-sequence translation (Sutskever, Vinyals & Le, 2014,
"Sequence to Sequence Learning with Neural Networks", NeurIPS,
https://arxiv.org/abs/1409.3215).

The functions here load and clean the pairs, make a fixed held-out split,
and wrap the encoded pairs in a `tf.data` pipeline. Tokenisation,
vocabularies and the teacher-forcing encoding are in
`keras_memnet.tokenizers` (`tokenize_sentence`, `build_vocabularies`,
`encode_sentence_pairs`), BLEU in `keras_memnet.metrics.corpus_bleu`; their
names are importable from here as well.

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

import numpy as np

# Tokenisation and BLEU have their own modules; these names stay importable
# from here for code written against earlier versions.
from keras_memnet.metrics.bleu import corpus_bleu  # noqa: F401
from keras_memnet.tokenizers.sentence_pair_tokenization import END_TOKEN
from keras_memnet.tokenizers.sentence_pair_tokenization import START_TOKEN
from keras_memnet.tokenizers.sentence_pair_tokenization import (  # noqa: F401
    build_vocabularies,
)
from keras_memnet.tokenizers.sentence_pair_tokenization import (
    encode_sentence_pairs,
)
from keras_memnet.tokenizers.sentence_pair_tokenization import normalize_text
from keras_memnet.tokenizers.sentence_pair_tokenization import tokenize_sentence  # noqa: F401
from keras_memnet.utils.arguments import check_int

# What `errors="surrogateescape"` turns undecodable bytes into.
_UNDECODABLE = re.compile("[\udc80-\udcff]")


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
        ValueError: naming the file and the line number, for a line
            without a tab, with an empty source or target, or that is not
            valid `encoding` text.
    """
    max_pairs = check_int("max_pairs", max_pairs, minimum=1, allow_none=True)
    path = str(path)
    opener = gzip.open if path.endswith(".gz") else open
    pairs = []
    # Undecodable bytes are kept as lone surrogates (which valid text never
    # decodes to), so that the error can name the line they are on.
    with opener(
        path, "rt", encoding=encoding, errors="surrogateescape"
    ) as lines:
        for line_number, line in enumerate(lines, start=1):
            line = line.rstrip("\r\n")
            undecodable = _UNDECODABLE.search(line)
            if undecodable is not None:
                byte = ord(undecodable.group()) - 0xDC00
                raise ValueError(
                    f"{path}, line {line_number}: not valid {encoding} "
                    f"text (byte 0x{byte:02x} at character "
                    f"{undecodable.start() + 1}). Convert the file to "
                    f"{encoding}, or pass the file's `encoding`."
                )
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
        test_size: int in `[1, len(pairs))`. Least number of test pairs.
        seed: int. Seed of the split; the default gives the package's fixed
            split.

    Returns:
        `(train_pairs, test_pairs)`, two lists.
    """
    # Fewer test pairs than pairs in all.
    check_int("test_size", test_size, minimum=1, maximum=len(pairs) - 1)
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


def sentence_pair_dataset(
    pairs,
    source_vocabulary,
    target_vocabulary,
    batch_size=128,
    shuffle=True,
    seed=None,
    start_token=START_TOKEN,
    end_token=END_TOKEN,
    initial_epoch=0,
):
    """Makes a `tf.data.Dataset` of teacher-forcing batches.

    Each element is `({"source_ids": (batch, source_length),
    "decoder_input_ids": (batch, target_length)}, labels)` with `labels`
    `(batch, target_length)`, all int32 and right-padded with 0 to the
    longest sentence of the batch. The size of the dataset is known, which
    `keras_memnet.callbacks.StepAnnealing` needs for fractional epochs.

    With `shuffle=True` each pass over the dataset is one epoch in a fresh
    order. The order of epoch `e` (counted from 0) is a function of `seed`
    and `e` alone, and the `k`-th pass is epoch `initial_epoch + k` (as in
    `keras_memnet.datasets.make_sequences`), so that a run resumed at
    epoch `e` (`keras_memnet.callbacks.read_resume_epoch`) sees the
    batches an uninterrupted run would have.

    Args:
        pairs: list of `(source, target)` tuples.
        source_vocabulary, target_vocabulary: `WordVocabulary`s, e.g. from
            `build_vocabularies`.
        batch_size: int >= 1.
        shuffle: bool. Reshuffle the pairs every epoch.
        seed: int or None. Shuffling seed (None: a random one).
        start_token, end_token: str. See `build_vocabularies`.
        initial_epoch: int >= 0. The epoch of the first pass (see above).
    """
    import tensorflow as tf

    from keras_memnet.datasets.windows import _epoch_shuffled_indices

    batch_size = check_int("batch_size", batch_size, minimum=1)
    source_ids, decoder_input_ids, label_ids = encode_sentence_pairs(
        pairs, source_vocabulary, target_vocabulary, start_token, end_token
    )

    def ragged(sequences):
        return tf.RaggedTensor.from_row_lengths(
            np.concatenate(sequences).astype("int32"),
            np.array([len(s) for s in sequences], dtype="int64"),
        )

    sources = ragged(source_ids)
    decoder_inputs = ragged(decoder_input_ids)
    labels = ragged(label_ids)
    num_pairs = len(pairs)

    # Only the indices of the pairs go through the pipeline; each batch
    # gathers its rows.
    if shuffle:
        indices = _epoch_shuffled_indices(num_pairs, seed, initial_epoch)
    else:
        indices = tf.data.Dataset.range(num_pairs)

    def gather(batch):
        return (
            {
                "source_ids": tf.gather(sources, batch).to_tensor(),
                "decoder_input_ids": tf.gather(
                    decoder_inputs, batch
                ).to_tensor(),
            },
            tf.gather(labels, batch).to_tensor(),
        )

    dataset = indices.batch(batch_size).map(gather)
    return dataset.prefetch(tf.data.AUTOTUNE)
