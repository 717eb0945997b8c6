"""Generation features shared by the language models (see also
tests/test_memn2n_lm.py for greedy == step-by-step argmax, seeded sampling
and beam 1 == greedy)."""

import keras
import keras_hub
import numpy as np
import pytest

from keras_memnet.generation import WindowedDecoder
from keras_memnet.models import CharMemN2N
from keras_memnet.models import MemN2NLM

MEMORY = 12


def char_model(**kwargs):
    # A wide initialisation separates the logits, so that argmax and
    # low-temperature sampling have no near-ties.
    config = dict(hops=2, memory_size=MEMORY, embedding_dim=16, init_stddev=0.5)
    config.update(kwargs)
    keras.utils.set_random_seed(config.pop("seed", 0))
    model = CharMemN2N(**config)
    model.build((None, MEMORY))
    return model


PROMPTS = ["the cat sat on", "a", "memory networks read "]


def test_sampler_objects_are_accepted():
    model = char_model()
    greedy = model.generate(PROMPTS, 10)
    assert (
        model.generate(PROMPTS, 10, sampler=keras_hub.samplers.GreedySampler())
        == greedy
    )
    assert (
        model.generate(PROMPTS, 10, sampler=keras_hub.samplers.TopKSampler(k=1))
        == greedy
    )
    sampler = keras_hub.samplers.RandomSampler()
    first = model.generate(PROMPTS, 10, sampler=sampler, seed=4)
    assert model.generate(PROMPTS, 10, sampler=sampler, seed=4) == first


def test_top_k_of_one_and_tiny_top_p_are_greedy():
    model = char_model()
    greedy = model.generate(PROMPTS, 12, sampler="greedy")
    assert (
        model.generate(PROMPTS, 12, sampler="top_k", top_k=1, seed=1) == greedy
    )
    assert (
        model.generate(PROMPTS, 12, sampler="top_p", top_p=1e-6, seed=1)
        == greedy
    )


def test_top_p_is_reproducible_and_varies_with_the_seed():
    model = char_model()
    first = model.generate(PROMPTS, 30, sampler="top_p", top_p=0.95, seed=3)
    assert (
        model.generate(PROMPTS, 30, sampler="top_p", top_p=0.95, seed=3)
        == first
    )
    assert (
        model.generate(PROMPTS, 30, sampler="top_p", top_p=0.95, seed=4)
        != first
    )


def test_temperature():
    model = char_model()
    greedy = model.generate(PROMPTS, 20)
    # Near-zero temperature: sampling collapses onto the argmax.
    assert (
        model.generate(PROMPTS, 20, sampler="random", temperature=1e-4, seed=2)
        == greedy
    )
    # High temperature flattens the distribution: more distinct symbols.
    cold = model.generate(
        PROMPTS, 60, sampler="random", temperature=0.3, seed=2
    )
    hot = model.generate(
        PROMPTS, 60, sampler="random", temperature=30.0, seed=2
    )
    assert len(set("".join(hot))) > len(set("".join(cold)))


def test_batched_text_prompts_of_different_lengths():
    model = char_model()
    for sampler in ("greedy", "beam"):
        batched = model.generate(PROMPTS, 8, sampler=sampler, num_beams=3)
        assert isinstance(batched, list) and len(batched) == 3
        one_by_one = [
            model.generate(p, 8, sampler=sampler, num_beams=3) for p in PROMPTS
        ]
        assert batched == one_by_one


def test_beam_search_returns_valid_tokens():
    model = char_model()
    ids = model.generate(
        np.array([[3, 4, 5], [0, 6, 7]]), 9, sampler="beam", num_beams=4
    )
    assert ids.shape == (2, 9) and ids.dtype.kind == "i"
    assert ids.min() >= 1 and ids.max() < model.vocabulary_size


def test_ids_in_ids_out():
    model = char_model()
    single = model.generate([3, 4, 5], 5)
    assert isinstance(single, np.ndarray) and single.shape == (5,)
    batched = model.generate(np.array([[3, 4, 5], [0, 0, 9]]), 5)
    assert batched.shape == (2, 5)
    np.testing.assert_array_equal(batched[0], single)
    # Prompts longer than the memory: only the last memory_size count.
    long_prompt = np.arange(1, 28)[: MEMORY + 5]
    np.testing.assert_array_equal(
        model.generate(long_prompt, 4), model.generate(long_prompt[-MEMORY:], 4)
    )


