import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_memnet.datasets import Corpus
from keras_memnet.metrics import Perplexity
from keras_memnet.models import MemN2NLM
from keras_memnet.tokenizers import WordVocabulary

VOCAB, MEMORY, DIM = 30, 6, 8


def small_model(**kwargs):
    config = dict(
        vocabulary_size=VOCAB, hops=3, memory_size=MEMORY, embedding_dim=DIM
    )
    config.update(kwargs)
    model = MemN2NLM(**config)
    model.build((None, config["memory_size"]))
    return model


def random_ids(batch=4, low=1, seed=0):
    return np.random.default_rng(seed).integers(low, VOCAB, (batch, MEMORY))


def numpy_weights(model):
    return {
        w.path.split("/", 1)[1]: keras.ops.convert_to_numpy(w)
        for w in model.weights
    }


def numpy_final_state(model, ids):
    """The paper's layer-wise memory hops written out in NumPy.

    `model`: a layer-wise `MemN2NLM` or `MemN2NBackbone`.
    """
    weights = numpy_weights(model)
    a = weights["memory_embedding_0/embeddings"][ids]
    a = a + weights["temporal_encoding_0/embeddings"]
    c = weights["memory_embedding_1/embeddings"][ids]
    c = c + weights["temporal_encoding_1/embeddings"]
    h = weights["memory_hop/query_kernel"]
    mask = ids != 0
    u = np.full(
        (len(ids), model.embedding_dim), model.query_value, dtype="float32"
    )
    for _ in range(model.hops):
        scores = np.where(mask, np.einsum("bd,bmd->bm", u, a), -np.inf)
        # A window of padding only reads nothing (p = 0), as in Keras.
        top = scores.max(-1, keepdims=True)
        p = np.exp(scores - np.where(np.isfinite(top), top, 0))
        total = p.sum(-1, keepdims=True)
        p /= np.where(total > 0, total, 1)
        u = u @ h + np.einsum("bm,bmd->bd", p, c)
        u[:, model.linear_units :] = np.maximum(u[:, model.linear_units :], 0)
    return u


def numpy_forward(model, ids):
    """The paper's layer-wise language model written out in NumPy."""
    state = numpy_final_state(model, ids)
    return state @ numpy_weights(model)["output_projection/kernel"]


def test_forward_matches_numpy_reference():
    model = small_model()
    ids = random_ids()
    ids[0, :2] = 0  # Left padding is masked.
    np.testing.assert_allclose(
        model.predict(ids, verbose=0),
        numpy_forward(model, ids),
        rtol=1e-4,
        atol=1e-5,
    )


def test_defaults_are_the_papers_language_model():
    model = MemN2NLM(vocabulary_size=1000)
    model.build((None, 100))
    assert (model.hops, model.memory_size, model.embedding_dim) == (6, 100, 150)
    assert model.linear_units == 75
    assert model.query_value == 0.1
    names = sorted(w.path.split("/", 1)[1] for w in model.weights)
    # A, C, T_A, T_C, H and the output map: shared by all hops, no biases.
    assert names == [
        "memory_embedding_0/embeddings",
        "memory_embedding_1/embeddings",
        "memory_hop/query_kernel",
        "output_projection/kernel",
        "temporal_encoding_0/embeddings",
        "temporal_encoding_1/embeddings",
    ]
    for weight in model.weights:
        values = keras.ops.convert_to_numpy(weight)
        assert abs(values.std() - 0.05) < 0.005, weight.path


def test_adjacent_tying_shares_embeddings_between_neighbouring_hops():
    model = small_model(weight_tying="adjacent", hops=4)
    assert len(model.embedding_layers) == 5
    assert len(model.temporal_encodings) == 5
    assert len(model.memory_hops) == 4
    assert model.output_projection is None
    assert model.predict(random_ids(), verbose=0).shape == (4, VOCAB)
    # The logits use the last memory embedding, transposed.
    assert not any("output_projection" in w.path for w in model.weights)


