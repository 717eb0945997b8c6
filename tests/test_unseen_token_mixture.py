import keras
import numpy as np
import pytest
from keras.src import testing

from keras_memnet.datasets import Corpus
from keras_memnet.layers import UnseenTokenMixture
from keras_memnet.models import MemN2NLM
from keras_memnet.recipes import MemN2NLMRecipe
from keras_memnet.recipes import train_memn2n_lm
from keras_memnet.tokenizers import WordVocabulary

VOCAB = 12
# Ids 1 to 7 occur in training (4, 5, 6 and 7 once each); 8 to 11 never do.
TRAINING_IDS = np.array([1, 2, 3, 4, 1, 2, 3, 5, 6, 7, 1, 2])
# Held-out text: 2 of its 8 tokens (9 and 11) were never seen in training.
HELD_OUT_IDS = np.array([1, 2, 9, 3, 4, 11, 1, 2])


def numpy_mixture(logits, seen, mass, unigram_weight=0.0):
    """The mixture written out: (1 - mass) times the softmax over the seen
    ids interpolated with the training unigram, and mass / (number of
    unseen ids) for each unseen id."""
    seen_logits = np.where(seen, logits, -np.inf)
    shifted = seen_logits - seen_logits.max(-1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(-1, keepdims=True)
    unigram = np.bincount(TRAINING_IDS, minlength=VOCAB) / TRAINING_IDS.size
    probs = (1 - unigram_weight) * probs + unigram_weight * unigram
    return np.where(seen, (1 - mass) * probs, mass / (~seen).sum())


def adapted_layer(**kwargs):
    layer = UnseenTokenMixture(VOCAB)
    layer.adapt(TRAINING_IDS, **kwargs)
    return layer


def test_held_out_estimate_is_the_smoothed_share_of_unseen_tokens():
    layer = adapted_layer(held_out_ids=HELD_OUT_IDS)
    # Two of eight held-out tokens, add-one smoothed: 3 / 10.
    assert float(layer.unseen_mass) == pytest.approx(3 / 10)
    # 8, 9, 10 and 11 are unseen; padding (0) counts as seen.
    assert layer.unseen_count == 4
    seen = keras.ops.convert_to_numpy(layer.seen)
    np.testing.assert_array_equal(np.flatnonzero(seen == 0), [8, 9, 10, 11])


def test_good_turing_estimate_without_held_out_text():
    layer = adapted_layer()
    # Four of the twelve training tokens are of words seen once.
    assert float(layer.unseen_mass) == pytest.approx(4 / 12)


def test_given_mass_overrides_the_estimates():
    layer = adapted_layer(held_out_ids=HELD_OUT_IDS, unseen_mass=0.05)
    assert float(layer.unseen_mass) == pytest.approx(0.05)


@pytest.mark.parametrize("shape", [(3, VOCAB), (2, 5, VOCAB)])
def test_matches_numpy_and_sums_to_one(shape):
    layer = adapted_layer(held_out_ids=HELD_OUT_IDS)
    logits = np.random.default_rng(0).normal(size=shape).astype("float32") * 3
    probs = np.exp(keras.ops.convert_to_numpy(layer(logits)))
    seen = keras.ops.convert_to_numpy(layer.seen) > 0
    np.testing.assert_allclose(
        probs, numpy_mixture(logits, seen, 0.3), rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-6)


def test_unigram_weight_is_the_held_out_maximum_likelihood():
    layer = adapted_layer(held_out_ids=HELD_OUT_IDS)
    rng = np.random.default_rng(8)
    logits = rng.normal(size=(40, VOCAB)).astype("float32") * 4
    targets = rng.choice(TRAINING_IDS, size=40)
    log_probs = keras.ops.convert_to_numpy(layer(logits))
    picked = np.take_along_axis(log_probs, targets[:, None], -1)[:, 0]
    weight = layer.fit_unigram_weight(picked, targets)
    seen = keras.ops.convert_to_numpy(layer.seen) > 0

    def held_out_nll(mu):
        probs = numpy_mixture(logits, seen, 0.3, mu)
        return -np.log(probs[np.arange(40), targets]).sum()

    # EM's answer beats every other weight on a fine grid.
    grid = np.linspace(0, 0.99, 199)
    assert 0 < weight < 1
    assert held_out_nll(weight) <= min(held_out_nll(mu) for mu in grid) + 1e-6
    probs = np.exp(keras.ops.convert_to_numpy(layer(logits)))
    np.testing.assert_allclose(
        probs, numpy_mixture(logits, seen, 0.3, weight), rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-6)
    # Refused once the weight is set: the inputs would be mixed already.
    with pytest.raises(ValueError, match="unigram weight at 0"):
        layer.fit_unigram_weight(picked, targets)


def test_every_id_seen_is_the_plain_softmax():
    layer = UnseenTokenMixture(VOCAB)
    mass = layer.adapt(np.arange(1, VOCAB), held_out_ids=HELD_OUT_IDS)
    assert mass == 0.0 and layer.unseen_count == 0
    logits = np.random.default_rng(1).normal(size=(4, VOCAB)).astype("float32")
    expected = keras.ops.convert_to_numpy(keras.ops.log_softmax(logits))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(logits)), expected, atol=1e-5
    )


