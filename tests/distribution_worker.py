"""Small `train_memn2n_lm` runs on one and on several devices, for
tests/test_distribution.py.

python distribution_worker.py compare OUTPUT.npz
    Two devices in this process (JAX: set XLA_FLAGS=
    --xla_force_host_platform_device_count=2 before starting; TensorFlow:
    two logical CPU devices, made here). For the window and the sequence
    form, trains once with `distribute=None` and once with
    `distribute="data-parallel"`, and once more with a partial last
    training batch on two devices, and the sequence form with an
    adaptive softmax on one device and on two; and on two, the adaptive
    softmax's own summed loss against Keras's. JAX also trains the
    sequence form with `distribute="model-parallel"` (and its one-device
    reference) on an even vocabulary, and records the error an odd one
    gives.
python distribution_worker.py mesh OUTPUT.npz
    JAX on four devices (XLA_FLAGS=--xla_force_host_platform_device_count=4):
    the sequence form on one device, and on a 2 x 2 ("batch", "model")
    mesh of `model_parallel_engine(MemN2NLM, model_parallel_size=2)`.
python distribution_worker.py single OUTPUT.npz
    The multi-process run's configuration on one device.
python distribution_worker.py worker OUTPUT.npz [DISTRIBUTE]
    One of several JAX processes, joined through `jax.distributed` (the
    caller sets `KERAS_DISTRIBUTION_*`), training with `distribute=
    DISTRIBUTE`: "data-parallel" (default) or "model-parallel".

OUTPUT.npz holds the final weights of each run (`<run>/<index>`) and a
JSON summary (`summary`): histories, perplexities, steps, replicas.
"""

import json
import sys
import tempfile

import keras
import numpy as np

FORMS = {"window": None, "sequence": 2}
BATCH = 8
MEMORY = 4
# The paper's clip of 50 on the summed loss, far smaller: every step of
# this tiny model is clipped, so the clipping rule decides the weights.
SUMMED_MAX_NORM = 0.05


def tiny_corpus(form, train_rows, partial_train_rows=0, num_words=15):
    """A corpus with exactly `train_rows * BATCH + partial_train_rows`
    training rows of `form`, and validation and test splits that end with
    a partial batch of an odd number of rows. Its vocabulary has
    `num_words + 2` ids (with <pad> and <unk>)."""
    from keras_memnet.datasets import Corpus
    from keras_memnet.tokenizers import WordVocabulary

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(num_words)]
    text = " ".join(rng.choice(words, size=2000))
    vocabulary = WordVocabulary.from_text(text)
    ids = vocabulary.encode(text)

    def tokens_for(rows, start):
        for size in range(MEMORY + 1, 1000):
            corpus = Corpus(ids[:size], ids[:0], ids[:size], vocabulary)
            if count(corpus, form) == rows:
                return ids[start : start + size]
        raise AssertionError(f"no split of {rows} rows")

    train = tokens_for(train_rows * BATCH + partial_train_rows, 0)
    valid = tokens_for(2 * BATCH + 3, 1000)
    test = tokens_for(BATCH + 1, 1500)
    return Corpus(train, valid, test, vocabulary)


def count(corpus, form):
    if FORMS[form] is None:
        return corpus.num_windows("train", MEMORY)
    return corpus.num_sequences("train", MEMORY, FORMS[form])


def train(
    form, corpus, distribute, checkpoint_dir=None, epochs=2, **model_kwargs
):
    from keras_memnet.recipes import MemN2NLMRecipe
    from keras_memnet.recipes import train_memn2n_lm

    recipe = MemN2NLMRecipe.paper(
        batch_size=BATCH,
        sequence_length=FORMS[form],
        summed_max_norm=SUMMED_MAX_NORM,
    )
    run = train_memn2n_lm(
        corpus,
        hops=2,
        memory_size=MEMORY,
        embedding_dim=8,
        recipe=recipe,
        epochs=epochs,
        patience=epochs,
        seed=5,
        verbose=0,
        checkpoint_dir=checkpoint_dir,
        distribute=distribute,
        **model_kwargs,
    )
    model = run["model"]
    summary = {
        "history": {
            k: [float(v) for v in vs] for k, vs in run["history"].items()
        },
        "perplexity": run["perplexity"],
        "steps": int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
        "max_norm": recipe.max_norm,
        # Rows and columns of each weight on the first device.
        "first_shard_shapes": [
            list(_first_shard(w).shape) for w in model.weights
        ],
    }
    return summary, model.get_weights()


def _first_shard(variable):
    value = variable.value
    if keras.config.backend() == "jax":
        return value.addressable_shards[0].data
    return value


def one_device():
    """The one-device reference engine: none. (On TensorFlow a strategy
    of one device once stood in, because Keras drew one batch of the
    training data before `fit` started; the models now build from the
    data's spec instead, so each epoch draws the order one device does.)"""
    return None


class KerasCrossEntropy(keras.losses.Loss):
    """Sparse cross-entropy on logits that `MemN2NLM` does not recognise,
    so that Keras's own loss reduction runs."""

    def call(self, y_true, y_pred):
        return keras.losses.sparse_categorical_crossentropy(
            y_true, y_pred, from_logits=True
        )


