import keras
import numpy as np
from keras import ops

from keras_memnet.utils.arguments import check_float
from keras_memnet.utils.arguments import check_int
from keras_memnet.utils.model_inputs import check_id_range

# Stands in for -inf (the log-sum-exp over the seen ids, the unigram's log of
# 0): exp() of it is exactly 0 in float32, and gradients stay finite.
_LOG_ZERO = -1e9
# EM iterations for the unigram weight; it converges in far fewer.
_EM_ITERATIONS = 200


@keras.saving.register_keras_serializable(package="keras_memnet")
class UnseenTokenMixture(keras.layers.Layer):
    """Smooths a language model's output for words unseen in training.

    A language model over a closed vocabulary (every word type of a corpus,
    as in the earlier text8 study) sees some of its ids in no training
    sentence. Training only ever pushes their logits down, so the model
    gives them almost no probability, however often they occur in new
    text: on the bundled text8 study split they are 14.7% of the test
    tokens. And a model trained on a small text is overconfident on new
    text. This layer turns the model's logits `z` into

    ```
    p(w | context) = (1 - lam) * ((1 - mu) * softmax_seen(z)_w + mu * u_w)
                                                        (w seen in training)
                   = lam / U                            (w never seen)
    ```

    where `softmax_seen` is the softmax over the ids seen in training, `u`
    their unigram distribution in the training text, `U` the number of ids
    never seen and `lam` the probability that the next token is one of
    them: the interpolation of the model with lower-order distributions
    (Jelinek & Mercer, 1980), with `lam` estimated on held-out text or as
    Good (1953) does. It is a proper distribution over the whole
    vocabulary for any `lam` and `mu` in [0, 1).

    `adapt(training_ids, held_out_ids)` marks the seen ids, counts their
    unigram and estimates `lam`: from held-out text, the share of its tokens
    never seen in training (the maximum-likelihood `lam` of this mixture,
    add-one smoothed so that it is never 0); without held-out text, the
    Good-Turing estimate, the share of training tokens whose word occurs
    exactly once. `fit_unigram_weight(log_probs, targets)` then chooses `mu`
    by maximum likelihood on held-out predictions of the trained model
    (`MemN2NLM.adapt_unseen_mixture` does both). Everything is saved with
    the model, as non-trainable weights. Until `adapt` is called every id
    counts as seen and `mu` is 0: the layer returns the log-softmax of its
    input.

    Args:
        vocabulary_size: int >= 2, the size of the last input axis.
        **kwargs: other keyword arguments of `keras.layers.Layer`.

    Input: logits `(..., vocabulary_size)`.
    Output: float32 log-probabilities of the same shape (also logits: their
    softmax is the distribution itself).

    Example:

    ```python
    import numpy as np
    from keras_memnet.layers import UnseenTokenMixture

    mixture = UnseenTokenMixture(vocabulary_size=6)
    # Ids 1, 2 and 3 occur in training; 4 and 5 only in held-out text.
    mixture.adapt(training_ids=[1, 2, 3, 1, 2], held_out_ids=[1, 4, 2, 3])
    log_probs = mixture(np.zeros((1, 6), "float32"))
    np.exp(log_probs).sum()  # 1.0
    float(mixture.unseen_mass)  # (1 + 1) / (4 + 2): one of 4 unseen
    ```
    """

    def __init__(self, vocabulary_size, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = check_int(
            "vocabulary_size", vocabulary_size, minimum=2
        )

    def build(self, input_shape):
        if input_shape[-1] not in (None, self.vocabulary_size):
            raise ValueError(
                f"The last input axis has {input_shape[-1]} logits, but "
                f"vocabulary_size={self.vocabulary_size}. They must match."
            )

        def state(name, shape, initializer):
            return self.add_weight(
                name=name,
                shape=shape,
                initializer=initializer,
                trainable=False,
                dtype="float32",
            )

        vocabulary = (self.vocabulary_size,)
        self.seen = state("seen", vocabulary, "ones")
        self.log_unigram = state(
            "log_unigram",
            vocabulary,
            keras.initializers.Constant(-np.log(self.vocabulary_size)),
        )
        self.unseen_mass = state("unseen_mass", (), "zeros")
        self.unigram_weight = state("unigram_weight", (), "zeros")

    def adapt(
        self,
        training_ids,
        held_out_ids=None,
        unseen_mass=None,
        always_seen=(0,),
    ):
        """Marks the ids seen in training, counts them, estimates `lam`.

        Sets the unigram weight `mu` to 0 (see `fit_unigram_weight`).

        Args:
            training_ids: int token ids of the training text (any shape).
            held_out_ids: optional int token ids of held-out text, such as a
                validation split, to estimate the unseen share on.
            unseen_mass: optional float in (0, 1) to use instead of the
                estimate.
            always_seen: ids counted as seen whether or not they occur
                (default: id 0, the padding, which is never a target).

        Returns:
            The unseen share `lam` now in use (0.0 if every id was seen).
        """
        if not self.built:
            self.build((None, self.vocabulary_size))
        counts = _counts(training_ids, self.vocabulary_size, "training_ids")
        if not counts.sum():
            raise ValueError("`training_ids` is empty.")
        seen = counts > 0
        seen[list(always_seen)] = True
        if unseen_mass is not None:
            mass = check_float(
                "unseen_mass",
                unseen_mass,
                minimum=0,
                maximum=1,
                min_inclusive=False,
                max_inclusive=False,
            )
        elif held_out_ids is not None and np.size(held_out_ids):
            held_out = _counts(
                held_out_ids, self.vocabulary_size, "held_out_ids"
            )
            unseen_tokens = held_out[~seen].sum()
            mass = (unseen_tokens + 1) / (held_out.sum() + 2)
        else:
            # Good-Turing: the words seen once stand for the unseen ones.
            mass = max((counts == 1).sum(), 1) / counts.sum()
        if seen.all():
            mass = 0.0
        with np.errstate(divide="ignore"):
            log_unigram = np.log(counts / counts.sum())
        self.seen.assign(seen.astype("float32"))
        self.log_unigram.assign(np.maximum(log_unigram, _LOG_ZERO))
        self.unseen_mass.assign(float(mass))
        self.unigram_weight.assign(0.0)
        return float(mass)

    def fit_unigram_weight(self, log_probs, targets):
        """Chooses `mu` by maximum likelihood on held-out predictions.

        Runs EM on the one-parameter mixture `(1 - mu) * p_model + mu * u`
        over the held-out targets seen in training (the unseen ones do not
        depend on `mu`).

        Args:
            log_probs: float, this layer's output at each held-out target
                (any shape), computed with `mu = 0` (after `adapt`).
            targets: int, the held-out target ids (same shape).

        Returns:
            The unigram weight `mu` now in use.
        """
        log_probs = np.asarray(log_probs, "float64").reshape(-1)
        targets = np.asarray(targets).reshape(-1)
        if log_probs.shape != targets.shape:
            raise ValueError(
                f"`log_probs` and `targets` must have as many entries. "
                f"Received {log_probs.size} and {targets.size}."
            )
        if _numpy(self.unigram_weight) != 0.0:
            raise ValueError(
                "`log_probs` must be computed with the unigram weight at 0: "
                "call `adapt` first."
            )
        _counts(targets, self.vocabulary_size, "targets")
        seen = _numpy(self.seen)[targets] > 0
        mass = float(_numpy(self.unseen_mass))
        # The model's probability among the seen ids, and the unigram's.
        model = np.exp(log_probs[seen] - np.log1p(-mass))
        unigram = np.exp(_numpy(self.log_unigram)[targets][seen])
        weight = 0.5
        for _ in range(_EM_ITERATIONS if model.size else 0):
            share = weight * unigram
            weight = float(np.mean(share / ((1 - weight) * model + share)))
        weight = min(weight, 1 - 1e-6)
        self.unigram_weight.assign(weight)
        return weight

    @property
    def unseen_count(self):
        """The number of ids marked as never seen in training."""
        return int(self.vocabulary_size - _numpy(self.seen).sum())

    def mixture_state(self):
        """`unseen_count`, `unseen_mass` and `unigram_weight`, as Python
        numbers."""
        return {
            "unseen_count": self.unseen_count,
            "unseen_mass": float(_numpy(self.unseen_mass)),
            "unigram_weight": float(_numpy(self.unigram_weight)),
        }

    def call(self, logits):
        # Float32 throughout, under mixed precision too (which would cast
        # the weights to the compute dtype).
        logits = ops.cast(logits, "float32")
        seen_marks, log_unigram, mass, weight = (
            ops.cast(variable, "float32")
            for variable in (
                self.seen,
                self.log_unigram,
                self.unseen_mass,
                self.unigram_weight,
            )
        )
        seen = seen_marks > 0.5
        log_model = logits - ops.logsumexp(
            ops.where(seen, logits, _LOG_ZERO), axis=-1, keepdims=True
        )
        log_seen = ops.where(
            weight > 0,
            ops.logaddexp(
                ops.log1p(-weight) + log_model,
                ops.log(ops.maximum(weight, 1e-30)) + log_unigram,
            ),
            log_model,
        )
        unseen_count = ops.maximum(
            self.vocabulary_size - ops.sum(seen_marks), 1
        )
        # Clipped so that an unadapted layer (mass 0, no unseen id) stays
        # finite; its `where` then picks the seen branch everywhere.
        log_unseen = ops.log(ops.maximum(mass, 1e-30)) - ops.log(unseen_count)
        return ops.where(seen, log_seen + ops.log1p(-mass), log_unseen)

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, logits):
        return keras.KerasTensor(logits.shape, dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update({"vocabulary_size": self.vocabulary_size})
        return config


def _numpy(variable):
    """A variable's value in NumPy; also a `tf.distribute` strategy's
    `MirroredVariable`, which `float()` and `np.asarray` refuse."""
    return ops.convert_to_numpy(ops.convert_to_tensor(variable))


def _counts(token_ids, vocabulary_size, name):
    """Occurrences of every id in `token_ids`, checked to be in range."""
    token_ids = np.asarray(ops.convert_to_numpy(token_ids)).reshape(-1)
    check_id_range(token_ids, vocabulary_size, name)
    return np.bincount(token_ids.astype("int64"), minlength=vocabulary_size)
