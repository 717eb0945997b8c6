import keras

from keras_memnet.models.memn2n_lm import MemN2NLM
from keras_memnet.tokenizers.char_vocabulary import CharVocabulary


@keras.saving.register_keras_serializable(package="keras_memnet")
class CharMemN2N(MemN2NLM):
    """Character-level End-To-End Memory Network language model.

    The language model of Sukhbaatar et al., 2015, "End-To-End Memory
    Networks" (NeurIPS 2015, arXiv:1503.08895, section 5), read at the
    level of characters: the previous `memory_size` characters are the
    memory, the controller state starts as a constant `query_value` vector,
    and each of `hops` hops attends over the memory. It is a `MemN2NLM`
    (same backbone, head and `generate`) whose preprocessor owns a
    `CharVocabulary`, by default text8's 27 symbols (space and a-z; 28 ids
    with `<pad>`). The vocabulary is saved with the model, so a loaded
    model takes and returns text.

    The defaults (12 hops, 400 characters, 100 dimensions) are those of the
    earlier study's character model. With a constant first query, the first
    hop can only pick memory slots through the temporal encodings, so train
    with batches (e.g. 128) and a learning rate suited to the mean loss
    (see `keras_memnet.recipes.MemN2NLMRecipe`); measure it with
    `keras_memnet.metrics.BitsPerCharacter`.

    Args:
        hops: int >= 1. Number of memory hops. Defaults to `12`.
        memory_size: int >= 1. Number of previous characters read. Defaults
            to `400`.
        embedding_dim: int >= 1. Width of embeddings and state. Defaults to
            `100`.
        vocabulary: a `keras_memnet.tokenizers.CharVocabulary`, or `None`
            (default) for `CharVocabulary.text8()`. `CharMemN2N.from_text`
            builds one from any text.
        **kwargs: the other arguments of `MemN2NLM` (`linear_units`,
            `weight_tying`, `dropout`, `query_value`, `init_stddev`,
            `output`, ...) and of `keras.Model` (`name`, `dtype`), with
            `MemN2NLM`'s defaults.

    Input: int character ids `(batch, memory_size)`, oldest first (id 0 is
    padding and is masked).
    Output: next-character logits `(batch, vocabulary.size)`.

    Example:

    ```python
    import keras
    import numpy as np
    from keras_memnet.models import CharMemN2N

    model = CharMemN2N(hops=2, memory_size=16, embedding_dim=16)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    ids = model.vocabulary.encode("the cat sat on the mat " * 8)
    contexts = np.stack([ids[i : i + 16] for i in range(100)])
    model.fit(contexts, ids[16:116], epochs=1, verbose=0)
    model.generate("the cat ", max_length=10)  # ten new characters, as text
    model.generate("the cat ", max_length=10, sampler="random", seed=1)
    ```
    """

    def __init__(
        self,
        hops=12,
        memory_size=400,
        embedding_dim=100,
        vocabulary=None,
        **kwargs,
    ):
        if vocabulary is None:
            vocabulary = CharVocabulary.text8()
        if not isinstance(vocabulary, CharVocabulary):
            raise ValueError(
                "`vocabulary` must be a keras_memnet.tokenizers."
                "CharVocabulary or None (text8's 27 symbols). "
                f"Received: vocabulary={vocabulary!r:.100}"
            )
        super().__init__(
            vocabulary_size=vocabulary.size,
            hops=hops,
            memory_size=memory_size,
            embedding_dim=embedding_dim,
            vocabulary=vocabulary,
            **kwargs,
        )

    @classmethod
    def from_text(cls, text, min_count=1, unk_token="<unk>", **kwargs):
        """A model whose vocabulary holds the characters of `text`.

        Args:
            text: str or iterable of str, e.g. the training text.
            min_count: int >= 1. Characters seen fewer times are left out.
            unk_token: str or `None`. Characters outside the vocabulary map
                to it; with `None` they raise `ValueError`. Defaults to
                `"<unk>"`.
            **kwargs: the other arguments of `CharMemN2N`.
        """
        vocabulary = CharVocabulary.from_text(
            text, min_count=min_count, unk_token=unk_token
        )
        return cls(vocabulary=vocabulary, **kwargs)

    def get_config(self):
        config = super().get_config()
        # The vocabulary fixes the number of ids.
        del config["vocabulary_size"]
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.pop("vocabulary_size", None)
        return super().from_config(config)
