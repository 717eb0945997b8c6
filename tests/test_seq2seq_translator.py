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
from keras_memnet.layers import Seq2SeqLSTM
from keras_memnet.models import Seq2SeqTranslator
from keras_memnet.models.seq2seq_translator import replace_unknown_tokens
from keras_memnet.tokenizers import WordVocabulary

REPO_ROOT = Path(__file__).resolve().parents[1]


def digit_pairs(count, seed, min_length=3, max_length=7):
    """Toy task: a digit sequence and its reverse."""
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(count):
        digits = rng.integers(0, 10, rng.integers(min_length, max_length + 1))
        pairs.append(
            (" ".join(map(str, digits)), " ".join(map(str, digits[::-1])))
        )
    return pairs


def tiny_model(pairs=None, **kwargs):
    pairs = pairs or digit_pairs(40, seed=0)
    source_vocab, target_vocab = sp.build_vocabularies(pairs)
    settings = dict(embedding_dim=8, units=16, num_layers=2, seed=0)
    settings.update(kwargs)
    return Seq2SeqTranslator(source_vocab, target_vocab, **settings)


def train_tiny(**kwargs):
    keras.utils.set_random_seed(0)
    pairs = digit_pairs(200, seed=1)
    model = tiny_model(pairs, **kwargs)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    x, y = model.encode_pairs(pairs)
    model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def trained_tiny():
    """The paper's attention-free model."""
    return train_tiny(attention_hops=0)


@pytest.fixture(scope="module")
def trained_attention():
    """Two attention hops over a reversed source."""
    return train_tiny(attention_hops=2)


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
        pairs,
        initializer=keras.initializers.RandomUniform(-0.08, 0.08),
        attention_hops=0,
    )
    dataset = sp.sentence_pair_dataset(
        pairs,
        model.source_vocabulary,
        model.target_vocabulary,
        batch_size=16,
        seed=0,
    )
    model.build({"source_ids": (None, None), "decoder_input_ids": (None, None)})
    for weight in model.weights:
        if "bias" not in weight.path:
            assert np.abs(ops.convert_to_numpy(weight)).max() <= 0.08
    model.compile(optimizer=keras.optimizers.SGD(2.0))
    history = model.fit(
        dataset,
        epochs=3,
        verbose=0,
        callbacks=[
            GradientNormClipping(1.0),
            StepAnnealing(every=0.5, factor=2.0, start=2),
        ],
    )
    assert history.history["loss"][-1] < history.history["loss"][0]
    # Halved once, at epoch 2.5 (the next halving would be at epoch 3).
    assert float(model.optimizer.learning_rate) == pytest.approx(1.0)
    assert "gradient_norm" in history.history


@pytest.mark.parametrize("fixture", ["trained_tiny", "trained_attention"])
def test_beam_one_equals_greedy(fixture, request):
    model = request.getfixturevalue(fixture)
    sources = [s for s, _ in digit_pairs(40, seed=4)]
    greedy = model.translate(sources, sampler="greedy", batch_size=16)
    beam = model.translate(sources, sampler="beam", num_beams=1, batch_size=16)
    assert greedy == beam
    assert any(greedy)  # not all empty


@pytest.mark.parametrize("fixture", ["trained_tiny", "trained_attention"])
def test_beam_search_per_row_matches_single_row(fixture, request):
    """Encoder states (and, with attention, the memory and its padding)
    are repeated per beam correctly: decoding a batch gives each row the
    result it gets alone."""
    model = request.getfixturevalue(fixture)
    sources = [s for s, _ in digit_pairs(6, seed=5)]
    together = model.translate(sources, num_beams=3, batch_size=6)
    alone = [model.translate([s], num_beams=3)[0] for s in sources]
    assert together == alone


def markov_step_fn(transition_logits):
    """A decoder whose logits depend only on the previous token."""
    table = ops.convert_to_tensor(transition_logits, "float32")

    def step_fn(token_ids, states):
        return ops.take(table, token_ids, axis=0), states

    return step_fn


