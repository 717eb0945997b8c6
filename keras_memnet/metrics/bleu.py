"""Corpus BLEU of translations, through `keras_hub.metrics.Bleu`."""

from keras_memnet.tokenizers.sentence_pair_tokenization import tokenize_sentence


def corpus_bleu(hypotheses, references):
    """Corpus BLEU (0-100) with `keras_hub.metrics.Bleu` (SacreBLEU's
    13a tokeniser, 4-grams, no smoothing), case-insensitive.

    N-gram matches and lengths are summed over the whole corpus before the
    precisions and the brevity penalty are taken (Papineni et al., 2002),
    so this is not a mean of sentence scores. Both sides are first
    lower-cased and split with
    `keras_memnet.tokenizers.tokenize_sentence`, so that punctuation and
    apostrophes are scored the same way on both sides.

    Args:
        hypotheses: list of str, one translation per source sentence.
        references: list of lists of str; all reference translations of
            each source sentence.

    Returns:
        A Python float in [0, 100].

    Example:

    >>> round(corpus_bleu(["Je suis là."], [["je suis là ."]]), 2)
    100.0
    """
    # keras-hub's Bleu runs on TensorFlow, whatever the Keras backend.
    import keras_hub
    import tensorflow as tf

    if len(hypotheses) != len(references) or not len(hypotheses):
        raise ValueError(
            "`hypotheses` and `references` must be non-empty and of equal "
            f"length. Received: {len(hypotheses)} and {len(references)}."
        )

    def clean(text):
        return " ".join(tokenize_sentence(text))

    metric = keras_hub.metrics.Bleu()
    metric.update_state(
        tf.ragged.constant(
            [[clean(reference) for reference in group] for group in references]
        ),
        tf.constant([clean(hypothesis) for hypothesis in hypotheses]),
    )
    return 100.0 * float(metric.result())
