"""The path users take to several devices, for
tests/test_keras_distribution.py.

python keras_distribution_worker.py OUTPUT.json

Two devices in this process (JAX: set XLA_FLAGS=
--xla_force_host_platform_device_count=2 before starting; TensorFlow: two
logical CPU devices, made here). Each case builds a model, compiles it
with `MemN2NLMRecipe(batch_size=32)`'s optimizer and trains it with
`recipe.callbacks()` and a `TrainingCheckpoint`, on data that ends with a
partial batch of an odd number of rows, then evaluates it; once on one
device (no engine), once as Keras's guides set up several:

- JAX: `keras.distribution.set_distribution(keras.distribution.
  DataParallel(devices=keras.distribution.list_devices()))`;
- TensorFlow: everything inside `tf.distribute.MirroredStrategy(...)
  .scope()`.

The cases cover the three models and the kinds of data `fit` takes:

- `memn2n-windows`: the issue's run, `MemN2NLM` (2 hops, memory 8, 16
  dimensions) on 24,000 bytes of the bundled text8 sample, shuffled
  `tf.data` windows in batches of 32, validation in batches of 128;
- `memn2n-sequences`: the sequence form as NumPy arrays with sample
  weights, `validation_data` arrays;
- `char-pydataset`: `CharMemN2N` on `keras.utils.PyDataset` windows, and
  evaluated on a Python generator;
- `translator-tfdata`: `Seq2SeqTranslator` on shuffled
  `sentence_pair_dataset` batches, whose sentences differ in length;
- `translator-arrays`: the same model on `encode_pairs` arrays with
  `validation_split`.

OUTPUT.json maps each case to `{"one": ..., "two": ...}`: the `fit`
history and the `evaluate` figures of each run.
"""

import json
import sys
import tempfile

import keras
import numpy as np

EPOCHS = 3


def one_device():
    """No engine: the run Keras's guides compare with."""
    if keras.config.backend() == "jax":
        keras.distribution.set_distribution(None)
    return _no_scope()