@pytest.mark.parametrize("hops", [1, 2, 12])
def test_hops_range(hops):
    assert small_model(hops=hops).predict(random_ids(), verbose=0).shape == (
        4,
        VOCAB,
    )


def test_fit_reduces_loss():
    keras.utils.set_random_seed(0)
    model = small_model(dropout=0.1)
    model.compile(
        optimizer=keras.optimizers.Adam(0.02),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    ids = random_ids(batch=512, seed=1)
    targets = ids[:, -2]  # Copy the second newest word: needs attention.
    history = model.fit(ids, targets, epochs=12, batch_size=64, verbose=0)
    assert history.history["loss"][-1] < 0.3 * history.history["loss"][0]
    results = model.evaluate(ids, targets, verbose=0, return_dict=True)
    assert results["loss"] < history.history["loss"][0]


@pytest.mark.parametrize(
    "argument, value",
    [
        ("hops", 0),
        ("memory_size", 0),
        ("vocabulary_size", 1),
        ("embedding_dim", 0),
        ("linear_units", 9),
        ("weight_tying", "none"),
        ("dropout", 1.0),
    ],
)
def test_rejects_bad_arguments(argument, value):
    with pytest.raises(ValueError, match=argument):
        small_model(**{argument: value})


def test_rejects_contexts_of_the_wrong_length():
    model = small_model()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    short = np.ones((2, MEMORY - 1), dtype="int32")
    with pytest.raises(ValueError, match="memory_size=6"):
        model.predict(short, verbose=0)
    with pytest.raises(ValueError, match="memory_size=6"):
        model(short)
    with pytest.raises(ValueError, match="memory_size=6"):
        model.evaluate(short, np.ones(2), verbose=0)
    with pytest.raises(ValueError, match="memory_size=6"):
        model.fit(short, np.ones(2), verbose=0)
    with pytest.raises(ValueError, match="memory_size=6"):
        model(np.ones((2, MEMORY, 1), dtype="int32"))
    with pytest.raises(ValueError, match="memory_size=6"):
        model(np.ones((MEMORY,), dtype="int32"))
    # Longer ids are the sequence form: one prediction per window.
    assert model(np.ones((2, MEMORY + 1), dtype="int32")).shape == (2, 2, VOCAB)


def test_rejects_token_ids_out_of_range():
    model = small_model()
    ids = random_ids()
    ids[1, 3] = VOCAB
    with pytest.raises(ValueError, match="vocabulary_size=30"):
        model.predict(ids, verbose=0)
    with pytest.raises(ValueError, match="vocabulary_size=30"):
        model.evaluate(ids, np.zeros(4), verbose=0)
    with pytest.raises(ValueError, match=r"\[0, vocabulary_size"):
        model.generate(np.array([1, 2, -1]), max_length=2)


def test_rejects_vocabulary_of_another_size():
    vocabulary = WordVocabulary.from_text("a b c")
    with pytest.raises(ValueError, match="vocabulary_size"):
        small_model(vocabulary=vocabulary)


def argmax_without_padding(logits):
    return logits[:, 1:].argmax(-1) + 1


def test_greedy_generation_equals_stepwise_argmax():
    model = small_model()
    prompts = random_ids(batch=3, seed=5)
    generated = model.generate(prompts, max_length=7)
    window = prompts.copy()
    expected = []
    for _ in range(7):
        next_ids = argmax_without_padding(model.predict(window, verbose=0))
        expected.append(next_ids)
        window = np.concatenate([window[:, 1:], next_ids[:, None]], axis=1)
    np.testing.assert_array_equal(generated, np.stack(expected, axis=1))


def test_short_prompts_are_left_padded():
    model = small_model()
    prompt = np.array([4, 9])
    padded = np.zeros((1, MEMORY), dtype="int32")
    padded[0, -2:] = prompt
    first = model.generate(prompt, max_length=1)
    assert first.shape == (1,)
    expected = argmax_without_padding(model.predict(padded, verbose=0))
    assert first[0] == expected[0]


def test_seeded_sampling_is_reproducible():
    model = small_model()
    prompt = random_ids(batch=2)
    first = model.generate(prompt, 10, sampler="random", seed=7)
    again = model.generate(prompt, 10, sampler="random", seed=7)
    other = model.generate(prompt, 10, sampler="random", seed=8)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    top_k = model.generate(prompt, 10, sampler="top_k", top_k=3, seed=7)
    np.testing.assert_array_equal(
        top_k, model.generate(prompt, 10, sampler="top_k", top_k=3, seed=7)
    )


def test_beam_search_with_one_beam_equals_greedy():
    model = small_model()
    prompt = random_ids(batch=3)
    np.testing.assert_array_equal(
        model.generate(prompt, 6, sampler="beam", num_beams=1),
        model.generate(prompt, 6, sampler="greedy"),
    )


def test_generation_takes_and_returns_text():
    vocabulary = WordVocabulary.from_text("the cat sat on the mat")
    model = small_model(vocabulary_size=vocabulary.size, vocabulary=vocabulary)
    text = model.generate("the cat", max_length=4)
    assert isinstance(text, str) and len(text.split()) <= 4
    texts = model.generate(["the cat", "on the mat"], max_length=3)
    assert isinstance(texts, list) and len(texts) == 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(prompt=""), "empty"),
        (dict(prompt=np.zeros(3, dtype="int32")), "empty"),
        (dict(prompt=np.array([1, 2]), max_length=0), "max_length"),
        (dict(prompt=np.array([1, 2]), sampler="nucleus"), "sampler"),
        (dict(prompt=np.array([1, 2]), temperature=0), "temperature"),
    ],
)
def test_generation_rejects_bad_input(kwargs, message):
    vocabulary = WordVocabulary.from_text("the cat sat on the mat")
    model = small_model(vocabulary_size=vocabulary.size, vocabulary=vocabulary)
    kwargs.setdefault("max_length", 3)
    with pytest.raises(ValueError, match=message):
        model.generate(**kwargs)