def summed_adaptive_steps(distribute, fast):
    """Two SGD steps of an adaptive-softmax model compiled with the loss
    summed over the batch (`reduction="sum"`, which Keras does not divide
    by the replicas): with `fast`, through the model's own loss (a
    `SparseCategoricalCrossentropy`); else through Keras's loss on the
    model's log-probabilities (`KerasCrossEntropy`). The summary is
    empty."""
    from keras_memnet.distribution import distribution_scope
    from keras_memnet.models import MemN2NLM

    if fast:
        loss = keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction="sum"
        )
    else:
        loss = KerasCrossEntropy(reduction="sum")
    rng = np.random.default_rng(1)
    contexts = rng.integers(1, 17, (2, BATCH, MEMORY), dtype="int32")
    targets = rng.integers(1, 17, (2, BATCH), dtype="int32")
    with distribution_scope(distribute):
        keras.utils.set_random_seed(5)
        model = MemN2NLM(
            17,
            hops=2,
            memory_size=MEMORY,
            embedding_dim=8,
            output="adaptive",
            adaptive_cutoffs=[8],
        )
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
        for x, y in zip(contexts, targets):
            model.train_on_batch(x, y)
    return {}, model.get_weights()


def main(mode, output, distribute="data-parallel"):
    if mode == "compare" and keras.config.backend() == "tensorflow":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
    if mode == "worker":
        from keras_memnet.distribution import data_parallel_engine

        # Joins the processes before JAX computes anything.
        data_parallel_engine()
    from keras_memnet.distribution import distribution_scope
    from keras_memnet.models import MemN2NLM

    runs = {}
    if mode == "compare":
        with distribution_scope("data-parallel") as replicas:
            pass
        for form in FORMS:
            corpus = tiny_corpus(form, train_rows=4)
            runs[f"{form}/one"] = train(form, corpus, one_device())
            with tempfile.TemporaryDirectory() as checkpoints:
                runs[f"{form}/two"] = train(
                    form, corpus, "data-parallel", checkpoints
                )
        partial = tiny_corpus("window", train_rows=4, partial_train_rows=5)
        runs["partial/two"] = train("window", partial, "data-parallel")
        # The adaptive softmax's own loss, which bypasses keras.losses.
        adaptive = dict(output="adaptive", adaptive_cutoffs=[8])
        corpus = tiny_corpus("sequence", train_rows=4)
        runs["adaptive/one"] = train(
            "sequence", corpus, one_device(), **adaptive
        )
        runs["adaptive/two"] = train(
            "sequence", corpus, "data-parallel", **adaptive
        )
        runs["adaptive-sum/keras"] = summed_adaptive_steps(
            "data-parallel", fast=False
        )
        runs["adaptive-sum/fast"] = summed_adaptive_steps(
            "data-parallel", fast=True
        )
        if keras.config.backend() == "jax":
            # An even vocabulary (18 ids) splits across the two devices.
            even = tiny_corpus("sequence", train_rows=4, num_words=16)
            # The plain softmax: these compare how the engines split the
            # vocabulary-sized weights (the unseen-word mixture's are not
            # split, and its fit reads the split logits).
            plain = {"unseen_mixture": False}
            runs["model/one"] = train("sequence", even, None, **plain)
            runs["model/two"] = train(
                "sequence", even, "model-parallel", **plain
            )
            try:
                train("sequence", tiny_corpus("sequence", 4), "model-parallel")
            except ValueError as error:
                odd_vocabulary_error = str(error)
    elif mode == "mesh":
        from keras_memnet.distribution import model_parallel_engine

        # Four devices: two copies of the model, each split over two.
        engine = model_parallel_engine(MemN2NLM, model_parallel_size=2)
        with distribution_scope(engine) as replicas:
            pass
        even = tiny_corpus("sequence", train_rows=4, num_words=16)
        # The plain softmax, as in "compare" above.
        plain = {"unseen_mixture": False}
        runs["mesh/one"] = train("sequence", even, None, **plain)
        runs["mesh/two"] = train("sequence", even, engine, **plain)
    else:
        # An even vocabulary, which "model-parallel" can split.
        corpus = tiny_corpus("sequence", train_rows=3, num_words=16)
        if mode == "single":
            distribute = one_device()
        with distribution_scope(distribute, model=MemN2NLM) as replicas:
            pass
        runs["run"] = train("sequence", corpus, distribute)
    arrays = {
        f"{name}/{i}": w
        for name, (_, weights) in runs.items()
        for i, w in enumerate(weights)
    }
    summary = {name: s for name, (s, _) in runs.items()}
    summary["replicas"] = replicas
    if mode == "compare" and keras.config.backend() == "jax":
        summary["odd_vocabulary_error"] = odd_vocabulary_error
    np.savez(output, summary=json.dumps(summary), **arrays)


if __name__ == "__main__":
    main(*sys.argv[1:])