def two_devices():
    """The engine of Keras's guides, over both devices."""
    if keras.config.backend() == "jax":
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(
                devices=keras.distribution.list_devices()
            )
        )
        return _no_scope()
    import tensorflow as tf

    # One strategy for the process: two would share collective keys.
    if not _STRATEGY:
        _STRATEGY.append(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    return _STRATEGY[0].scope()


_STRATEGY = []


class _no_scope:
    def __enter__(self):
        return self

    def __exit__(self, *error):
        return False


def train(build, fit_data, evaluate_data, fit_kwargs=None):
    """Builds, compiles, trains and evaluates one model; returns its
    figures. (`TrainingCheckpoint` needs a built model.)"""
    from keras_memnet.callbacks import TrainingCheckpoint
    from keras_memnet.recipes import MemN2NLMRecipe

    keras.utils.set_random_seed(1)
    recipe = MemN2NLMRecipe(batch_size=32)
    model = build()
    model.compile(
        optimizer=recipe.optimizer(),
        **({} if model.__class__.__name__ == "Seq2SeqTranslator" else _lm()),
    )
    callbacks = recipe.callbacks()
    with tempfile.TemporaryDirectory() as checkpoints:
        callbacks.append(TrainingCheckpoint(checkpoints, callbacks))
        history = model.fit(
            **fit_data(),
            epochs=EPOCHS,
            callbacks=callbacks,
            verbose=0,
            **(fit_kwargs or {}),
        )
    figures = model.evaluate(**evaluate_data(), return_dict=True, verbose=0)
    return {
        "history": {
            name: [float(value) for value in values]
            for name, values in history.history.items()
        },
        "evaluate": {name: float(value) for name, value in figures.items()},
    }


def _lm():
    from keras_memnet.metrics import Perplexity

    return dict(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[Perplexity(from_logits=True)],
    )


def memn2n_windows():
    from keras_memnet.datasets import text8_sample
    from keras_memnet.models import MemN2NLM

    corpus = text8_sample(
        split={
            "train": (0, 20_000),
            "valid": (20_000, 22_000),
            "test": (22_000, 24_000),
        }
    )

    def build():
        model = MemN2NLM(
            corpus.vocabulary.size, hops=2, memory_size=8, embedding_dim=16
        )
        model.build((None, 8))
        return model

    def fit_data():
        return {
            "x": corpus.windows("train", memory_size=8, batch_size=32, seed=1)
        }

    def evaluate_data():
        return {
            "x": corpus.windows(
                "test", memory_size=8, batch_size=32, shuffle=False
            )
        }

    valid = corpus.windows(
        "valid", memory_size=8, batch_size=128, shuffle=False
    )
    # The datasets shuffle themselves, reproducibly from `seed`.
    kwargs = {"validation_data": valid, "shuffle": False}
    rows = {split: corpus.num_windows(split, 8) for split in ("train", "test")}
    return build, fit_data, evaluate_data, kwargs, rows


def memn2n_sequences():
    from keras_memnet.datasets import text8_sample
    from keras_memnet.models import MemN2NLM

    corpus = text8_sample(
        split={
            "train": (0, 6_000),
            "valid": (6_000, 7_000),
            "test": (7_000, 8_000),
        },
        min_count=1,
    )
    # Odd numbers of rows: the last batches are partial and odd.
    train = corpus.sequence_arrays("train", memory_size=6, sequence_length=5)
    train = tuple(part[:195] for part in train)
    valid = corpus.sequence_arrays("valid", memory_size=6, sequence_length=5)
    valid = tuple(part[:29] for part in valid)

    def build():
        model = MemN2NLM(
            corpus.vocabulary.size, hops=2, memory_size=6, embedding_dim=16
        )
        model.build((None, 6 + 5 - 1))
        return model

    kwargs = {
        "validation_data": valid,
        "batch_size": 8,
        "shuffle": False,
    }
    return (
        build,
        lambda: dict(zip(("x", "y", "sample_weight"), train)),
        lambda: dict(zip(("x", "y", "sample_weight"), valid), batch_size=16),
        kwargs,
        {"train": len(train[0]), "test": len(valid[0])},
    )


class WindowBatches(keras.utils.PyDataset):
    """Windows of a token array in batches, as a `keras.utils.PyDataset`."""

    def __init__(self, contexts, targets, batch_size):
        super().__init__()
        self.contexts, self.targets = contexts, targets
        self.batch_size = batch_size

    def __len__(self):
        return -(-len(self.contexts) // self.batch_size)

    def __getitem__(self, index):
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.contexts[rows], self.targets[rows]


def char_pydataset():
    from keras_memnet.datasets import text8_sample
    from keras_memnet.models import CharMemN2N

    corpus = text8_sample(
        split={
            "train": (0, 1_500),
            "valid": (1_500, 2_000),
            "test": (2_000, 2_500),
        },
        level="char",
    )
    memory = 12

    def windows(tokens):
        contexts = np.stack(
            [tokens[i : i + memory] for i in range(len(tokens) - memory)]
        ).astype("int32")
        return contexts, tokens[memory:].astype("int32")

    # Odd numbers of rows: the last batches are partial and odd.
    train = tuple(part[:1487] for part in windows(corpus.train))
    valid = tuple(part[:485] for part in windows(corpus.valid))

    def build():
        model = CharMemN2N(hops=2, memory_size=memory, embedding_dim=16)
        model.build((None, memory))
        return model

    def evaluate_data():
        # A Python generator, a partial last batch included.
        return {
            "x": (
                (valid[0][i : i + 16], valid[1][i : i + 16])
                for i in range(0, len(valid[0]), 16)
            )
        }

    kwargs = {"validation_data": WindowBatches(*valid, 32)}
    return (
        build,
        lambda: {"x": WindowBatches(*train, 32)},
        evaluate_data,
        kwargs,
        {"train": len(train[0]), "test": len(valid[0])},
    )


def sentence_pairs(count=90):
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(12)]
    pairs = []
    for _ in range(count):
        source = list(rng.choice(words, size=rng.integers(2, 7)))
        pairs.append((" ".join(source), " ".join(reversed(source))))
    return pairs


def translator_model(pairs):
    from keras_memnet.datasets.sentence_pairs import build_vocabularies
    from keras_memnet.models import Seq2SeqTranslator

    vocabularies = build_vocabularies(pairs)

    def build():
        model = Seq2SeqTranslator(
            *vocabularies, embedding_dim=8, units=16, num_layers=1, seed=1
        )
        model(model.encode_pairs(pairs[:2])[0])
        return model

    return build, vocabularies


def translator_tfdata():
    from keras_memnet.datasets.sentence_pairs import sentence_pair_dataset

    pairs = sentence_pairs()
    build, vocabularies = translator_model(pairs)
    train, valid = pairs[:75], pairs[75:]

    def fit_data():
        return {
            "x": sentence_pair_dataset(
                train, *vocabularies, batch_size=8, seed=1
            )
        }

    def evaluate_data():
        return {
            "x": sentence_pair_dataset(
                valid, *vocabularies, batch_size=8, shuffle=False
            )
        }

    kwargs = {"validation_data": evaluate_data()["x"], "shuffle": False}
    return (
        build,
        fit_data,
        evaluate_data,
        kwargs,
        {"train": len(train), "test": len(valid)},
    )


def translator_arrays():
    pairs = sentence_pairs(84)
    build, _ = translator_model(pairs)
    x, y = build().encode_pairs(pairs)
    kwargs = {"batch_size": 8, "shuffle": False, "validation_split": 0.2}
    # Keras's split: the last 17 of the 84 rows.
    return (
        build,
        lambda: {"x": x, "y": y},
        lambda: {
            "x": {k: v[67:] for k, v in x.items()},
            "y": y[67:],
            "batch_size": 8,
        },
        kwargs,
        {"train": 67, "test": 17},
    )


CASES = {
    "memn2n-windows": memn2n_windows,
    "memn2n-sequences": memn2n_sequences,
    "char-pydataset": char_pydataset,
    "translator-tfdata": translator_tfdata,
    "translator-arrays": translator_arrays,
}


def main(output, *names):
    if keras.config.backend() == "tensorflow":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
    results = {}
    for name in names or CASES:
        build, fit_data, evaluate_data, kwargs, rows = CASES[name]()
        results[name] = {"rows": rows}
        for run, engine in (("one", one_device), ("two", two_devices)):
            print(f"{name}: {run} device(s)", file=sys.stderr, flush=True)
            with engine():
                results[name][run] = train(
                    build, fit_data, evaluate_data, kwargs
                )
    with open(output, "w") as file:
        json.dump(results, file)


if __name__ == "__main__":
    main(*sys.argv[1:])
