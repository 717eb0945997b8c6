"""`MemN2NLMPreprocessor`: text to ids, windows and sequence rows, and back."""

import json

import keras
import numpy as np
import pytest

from keras_memnet.models import CharMemN2N
from keras_memnet.models import MemN2NLM
from keras_memnet.models import MemN2NLMPreprocessor
from keras_memnet.tokenizers import CharVocabulary
from keras_memnet.tokenizers import WordVocabulary

TEXT = "the cat sat on the mat the cat sat"
# Ids: <pad> 0, <unk> 1, the 2, cat 3, sat 4, on 5, mat 6.
IDS = [2, 3, 4, 5, 2, 6, 2, 3, 4]


def word_preprocessor(memory_size=4):
    return MemN2NLMPreprocessor(
        WordVocabulary.from_text(TEXT), memory_size=memory_size
    )


def test_encode_text_and_lists_of_text():
    preprocessor = word_preprocessor()
    ids = preprocessor.encode(TEXT)
    assert ids.dtype == np.int32 and ids.tolist() == IDS
    assert preprocessor(TEXT).tolist() == IDS
    assert [row.tolist() for row in preprocessor(["the cat", "dog mat"])] == [
        [2, 3],
        [1, 6],
    ]


def test_generate_preprocess_left_pads_and_keeps_the_last_tokens():
    preprocessor = word_preprocessor()
    windows = preprocessor.generate_preprocess(
        ["the cat", "on the mat", "the cat sat on the mat"]
    )
    assert windows.dtype == np.int32
    assert windows.tolist() == [[0, 0, 2, 3], [0, 5, 2, 6], [4, 5, 2, 6]]
    assert preprocessor.generate_preprocess("sat").tolist() == [[0, 0, 0, 4]]
    # Ids: 1-D is a batch of one; 2-D rows are already left-padded.
    assert preprocessor.generate_preprocess([3, 4]).tolist() == [[0, 0, 3, 4]]
    assert preprocessor.generate_preprocess(
        np.array([[0, 0, 5], [2, 3, 4]])
    ).tolist() == [[0, 0, 0, 5], [0, 2, 3, 4]]
    assert preprocessor.generate_preprocess(np.arange(1, 7)).tolist() == [
        [3, 4, 5, 6]
    ]


def test_generate_postprocess_decodes_without_padding():
    preprocessor = word_preprocessor()
    assert preprocessor.generate_postprocess(np.array([4, 0, 5])) == "sat on"
    assert preprocessor.generate_postprocess([[2, 3], [6, 6]]) == [
        "the cat",
        "mat mat",
    ]
    characters = MemN2NLMPreprocessor(CharVocabulary.text8(), memory_size=3)
    assert characters.generate_postprocess([2, 1, 4]) == "a c"
    assert characters.generate_preprocess("a cab").tolist() == [[4, 2, 3]]


def test_sequences_of_text_are_the_sequence_form_rows():
    preprocessor = word_preprocessor()
    inputs, targets, weights = preprocessor.sequences(TEXT, sequence_length=3)
    assert (inputs.dtype, targets.dtype, weights.dtype) == (
        np.int32,
        np.int32,
        np.float32,
    )
    # Row k: targets from token 4 + 3k, and the 4 + 3 - 1 tokens before.
    assert inputs.tolist() == [[2, 3, 4, 5, 2, 6], [5, 2, 6, 2, 3, 4]]
    assert targets.tolist() == [[2, 6, 2], [3, 4, 0]]
    assert weights.tolist() == [[1, 1, 1], [1, 1, 0]]

    inputs, _, _ = preprocessor.sequences(TEXT, 3, short_context=True)
    assert inputs.tolist() == [[0, 0, 0, 5, 2, 6], [0, 0, 0, 2, 3, 4]]

    inputs, targets, weights = preprocessor.sequences(TEXT, 3, pad_start=True)
    assert inputs.tolist() == [
        [0, 0, 0, 2, 3, 4],
        [2, 3, 4, 5, 2, 6],
        [5, 2, 6, 2, 3, 4],
    ]
    assert targets.tolist() == [[3, 4, 5], [2, 6, 2], [3, 4, 0]]
    assert weights.tolist() == [[1, 1, 1], [1, 1, 1], [1, 1, 0]]

    # Ids give the same rows as their text.
    for got, expected in zip(
        preprocessor.sequences(np.array(IDS), 3),
        preprocessor.sequences(TEXT, 3),
    ):
        np.testing.assert_array_equal(got, expected)


def test_sequence_rows_score_like_windows_in_the_model():
    preprocessor = word_preprocessor()
    vocabulary = preprocessor.vocabulary
    model = MemN2NLM(
        vocabulary.size,
        hops=2,
        memory_size=4,
        embedding_dim=8,
        vocabulary=vocabulary,
        init_stddev=0.3,
    )
    inputs, targets, _ = preprocessor.sequences(TEXT, 3)
    sequence = keras.ops.convert_to_numpy(model(inputs))
    # Target (row 1, step 1) is token 8, read from tokens 4..7.
    window = np.array([IDS[4:8]])
    np.testing.assert_allclose(
        sequence[1, 1],
        keras.ops.convert_to_numpy(model(window))[0],
        rtol=1e-5,
        atol=1e-6,
    )
    assert targets[1, 1] == IDS[8]


