"""Character-level text8: CharMemN2N against a same-budget LSTM.

Trains a `keras_memnet.models.CharMemN2N` (Sukhbaatar et al., 2015, "End-To-
End Memory Networks", read at the character level) on the shared 12 MB text8
prefix within a wall-clock budget, then a character-level Keras LSTM of
about the same number of parameters for the same budget, and prints test
bits per character (BPC) and perplexity for:

- the unigram baseline (character frequencies of the training split);
- CharMemN2N;
- the LSTM;

and greedy ("ML") and sampled ("RC") continuations of test prompts.

The split is fixed: train on bytes [0, 10,000,000), validate on
[10,000,000, 11,000,000) (its first `--valid-chars` characters, for the
learning-rate annealing), test on [11,000,000, end) (its first
`--eval-chars` characters are scored). Every model is scored on the same
test characters: those from position `memory_size` on, each with the
`memory_size` characters before it available as context (the LSTM reads
them as a burn-in).

The memory network trains with `keras_memnet.recipes.MemN2NLMRecipe`
(global gradient-norm clipping and plateau annealing of the learning rate,
batch 128) with Adam at 2e-3 by default: in pilots of 300 steps, the
recipe's SGD (1.28 on the mean loss) and Adam on plain windows both stayed
at the unigram level (about 4.1 BPC), the earlier study's failure. What
made it learn is cutting half of each batch's contexts to a random shorter
length (`RandomWindows`, `--short-context-fraction`): see that class for
why. The LSTM trains with Adam on random 100-character sequences.

Run from the repository root (each model on the backend that trained it
fastest on a 2-core CPU; `--models` picks one):

    KERAS_BACKEND=jax python examples/train_char_memn2n.py --models memn2n \\
        --minutes 20 --output runs/char_memn2n.keras
    KERAS_BACKEND=tensorflow python examples/train_char_memn2n.py \\
        --models lstm --minutes 20

`--fast` runs tiny models for a few steps on the bundled text8 sample (a
smoke test).
"""

import argparse
import math
import pathlib
import time

import keras
import numpy as np

from keras_memnet.datasets import make_windows
from keras_memnet.datasets import text8
from keras_memnet.datasets import text8_sample
from keras_memnet.metrics import BitsPerCharacter
from keras_memnet.metrics import Perplexity
from keras_memnet.models import CharMemN2N
from keras_memnet.recipes import MemN2NLMRecipe

DEFAULT_DATA = (
    pathlib.Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "text8-head12m.txt.gz"
)
SPLIT = {
    "train": (0, 10_000_000),
    "valid": (10_000_000, 11_000_000),
    "test": (11_000_000, None),
}
# The bundled 1,024,000-byte sample, for --fast.
SAMPLE_SPLIT = {
    "train": (0, 900_000),
    "valid": (900_000, 960_000),
    "test": (960_000, None),
}
LN2 = math.log(2.0)


class TrainingTimeLimit(keras.callbacks.Callback):
    """Stops `fit` after the batch that passes a wall-clock limit or a step
    count, and counts the steps."""

    def __init__(self, minutes, max_steps=None):
        super().__init__()
        self.seconds = 60.0 * minutes
        self.max_steps = max_steps
        self.steps = 0

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        self.elapsed = time.perf_counter() - self.start
        if self.elapsed > self.seconds or (
            self.max_steps is not None and self.steps >= self.max_steps
        ):
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        self.elapsed = time.perf_counter() - self.start


class RandomWindows(keras.utils.PyDataset):
    """Batches of random `(context, next_char)` windows where a fraction of
    the contexts is cut to a random, log-uniform length (left-padded with
    0, which the model masks).

    With a constant first query, the first hop tells memory slots apart
    only by their temporal encodings, and over 400 slots the attention
    starts out uniform, so the gradient that would teach it to look at the
    last few characters is diluted 400 times. Short contexts concentrate
    that signal; the full-length rows keep training matched to evaluation.
    """

    def __init__(self, tokens, memory_size, batch_size, steps, seed,
                 short_fraction):
        super().__init__()
        self.tokens = tokens
        self.memory_size = memory_size
        self.batch_size = batch_size
        self.steps = steps
        self.num_short = int(round(short_fraction * batch_size))
        self.rng = np.random.default_rng(seed)
        self.offsets = np.arange(-memory_size, 0)

    def __len__(self):
        return self.steps

    def __getitem__(self, index):
        positions = self.rng.integers(
            self.memory_size, self.tokens.size, self.batch_size
        )
        contexts = self.tokens[positions[:, None] + self.offsets]
        lengths = np.exp(
            self.rng.uniform(0.0, math.log(self.memory_size), self.num_short)
        ).astype("int64")
        slots = np.arange(self.memory_size)
        cut = slots[None, :] < (self.memory_size - lengths)[:, None]
        contexts[: self.num_short][cut] = 0
        return contexts, self.tokens[positions]