def brute_force_best(
    transition_logits, start_id, end_id, max_length, length_penalty, allowed
):
    log_probs = transition_logits - np.log(
        np.exp(transition_logits).sum(-1, keepdims=True)
    )
    best, best_score = None, -np.inf
    for length in range(1, max_length + 1):
        for body in itertools.product(allowed, repeat=length - 1):
            for ending in (
                [end_id] if length < max_length else allowed + [end_id]
            ):
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
            markov_step_fn(logits),
            [],
            1,
            start,
            end,
            max_length,
            num_beams=16,
            length_penalty=length_penalty,
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
            assert all(t == 0 for t in row[row.index(end) + 1 :])


def test_length_normalisation_prefers_longer_hypothesis():
    """After <start>, <end> has p=0.55 and token 3 p=0.45; after 3, <end>
    has p=0.9. Summed log-probabilities pick "<end>" (log 0.55 > log 0.45 +
    log 0.9), as greedy does; per-token means pick "3 <end>"."""
    logits = np.full((4, 4), -1e9, "float32")
    logits[1, 2], logits[1, 3] = np.log(0.55), np.log(0.45)
    logits[3, 2], logits[3, 3] = np.log(0.9), np.log(0.1)
    step_fn = markov_step_fn(logits)
    for penalty, expected in ((0.0, [2]), (1.0, [3, 2])):
        tokens, _ = beam_search(
            step_fn,
            [],
            1,
            1,
            2,
            5,
            num_beams=2,
            length_penalty=penalty,
            forbidden_ids=(0, 1),
        )
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
    model = tiny_model(
        train,
        embedding_dim=32,
        units=96,
        num_layers=1,
        reverse_source=False,
        attention_hops=0,
    )
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
    with pytest.raises(
        ValueError, match="before the model was built or trained"
    ):
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
        trained_tiny(
            {
                "source_ids": np.ones((3, 4), "int32"),
                "decoder_input_ids": np.ones((2, 5), "int32"),
            }
        )


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
    assert model.attention_hops == int(data["attention_hops"])
    if model.attention_hops:
        np.testing.assert_array_equal(
            model.attention_weights(x["source_ids"], x["decoder_input_ids"]),
            data["attention"],
        )
        replaced = model.translate(
            sources, sampler="greedy", replace_unknown=True
        )
        assert replaced == [str(t) for t in data["replaced"]], replaced
    print("ROUND TRIP OK", type(model).__name__)
    """
)


@pytest.mark.parametrize("fixture", ["trained_tiny", "trained_attention"])
def test_keras_round_trip_in_new_process(fixture, request, tmp_path):
    """Saved to `.keras` and loaded in safe mode in a fresh process, the
    model gives identical logits, beam translations and (with attention)
    attention weights and `<unk>`-replaced translations."""
    trained = request.getfixturevalue(fixture)
    pairs = digit_pairs(8, seed=12)
    x, _ = trained.encode_pairs(pairs)
    sources = [s for s, _ in pairs]
    path = tmp_path / "translator.keras"
    trained.save(path)
    extra = {}
    if trained.attention_hops:
        extra["attention"] = trained.attention_weights(
            x["source_ids"], x["decoder_input_ids"]
        )
        extra["replaced"] = np.array(
            trained.translate(sources, sampler="greedy", replace_unknown=True)
        )
    np.savez(
        tmp_path / "inputs.npz",
        logits=trained.predict(x, verbose=0),
        sources=np.array(sources),
        beam=np.array(trained.translate(sources, num_beams=3)),
        attention_hops=trained.attention_hops,
        **extra,
        **x,
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT)] + [p for p in [env.get("PYTHONPATH")] if p]
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            ROUND_TRIP_SCRIPT,
            str(path),
            str(tmp_path / "inputs.npz"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ROUND TRIP OK Seq2SeqTranslator" in result.stdout


@pytest.mark.parametrize("attention_hops", [0, 2])
def test_train_translate_and_attend_on_the_current_backend(attention_hops):
    """Trains, decodes and attends on whichever backend the suite runs
    (CI runs it on TensorFlow, JAX and PyTorch)."""
    rng = np.random.default_rng(0)
    pairs = []
    for _ in range(64):
        d = rng.integers(0, 10, rng.integers(2, 6))
        pairs.append((" ".join(map(str, d)), " ".join(map(str, d[::-1]))))
    source_vocab, target_vocab = sp.build_vocabularies(pairs)
    keras.utils.set_random_seed(0)
    model = Seq2SeqTranslator(
        source_vocab,
        target_vocab,
        embedding_dim=8,
        units=16,
        num_layers=2,
        attention_hops=attention_hops,
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    x, y = model.encode_pairs(pairs)
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    sources = [source for source, _ in pairs[:10]]
    greedy = model.translate(sources, sampler="greedy")
    assert greedy == model.translate(sources, sampler="beam", num_beams=1)
    beam = model.translate(sources, num_beams=3)
    assert beam == [model.translate([s], num_beams=3)[0] for s in sources]
    if attention_hops:
        weights = model.attention_weights(
            x["source_ids"], x["decoder_input_ids"]
        )
        valid = x["source_ids"] != 0
        np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
        padding = np.broadcast_to(~valid[:, None], weights.shape)
        assert (weights[padding] == 0).all()
        replaced = model.translate(sources, replace_unknown=True)
        assert len(replaced) == len(sources)


# Attention through MemoryHop -------------------------------------------


def numpy_masked_softmax(scores, mask):
    scores = np.where(mask, scores, -np.inf)
    scores = scores - scores.max(-1, keepdims=True)
    weights = np.exp(scores) * mask
    return weights / weights.sum(-1, keepdims=True)


def test_attention_weights_match_numpy_reference(trained_attention):
    """The last hop's weights, recomputed in NumPy for one decoder step
    from the encoder's states and the decoder's state: they sum to 1 over
    the valid source words and are exactly 0 on padding."""
    model = trained_attention
    x, _ = model.encode_pairs([("1 2 3 4 5", "5 4 3 2 1"), ("6 7", "7 6")])
    source_ids, decoder_input_ids = x["source_ids"], x["decoder_input_ids"]
    weights = model.attention_weights(source_ids, decoder_input_ids)
    assert weights.shape == decoder_input_ids.shape + (source_ids.shape[1],)
    valid = source_ids != 0
    assert not valid.all()  # the second row is padded
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    assert (weights[1][:, ~valid[1]] == 0).all()

    # NumPy reference for decoder step 2 of both rows.
    step = 2
    source_mask = ops.not_equal(source_ids, 0)
    memory, states = model.encoder_decoder.encode(
        model.source_embedding(source_ids),
        source_mask,
        return_sequences=True,
    )
    outputs, _ = model.encoder_decoder.decode(
        model.target_embedding(decoder_input_ids),
        states,
        ops.not_equal(decoder_input_ids, 0),
    )
    memory = ops.convert_to_numpy(memory)
    query = ops.convert_to_numpy(outputs)[:, step]
    assert len(model.attention_hop_layers) == 2
    for hop in model.attention_hop_layers:
        scores = np.einsum("bsd,bd->bs", memory, query)
        probabilities = numpy_masked_softmax(scores, valid)
        kernel = ops.convert_to_numpy(hop.query_kernel)
        query = query @ kernel + np.einsum("bs,bsd->bd", probabilities, memory)
    np.testing.assert_allclose(weights[:, step], probabilities, atol=1e-5)
    assert (probabilities[1, ~valid[1]] == 0).all()

    # Padding changes nothing: the padded second pair gets the weights it
    # gets alone, unpadded (with the reversed source, padding that leaked
    # into the encoder or the softmax would show here).
    source_length = int(valid[1].sum())
    target_length = int((decoder_input_ids[1] != 0).sum())
    alone = model.attention_weights(
        source_ids[1:2, :source_length], decoder_input_ids[1:2, :target_length]
    )
    np.testing.assert_allclose(
        weights[1:2, :target_length, :source_length], alone, atol=1e-5
    )


def test_default_is_one_attention_hop():
    """Attention is the default (it measured best on fra-eng-76k); the
    paper's model is `attention_hops=0`. The initializer reaches the
    attention weights too."""
    model = tiny_model()
    assert model.attention_hops == 1 and len(model.attention_hop_layers) == 1
    config = model.get_config()
    assert config["attention_hops"] == 1
    assert Seq2SeqTranslator.from_config(config).attention_hops == 1
    assert tiny_model(attention_hops=0).attention_hop_layers == []
    bounded = tiny_model(
        initializer=keras.initializers.RandomUniform(-0.08, 0.08)
    )
    bounded.build(
        {"source_ids": (None, None), "decoder_input_ids": (None, None)}
    )
    paths = [w.path for w in bounded.weights]
    assert any("attention_hop_0" in p for p in paths)
    assert any("attention_output" in p for p in paths)
    for weight in bounded.weights:
        if "bias" not in weight.path:
            assert np.abs(ops.convert_to_numpy(weight)).max() <= 0.08


def test_preset_round_trip_with_attention(trained_attention, tmp_path):
    """Through `save_to_preset` and `Seq2SeqTranslator.from_preset` the
    attention model gives identical logits, attention weights and
    translations (beam, and greedy with `<unk>` replacement); a float16
    preset loads into float32 weights rounded to half precision."""
    model = trained_attention
    model.save_to_preset(tmp_path / "preset")
    assert sorted(os.listdir(tmp_path / "preset" / "assets" / "tokenizer")) == [
        "source_vocabulary.txt",
        "target_vocabulary.txt",
    ]
    restored = Seq2SeqTranslator.from_preset(tmp_path / "preset")
    assert restored.attention_hops == 2
    assert restored.source_vocabulary == model.source_vocabulary
    assert restored.target_vocabulary == model.target_vocabulary
    pairs = digit_pairs(8, seed=13)
    x, _ = model.encode_pairs(pairs)
    np.testing.assert_array_equal(
        ops.convert_to_numpy(restored(x)), ops.convert_to_numpy(model(x))
    )
    np.testing.assert_array_equal(
        restored.attention_weights(x["source_ids"], x["decoder_input_ids"]),
        model.attention_weights(x["source_ids"], x["decoder_input_ids"]),
    )
    sources = [s for s, _ in pairs] + ["1 2 zorglub"]
    for kwargs in (
        {"num_beams": 3},
        {"sampler": "greedy", "replace_unknown": True},
    ):
        assert restored.translate(sources, **kwargs) == model.translate(
            sources, **kwargs
        )
    model.save_to_preset(tmp_path / "half", weights_dtype="float16")
    half = Seq2SeqTranslator.from_preset(tmp_path / "half")
    assert [w.path for w in half.weights] == [w.path for w in model.weights]
    for loaded, original in zip(half.weights, model.weights):
        expected = ops.convert_to_numpy(original)
        if np.issubdtype(expected.dtype, np.floating):
            expected = expected.astype("float16").astype(expected.dtype)
        np.testing.assert_array_equal(ops.convert_to_numpy(loaded), expected)


def test_attention_memory_is_in_written_source_order(trained_attention):
    """With `reverse_source=True` the encoder reads the source backwards;
    the memory is put back in written order, so attention weight `i` is
    source word `i` (what `<unk>` replacement relies on)."""
    model = trained_attention
    assert model.reverse_source and model.num_layers == 2
    source_ids = model.encode_sources(["1 2 3", "4 5 6 7 8"])
    mask = source_ids != 0
    embeddings = model.source_embedding(source_ids)
    memory, _ = model.encoder_decoder.encode(
        embeddings, ops.convert_to_tensor(mask), return_sequences=True
    )
    memory = ops.convert_to_numpy(memory)
    for row, length in enumerate(mask.sum(1)):
        sequence = ops.flip(embeddings[row : row + 1, :length], axis=1)
        for lstm in model.encoder_decoder.encoder_layers:
            sequence = lstm(sequence)[0]
        expected = ops.convert_to_numpy(sequence)[0, ::-1]
        np.testing.assert_allclose(memory[row, :length], expected, atol=1e-5)


def test_step_decoding_matches_teacher_forcing_with_attention(
    trained_attention,
):
    """The compiled search's step function (`encode_source_ids` and
    `decode_step_ids`) gives the logits of `call`, step by step."""
    model = trained_attention
    x, _ = model.encode_pairs([("1 2 3 4", "4 3 2 1"), ("5 6", "6 5")])
    logits = ops.convert_to_numpy(model(x))
    states = model.encode_source_ids(x["source_ids"])
    for step in range(x["decoder_input_ids"].shape[1]):
        step_logits, states = model.decode_step_ids(
            ops.convert_to_tensor(x["decoder_input_ids"][:, step]), states
        )
        np.testing.assert_allclose(
            ops.convert_to_numpy(step_logits)[0], logits[0, step], atol=1e-4
        )


class OldTranslator(keras.Model):
    """The translator as it was before attention: embeddings, the
    encoder-decoder, the output layer."""

    def __init__(
        self, source_size, target_size, embedding_dim, units, num_layers
    ):
        super().__init__()
        self.encoder_decoder = Seq2SeqLSTM(units, num_layers=num_layers)
        self.source_embedding = keras.layers.Embedding(
            source_size, embedding_dim, mask_zero=True
        )
        self.target_embedding = keras.layers.Embedding(
            target_size, embedding_dim, mask_zero=True
        )
        self.output_projection = keras.layers.Dense(target_size)

    def call(self, inputs):
        source_ids, decoder_input_ids = inputs
        outputs = self.encoder_decoder(
            [
                self.source_embedding(source_ids),
                self.target_embedding(decoder_input_ids),
            ],
            mask=[
                ops.not_equal(source_ids, 0),
                ops.not_equal(decoder_input_ids, 0),
            ],
        )
        return self.output_projection(outputs)


def test_zero_hops_is_the_old_model(trained_tiny):
    """`attention_hops=0` has exactly the old weights and outputs: the same
    weights in the same order as the pre-attention model, bit-identical
    logits, greedy translations of the old step function, and old configs
    (without `attention_hops`) still load."""
    model = trained_tiny
    assert model.attention_hops == 0 and not model.attention_hop_layers
    old = OldTranslator(
        model.source_vocabulary.size, model.target_vocabulary.size, 8, 16, 2
    )
    x, _ = model.encode_pairs(digit_pairs(6, seed=20))
    source_ids, decoder_input_ids = x["source_ids"], x["decoder_input_ids"]
    old((source_ids, decoder_input_ids))
    assert [w.shape for w in old.weights] == [w.shape for w in model.weights]
    old.set_weights(model.get_weights())
    np.testing.assert_array_equal(
        ops.convert_to_numpy(old((source_ids, decoder_input_ids))),
        ops.convert_to_numpy(model(x)),
    )

    def old_step(token_ids, states):
        outputs, states = old.encoder_decoder.decode_step(
            old.target_embedding(token_ids), states
        )
        return old.output_projection(outputs), states

    states = old.encoder_decoder.encode(
        old.source_embedding(source_ids), ops.not_equal(source_ids, 0)
    )
    tokens = ops.convert_to_numpy(
        greedy_search(
            old_step,
            states,
            len(source_ids),
            model.start_id,
            model.end_id,
            12,
            (0, model.start_id),
        )
    )
    expected = [
        " ".join(
            model.target_vocabulary.id_to_token(t)
            for t in model._until_end(row)
        )
        for row in tokens
    ]
    sources = [s for s, _ in digit_pairs(6, seed=20)]
    assert model.translate(sources, sampler="greedy", max_length=12) == (
        expected
    )
    config = model.get_config()
    assert config["attention_hops"] == 0
    del config["attention_hops"]
    assert Seq2SeqTranslator.from_config(config).attention_hops == 0


def test_attention_config_round_trip(trained_attention):
    config = trained_attention.get_config()
    assert config["attention_hops"] == 2
    clone = Seq2SeqTranslator.from_config(config)
    assert clone.get_config() == config
    clone.build({"source_ids": (None, None), "decoder_input_ids": (None, None)})
    assert [w.path for w in clone.weights] == [
        w.path for w in trained_attention.weights
    ]
    assert any("attention_hop_1" in w.path for w in clone.weights)


def test_replace_unknown_tokens_copies_the_most_attended_word():
    weights = np.zeros((2, 3, 4), "float32")
    weights[0, 0] = [0.1, 0.2, 0.6, 0.1]  # -> source word 2
    weights[0, 2] = [0.5, 0.1, 0.1, 0.3]  # -> source word 0
    weights[1, 1] = [0.2, 0.8, 0.0, 0.0]  # -> source word 1
    rows = [[1, 7, 1], [5, 1]]
    source_tokens = [["tom", "a", "zorglub", "."], ["ici", "paris"]]
    assert replace_unknown_tokens(rows, weights, source_tokens, 1) == [
        ["zorglub", 7, "tom"],
        [5, "paris"],
    ]


def always_unknown_copy(trained):
    """A copy of `trained` that writes `<unk>` at every step."""
    model = Seq2SeqTranslator.from_config(trained.get_config())
    model.build({"source_ids": (None, None), "decoder_input_ids": (None, None)})
    model.set_weights(trained.get_weights())
    bias = ops.convert_to_numpy(model.output_projection.bias).copy()
    bias[model.target_vocabulary.token_to_id("<unk>")] = 100.0
    model.output_projection.bias.assign(bias)
    return model


def test_translate_replaces_unknown_with_most_attended_source_word(
    trained_attention,
    monkeypatch,
):
    """Constructed weights with a known answer: step 0 attends to source
    word 2, step 1 to word 0, step 2 to word 1. The source words are
    copied as written, including one outside the source vocabulary."""
    model = always_unknown_copy(trained_attention)
    sources = ["1 2 zorglub", "3 4 5 6"]
    seen = []

    def constructed_weights(source_ids, decoder_input_ids):
        seen.append((np.asarray(source_ids), np.asarray(decoder_input_ids)))
        batch, length = np.shape(decoder_input_ids)
        weights = np.zeros((batch, length, np.shape(source_ids)[1]))
        for step, position in enumerate([2, 0, 1]):
            weights[:, step, position] = 1.0
        return weights

    monkeypatch.setattr(model, "attention_weights", constructed_weights)
    translations = model.translate(
        sources,
        sampler="greedy",
        max_length=3,
        replace_unknown=True,
        batch_size=1,
    )
    assert translations == ["zorglub 1 2", "5 3 4"]
    # One call per batch; the decoder read <start> and its own <unk>s.
    unk = model.target_vocabulary.token_to_id("<unk>")
    assert [d.tolist() for _, d in seen] == [[[model.start_id] + [unk] * 3]] * 2
    beam = model.translate(
        sources,
        num_beams=2,
        max_length=3,
        replace_unknown=True,
        return_tokens=True,
    )
    assert beam == [["zorglub", "1", "2"], ["5", "3", "4"]]
    # Without replacement the <unk>s stay.
    assert (
        model.translate(sources, sampler="greedy", max_length=3)
        == ["<unk> <unk> <unk>"] * 2
    )


def test_replace_unknown_follows_the_models_own_attention(trained_attention):
    """With the model's real weights, each `<unk>` becomes the source word
    of its step's largest attention weight."""
    model = always_unknown_copy(trained_attention)
    sources = ["1 2 3 4 5", "6 7 8"]
    replaced = model.translate(
        sources,
        sampler="greedy",
        max_length=4,
        replace_unknown=True,
        return_tokens=True,
    )
    unk = model.target_vocabulary.token_to_id("<unk>")
    decoder_input_ids = np.array([[model.start_id] + [unk] * 3] * 2)
    weights = model.attention_weights(
        model.encode_sources(sources), decoder_input_ids
    )
    for row, source, row_weights in zip(replaced, sources, weights):
        words = source.split()
        expected = [
            words[int(np.argmax(w[: len(words)]))] for w in row_weights[:4]
        ]
        assert row == expected