@pytest.mark.parametrize(
    "prompts, message",
    [
        ("", "empty"),
        (["the cat", ""], "empty"),
        (np.zeros(3, dtype="int32"), "empty"),
        (np.array([[0, 0], [2, 3]]), "empty"),
        ([], "prompts"),
        (np.ones((2, 2, 2), dtype="int32"), "prompts"),
        (np.array([1.0, 2.0]), "prompts"),
        (np.array([2, 7]), r"\[0, vocabulary_size=7\)"),
        (np.array([2, -1]), r"\[0, vocabulary_size=7\)"),
    ],
)
def test_generate_preprocess_rejects_bad_prompts(prompts, message):
    with pytest.raises(ValueError, match=message):
        word_preprocessor().generate_preprocess(prompts)


def test_without_a_vocabulary_only_ids_are_accepted():
    preprocessor = MemN2NLMPreprocessor(memory_size=3)
    assert preprocessor.vocabulary is None
    assert preprocessor.generate_preprocess([[7, 8]]).tolist() == [[0, 7, 8]]
    inputs, targets, _ = preprocessor.sequences(np.arange(1, 6), 2)
    assert inputs.tolist() == [[1, 2, 3, 4]] and targets.tolist() == [[4, 5]]
    for method, argument in (
        (preprocessor.encode, "the cat"),
        (preprocessor.generate_preprocess, "the cat"),
        (preprocessor.generate_postprocess, [1, 2]),
        (lambda text: preprocessor.sequences(text, 2), "the cat sat on"),
    ):
        with pytest.raises(ValueError, match="needs a `vocabulary`"):
            method(argument)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda p: p.encode(3), "`text` must be"),
        (lambda p: p.encode([]), "`text` must be"),
        (
            lambda p: p.generate_postprocess(np.zeros((1, 1, 1), "int32")),
            "`token_ids` must be",
        ),
        (lambda p: p.generate_postprocess([0.5]), "`token_ids` must be"),
        (lambda p: p.sequences(np.array([IDS]), 3), "`text_or_ids` must be"),
        (lambda p: p.sequences(TEXT, 0), "`sequence_length` must be"),
        (
            lambda p: p.sequences(TEXT, 3, short_context=1),
            "`short_context` must be",
        ),
        (
            lambda p: p.sequences(TEXT, 3, pad_start="yes"),
            "`pad_start` must be",
        ),
        (lambda p: p.sequences("the cat sat", 3), "fewer than"),
        (
            lambda p: p.sequences(np.array([2, 9, 3, 4, 5]), 3),
            "vocabulary_size",
        ),
    ],
)
def test_rejects_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call(word_preprocessor())


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="`memory_size` must be"):
        MemN2NLMPreprocessor(memory_size=0)
    with pytest.raises(ValueError, match="`vocabulary` must be"):
        MemN2NLMPreprocessor(vocabulary=["the", "cat"])


@pytest.mark.parametrize(
    "vocabulary",
    [WordVocabulary.from_text(TEXT), CharVocabulary.text8(), None],
)
def test_config_round_trip(vocabulary):
    preprocessor = MemN2NLMPreprocessor(vocabulary, memory_size=5)
    serialized = keras.saving.serialize_keras_object(preprocessor)
    assert serialized["registered_name"] == "keras_memnet>MemN2NLMPreprocessor"
    clone = keras.saving.deserialize_keras_object(
        json.loads(json.dumps(serialized))
    )
    assert type(clone) is MemN2NLMPreprocessor
    assert clone.memory_size == 5 and clone.vocabulary == vocabulary
    assert clone.get_config() == preprocessor.get_config()


def test_models_own_a_preprocessor_of_their_vocabulary():
    vocabulary = WordVocabulary.from_text(TEXT)
    model = MemN2NLM(
        vocabulary.size,
        hops=1,
        memory_size=4,
        embedding_dim=4,
        vocabulary=vocabulary,
    )
    assert isinstance(model.preprocessor, MemN2NLMPreprocessor)
    assert model.preprocessor.vocabulary is vocabulary
    assert model.vocabulary is vocabulary
    assert model.preprocessor.memory_size == 4
    ids_only = MemN2NLM(7, hops=1, memory_size=4, embedding_dim=4)
    assert ids_only.vocabulary is None
    assert ids_only.preprocessor.vocabulary is None
    characters = CharMemN2N(hops=1, memory_size=8, embedding_dim=4)
    assert characters.preprocessor.vocabulary == CharVocabulary.text8()
    assert characters.preprocessor.memory_size == 8
