import keras
import numpy as np

from keras_memnet.tokenizers.vocabulary import Vocabulary
from keras_memnet.utils.arguments import check_bool
from keras_memnet.utils.arguments import check_int
from keras_memnet.utils.model_inputs import check_id_range


@keras.saving.register_keras_serializable(package="keras_memnet")
class MemN2NLMPreprocessor:
    """Text and token ids in the layouts a `MemN2NLM` reads and writes.

    The language model of Sukhbaatar et al., 2015, "End-To-End Memory
    Networks" (NeurIPS 2015, arXiv:1503.08895, section 5) predicts the next
    token from the previous `memory_size` tokens, id 0 being padding. This
    preprocessor owns the `vocabulary` and `memory_size` of such a model
    and turns text into ids, prompts into left-padded windows (the window
    form), a corpus into rows of the sequence form, and generated ids back
    into text.

    It is a plain serialisable object rather than a keras-hub
    `CausalLMPreprocessor` layer: the vocabularies encode with NumPy, not
    inside a `tf.data` graph.

    Args:
        vocabulary: a `keras_memnet.tokenizers.WordVocabulary` or
            `CharVocabulary`, or `None` for token ids only (text then raises
            `ValueError`).
        memory_size: int >= 1. Number of previous tokens the model reads.
            Defaults to `100`.

    Example:

    ```python
    from keras_memnet.models import MemN2NLMPreprocessor
    from keras_memnet.tokenizers import WordVocabulary

    vocabulary = WordVocabulary.from_text("the cat sat on the mat")
    preprocessor = MemN2NLMPreprocessor(vocabulary, memory_size=4)
    preprocessor("the cat")  # array([2, 3], dtype=int32)
    preprocessor.generate_preprocess(["the cat", "on the mat"])
    # array([[0, 0, 2, 3], [0, 5, 2, 6]], dtype=int32)
    preprocessor.generate_postprocess([[4, 5]])  # ['sat on']
    inputs, targets, weights = preprocessor.sequences(
        "the cat sat on the mat the cat sat", sequence_length=3
    )
    inputs.shape, targets.shape  # ((2, 6), (2, 3))
    ```
    """

    def __init__(self, vocabulary=None, memory_size=100):
        if vocabulary is not None and not isinstance(vocabulary, Vocabulary):
            raise ValueError(
                "`vocabulary` must be a keras_memnet.tokenizers."
                "WordVocabulary or CharVocabulary, or None. "
                f"Received: vocabulary={vocabulary!r:.100}"
            )
        self.vocabulary = vocabulary
        self.memory_size = check_int("memory_size", memory_size, minimum=1)

    def __call__(self, text):
        """Same as `encode`."""
        return self.encode(text)

    def encode(self, text):
        """Text to token ids.

        Args:
            text: a string, or a list of strings.

        Returns:
            An int32 array of ids for a string; a list of such arrays, one
            per string, for a list.
        """
        vocabulary = self._require_vocabulary("Text")
        if isinstance(text, str):
            return vocabulary.encode(text)
        if is_text(text):
            return [vocabulary.encode(part) for part in text]
        raise ValueError(
            "`text` must be a string or a non-empty list of strings. "
            f"Received: text={text!r:.80}"
        )

    def generate_preprocess(self, prompts):
        """Prompts to the windows that start generation.

        Only the last `memory_size` tokens of a prompt are read; shorter
        prompts are left-padded with 0.

        Args:
            prompts: a string or list of strings (needs `vocabulary`), or
                token ids: a 1-D sequence or a 2-D `(batch, length)` array,
                left-padded with 0.

        Returns:
            An int32 array `(batch, memory_size)`; a batch of one for a
            string or 1-D ids.
        """
        if is_text(prompts):
            texts = [prompts] if isinstance(prompts, str) else prompts
            rows = self.encode(texts)
        else:
            ids = _integer_ids("prompts", prompts, ranks=(1, 2), text=True)
            rows = list(np.atleast_2d(ids))
        for row in rows:
            if not np.any(np.asarray(row) != 0):
                raise ValueError(
                    "A prompt is empty: every prompt needs at least one "
                    "token that is not padding."
                )
        if self.vocabulary is not None:
            for row in rows:
                check_id_range(row, self.vocabulary.size)
        return keras.utils.pad_sequences(
            rows,
            maxlen=self.memory_size,
            dtype="int32",
            padding="pre",
            truncating="pre",
            value=0,
        )

    def generate_postprocess(self, token_ids):
        """Generated token ids to text (padding left out).

        Args:
            token_ids: int ids, 1-D `(length,)` or 2-D `(batch, length)`.

        Returns:
            A string for 1-D ids, a list of strings for 2-D ids.
        """
        vocabulary = self._require_vocabulary("Decoding to text")
        token_ids = _integer_ids("token_ids", token_ids, ranks=(1, 2))
        if token_ids.ndim == 1:
            return vocabulary.decode(token_ids)
        return [vocabulary.decode(row) for row in token_ids]

    def sequences(
        self, text_or_ids, sequence_length, short_context=False, pad_start=False
    ):
        """A corpus cut into rows of the sequence form, as NumPy arrays.

        Row `k` holds `sequence_length` consecutive targets and the
        `memory_size + sequence_length - 1` tokens before them, so that the
        model in sequence form scores every target of the row at once; the
        rows of `keras_memnet.datasets.sequence_arrays` (see it for
        `short_context` and `pad_start`). A last partial row is padded with
        0 and its padded targets get weight 0.

        Args:
            text_or_ids: a string (needs `vocabulary`) or 1-D int token ids.
            sequence_length: int >= 1, targets per row.
            short_context: bool. Pad the first `memory_size - 1` inputs of
                every row, so that the first targets read short contexts.
                Defaults to `False`.
            pad_start: bool. Left-pad the corpus with `memory_size` zeros,
                so that every token but the first is a target. Defaults to
                `False`.

        Returns:
            `(inputs, targets, sample_weight)`: int32 `(rows, memory_size +
            sequence_length - 1)`, int32 `(rows, sequence_length)` and
            float32 `(rows, sequence_length)`, for `fit(inputs, targets,
            sample_weight=sample_weight)` or `evaluate`.
        """
        # Imported here: `datasets` is not needed to build or run a model.
        from keras_memnet.datasets.windows import sequence_arrays

        short_context = check_bool("short_context", short_context)
        pad_start = check_bool("pad_start", pad_start)
        if isinstance(text_or_ids, str):
            tokens = self.encode(text_or_ids)
        else:
            tokens = _integer_ids(
                "text_or_ids", text_or_ids, ranks=(1,), text=True
            )
        return sequence_arrays(
            tokens,
            self.memory_size,
            sequence_length,
            pad_start=pad_start,
            short_context=short_context,
            vocabulary_size=(
                None if self.vocabulary is None else self.vocabulary.size
            ),
        )

    def _require_vocabulary(self, what):
        if self.vocabulary is None:
            raise ValueError(
                f"{what} needs a `vocabulary`. Pass token ids, or give the "
                "model (or preprocessor) `vocabulary=...`."
            )
        return self.vocabulary

    def get_config(self):
        return {
            "vocabulary": keras.saving.serialize_keras_object(self.vocabulary),
            "memory_size": self.memory_size,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["vocabulary"] = keras.saving.deserialize_keras_object(
            config.get("vocabulary")
        )
        return cls(**config)

    def __repr__(self):
        return (
            f"MemN2NLMPreprocessor(vocabulary={self.vocabulary!r}, "
            f"memory_size={self.memory_size})"
        )


def is_text(inputs):
    """Whether `inputs` is a string or a non-empty list of strings."""
    return isinstance(inputs, str) or (
        isinstance(inputs, (list, tuple))
        and len(inputs) > 0
        and all(isinstance(part, str) for part in inputs)
    )


def _integer_ids(name, value, ranks, text=False):
    """`value` as a NumPy integer array of one of `ranks`, or raises."""
    ids = np.asarray(value)
    if ids.ndim not in ranks or not np.issubdtype(ids.dtype, np.integer):
        shapes = {1: "(length,)", 2: "(batch, length)"}
        what = " or ".join(shapes[rank] for rank in ranks)
        raise ValueError(
            f"`{name}` must be {'text or ' if text else ''}integer token "
            f"ids of shape {what}. Received: {name}={value!r:.80}"
        )
    return ids
