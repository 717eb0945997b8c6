import math
from collections import Counter

import pytest

from keras_memnet.metrics import corpus_bleu
from keras_memnet.tokenizers import tokenize_sentence


def ngrams(words, n):
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def reference_corpus_bleu(hypotheses, references, max_order=4):
    """Corpus BLEU by the textbook formula (Papineni et al., 2002).

    Clipped n-gram matches (against the most of each n-gram in any
    reference) and hypothesis n-grams are summed over the corpus; the
    brevity penalty compares the total hypothesis length with the total of
    the reference lengths closest to each hypothesis.
    """
    matches = [0] * max_order
    totals = [0] * max_order
    hypothesis_length = reference_length = 0
    for hypothesis, group in zip(hypotheses, references):
        hypothesis = tokenize_sentence(hypothesis)
        group = [tokenize_sentence(reference) for reference in group]
        hypothesis_length += len(hypothesis)
        reference_length += min(
            (abs(len(r) - len(hypothesis)), len(r)) for r in group
        )[1]
        for n in range(1, max_order + 1):
            most = Counter()
            for reference in group:
                most |= ngrams(reference, n)
            matches[n - 1] += sum((ngrams(hypothesis, n) & most).values())
            totals[n - 1] += max(len(hypothesis) - n + 1, 0)
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals))
    brevity = min(1.0, math.exp(1 - reference_length / hypothesis_length))
    return 100 * brevity * math.exp(log_precision / max_order)


HYPOTHESES = [
    "le chat est sur le tapis rouge .",
    "il fait froid aujourd'hui .",
    "je ne sais pas pourquoi il est parti .",
    "Tom est très fatigué.",
]
REFERENCES = [
    ["le chat est assis sur le tapis rouge ."],
    ["il fait très froid aujourd'hui .", "aujourd'hui il gèle ."],
    ["je ne sais pas pourquoi il est parti si tôt ."],
    ["Tom est fatigué.", "Tom est épuisé."],
]


def test_matches_textbook_corpus_bleu():
    expected = reference_corpus_bleu(HYPOTHESES, REFERENCES)
    # Pinned too, so that a change in both implementations shows.
    assert expected == pytest.approx(66.7509, abs=1e-3)
    assert corpus_bleu(HYPOTHESES, REFERENCES) == pytest.approx(
        expected, rel=1e-5
    )


def test_is_not_a_mean_of_sentence_scores():
    sentence_scores = [
        corpus_bleu([hypothesis], [group])
        for hypothesis, group in zip(HYPOTHESES[:2], REFERENCES[:2])
    ]
    corpus_score = corpus_bleu(HYPOTHESES[:2], REFERENCES[:2])
    assert corpus_score == pytest.approx(
        reference_corpus_bleu(HYPOTHESES[:2], REFERENCES[:2]), rel=1e-5
    )
    assert abs(corpus_score - sum(sentence_scores) / 2) > 1


def test_exact_match_any_reference_and_case_and_punctuation():
    assert corpus_bleu(["Je suis là."], [["je suis là ."]]) == pytest.approx(
        100
    )
    assert corpus_bleu(
        ["il fait très froid ."],
        [["il gèle vraiment dehors .", "il fait très froid ."]],
    ) == pytest.approx(100)


def test_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="equal"):
        corpus_bleu(["a"], [])
    with pytest.raises(ValueError, match="non-empty"):
        corpus_bleu([], [])