def test_text_prompt_needs_a_vocabulary():
    with pytest.raises(ValueError, match="vocabulary"):
        small_model().generate("hello", max_length=2)


def test_get_config_is_complete():
    vocabulary = WordVocabulary.from_text("a b c d e")
    model = small_model(
        vocabulary_size=vocabulary.size,
        vocabulary=vocabulary,
        weight_tying="adjacent",
        dropout=0.25,
        linear_units=2,
        query_value=0.2,
        init_stddev=0.1,
    )
    clone = MemN2NLM.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert clone.vocabulary.tokens == vocabulary.tokens
    json.dumps(model.get_config())


def test_keras_round_trip_in_a_new_process_is_exact(tmp_path):
    vocabulary = WordVocabulary.from_text("the cat sat on the mat and ran")
    model = small_model(vocabulary_size=vocabulary.size, vocabulary=vocabulary)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    ids = np.random.default_rng(3).integers(1, vocabulary.size, (5, MEMORY))
    path = tmp_path / "model.keras"
    model.save(path)
    np.save(tmp_path / "ids.npy", ids)
    np.save(tmp_path / "expected.npy", model.predict(ids, verbose=0))
    script = textwrap.dedent(
        f"""
        import numpy as np, keras
        import keras_memnet  # noqa: F401  (registers nothing extra: check)
        model = keras.saving.load_model({str(path)!r}, safe_mode=True)
        ids = np.load({str(tmp_path / "ids.npy")!r})
        expected = np.load({str(tmp_path / "expected.npy")!r})
        np.testing.assert_array_equal(model.predict(ids, verbose=0), expected)
        assert model.vocabulary.tokens[:3] == ["<pad>", "<unk>", "the"]
        print(model.generate("the cat", max_length=3))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == model.generate("the cat", max_length=3)


# Sequence form: ids (batch, M + T - 1) -> (batch, T, vocabulary), output t
# being the window form on ids[:, t:t + M].

SEQUENCE_T = 5
FORMS = [
    ("layerwise", "softmax"),
    ("layerwise", "adaptive"),
    ("adjacent", "softmax"),
    ("adjacent", "adaptive"),
]


def sequence_ids(batch=4, steps=SEQUENCE_T, seed=0):
    ids = np.random.default_rng(seed).integers(
        1, VOCAB, (batch, MEMORY + steps - 1)
    )
    ids[0, :3] = 0  # Left padding: the first windows are partly empty.
    ids[1, :MEMORY] = 0  # Left padding: window 0 is all padding.
    return ids


def stacked_windows(ids, memory=MEMORY):
    """`(batch, M + T - 1)` -> the T windows of each row, `(batch * T, M)`."""
    steps = ids.shape[1] - memory + 1
    windows = np.stack([ids[:, t : t + memory] for t in range(steps)], 1)
    return windows.reshape(-1, memory)


@pytest.mark.parametrize("weight_tying, output", FORMS)
def test_sequence_form_equals_stacked_window_form(weight_tying, output):
    model = small_model(weight_tying=weight_tying, output=output)
    ids = sequence_ids()
    windows = keras.ops.convert_to_numpy(model(stacked_windows(ids)))
    expected = windows.reshape(len(ids), SEQUENCE_T, VOCAB)
    sequence = keras.ops.convert_to_numpy(model(ids))
    assert sequence.shape == (len(ids), SEQUENCE_T, VOCAB)
    np.testing.assert_allclose(sequence, expected, rtol=1e-5, atol=1e-5)
    # The compiled predict path too, with a partial last batch.
    np.testing.assert_allclose(
        model.predict(ids, batch_size=3, verbose=0),
        expected,
        rtol=1e-5,
        atol=1e-5,
    )
    assert model.compute_output_shape((None, MEMORY + SEQUENCE_T - 1)) == (
        None,
        SEQUENCE_T,
        VOCAB,
    )


@pytest.mark.parametrize("output", ["softmax", "adaptive"])
def test_predict_alternates_between_window_and_sequence_forms(output):
    """One model's compiled predict serves ids of several lengths in turn.

    (TensorFlow retraces with a relaxed, unknown length once it has seen
    two lengths; the model must still pick the right form.)
    """
    model = small_model(output=output)
    ids = sequence_ids()
    windows = stacked_windows(ids)
    expected = keras.ops.convert_to_numpy(model(windows))
    expected = expected.reshape(len(ids), SEQUENCE_T, VOCAB)
    for _ in range(2):
        np.testing.assert_allclose(
            model.predict(windows, verbose=0).reshape(expected.shape),
            expected,
            rtol=1e-5,
            atol=1e-5,
        )
        np.testing.assert_allclose(
            model.predict(ids, verbose=0), expected, rtol=1e-5, atol=1e-5
        )
        np.testing.assert_allclose(
            model.predict(ids[:, :-2], verbose=0),
            expected[:, :-2],
            rtol=1e-5,
            atol=1e-5,
        )


def test_sequence_form_matches_numpy_reference_window_by_window():
    model = small_model()
    ids = sequence_ids(seed=1)
    expected = numpy_forward(model, stacked_windows(ids))
    np.testing.assert_allclose(
        model.predict(ids, verbose=0).reshape(-1, VOCAB),
        expected,
        rtol=1e-4,
        atol=1e-5,
    )


@pytest.mark.tensorflow_only  # The gradient check uses tf.GradientTape.
@pytest.mark.parametrize("weight_tying, output", FORMS)
def test_sequence_form_gradients_equal_window_batches(weight_tying, output):
    import tensorflow as tf

    keras.utils.set_random_seed(1)
    model = small_model(weight_tying=weight_tying, output=output, hops=2)
    # A summed loss; for output="adaptive" this is the fast loss of
    # `compute_loss` on the (batch, T, dim) state.
    model.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction="sum"
        ),
    )
    ids = sequence_ids(batch=3, steps=4, seed=2)
    rng = np.random.default_rng(3)
    targets = rng.integers(1, VOCAB, (3, 4))
    weights = rng.uniform(0.5, 2.0, (3, 4)).astype("float32")
    weights[2, 3] = 0.0  # A padded target, as in `Corpus.sequences`.
    targets[2, 3] = 0
    variables = model.trainable_variables
    assert variables

    with tf.GradientTape() as tape:
        y_pred = model(ids, training=True)
        sequence_loss = model.compute_loss(
            x=ids,
            y=targets,
            y_pred=y_pred,
            sample_weight=weights,
            training=True,
        )
    sequence_grads = tape.gradient(sequence_loss, variables)

    # The T window batches, concatenated, with an independent summed loss.
    window_ids = stacked_windows(ids)
    per_token = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction="none"
    )
    with tf.GradientTape() as tape:
        logits = model(window_ids, training=True)
        window_loss = tf.reduce_sum(
            per_token(targets.reshape(-1), logits) * weights.reshape(-1)
        )
    window_grads = tape.gradient(window_loss, variables)

    np.testing.assert_allclose(
        float(sequence_loss), float(window_loss), rtol=1e-5
    )
    for variable, seq, win in zip(variables, sequence_grads, window_grads):
        assert seq is not None and win is not None, variable.path
        seq = tf.convert_to_tensor(seq).numpy()
        win = tf.convert_to_tensor(win).numpy()
        np.testing.assert_allclose(
            seq, win, rtol=1e-4, atol=1e-6, err_msg=variable.path
        )
    assert (
        sum(
            np.abs(tf.convert_to_tensor(g).numpy()).sum()
            for g in sequence_grads
        )
        > 0
    )


def random_corpus(num_tokens=420, seed=0):
    """A corpus of Zipf-like random words (ids sorted by frequency)."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(20)]
    frequencies = 1.0 / np.arange(1, 21)
    text = " ".join(
        rng.choice(words, size=num_tokens, p=frequencies / frequencies.sum())
    )
    vocabulary = WordVocabulary.from_text(text)
    ids = vocabulary.encode(text)
    return Corpus(ids[:300], ids[300:], ids[300:], vocabulary)


def compiled_model(
    vocabulary_size,
    optimizer=None,
    metric_argument="weighted_metrics",
    **kwargs,
):
    config = dict(
        vocabulary_size=vocabulary_size,
        hops=2,
        memory_size=5,
        embedding_dim=8,
    )
    config.update(kwargs)
    model = MemN2NLM(**config)
    model.compile(
        optimizer=optimizer or keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        **{metric_argument: [Perplexity(from_logits=True)]},
    )
    return model


# Keras gives sample weights (the sequence batches' zero-weight padding)
# only to `weighted_metrics`, which is how the recipe compiles.
@pytest.mark.parametrize("weight_tying, output", [FORMS[0], FORMS[3]])
def test_evaluate_perplexity_is_the_same_for_windows_and_sequences(
    weight_tying, output, metric_argument="weighted_metrics"
):
    keras.utils.set_random_seed(2)
    corpus = random_corpus()
    model = compiled_model(
        corpus.vocabulary.size,
        weight_tying=weight_tying,
        output=output,
        metric_argument=metric_argument,
        init_stddev=0.3,
    )
    # 115 targets: 17 rows of 7, the last one partial (zero-weight
    # padding), in batches of 3 with a partial last batch.
    windows = corpus.windows("valid", 5, 16, shuffle=False)
    sequences = corpus.sequences("valid", 5, 7, 3, shuffle=False)
    by_window = model.evaluate(windows, verbose=0, return_dict=True)
    by_sequence = model.evaluate(sequences, verbose=0, return_dict=True)
    np.testing.assert_allclose(
        by_sequence["perplexity"], by_window["perplexity"], rtol=1e-5
    )
    # Both are the corpus perplexity of the window form's predictions.
    tokens = corpus.valid
    contexts = np.stack([tokens[i - 5 : i] for i in range(5, tokens.size)])
    logits = model.predict(contexts, verbose=0).astype("float64")
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -log_probs[np.arange(len(contexts)), tokens[5:]]
    np.testing.assert_allclose(
        by_window["perplexity"], np.exp(nll.mean()), rtol=1e-5
    )


def repetitive_corpus():
    text = "a b c d e f g h " * 50
    vocabulary = WordVocabulary.from_text(text)
    ids = vocabulary.encode(text)
    return Corpus(ids, ids[:120], ids[:120], vocabulary)


@pytest.mark.parametrize("output", ["softmax", "adaptive"])
def test_fit_in_sequence_form_lowers_the_loss(output):
    keras.utils.set_random_seed(3)
    corpus = repetitive_corpus()
    model = compiled_model(
        corpus.vocabulary.size,
        optimizer=keras.optimizers.Adam(0.02),
        output=output,
        embedding_dim=16,
        memory_size=4,
    )
    train = corpus.sequences("train", 4, 8, 8, shuffle=True, seed=0)
    history = model.fit(train, epochs=6, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.3 * losses[0], losses
    results = model.evaluate(
        corpus.windows("valid", 4, 32, shuffle=False),
        verbose=0,
        return_dict=True,
    )
    assert results["perplexity"] < 2.0, results


def test_model_trained_in_sequence_form_evaluates_the_same_after_loading(
    tmp_path,
):
    keras.utils.set_random_seed(4)
    corpus = random_corpus(seed=1)
    model = compiled_model(
        corpus.vocabulary.size,
        weight_tying="adjacent",
        output="adaptive",
        vocabulary=corpus.vocabulary,
    )
    model.fit(
        corpus.sequences("train", 5, 6, 8, shuffle=True, seed=1),
        epochs=2,
        verbose=0,
    )
    path = tmp_path / "sequence_trained.keras"
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    # Window form of the restored model = sequence form of the trained one.
    ids = np.concatenate([[0, 0], corpus.valid[:20]])[None, :]
    steps = ids.shape[1] - 5 + 1
    np.testing.assert_allclose(
        restored.predict(stacked_windows(ids, memory=5), verbose=0),
        model.predict(ids, verbose=0).reshape(steps, -1),
        rtol=1e-5,
        atol=1e-5,
    )
    by_sequence = model.evaluate(
        corpus.sequences("valid", 5, 6, 4, shuffle=False),
        verbose=0,
        return_dict=True,
    )
    by_window = restored.evaluate(
        corpus.windows("valid", 5, 16, shuffle=False),
        verbose=0,
        return_dict=True,
    )
    np.testing.assert_allclose(
        by_window["perplexity"], by_sequence["perplexity"], rtol=1e-5
    )


def test_compile_without_arguments_trains_and_reports_perplexity():
    keras.utils.set_random_seed(5)
    # Keras's default optimizer (RMSprop, 1e-3) moves every weight by about
    # 1e-3 a step: a wider initialisation makes 80 steps visible.
    model = small_model(init_stddev=0.3)
    model.compile()
    assert isinstance(model.loss, keras.losses.SparseCategoricalCrossentropy)
    assert model.loss.from_logits
    ids = random_ids(batch=256, seed=6)
    targets = ids[:, -1] % 3 + 1  # Three classes, read from the memory.
    before = model.evaluate(ids, targets, verbose=0, return_dict=True)
    history = model.fit(ids, targets, epochs=10, batch_size=32, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.diff(losses) < 0) and losses[-1] < 0.93 * losses[0], losses
    assert np.all(np.diff(history.history["perplexity"]) < 0)
    after = model.evaluate(ids, targets, verbose=0, return_dict=True)
    assert after["perplexity"] < 0.8 * before["perplexity"], (before, after)
    # The perplexity is that of the compiled (mean) cross-entropy.
    np.testing.assert_allclose(
        after["perplexity"], np.exp(after["loss"]), rtol=1e-4
    )


def test_compile_keeps_given_loss_and_metrics():
    model = small_model()
    model.compile(metrics=["sparse_categorical_accuracy"])
    ids = random_ids()
    results = model.evaluate(ids, ids[:, -1], verbose=0, return_dict=True)
    assert "perplexity" not in results
    assert "sparse_categorical_accuracy" in results
    model.compile(
        optimizer="sgd",
        loss="sparse_categorical_crossentropy",
        weighted_metrics=[],
    )
    assert model.loss == "sparse_categorical_crossentropy"
    results = model.evaluate(ids, ids[:, -1], verbose=0, return_dict=True)
    assert set(results) == {"loss"}


def test_the_task_reads_its_architecture_from_the_backbone():
    from keras_memnet.models import MemN2NBackbone

    model = small_model(weight_tying="adjacent", hops=2, dropout=0.2)
    backbone = model.backbone
    assert isinstance(backbone, MemN2NBackbone)
    assert (model.hops, model.memory_size, model.dropout) == (2, MEMORY, 0.2)
    assert model.memory_embeddings is backbone.memory_embeddings
    assert model.temporal_encodings is backbone.temporal_encodings
    assert model.memory_hops is backbone.memory_hops
    assert model.embedding_layers == backbone.memory_embeddings
    # The config keys are those of models saved before the backbone.
    assert set(model.get_config()) == {
        "name",
        "trainable",
        "dtype",
        "vocabulary_size",
        "hops",
        "memory_size",
        "embedding_dim",
        "linear_units",
        "weight_tying",
        "dropout",
        "query_value",
        "init_stddev",
        "vocabulary",
        "output",
        "adaptive_cutoffs",
        "unseen_mixture",
    }


class PairBatches(keras.utils.PyDataset):
    """`(ids, targets)` in batches of two; counts its epochs."""

    def __init__(self, ids, targets):
        super().__init__()
        self.ids, self.targets = ids, targets
        self.epochs_ended = 0

    def __len__(self):
        return len(self.ids) // 2

    def __getitem__(self, index):
        rows = slice(2 * index, 2 * index + 2)
        return self.ids[rows], self.targets[rows]

    def on_epoch_end(self):
        self.epochs_ended += 1


def id_containers(ids, targets):
    """The same batches as NumPy arrays, tensors, a `tf.data.Dataset`, a
    Python generator and a `keras.utils.PyDataset`."""
    import tensorflow as tf

    return {
        "numpy": ((ids, targets), {}),
        "tensor": (
            (
                keras.ops.convert_to_tensor(ids),
                keras.ops.convert_to_tensor(targets),
            ),
            {},
        ),
        "dataset": (
            (tf.data.Dataset.from_tensor_slices((ids, targets)).batch(2),),
            {},
        ),
        "generator": (
            (
                (
                    (ids[i : i + 2], targets[i : i + 2])
                    for i in range(0, len(ids), 2)
                ),
            ),
            {},
        ),
        "pydataset": ((PairBatches(ids, targets),), {}),
    }


CONTAINERS = ["numpy", "tensor", "dataset", "generator", "pydataset"]


@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize("method", ["fit", "evaluate"])
def test_ids_and_targets_are_checked_in_every_container(container, method):
    model = small_model()
    model.compile(optimizer="sgd")
    before = numpy_weights(model)
    ids, targets = random_ids(), np.ones((4,), "int32")
    bad_ids = ids.copy()
    bad_ids[1, 3] = VOCAB
    bad_targets = targets.copy()
    # In the first batch of two: no step may run before the check fails.
    bad_targets[1] = VOCAB + 5
    for x, y, expected in [
        (
            bad_ids,
            targets,
            rf"`x`.*\[0, vocabulary_size={VOCAB}\).* to "
            f"{VOCAB}",
        ),
        (
            ids,
            bad_targets,
            rf"(`y`|targets of `x`).*\[0, vocabulary_size="
            rf"{VOCAB}\).* to {VOCAB + 5}",
        ),
        (ids.astype("float32"), targets, "`x`.*integer token ids"),
    ]:
        args, kwargs = id_containers(x, y)[container]
        with pytest.raises(ValueError, match=expected):
            getattr(model, method)(*args, verbose=0, **kwargs)
    # Nothing was trained on the bad batches.
    after = numpy_weights(model)
    for name, want in before.items():
        np.testing.assert_array_equal(after[name], want)


@pytest.mark.parametrize("container", ["tensor", "dataset", "generator"])
def test_predict_checks_ids_of_tensors_and_datasets(container):
    import tensorflow as tf

    model = small_model()
    ids = random_ids()
    ids[0, 0] = -1
    x = {
        "tensor": lambda: keras.ops.convert_to_tensor(ids),
        "dataset": lambda: tf.data.Dataset.from_tensor_slices(ids).batch(2),
        "generator": lambda: (ids[i : i + 2] for i in range(0, len(ids), 2)),
    }[container]()
    with pytest.raises(ValueError, match=r"`x`.*from -1"):
        model.predict(x, verbose=0)


def test_checked_generators_and_pydatasets_still_train():
    # The checking wrappers pass the batches through unchanged, and the
    # PyDataset's epoch hooks too.
    ids, targets = random_ids(), np.ones((4,), "int32")

    def trained_weights(*args, **kwargs):
        keras.utils.set_random_seed(0)
        model = small_model()
        model.compile(optimizer="sgd")
        model.fit(*args, verbose=0, **kwargs)
        return numpy_weights(model)

    reference = trained_weights(ids, targets, batch_size=2, shuffle=False)
    batches = PairBatches(ids, targets)
    for data in (id_containers(ids, targets)["generator"][0][0], batches):
        trained = trained_weights(data)
        for name, want in reference.items():
            np.testing.assert_allclose(
                trained[name], want, rtol=1e-6, atol=1e-6
            )
    # Forwarded (Keras also calls it once when `fit` starts).
    assert batches.epochs_ended > 0


def test_fit_survives_a_tool_that_wraps_keras_model_fit(monkeypatch):
    # Profilers and autologgers replace `keras.Model.fit` with a
    # `(*args, **kwargs)` wrapper; the model's own `fit` must still pass
    # every argument through by its name.
    fit, seen = keras.Model.fit, []

    def wrapped_fit(self, *args, **kwargs):
        seen.append(kwargs.get("epochs"))
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", wrapped_fit)
    model = small_model()
    model.compile(optimizer="sgd")
    history = model.fit(
        random_ids(), np.ones((4,), "int32"), batch_size=2, epochs=2, verbose=0
    )
    assert len(history.history["loss"]) == 2
    assert seen == [2]


def test_generate_refuses_top_k_beams_and_lengths_it_cannot_serve():
    model = small_model()
    prompt = np.array([1, 2, 3])
    with pytest.raises(ValueError, match=rf"top_k.*\[1, {VOCAB}\]"):
        model.generate(prompt, max_length=2, sampler="top_k", top_k=VOCAB + 1)
    with pytest.raises(ValueError, match="num_beams"):
        model.generate(
            prompt, max_length=2, sampler="beam", num_beams=VOCAB + 1
        )
    with pytest.raises(ValueError, match="max_length"):
        model.generate(prompt, max_length=10**12)
    # NumPy integers are lengths like any other.
    assert model.generate(prompt, max_length=np.int64(3)).shape == (3,)
    # top_k equal to the vocabulary is the whole distribution, allowed.
    assert model.generate(
        prompt, max_length=np.int32(2), sampler="top_k", top_k=np.int64(VOCAB)
    ).shape == (2,)
