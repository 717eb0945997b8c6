import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

from keras_memnet.callbacks import GradientNormClipping
from keras_memnet.callbacks import StepAnnealing
from keras_memnet.datasets import sentence_pairs as sp
from keras_memnet.generation.seq2seq_beam_search import beam_search
from keras_memnet.generation.seq2seq_beam_search import greedy_search
from keras_memnet.models import Seq2SeqTranslator
from keras_memnet.tokenizers import WordVocabulary

REPO_ROOT = Path(__file__).resolve().parents[1]


def digit_pairs(count, seed, min_length=3, max_length=7):
    """Toy task: a digit sequence and its reverse."""
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(count):
        digits = rng.integers(0, 10, rng.integers(min_length, max_length + 1))
        pairs.append((" ".join(map(str, digits)),
                      " ".join(map(str, digits[::-1]))))
    return pairs


def tiny_model(pairs=None, **kwargs):
    pairs = pairs or digit_pairs(40, seed=0)
    source_vocab, target_vocab = sp.build_vocabularies(pairs)
    settings = dict(embedding_dim=8, units=16, num_layers=2, seed=0)
    settings.update(kwargs)
    return Seq2SeqTranslator(source_vocab, target_vocab, **settings)


@pytest.fixture(scope="module")
def trained_tiny():
    keras.utils.set_random_seed(0)
    pairs = digit_pairs(200, seed=1)
    model = tiny_model(pairs)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    x, y = model.encode_pairs(pairs)
    model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    return model