def test_attention_bad_input(trained_tiny, trained_attention):
    model = trained_attention
    with pytest.raises(ValueError, match="`texts` is empty"):
        model.translate([], replace_unknown=True)
    # A source made only of unknown words: a clear error naming it, before
    # any decoding; `allow_unknown_sources=True` translates it anyway.
    for translator in (trained_tiny, model):
        with pytest.raises(
            ValueError,
            match=r"only words outside the source "
            r"vocabulary.*texts\[1\]='zorglub blorp'",
        ):
            translator.translate(["1 2", "zorglub blorp", "3"])
        assert (
            len(
                translator.translate(
                    ["zorglub blorp"],
                    sampler="greedy",
                    allow_unknown_sources=True,
                )
            )
            == 1
        )
    with pytest.raises(ValueError, match="attention_hops=0"):
        trained_tiny.translate(["1 2"], replace_unknown=True)
    with pytest.raises(ValueError, match="attention_hops=0"):
        trained_tiny.attention_weights(
            np.ones((1, 2), "int32"), np.ones((1, 2), "int32")
        )
    with pytest.raises(ValueError, match="replace_unknown"):
        model.translate(["1 2"], replace_unknown="yes")
    for hops in (-1, 1.5, True):
        with pytest.raises(ValueError, match="attention_hops"):
            tiny_model(attention_hops=hops)
    with pytest.raises(ValueError, match="before the model was built"):
        tiny_model(attention_hops=1).attention_weights(
            np.ones((1, 2), "int32"), np.ones((1, 2), "int32")
        )