class RandomSequences(keras.utils.PyDataset):
    """Batches of random `(chars[i:i+n], chars[i+1:i+n+1])` training pairs,
    for the LSTM."""

    def __init__(self, tokens, length, batch_size, steps, seed):
        super().__init__()
        self.tokens = tokens
        self.length = length
        self.batch_size = batch_size
        self.steps = steps
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        return self.steps

    def __getitem__(self, index):
        starts = self.rng.integers(
            0, self.tokens.size - self.length - 1, self.batch_size
        )
        rows = self.tokens[starts[:, None] + np.arange(self.length + 1)]
        return rows[:, :-1], rows[:, 1:]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=None,
                        help="text8 prefix (default: the shared 12 MB one)")
    parser.add_argument("--minutes", type=float, default=20.0,
                        help="training budget of each model (default 20)")
    parser.add_argument("--lstm-minutes", type=float, default=None,
                        help="LSTM budget (default: --minutes)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="also stop each model after this many steps")
    parser.add_argument("--models", default="memn2n,lstm",
                        help="comma-separated subset of memn2n,lstm")
    parser.add_argument("--hops", type=int, default=12)
    parser.add_argument("--memory-size", type=int, default=400)
    parser.add_argument("--embedding-dim", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--optimizer", choices=MemN2NLMRecipe.OPTIMIZERS,
                        default="adam")
    parser.add_argument("--lr", type=float, default=None,
                        help="Keras (mean-loss) learning rate; default: 2e-3 "
                        "for adam, else the recipe's (1.28 for sgd at batch "
                        "128, 0.05 for adagrad)")
    parser.add_argument("--short-context-fraction", type=float, default=0.5,
                        help="fraction of each CharMemN2N batch whose "
                        "contexts are cut to a random log-uniform length "
                        "(0: plain random windows from the tf.data pipeline)")
    parser.add_argument("--steps-per-epoch", type=int, default=250,
                        help="training steps between validations")
    parser.add_argument("--valid-chars", type=int, default=20_000)
    parser.add_argument("--eval-chars", type=int, default=200_000,
                        help="test characters scored (0: the whole split)")
    parser.add_argument("--lstm-units", type=int, default=None,
                        help="default: about CharMemN2N's parameter count")
    parser.add_argument("--lstm-embedding-dim", type=int, default=32)
    parser.add_argument("--lstm-length", type=int, default=100,
                        help="LSTM training sequence length")
    parser.add_argument("--lstm-batch-size", type=int, default=64)
    parser.add_argument("--lstm-lr", type=float, default=2e-3)
    parser.add_argument("--sample-length", type=int, default=120)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", default=None,
                        help="save the trained CharMemN2N here (.keras)")
    parser.add_argument("--fast", action="store_true",
                        help="tiny models, a few steps, the bundled sample")
    parser.add_argument("--verbose", type=int, default=2)
    args = parser.parse_args(argv)
    if args.fast:
        args.hops, args.memory_size, args.embedding_dim = 2, 32, 16
        args.max_steps = args.max_steps or 30
        args.steps_per_epoch = 10
        args.valid_chars, args.eval_chars = 1_000, 2_000
        args.lstm_length, args.lstm_batch_size = 20, 16
        args.sample_length = 20
        args.verbose = 0
    args.models = [name.strip() for name in args.models.split(",")]
    for name in args.models:
        if name not in ("memn2n", "lstm"):
            parser.error(f"--models: unknown model {name!r}")
    if args.lr is None and args.optimizer == "adam":
        args.lr = 2e-3
    if args.lstm_minutes is None:
        args.lstm_minutes = args.minutes
    return args