def test_gradients_reach_only_the_seen_logits():
    layer = adapted_layer(held_out_ids=HELD_OUT_IDS)
    logits = keras.Variable(np.zeros((2, VOCAB), "float32"))
    target = 3  # a seen id
    if keras.config.backend() == "jax":
        import jax

        grad = jax.grad(lambda z: -layer(z)[:, target].sum())(logits.value)
    elif keras.config.backend() == "torch":
        import torch

        value = torch.zeros((2, VOCAB), requires_grad=True)
        (-layer(value)[:, target].sum()).backward()
        grad = value.grad
    else:
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = -tf.reduce_sum(layer(logits.value)[:, target])
        grad = tape.gradient(loss, logits.value)
    grad = keras.ops.convert_to_numpy(grad)
    assert np.all(np.isfinite(grad))
    np.testing.assert_array_equal(grad[:, 8:], 0.0)
    assert np.all(grad[:, target] < 0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"training_ids": [1, 2, VOCAB]}, "training_ids"),
        ({"training_ids": [1.5, 2.0]}, "training_ids"),
        ({"training_ids": []}, "training_ids"),
        ({"training_ids": [1, 2], "held_out_ids": [-1]}, "held_out_ids"),
        ({"training_ids": [1, 2], "unseen_mass": 1.0}, "unseen_mass"),
        ({"training_ids": [1, 2], "unseen_mass": 0}, "unseen_mass"),
    ],
)
def test_bad_adapt_arguments_are_refused_and_change_nothing(kwargs, message):
    layer = adapted_layer(held_out_ids=HELD_OUT_IDS)
    with pytest.raises(ValueError, match=message):
        layer.adapt(**kwargs)
    assert float(layer.unseen_mass) == pytest.approx(0.3)
    assert layer.unseen_count == 4


def test_rejects_a_vocabulary_of_another_size():
    with pytest.raises(ValueError, match="vocabulary_size"):
        UnseenTokenMixture(VOCAB)(np.zeros((2, VOCAB + 1), "float32"))


def small_model(**kwargs):
    model = MemN2NLM(
        VOCAB,
        hops=2,
        memory_size=4,
        embedding_dim=8,
        unseen_mixture=True,
        **kwargs,
    )
    model.build((None, 4))
    model.unseen_mixture.adapt(TRAINING_IDS, HELD_OUT_IDS)
    return model


