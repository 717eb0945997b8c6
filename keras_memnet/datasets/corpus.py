"""A tokenised corpus: train/valid/test id arrays plus their vocabulary."""

import keras
import numpy as np

from keras_memnet.datasets.windows import count_sequences
from keras_memnet.datasets.windows import count_windows
from keras_memnet.datasets.windows import make_sequences
from keras_memnet.datasets.windows import make_windows
from keras_memnet.datasets.windows import sequence_arrays

SPLIT_NAMES = ("train", "valid", "test")


@keras.saving.register_keras_serializable(package="keras_memnet")
class Corpus:
    """Token-id arrays of a language-modelling corpus and its vocabulary.

    Returned by `text8()`, `text8_sample()` and `ptb()`. `windows()` turns a
    split into the `(context, next_token)` batches that `MemN2NLM.fit` and
    `evaluate` take, as in Sukhbaatar et al., "End-To-End Memory Networks"
    (NeurIPS 2015, arXiv:1503.08895); `sequences()` turns it into
    `(inputs, targets, sample_weight)` rows of many targets each, for
    training `MemN2NLM` in sequence form.

    Args:
        train: 1-D integer array of training token ids.
        valid: 1-D integer array of validation token ids (may be empty).
        test: 1-D integer array of test token ids.
        vocabulary: `WordVocabulary` or `CharVocabulary`; every id must be
            in `[0, vocabulary.size)`.
        name: str or None, e.g. `"text8/study512k"`.
        level: `"word"` or `"char"`.
        metadata: dict or None; facts about how the corpus was made (byte
            ranges, `min_count`, ...), JSON-serialisable.

    Example:

    >>> from keras_memnet.tokenizers import WordVocabulary
    >>> vocab = WordVocabulary.from_text("a b c d a b c d")
    >>> ids = vocab.encode("a b c d a b c d")
    >>> corpus = Corpus(ids, ids[:0], ids, vocab)
    >>> context, target = next(
    ...     iter(corpus.windows("train", 3, 2, shuffle=False))
    ... )
    >>> context.shape.as_list(), target.numpy().tolist()
    ([2, 3], [5, 2])
    """

    def __init__(
        self,
        train,
        valid,
        test,
        vocabulary,
        name=None,
        level="word",
        metadata=None,
    ):
        if level not in ("word", "char"):
            raise ValueError(
                f"`level` must be 'word' or 'char'. Got: {level!r}"
            )
        if vocabulary is None or not hasattr(vocabulary, "size"):
            raise ValueError(
                "`vocabulary` must be a WordVocabulary or CharVocabulary. "
                f"Got: {vocabulary!r}"
            )
        arrays = {}
        for split_name, ids in zip(SPLIT_NAMES, (train, valid, test)):
            ids = np.asarray(ids)
            if ids.ndim != 1:
                raise ValueError(
                    f"`{split_name}` must be a 1-D array of token ids. Got "
                    f"shape {ids.shape}."
                )
            if ids.size:
                if not np.issubdtype(ids.dtype, np.integer):
                    raise ValueError(
                        f"`{split_name}` must hold integer ids. Got dtype "
                        f"{ids.dtype}."
                    )
                low, high = int(ids.min()), int(ids.max())
                if low < 0 or high >= vocabulary.size:
                    raise ValueError(
                        f"`{split_name}` has token ids from {low} to {high}, "
                        f"outside the vocabulary's range [0, "
                        f"{vocabulary.size})."
                    )
            arrays[split_name] = ids.astype(np.int32, copy=False)
        if arrays["train"].size == 0:
            raise ValueError("`train` is empty: the corpus has no tokens.")
        self.train = arrays["train"]
        self.valid = arrays["valid"]
        self.test = arrays["test"]
        self.vocabulary = vocabulary
        self.name = name
        self.level = level
        self.metadata = dict(metadata or {})

    def split(self, split_name):
        """The id array of `split_name` (`"train"`, `"valid"` or `"test"`)."""
        if split_name not in SPLIT_NAMES:
            raise ValueError(
                f"`split_name` must be one of {SPLIT_NAMES}. Got: "
                f"{split_name!r}"
            )
        return getattr(self, split_name)

    def _nonempty_split(self, split_name, what):
        tokens = self.split(split_name)
        if tokens.size == 0:
            raise ValueError(
                f"The {split_name!r} split of this corpus is empty, so it has "
                f"no {what}."
            )
        return tokens

    def windows(
        self,
        split_name,
        memory_size,
        batch_size,
        shuffle=True,
        num_windows=None,
        seed=None,
        pad_start=False,
        drop_remainder=False,
        initial_epoch=0,
    ):
        """A `tf.data.Dataset` of `(context, next_token)` batches of a split.

        See `keras_memnet.datasets.make_windows` for the arguments. With
        `shuffle=True` each epoch draws `num_windows` random windows (by
        default as many as the split has positions); `shuffle=False` is one
        sequential pass over every window, for `evaluate`. The draw of an
        epoch depends only on `seed` and the epoch; pass the epoch a resumed
        run starts with as `initial_epoch`.
        """
        tokens = self._nonempty_split(split_name, "windows")
        return make_windows(
            tokens,
            memory_size=memory_size,
            batch_size=batch_size,
            shuffle=shuffle,
            num_windows=num_windows,
            seed=seed,
            pad_start=pad_start,
            drop_remainder=drop_remainder,
            vocabulary_size=self.vocabulary.size,
            initial_epoch=initial_epoch,
        )

    def num_windows(self, split_name, memory_size, pad_start=False):
        """Number of window positions in a split."""
        return count_windows(
            self.split(split_name).size, memory_size, pad_start=pad_start
        )

    def sequences(
        self,
        split_name,
        memory_size,
        sequence_length,
        batch_size,
        shuffle=True,
        seed=None,
        pad_start=False,
        short_context=False,
        drop_remainder=False,
        initial_epoch=0,
    ):
        """A `tf.data.Dataset` of `(inputs, targets, sample_weight)` batches
        of a split, `sequence_length` targets per row.

        See `keras_memnet.datasets.make_sequences` for the arguments. Every
        target of the split is scored exactly once per epoch, with its full
        `memory_size`-token context; `shuffle=True` draws a fresh order of
        the rows every epoch, `shuffle=False` keeps them in order, for
        `evaluate`. The order of an epoch depends only on `seed` and the
        epoch; pass the epoch a resumed run starts with as `initial_epoch`.

        Example:

        >>> from keras_memnet.tokenizers import WordVocabulary
        >>> vocab = WordVocabulary.from_text("a b c d a b c d")
        >>> ids = vocab.encode("a b c d a b c d")
        >>> corpus = Corpus(ids, ids[:0], ids, vocab)
        >>> inputs, targets, weights = next(
        ...     iter(corpus.sequences("train", 3, 4, 2, shuffle=False))
        ... )
        >>> inputs.shape.as_list(), targets.shape.as_list()
        ([2, 6], [2, 4])
        >>> weights.numpy().tolist()
        [[1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0]]
        """
        tokens = self._nonempty_split(split_name, "sequences")
        return make_sequences(
            tokens,
            memory_size=memory_size,
            sequence_length=sequence_length,
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            pad_start=pad_start,
            short_context=short_context,
            drop_remainder=drop_remainder,
            vocabulary_size=self.vocabulary.size,
            initial_epoch=initial_epoch,
        )

    def sequence_arrays(
        self,
        split_name,
        memory_size,
        sequence_length,
        pad_start=False,
        short_context=False,
    ):
        """The rows of `sequences(..., shuffle=False)` as NumPy arrays.

        `(inputs, targets, sample_weight)`, for `fit` on arrays or a
        machine without TensorFlow; see
        `keras_memnet.datasets.sequence_arrays`.
        """
        tokens = self._nonempty_split(split_name, "sequence_arrays")
        return sequence_arrays(
            tokens,
            memory_size=memory_size,
            sequence_length=sequence_length,
            pad_start=pad_start,
            short_context=short_context,
            vocabulary_size=self.vocabulary.size,
        )

    def num_sequences(
        self, split_name, memory_size, sequence_length, pad_start=False
    ):
        """Number of `sequences()` rows of a split."""
        return count_sequences(
            self.split(split_name).size,
            memory_size,
            sequence_length,
            pad_start=pad_start,
        )

    def get_config(self):
        # Complete but large: the token arrays are stored as lists.
        return {
            "train": self.train.tolist(),
            "valid": self.valid.tolist(),
            "test": self.test.tolist(),
            "vocabulary": keras.saving.serialize_keras_object(self.vocabulary),
            "name": self.name,
            "level": self.level,
            "metadata": self.metadata,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["vocabulary"] = keras.saving.deserialize_keras_object(
            config["vocabulary"]
        )
        return cls(**config)

    def __repr__(self):
        return (
            f"Corpus(name={self.name!r}, level={self.level!r}, "
            f"train={self.train.size}, valid={self.valid.size}, "
            f"test={self.test.size}, vocabulary_size={self.vocabulary.size})"
        )