def load_corpus(args):
    if args.data is None and (args.fast or not DEFAULT_DATA.exists()):
        return text8_sample(split=SAMPLE_SPLIT, level="char")
    return text8(args.data or DEFAULT_DATA, split=SPLIT, level="char")


def unigram_bits(train, targets, vocabulary_size):
    """BPC of character frequencies counted on `train` (add-one smoothed
    over the symbols, never `<pad>`)."""
    counts = np.bincount(train, minlength=vocabulary_size).astype("float64")
    counts[1:] += 1.0
    probabilities = counts / counts.sum()
    return float(-np.log2(probabilities[targets]).mean())


def lstm_units_for(parameters, embedding_dim, vocabulary_size):
    """LSTM width whose Embedding-LSTM-Dense stack has about `parameters`."""
    # 4 h^2 + (4 e + 4 + v) h + (e v + v) = parameters
    a, b = 4.0, 4.0 * embedding_dim + 4 + vocabulary_size
    c = embedding_dim * vocabulary_size + vocabulary_size - parameters
    return max(8, int(round((-b + math.sqrt(b * b - 4 * a * c)) / (2 * a))))


def build_lstm(vocabulary_size, embedding_dim, units):
    model = keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            keras.layers.Embedding(vocabulary_size, embedding_dim),
            keras.layers.LSTM(units, return_sequences=True),
            keras.layers.Dense(vocabulary_size),
        ],
        name="char_lstm",
    )
    return model