def test_call_shapes_and_fit_reduces_loss():
    keras.utils.set_random_seed(0)
    pairs = digit_pairs(64, seed=2)
    model = tiny_model(pairs)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    x, y = model.encode_pairs(pairs)
    logits = model(x)
    assert tuple(logits.shape) == y.shape + (model.target_vocabulary.size,)
    history = model.fit(x, y, epochs=4, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_encode_pairs_frames_with_start_and_end():
    model = tiny_model([("1 2", "2 1")])
    x, y = model.encode_pairs([("1 2", "2 1")])
    start, end = model.start_id, model.end_id
    two, one = (model.target_vocabulary.token_to_id(t) for t in ("2", "1"))
    assert x["decoder_input_ids"].tolist() == [[start, two, one]]
    assert y.tolist() == [[two, one, end]]


def test_encode_right_pads_with_zero_int32():
    model = tiny_model([("1 2 3", "3 2 1"), ("4", "4")])
    x, y = model.encode_pairs([("1 2 3", "3 2 1"), ("4", "4")])
    source = x["source_ids"]
    assert source.dtype == np.int32 and y.dtype == np.int32
    assert source.shape == (2, 3) and y.shape == (2, 4)
    assert (source[0] != 0).all() and source[1, 1:].tolist() == [0, 0]
    assert y[1, 2:].tolist() == [0, 0]
    padded = model.encode_sources(["4", "1 2"], length=4)
    assert padded.dtype == np.int32
    assert padded[:, 2:].tolist() == [[0, 0], [0, 0]]
    assert (padded[1, :2] != 0).all() and padded[0, 1] == 0
    # Too short a length is an error, not a silent truncation.
    with pytest.raises(ValueError, match="shorter than the longest"):
        model.encode_sources(["1 2 3"], length=2)
    with pytest.raises(ValueError, match="`pairs` is empty"):
        model.encode_pairs([])


def test_trains_on_tf_data_with_paper_recipe():
    """The paper's recipe through the package's callbacks: uniform(-0.08,
    0.08) weights, SGD, halving every half epoch, global-norm clipping."""
    keras.utils.set_random_seed(0)
    pairs = digit_pairs(96, seed=3)
    model = tiny_model(
        pairs, initializer=keras.initializers.RandomUniform(-0.08, 0.08)
    )
    dataset = sp.sentence_pair_dataset(
        pairs, model.source_vocabulary, model.target_vocabulary,
        batch_size=16, seed=0,
    )
    model.build({"source_ids": (None, None), "decoder_input_ids": (None, None)})
    for weight in model.weights:
        if "bias" not in weight.path:
            assert np.abs(ops.convert_to_numpy(weight)).max() <= 0.08
    model.compile(optimizer=keras.optimizers.SGD(2.0))
    history = model.fit(
        dataset, epochs=3, verbose=0,
        callbacks=[GradientNormClipping(1.0),
                   StepAnnealing(every=0.5, factor=2.0, start=2)],
    )
    assert history.history["loss"][-1] < history.history["loss"][0]
    # Halved once, at epoch 2.5 (the next halving would be at epoch 3).
    assert float(model.optimizer.learning_rate) == pytest.approx(1.0)
    assert "gradient_norm" in history.history


def test_beam_one_equals_greedy(trained_tiny):
    sources = [s for s, _ in digit_pairs(40, seed=4)]
    greedy = trained_tiny.translate(sources, sampler="greedy", batch_size=16)
    beam = trained_tiny.translate(sources, sampler="beam", num_beams=1,
                                  batch_size=16)
    assert greedy == beam
    assert any(greedy)  # not all empty


def test_beam_search_per_row_matches_single_row(trained_tiny):
    """Encoder states are repeated per beam correctly: decoding a batch
    gives each row the result it gets alone."""
    sources = [s for s, _ in digit_pairs(6, seed=5)]
    together = trained_tiny.translate(sources, num_beams=3, batch_size=6)
    alone = [trained_tiny.translate([s], num_beams=3)[0] for s in sources]
    assert together == alone


def markov_step_fn(transition_logits):
    """A decoder whose logits depend only on the previous token."""
    table = ops.convert_to_tensor(transition_logits, "float32")

    def step_fn(token_ids, states):
        return ops.take(table, token_ids, axis=0), states

    return step_fn


def brute_force_best(transition_logits, start_id, end_id, max_length,
                     length_penalty, allowed):
    log_probs = transition_logits - np.log(
        np.exp(transition_logits).sum(-1, keepdims=True)
    )
    best, best_score = None, -np.inf
    for length in range(1, max_length + 1):
        for body in itertools.product(allowed, repeat=length - 1):
            for ending in ([end_id] if length < max_length else allowed + [end_id]):
                sequence = list(body) + [ending]
                previous, total = start_id, 0.0
                for token in sequence:
                    total += log_probs[previous, token]
                    previous = token
                score = total / length**length_penalty
                if score > best_score + 1e-9:
                    best, best_score = sequence, score
    return best, best_score


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_wide_beam_finds_exact_best_normalised_hypothesis(length_penalty):
    """With more beams than hypotheses, beam search is exhaustive: it must
    return the brute-force best length-normalised sequence."""
    rng = np.random.default_rng(7)
    pad, start, end = 0, 1, 2
    vocabulary_size, max_length = 5, 4
    allowed = [3, 4]
    for trial in range(4):
        logits = rng.normal(scale=2.0, size=(vocabulary_size, vocabulary_size))
        logits[:, [pad, start]] = -1e9  # never generated (forbidden anyway)
        expected, expected_score = brute_force_best(
            logits, start, end, max_length, length_penalty, allowed
        )
        tokens, scores = beam_search(
            markov_step_fn(logits), [], 1, start, end, max_length,
            num_beams=16, length_penalty=length_penalty,
            forbidden_ids=(pad, start),
        )
        row = ops.convert_to_numpy(tokens)[0].tolist()
        got = [t for t in row if t != 0]
        assert got == expected, (trial, got, expected)
        assert float(ops.convert_to_numpy(scores)[0]) == pytest.approx(
            expected_score, abs=1e-4
        )
        # Tokens after the end token are padding.
        if end in row:
            assert all(t == 0 for t in row[row.index(end) + 1:])


def test_length_normalisation_prefers_longer_hypothesis():
    """After <start>, <end> has p=0.55 and token 3 p=0.45; after 3, <end>
    has p=0.9. Summed log-probabilities pick "<end>" (log 0.55 > log 0.45 +
    log 0.9), as greedy does; per-token means pick "3 <end>"."""
    logits = np.full((4, 4), -1e9, "float32")
    logits[1, 2], logits[1, 3] = np.log(0.55), np.log(0.45)
    logits[3, 2], logits[3, 3] = np.log(0.9), np.log(0.1)
    step_fn = markov_step_fn(logits)
    for penalty, expected in ((0.0, [2]), (1.0, [3, 2])):
        tokens, _ = beam_search(step_fn, [], 1, 1, 2, 5, num_beams=2,
                                length_penalty=penalty, forbidden_ids=(0, 1))
        row = ops.convert_to_numpy(tokens)[0].tolist()
        assert [t for t in row if t] == expected, penalty
    greedy = greedy_search(step_fn, [], 1, 1, 2, 5, forbidden_ids=(0, 1))
    assert [t for t in ops.convert_to_numpy(greedy)[0].tolist() if t] == [2]


@pytest.mark.slow
def test_toy_reversal_reaches_95_percent_exact_match():
    """Digit reversal. The target is the source backwards, so the encoder
    reads the source in order (`reverse_source=False`): it then ends on the
    digit the decoder writes first, the short-dependency layout that source
    reversal gives on translation (see examples/toy_reverse_digits.py)."""
    keras.utils.set_random_seed(0)
    train = digit_pairs(4000, seed=10)
    test = digit_pairs(300, seed=11)
    model = tiny_model(train, embedding_dim=32, units=96, num_layers=1,
                       reverse_source=False)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    x, y = model.encode_pairs(train)
    model.fit(x, y, epochs=12, batch_size=64, verbose=0)
    sources = [s for s, _ in test]
    references = [t for _, t in test]
    for kwargs in ({"sampler": "greedy"}, {"sampler": "beam", "num_beams": 3}):
        translations = model.translate(sources, **kwargs)
        exact = np.mean([h == r for h, r in zip(translations, references)])
        assert exact >= 0.95, (kwargs, exact)


def test_rejects_bad_construction():
    source_vocab = WordVocabulary(["a"])
    with pytest.raises(ValueError, match="`start_token` '<start>'"):
        Seq2SeqTranslator(source_vocab, WordVocabulary(["x", "<end>"]))
    with pytest.raises(ValueError, match="`end_token` '<end>'"):
        Seq2SeqTranslator(source_vocab, WordVocabulary(["<start>", "x"]))
    target_vocab = WordVocabulary(["<start>", "<end>", "x"])
    with pytest.raises(TypeError, match="source_vocabulary"):
        Seq2SeqTranslator(["a", "b"], target_vocab)
    with pytest.raises(ValueError, match="num_layers"):
        Seq2SeqTranslator(source_vocab, target_vocab, num_layers=0)
    with pytest.raises(ValueError, match="embedding_dim"):
        Seq2SeqTranslator(source_vocab, target_vocab, embedding_dim=0)


def test_translate_before_build_is_an_error():
    model = tiny_model()
    with pytest.raises(ValueError, match="before the model was built or trained"):
        model.translate(["1 2 3"])


def test_translate_rejects_bad_input(trained_tiny):
    with pytest.raises(ValueError, match=r"`texts\[1\]` is empty"):
        trained_tiny.translate(["1 2", ""])
    with pytest.raises(ValueError, match=r"`texts\[0\]` is empty"):
        trained_tiny.translate(["  "])
    with pytest.raises(TypeError, match="list of strings"):
        trained_tiny.translate("1 2 3")
    with pytest.raises(ValueError, match="`texts` is empty"):
        trained_tiny.translate([])
    with pytest.raises(ValueError, match="sampler"):
        trained_tiny.translate(["1 2"], sampler="top_k")
    with pytest.raises(ValueError, match="num_beams"):
        trained_tiny.translate(["1 2"], num_beams=0)
    with pytest.raises(ValueError, match="max_length"):
        trained_tiny.translate(["1 2"], max_length=0)
    with pytest.raises(ValueError, match="length_penalty"):
        trained_tiny.translate(["1 2"], length_penalty=-1)


def test_rejects_mismatched_batch_sizes(trained_tiny):
    with pytest.raises(ValueError, match="batch sizes must match"):
        trained_tiny({"source_ids": np.ones((3, 4), "int32"),
                      "decoder_input_ids": np.ones((2, 5), "int32")})


def test_config_round_trip(trained_tiny):
    config = trained_tiny.get_config()
    clone = Seq2SeqTranslator.from_config(config)
    assert clone.get_config() == config
    assert clone.target_vocabulary == trained_tiny.target_vocabulary


ROUND_TRIP_SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np, keras
    import keras_memnet  # registers the package's classes
    path, inputs_path = sys.argv[1], sys.argv[2]
    model = keras.saving.load_model(path, safe_mode=True)
    data = np.load(inputs_path)
    x = {"source_ids": data["source_ids"],
         "decoder_input_ids": data["decoder_input_ids"]}
    np.testing.assert_array_equal(model.predict(x, verbose=0), data["logits"])
    sources = [str(s) for s in data["sources"]]
    beam = model.translate(sources, sampler="beam", num_beams=3)
    assert beam == [str(t) for t in data["beam"]], (beam, data["beam"])
    print("ROUND TRIP OK", type(model).__name__)
    """
)


def test_keras_round_trip_in_new_process(trained_tiny, tmp_path):
    pairs = digit_pairs(8, seed=12)
    x, _ = trained_tiny.encode_pairs(pairs)
    sources = [s for s, _ in pairs]
    path = tmp_path / "translator.keras"
    trained_tiny.save(path)
    np.savez(
        tmp_path / "inputs.npz",
        logits=trained_tiny.predict(x, verbose=0),
        sources=np.array(sources),
        beam=np.array(trained_tiny.translate(sources, num_beams=3)),
        **x,
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT)] + [p for p in [env.get("PYTHONPATH")] if p]
    )
    result = subprocess.run(
        [sys.executable, "-c", ROUND_TRIP_SCRIPT, str(path),
         str(tmp_path / "inputs.npz")],
        env=env, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ROUND TRIP OK Seq2SeqTranslator" in result.stdout


BACKEND_SCRIPT = textwrap.dedent(
    """
    import keras, numpy as np
    from keras_memnet.datasets import sentence_pairs as sp
    from keras_memnet.models import Seq2SeqTranslator
    rng = np.random.default_rng(0)
    pairs = []
    for _ in range(64):
        d = rng.integers(0, 10, rng.integers(2, 6))
        pairs.append((" ".join(map(str, d)), " ".join(map(str, d[::-1]))))
    sv, tv = sp.build_vocabularies(pairs)
    keras.utils.set_random_seed(0)
    model = Seq2SeqTranslator(sv, tv, embedding_dim=8, units=16, num_layers=2)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    x, y = model.encode_pairs(pairs)
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    sources = [s for s, _ in pairs[:10]]
    greedy = model.translate(sources, sampler="greedy")
    assert greedy == model.translate(sources, sampler="beam", num_beams=1)
    beam = model.translate(sources, num_beams=3)
    assert beam == [model.translate([s], num_beams=3)[0] for s in sources]
    print("OK", keras.config.backend())
    """
)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_translator_on_other_backends(backend):
    env = dict(os.environ, KERAS_BACKEND=backend)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT)] + [p for p in [env.get("PYTHONPATH")] if p]
    )
    result = subprocess.run(
        [sys.executable, "-c", BACKEND_SCRIPT], env=env, capture_output=True,
        text=True, timeout=600, cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"OK {backend}" in result.stdout