def test_the_decoding_loop_is_compiled_not_a_python_loop(monkeypatch):
    model = char_model()
    predict_calls, decoder_calls, model_calls = [], [], []
    original_predict_on_batch = WindowedDecoder.predict_on_batch
    original_call = CharMemN2N.call

    def no_predict(*args, **kwargs):
        predict_calls.append(1)
        raise AssertionError("generate must not call model.predict")

    def counting_predict_on_batch(self, *args, **kwargs):
        decoder_calls.append(1)
        return original_predict_on_batch(self, *args, **kwargs)

    def counting_call(self, *args, **kwargs):
        model_calls.append(1)
        return original_call(self, *args, **kwargs)

    monkeypatch.setattr(model, "predict", no_predict)
    monkeypatch.setattr(
        WindowedDecoder, "predict_on_batch", counting_predict_on_batch
    )
    monkeypatch.setattr(CharMemN2N, "call", counting_call)
    model.generate(PROMPTS, 50)
    # One compiled call for all 50 steps; the model's Python `call` runs
    # only while the loop is traced, not once per token. PyTorch has no
    # graph: there the loop is one `predict_on_batch` running 50 steps.
    assert decoder_calls == [1]
    if keras.config.backend() == "torch":
        assert len(model_calls) == 50
    else:
        assert len(model_calls) < 10
    model_calls.clear()
    model.generate(["other", "prompts"], 50)
    assert decoder_calls == [1, 1]
    assert not predict_calls


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(prompt=""), "empty"),
        (dict(prompt=["abc", ""]), "empty"),
        (dict(prompt=[]), "prompt"),
        (dict(prompt="abc", max_length=-1), "max_length"),
        (dict(prompt="abc", max_length=2.5), "max_length"),
        (dict(prompt="abc", max_length=True), "max_length"),
        (dict(prompt="abc", sampler="nucleus"), "greedy"),
        (dict(prompt="abc", sampler=3), "sampler"),
        (dict(prompt="abc", sampler="top_k", top_k=0), "top_k"),
        (dict(prompt="abc", sampler="top_p", top_p=1.5), "top_p"),
        (dict(prompt="abc", sampler="beam", num_beams=0), "num_beams"),
        (dict(prompt="abc", temperature=-1.0), "temperature"),
        (dict(prompt=np.ones((2, 2, 2), dtype="int32")), "prompt"),
        (dict(prompt="ABC"), "'A'"),
    ],
)
def test_bad_input_is_rejected_clearly(kwargs, message):
    kwargs.setdefault("max_length", 3)
    with pytest.raises(ValueError, match=message):
        char_model().generate(**kwargs)


def test_word_model_generates_text_with_every_sampler():
    from keras_memnet.tokenizers import WordVocabulary

    vocabulary = WordVocabulary.from_text("the cat sat on the mat and ran")
    model = MemN2NLM(
        vocabulary.size,
        hops=2,
        memory_size=5,
        embedding_dim=8,
        vocabulary=vocabulary,
    )
    model.build((None, 5))
    for sampler in ("greedy", "random", "top_k", "top_p", "beam"):
        text = model.generate(
            "the cat", 4, sampler=sampler, seed=0, num_beams=2, top_k=3
        )
        assert isinstance(text, str) and len(text.split()) == 4


def test_char_model_greedy_is_step_by_step_argmax():
    """Greedy decoding equals predict-and-argmax one step at a time; beam 1
    is greedy and seeded top-k sampling repeats (on every backend)."""
    keras.utils.set_random_seed(0)
    model = CharMemN2N(hops=2, memory_size=8, embedding_dim=8, init_stddev=0.5)
    model.build((None, 8))
    prompt = model.vocabulary.encode("the cat")
    window = np.zeros((1, 8), dtype="int32")
    window[0, -len(prompt) :] = prompt
    expected = []
    for _ in range(6):
        logits = model.predict(window, verbose=0)
        next_id = int(logits[0, 1:].argmax()) + 1
        expected.append(next_id)
        window = np.concatenate([window[:, 1:], [[next_id]]], axis=1)
    greedy = model.generate("the cat", 6)
    assert greedy == model.vocabulary.decode(expected), (greedy, expected)
    assert model.generate("the cat", 6, sampler="beam", num_beams=1) == greedy
    sampled = model.generate(["the cat", "a"], 6, sampler="top_k", seed=3)
    again = model.generate(["the cat", "a"], 6, sampler="top_k", seed=3)
    assert sampled == again, (sampled, again)