def lstm_test_bits(model, tokens, first_target, burn_in, chunk=1000,
                   batch_size=32):
    """Mean NLL in bits of `tokens[first_target:]`, each chunk of targets
    read after `burn_in` characters of context (as the memory network)."""
    rows, target_rows = [], []
    for start in range(first_target, tokens.size, chunk):
        stop = min(start + chunk, tokens.size)
        inputs = tokens[start - burn_in - 1 : stop - 1]
        rows.append(inputs)
        target_rows.append(tokens[start:stop])
    length = max(len(row) for row in rows)
    total, count = 0.0, 0
    for begin in range(0, len(rows), batch_size):
        batch_rows = rows[begin : begin + batch_size]
        # Right-pad the last, shorter chunk; its padded steps are not scored.
        padded = np.zeros((len(batch_rows), length), dtype="int32")
        for i, row in enumerate(batch_rows):
            padded[i, : len(row)] = row
        logits = model.predict_on_batch(padded).astype("float64")
        shifted = logits - logits.max(-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
        for i, targets in enumerate(target_rows[begin : begin + batch_size]):
            scored = log_probs[i, burn_in : burn_in + len(targets)]
            total -= scored[np.arange(len(targets)), targets].sum()
            count += len(targets)
    return total / count / LN2


def print_row(name, bits, extra=""):
    print(f"  {name:<28} {bits:7.3f} {2.0 ** bits:11.3f}   {extra}")


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    started = time.perf_counter()
    corpus = load_corpus(args)
    vocabulary = corpus.vocabulary
    memory_size = args.memory_size
    valid = corpus.valid[: args.valid_chars + memory_size]
    test = corpus.test
    if args.eval_chars:
        test = test[: args.eval_chars + memory_size]
    targets = test[memory_size:]
    print(
        f"Corpus {corpus.name} ({corpus.metadata['byte_ranges']}): "
        f"{corpus.train.size:,} train, {valid.size - memory_size:,} valid, "
        f"{targets.size:,} scored test characters; {vocabulary.size} ids."
    )
    print(f"Backend {keras.backend.backend()}. Loaded in "
          f"{time.perf_counter() - started:.0f} s.")

    results = [("unigram (train counts)", unigram_bits(
        corpus.train, targets, vocabulary.size), "")]

    model = CharMemN2N(
        hops=args.hops,
        memory_size=memory_size,
        embedding_dim=args.embedding_dim,
        vocabulary=vocabulary,
    )
    model.build((None, memory_size))
    parameters = model.count_params()

    if "memn2n" in args.models:
        recipe = MemN2NLMRecipe(
            batch_size=args.batch_size,
            # The window form: this example trains on `make_windows`.
            sequence_length=None,
            optimizer=args.optimizer,
            learning_rate=args.lr,
        )
        print(f"\nCharMemN2N: {args.hops} hops, memory {memory_size}, "
              f"{args.embedding_dim} dims, {parameters:,} parameters; "
              f"{recipe}; short-context fraction "
              f"{args.short_context_fraction}")
        model.compile(
            optimizer=recipe.optimizer(),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[BitsPerCharacter(from_logits=True)],
        )
        limit = TrainingTimeLimit(args.minutes, args.max_steps)
        if args.short_context_fraction > 0:
            train_data = RandomWindows(
                corpus.train, memory_size, args.batch_size,
                args.steps_per_epoch, args.seed, args.short_context_fraction,
            )
        else:
            train_data = make_windows(
                corpus.train,
                memory_size=memory_size,
                batch_size=args.batch_size,
                num_windows=args.steps_per_epoch * args.batch_size,
                seed=args.seed,
            )
        model.fit(
            train_data,
            shuffle=False,
            validation_data=make_windows(
                valid, memory_size, batch_size=256, shuffle=False
            ),
            epochs=1_000_000,
            callbacks=[limit] + recipe.callbacks(verbose=1),
            verbose=args.verbose,
        )
        windows = limit.steps * args.batch_size
        print(f"Trained {limit.steps:,} steps ({windows:,} windows) in "
              f"{limit.elapsed:.0f} s.")
        evaluated = time.perf_counter()
        model.compile(
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[
                BitsPerCharacter(from_logits=True),
                Perplexity(from_logits=True),
            ],
        )
        scores = model.evaluate(
            make_windows(test, memory_size, batch_size=256, shuffle=False),
            return_dict=True,
            verbose=0,
        )
        results.append(("CharMemN2N", scores["bits_per_character"],
                        f"{limit.steps:,} steps, {limit.elapsed:.0f} s"))
        print(f"Evaluated in {time.perf_counter() - evaluated:.0f} s "
              f"(perplexity metric {scores['perplexity']:.3f}).")
        if args.output:
            model.save(args.output)
            print(f"Saved {args.output}.")

    if "lstm" in args.models:
        units = args.lstm_units or lstm_units_for(
            parameters, args.lstm_embedding_dim, vocabulary.size
        )
        lstm = build_lstm(vocabulary.size, args.lstm_embedding_dim, units)
        print(f"\nLSTM: {units} units, embedding {args.lstm_embedding_dim}, "
              f"{lstm.count_params():,} parameters; Adam({args.lstm_lr}), "
              f"sequences of {args.lstm_length}, batch {args.lstm_batch_size}.")
        lstm.compile(
            optimizer=keras.optimizers.Adam(args.lstm_lr, global_clipnorm=1.0),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        limit = TrainingTimeLimit(args.lstm_minutes, args.max_steps)
        lstm.fit(
            RandomSequences(corpus.train, args.lstm_length,
                            args.lstm_batch_size, args.steps_per_epoch,
                            args.seed),
            epochs=1_000_000,
            callbacks=[limit],
            verbose=args.verbose,
        )
        print(f"Trained {limit.steps:,} steps in {limit.elapsed:.0f} s.")
        bits = lstm_test_bits(lstm, test, memory_size, memory_size - 1)
        results.append(("LSTM", bits,
                        f"{limit.steps:,} steps, {limit.elapsed:.0f} s"))

    print(f"\nTest ({targets.size:,} characters):")
    print(f"  {'model':<28} {'BPC':>7} {'perplexity':>11}")
    for name, bits, extra in results:
        print_row(name, bits, extra)

    if "memn2n" in args.models:
        print("\nCharMemN2N continuations of test prompts "
              "(ML: greedy, RC: random choice):")
        rng = np.random.default_rng(args.seed)
        text = vocabulary.decode(test)
        starts = rng.integers(memory_size, len(text) - memory_size, 3)
        for number, start in enumerate(starts):
            # Start the continuation at a word boundary.
            space = text.find(" ", start)
            start = space + 1 if space >= 0 else start
            prompt = text[max(0, start - memory_size) : start]
            greedy = model.generate(prompt, args.sample_length)
            sampled = model.generate(prompt, args.sample_length,
                                     sampler="random",
                                     seed=args.seed + number)
            print(f"  prompt: ...{prompt[-60:]!r}")
            print(f"    ML: {greedy!r}")
            print(f"    RC: {sampled!r}")
    print(f"\nDone in {time.perf_counter() - started:.0f} s.")
    return results


if __name__ == "__main__":
    main()