@pytest.mark.parametrize("output", ["softmax", "adaptive"])
def test_model_outputs_a_distribution_over_the_whole_vocabulary(output):
    model = small_model(output=output)
    model.compile(optimizer="adam")
    windows = np.random.default_rng(2).integers(1, 8, size=(16, 4))
    targets = np.random.default_rng(3).integers(1, 8, size=(16,))
    model.fit(windows, targets, epochs=2, verbose=0)
    for inputs in (windows, np.concatenate([windows, windows], axis=1)):
        probs = np.exp(model.predict(inputs, verbose=0))
        np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
        # Each unseen id gets its equal share of the held-out estimate.
        np.testing.assert_allclose(probs[..., 8:], 0.3 / 4, rtol=1e-5)
    # Generation draws from the same distribution, unseen ids included.
    assert model.generate(windows[:2], max_length=3).shape == (2, 3)


def test_mixture_survives_saving_and_evaluates_the_same(tmp_path):
    model = small_model()
    model.compile()
    windows = np.random.default_rng(4).integers(1, VOCAB, size=(16, 4))
    targets = np.random.default_rng(5).integers(1, VOCAB, size=(16,))
    before = model.evaluate(windows, targets, verbose=0, return_dict=True)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.unseen_mixture.unseen_count == 4
    after = loaded.evaluate(windows, targets, verbose=0, return_dict=True)
    assert after["perplexity"] == pytest.approx(before["perplexity"])
    assert MemN2NLM.from_config(model.get_config()).unseen_mixture is not None


def test_train_memn2n_lm_turns_it_on_for_words_unseen_in_training():
    words = [f"w{i}" for i in range(30)]
    rng = np.random.default_rng(6)
    vocabulary = WordVocabulary.from_text(" ".join(words), unk_token=None)
    ids = vocabulary.encode(" ".join(words))
    # Training never shows the last five words; validation and test do.
    train = rng.choice(ids[:25], size=400)
    valid = rng.choice(ids, size=100)
    corpus = Corpus(train, valid, rng.choice(ids, size=100), vocabulary)
    recipe = MemN2NLMRecipe(batch_size=8, sequence_length=4)
    run = train_memn2n_lm(
        corpus,
        hops=1,
        memory_size=3,
        embedding_dim=8,
        recipe=recipe,
        epochs=1,
        verbose=0,
    )
    mixture = run["model"].unseen_mixture
    assert mixture is not None and mixture.unseen_count == 5
    unseen_in_valid = np.isin(valid, ids[25:]).sum()
    assert float(mixture.unseen_mass) == pytest.approx(
        (unseen_in_valid + 1) / (valid.size + 2)
    )
    # Fitted after training: uniform training text, a near-untrained model.
    assert 0 < float(mixture.unigram_weight) < 1
    off = train_memn2n_lm(
        corpus,
        hops=1,
        memory_size=3,
        embedding_dim=8,
        recipe=recipe,
        epochs=1,
        verbose=0,
        unseen_mixture=False,
        evaluate=(),
    )
    assert off["model"].unseen_mixture is None


class UnseenTokenMixtureLayerTest(testing.TestCase):
    def test_run_layer_test(self):
        self.run_layer_test(
            UnseenTokenMixture,
            init_kwargs={"vocabulary_size": VOCAB},
            input_shape=(3, 5, VOCAB),
            expected_output_shape=(3, 5, VOCAB),
            expected_output_dtype="float32",
            expected_num_trainable_weights=0,
            # The seen-id marks, the unigram, the unseen share and the
            # unigram's weight.
            expected_num_non_trainable_weights=4,
            expected_num_seed_generators=0,
        )

    def test_run_layer_test_output_values(self):
        # Before `adapt` every id counts as seen: the plain log-softmax.
        logits = np.random.default_rng(7).normal(size=(4, VOCAB))
        logits = logits.astype("float32")
        self.run_layer_test(
            UnseenTokenMixture,
            init_kwargs={"vocabulary_size": VOCAB},
            input_data=logits,
            expected_output=keras.ops.log_softmax(logits),
            expected_num_non_trainable_weights=4,
        )
