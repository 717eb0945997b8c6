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

The memory network trains by default with the package's default recipe,
`keras_memnet.recipes.MemN2NLMRecipe()` (Adam at 2e-3, the global gradient
norm clipped at 1, the rate halved on a validation plateau), in the shape
of the shipped character preset (8 hops, memory 50, 100 dimensions);
`--recipe paper` gives the paper's clipping and annealing with
`--optimizer`'s rate. In pilots of 300 steps, the recipe's SGD
(1.28 on the mean loss) and Adam on plain windows both stayed at the
unigram level (about 4.1 BPC), the earlier study's failure. What made it
learn is short contexts: a share of the training targets sees only the
last few characters (`--short-context-fraction`; see `RandomWindows` for
why). The LSTM trains with Adam on random 100-character sequences.

Two training forms for CharMemN2N (`--form`). Measured at the 20-minute
budget (docs/RESULTS.md, sections 1 and 1b): the window form 3.199 bits
per character; the sequence form 3.893 with rows of 798 targets and a
memory of 400 (too few Adam steps); in the preset's shape (rows of 98
targets) 2.991 with 128 rows validated every 25 steps (the plateau
annealing stopped the run after 624 s), 2.696 validated every 100 steps,
and **2.484** with the current defaults, 32 rows validated every 400
steps:

- `sequence` (default): `MemN2NLM`'s sequence form. A row holds
  `M + T - 1` characters (`M = --memory-size`, `T = --sequence-length`) and
  the model scores all `T` of its windows at once, output `t` predicting
  the character after input position `t + M - 1` from the `M` before it.
  Rows come from `keras_memnet.datasets.make_sequences` in a fresh random
  order every pass over the training split. With a short-context fraction
  `f > 0` (`short_context=True`) the first `M - 1` inputs of every row are
  padded, so a row's first `M - 1` targets see 1, 2, ..., `M - 1` real
  characters and the rest their full `M`: `f = (M - 1) / T`, so the
  fraction sets `T = round((M - 1) / f)` (98 for `M = 50`, `f = 0.5`)
  unless `--sequence-length` is given (then the fraction is only an on/off
  switch and the effective one, `(M - 1) / T`, is printed). The short
  lengths are uniform on 1..M-1 here, log-uniform in the window form.
  Rows per batch: per hop the sequence form holds a `(batch, T, M + T - 1)`
  float32 score tensor (and its softmax, kept for the backward pass); the
  default batch is the largest power of two up to 128 that keeps it under
  100 MB: 128 for `M = 50`, `T = 98` (128 * 98 * 147 * 4 bytes = 7 MB;
  12,544 targets per step), 16 for `M = 400`, `T = 798` (61 MB).
- `window`: one `M`-character window per row, 128 rows a batch, half of
  each batch's contexts cut to a random log-uniform length
  (`RandomWindows`; `make_windows` with `--short-context-fraction 0`), as
  the first 20-minute run trained.

Validation and test are scored in the sequence form in both cases (rows of
`--eval-sequence-length` targets, full contexts, no short-context padding):
the same numbers as windows, computed faster.

Run from the repository root (each model on the backend that trained it
fastest on a 2-core CPU; `--models` picks one; `--results-json` writes the
results with the form and sequence length):

    KERAS_BACKEND=jax python examples/train_char_memn2n.py --models memn2n \\
        --minutes 20 --output runs/char_memn2n.keras \\
        --results-json runs/char_memn2n.json
    KERAS_BACKEND=tensorflow python examples/train_char_memn2n.py \\
        --models lstm --minutes 20

`--fast` runs tiny models for a few steps on the bundled text8 sample (a
smoke test).

`--checkpoint-dir DIR` saves a checkpoint of each model after every epoch
(`keras_memnet.callbacks.TrainingCheckpoint`, in `DIR/memn2n` and
`DIR/lstm`); with `--resume`, the same command restarted after a crash
continues from there and loses at most the epoch that was running. The
training data is a function of the epoch (`make_sequences` and
`make_windows` seed their order by epoch, `RandomWindows` and
`RandomSequences` each batch by its epoch and index), so the resumed
model ends with the same weights as an uninterrupted run
(tests/test_resume.py). The time budget goes on from
the training time of the checkpointed epochs (`TimeLimit.get_state`); a
model whose training had finished is loaded, not trained again.
"""

import argparse
import json
import math
import pathlib
import time

import keras
import numpy as np

from keras_memnet.callbacks import TimeLimit
from keras_memnet.callbacks import TrainingCheckpoint
from keras_memnet.callbacks import read_resume_epoch
from keras_memnet.datasets import TEXT8_12M_SPLIT
from keras_memnet.datasets import make_sequences
from keras_memnet.datasets import make_windows
from keras_memnet.datasets import text8
from keras_memnet.datasets import text8_sample
from keras_memnet.datasets.windows import count_sequences
from keras_memnet.metrics import BitsPerCharacter
from keras_memnet.metrics import Perplexity
from keras_memnet.models import CharMemN2N
from keras_memnet.recipes import MemN2NLMRecipe
from keras_memnet.recipes.train_memn2n_lm import check_checkpoint_dir

DEFAULT_DATA = (
    pathlib.Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "text8-head12m.txt.gz"
)
# The bundled 1,024,000-byte sample, for --fast.
SAMPLE_SPLIT = {
    "train": (0, 900_000),
    "valid": (900_000, 960_000),
    "test": (960_000, None),
}
LN2 = math.log(2.0)
FORMS = ("sequence", "window")
# Window form: rows per batch (the paper's batch) and the clip of the first
# 20-minute run, the paper's 50 on the summed loss of 128 windows.
WINDOW_BATCH_SIZE = 128
WINDOW_MAX_NORM = 50.0 / WINDOW_BATCH_SIZE
# Sequence form: the most bytes of one hop's float32 scores
# `(batch, T, M + T - 1)`, and the most rows, that the default batch allows.
SCORES_BYTES_PER_HOP = 100 * 10**6
# 32 rows: more, smaller Adam steps won at 20 minutes on 2 cores (2.484
# bits per character against 2.696 for 128 rows; docs/RESULTS.md, 1b).
MAX_SEQUENCE_BATCH_SIZE = 32
# Targets between validations in the sequence form: 400 steps of 32 rows
# of 98. Validating more often on a small slice read noise as plateaus
# and halved the rate ten times in 624 s.
SEQUENCE_TARGETS_PER_VALIDATION = 400 * 32 * 98
EVAL_SCORES_BYTES_PER_HOP = 100 * 10**6
MAX_EVAL_BATCH_SIZE = 256


class RandomWindows(keras.utils.PyDataset):
    """Batches of random `(context, next_char)` windows where a fraction of
    the contexts is cut to a random, log-uniform length (left-padded with
    0, which the model masks).

    With a constant first query, the first hop tells memory slots apart
    only by their temporal encodings, and over 400 slots the attention
    starts out uniform, so the gradient that would teach it to look at the
    last few characters is diluted 400 times. Short contexts concentrate
    that signal; the full-length rows keep training matched to evaluation.

    Batch `i` of epoch `e` is drawn from `(seed, e, i)` alone (`e` set by
    `DataEpoch`), so that a resumed run draws what it would have drawn.
    """

    def __init__(
        self, tokens, memory_size, batch_size, steps, seed, short_fraction
    ):
        super().__init__()
        self.tokens = tokens
        self.memory_size = memory_size
        self.batch_size = batch_size
        self.steps = steps
        self.num_short = int(round(short_fraction * batch_size))
        self.seed = seed
        self.epoch = 0
        self.offsets = np.arange(-memory_size, 0)

    def __len__(self):
        return self.steps

    def __getitem__(self, index):
        rng = np.random.default_rng([self.seed, self.epoch, index])
        positions = rng.integers(
            self.memory_size, self.tokens.size, self.batch_size
        )
        contexts = self.tokens[positions[:, None] + self.offsets]
        lengths = np.exp(
            rng.uniform(0.0, math.log(self.memory_size), self.num_short)
        ).astype("int64")
        slots = np.arange(self.memory_size)
        cut = slots[None, :] < (self.memory_size - lengths)[:, None]
        contexts[: self.num_short][cut] = 0
        return contexts, self.tokens[positions]


class RandomSequences(keras.utils.PyDataset):
    """Batches of random `(chars[i:i+n], chars[i+1:i+n+1])` training pairs,
    for the LSTM; batch `i` of epoch `e` is drawn from `(seed, e, i)`, as in
    `RandomWindows`."""

    def __init__(self, tokens, length, batch_size, steps, seed):
        super().__init__()
        self.tokens = tokens
        self.length = length
        self.batch_size = batch_size
        self.steps = steps
        self.seed = seed
        self.epoch = 0

    def __len__(self):
        return self.steps

    def __getitem__(self, index):
        rng = np.random.default_rng([self.seed, self.epoch, index])
        starts = rng.integers(
            0, self.tokens.size - self.length - 1, self.batch_size
        )
        rows = self.tokens[starts[:, None] + np.arange(self.length + 1)]
        return rows[:, :-1], rows[:, 1:]


class DataEpoch(keras.callbacks.Callback):
    """Tells a dataset with an `epoch` attribute which epoch `fit` is in.

    The epoch that Keras counts, so a resumed `fit` (which starts at its
    `initial_epoch`) gives the same number as an uninterrupted one;
    `PyDataset.on_epoch_end` would not (Keras also calls it when `fit`
    starts).
    """

    def __init__(self, data):
        super().__init__()
        self.data = data

    def on_epoch_begin(self, epoch, logs=None):
        self.data.epoch = epoch


def sequence_batch_size(memory_size, sequence_length, budget, limit):
    """The largest power of two `batch <= limit` whose per-hop scores,
    `batch * T * (M + T - 1)` float32, fit in `budget` bytes (at least 1)."""
    row_bytes = 4 * sequence_length * (memory_size + sequence_length - 1)
    batch = 1
    while batch * 2 <= limit and batch * 2 * row_bytes <= budget:
        batch *= 2
    return batch


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data",
        default=None,
        help="text8 prefix (default: the shared 12 MB one)",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=20.0,
        help="training budget of each model (default 20)",
    )
    parser.add_argument(
        "--lstm-minutes",
        type=float,
        default=None,
        help="LSTM budget (default: --minutes)",
    )
    parser.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="also stop each model after this many steps",
    )
    parser.add_argument(
        "--models",
        default="memn2n,lstm",
        help="comma-separated subset of memn2n,lstm",
    )
    # The shipped character preset's shape (docs/RESULTS.md, `c_m50`).
    parser.add_argument("--hops", type=int, default=8)
    parser.add_argument("--memory-size", type=int, default=50)
    parser.add_argument("--embedding-dim", type=int, default=100)
    parser.add_argument(
        "--form",
        choices=FORMS,
        default="sequence",
        help="CharMemN2N's training form: sequence (rows of "
        "M+T-1 characters, T targets each, from "
        "make_sequences) or window (random M-character "
        "windows, RandomWindows); default: sequence",
    )
    parser.add_argument(
        "--sequence-length",
        type=int,
        default=None,
        help="targets per training row T (sequence form "
        "only); default: round((M-1) / "
        "--short-context-fraction), so that fraction of the "
        "targets gets short contexts (98 for M=50 and 0.5;"
        " 2(M-1) with the fraction 0)",
    )
    parser.add_argument(
        "--eval-sequence-length",
        type=int,
        default=None,
        help="targets per row of the validation and test "
        "rows, scored in the sequence form with full "
        "contexts (default: M/2; any value gives the same "
        "BPC)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="CharMemN2N rows per batch; default: 128 "
        "windows (window form); in the sequence form the "
        "largest power of two up to 128 that keeps one "
        "hop's (batch, T, M+T-1) float32 scores under 100 "
        "MB (128 for M=50, T=98: 7 MB)",
    )
    parser.add_argument(
        "--recipe",
        choices=("default", "paper"),
        default="default",
        help="CharMemN2N's recipe: the package's default (MemN2NLMRecipe()) "
        "or the paper's clipping and annealing "
        "(MemN2NLMRecipe.paper(optimizer=...)); default: default",
    )
    parser.add_argument(
        "--optimizer", choices=MemN2NLMRecipe.OPTIMIZERS, default="adam"
    )
    parser.add_argument(
        "--lr",
        type=float,
        default=None,
        help="Keras (mean-loss) learning rate; default: 2e-3 "
        "for adam, else the recipe's (1.28 for sgd at batch "
        "128, 0.05 for adagrad)",
    )
    parser.add_argument(
        "--short-context-fraction",
        type=float,
        default=0.5,
        help="fraction of CharMemN2N's training targets "
        "that see a shorter context (0: none). Window form: "
        "that share of each batch's contexts is cut to a "
        "random log-uniform length (0: plain random windows "
        "from the tf.data pipeline). Sequence form: any "
        "value > 0 pads the first M-1 inputs of every row "
        "(make_sequences' short_context), so a row's first "
        "M-1 targets see 1..M-1 characters; the fraction "
        "(M-1)/T is set through the default "
        "--sequence-length",
    )
    parser.add_argument(
        "--steps-per-epoch",
        type=int,
        default=None,
        help="training steps between validations (default: "
        "250 in the window form; in the sequence form, about "
        "1.25 M targets: 400 steps of 32 rows of 98)",
    )
    parser.add_argument(
        "--results-json",
        default=None,
        help="write the results (with the training form and "
        "sequence length) to this JSON file",
    )
    parser.add_argument("--valid-chars", type=int, default=20_000)
    parser.add_argument(
        "--eval-chars",
        type=int,
        default=200_000,
        help="test characters scored (0: the whole split)",
    )
    parser.add_argument(
        "--lstm-units",
        type=int,
        default=None,
        help="default: about CharMemN2N's parameter count",
    )
    parser.add_argument("--lstm-embedding-dim", type=int, default=32)
    parser.add_argument(
        "--lstm-length",
        type=int,
        default=100,
        help="LSTM training sequence length",
    )
    parser.add_argument("--lstm-batch-size", type=int, default=64)
    parser.add_argument("--lstm-lr", type=float, default=2e-3)
    parser.add_argument("--sample-length", type=int, default=120)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--output",
        default=None,
        help="save the trained CharMemN2N here (.keras)",
    )
    parser.add_argument(
        "--fast",
        action="store_true",
        help="tiny models, a few steps, the bundled sample",
    )
    parser.add_argument("--verbose", type=int, default=2)
    parser.add_argument(
        "--checkpoint-dir",
        default=None,
        help="save a checkpoint of each model there after "
        "every epoch (subdirectories memn2n and lstm); must "
        "be empty without --resume",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the checkpoints in "
        "--checkpoint-dir, if there are any",
    )
    args = parser.parse_args(argv)
    if not 0.0 <= args.short_context_fraction <= 1.0:
        parser.error("--short-context-fraction must be in [0, 1]")
    if args.form == "window" and args.sequence_length is not None:
        parser.error("--sequence-length applies only to --form sequence")
    for name in (
        "sequence_length",
        "eval_sequence_length",
        "batch_size",
        "steps_per_epoch",
    ):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
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
    # Checked (and created) before anything trains.
    if args.resume and args.checkpoint_dir is None:
        parser.error("--resume needs --checkpoint-dir")
    if args.checkpoint_dir is not None:
        for name in args.models:
            try:
                check_checkpoint_dir(checkpoint_dir(args, name), args.resume)
            except ValueError as error:
                parser.error(str(error).replace("`resume=True`", "--resume"))
    memory_size = args.memory_size
    if args.form == "sequence":
        if args.sequence_length is None:
            # The share of short-context targets is (M - 1) / T.
            fraction = args.short_context_fraction or 0.5
            args.sequence_length = max(1, round((memory_size - 1) / fraction))
        if args.batch_size is None:
            args.batch_size = sequence_batch_size(
                memory_size,
                args.sequence_length,
                SCORES_BYTES_PER_HOP,
                MAX_SEQUENCE_BATCH_SIZE,
            )
        if args.steps_per_epoch is None:
            args.steps_per_epoch = max(
                1,
                round(
                    SEQUENCE_TARGETS_PER_VALIDATION
                    / (args.batch_size * args.sequence_length)
                ),
            )
    else:
        if args.batch_size is None:
            args.batch_size = WINDOW_BATCH_SIZE
        if args.steps_per_epoch is None:
            args.steps_per_epoch = 250
    if args.eval_sequence_length is None:
        args.eval_sequence_length = max(1, memory_size // 2)
    args.eval_batch_size = sequence_batch_size(
        memory_size,
        args.eval_sequence_length,
        EVAL_SCORES_BYTES_PER_HOP,
        MAX_EVAL_BATCH_SIZE,
    )
    return args


def checkpoint_dir(args, model_name):
    """The checkpoint directory of one model, or None."""
    if args.checkpoint_dir is None:
        return None
    return str(pathlib.Path(args.checkpoint_dir) / model_name)


def resume_epoch(args, model_name):
    """The epoch that this model's training starts with (0 unless
    resumed)."""
    directory = checkpoint_dir(args, model_name)
    return read_resume_epoch(directory) if directory and args.resume else 0


def with_checkpoint(args, model_name, callbacks):
    """`callbacks`, then a `TrainingCheckpoint` that resumes them (after
    them, since their `on_train_begin` resets them)."""
    directory = checkpoint_dir(args, model_name)
    if directory is None:
        return callbacks, None
    checkpoint = TrainingCheckpoint(directory, callbacks)
    return callbacks + [checkpoint], checkpoint


def sequence_training_data(tokens, args, initial_epoch):
    """The sequence form's training batches from epoch `initial_epoch` on.

    `make_sequences` orders each pass over the rows by the pass's number
    (its `initial_epoch`); the passes run on without a break across the
    fit's epochs of `--steps-per-epoch` batches, so a resumed run starts
    at pass `step // batches_per_pass`, that pass's batch `step %
    batches_per_pass`, where `step` is the number of batches trained
    before `initial_epoch`.
    """
    batches_per_pass = (
        count_sequences(tokens.size, args.memory_size, args.sequence_length)
        // args.batch_size
    )
    if batches_per_pass < 1:
        raise ValueError(
            f"The training split has fewer than --batch-size "
            f"{args.batch_size} rows of {args.sequence_length} targets."
        )
    step = initial_epoch * args.steps_per_epoch
    # A fixed batch size (one compiled step), repeated over passes.
    return (
        make_sequences(
            tokens,
            memory_size=args.memory_size,
            sequence_length=args.sequence_length,
            batch_size=args.batch_size,
            shuffle=True,
            seed=args.seed,
            short_context=args.short_context_fraction > 0,
            drop_remainder=True,
            initial_epoch=step // batches_per_pass,
        )
        .repeat()
        .skip(step % batches_per_pass)
    )


def short_fraction(args):
    """The share of CharMemN2N's training targets with short contexts."""
    if args.form == "window" or args.short_context_fraction == 0:
        return args.short_context_fraction
    return min(1.0, (args.memory_size - 1) / args.sequence_length)


def form_description(args):
    if args.form == "sequence":
        return (
            f"sequence form: {args.batch_size} rows of "
            f"{args.sequence_length} targets "
            f"({args.batch_size * args.sequence_length:,} a step), "
            f"short-context fraction {short_fraction(args):.3g}"
        )
    return (
        f"window form: {args.batch_size} windows a step, short-context "
        f"fraction {args.short_context_fraction:g}"
    )


def eval_sequences(tokens, args):
    """Every target of `tokens` from `memory_size` on, each with its full
    context, in the sequence form (zero-weight padding at the end)."""
    return make_sequences(
        tokens,
        memory_size=args.memory_size,
        sequence_length=args.eval_sequence_length,
        batch_size=args.eval_batch_size,
        shuffle=False,
    )


def load_corpus(args):
    if args.data is None and (args.fast or not DEFAULT_DATA.exists()):
        return text8_sample(split=SAMPLE_SPLIT, level="char")
    return text8(args.data or DEFAULT_DATA, split=TEXT8_12M_SPLIT, level="char")


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


def lstm_test_bits(
    model, tokens, first_target, burn_in, chunk=1000, batch_size=32
):
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
    print(f"  {name:<28} {bits:7.3f} {2.0**bits:11.3f}   {extra}")


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
    print(
        f"Backend {keras.backend.backend()}. Loaded in "
        f"{time.perf_counter() - started:.0f} s."
    )

    results = [
        (
            "unigram (train counts)",
            unigram_bits(corpus.train, targets, vocabulary.size),
            "",
        )
    ]

    model = CharMemN2N(
        hops=args.hops,
        memory_size=memory_size,
        embedding_dim=args.embedding_dim,
        vocabulary=vocabulary,
    )
    model.build((None, memory_size))
    parameters = model.count_params()

    if "memn2n" in args.models:
        sequence_form = args.form == "sequence"
        sequence_length = args.sequence_length if sequence_form else None
        if args.recipe == "default":
            # The package's default recipe (Adam, the global norm clipped at
            # 1, the rate halved on a plateau), as the presets trained.
            recipe = MemN2NLMRecipe(
                batch_size=args.batch_size,
                sequence_length=sequence_length,
                optimizer=args.optimizer,
                learning_rate=args.lr,
            )
        else:
            if sequence_form and args.optimizer != "sgd":
                # Adam (and Adagrad) keep the window form's clip on the
                # mean gradient, 50/128: the recipe's sequence conversion
                # would clip at 50 / (batch * T), about 100 times lower, so
                # nearly every step would be clipped hard, which for Adam
                # means normalised gradients. `summed_max_norm` is the clip
                # on the summed loss of a step's batch * T targets; this
                # value makes the mean-loss clip exactly 50/128.
                summed_max_norm = (
                    WINDOW_MAX_NORM * args.batch_size * args.sequence_length
                )
            else:
                # The window form, and SGD in the sequence form: the
                # recipe's own conversion (the paper's 50 on the summed
                # loss; for SGD the paper's step per target).
                summed_max_norm = 50.0
            # The paper's clipping and annealing, with --optimizer's rate.
            recipe = MemN2NLMRecipe.paper(
                batch_size=args.batch_size,
                sequence_length=sequence_length,
                summed_max_norm=summed_max_norm,
                optimizer=args.optimizer,
                learning_rate=args.lr,
            )
        print(
            f"\nCharMemN2N: {args.hops} hops, memory {memory_size}, "
            f"{args.embedding_dim} dims, {parameters:,} parameters; "
            f"{recipe}; {form_description(args)}; validation and test in "
            f"the sequence form, rows of {args.eval_sequence_length} "
            f"targets, batch {args.eval_batch_size}."
        )
        # Weighted metrics: the last row of the sequence form is padded with
        # zero-weight targets, which must not count.
        model.compile(
            optimizer=recipe.optimizer(),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            weighted_metrics=[BitsPerCharacter(from_logits=True)],
        )
        limit = TimeLimit(60 * args.minutes, max_steps=args.max_steps)
        initial_epoch = resume_epoch(args, "memn2n")
        if sequence_form:
            # A fresh random order of the training rows every pass.
            train_data = sequence_training_data(
                corpus.train, args, initial_epoch
            )
            steps_per_epoch = args.steps_per_epoch
        elif args.short_context_fraction > 0:
            train_data = RandomWindows(
                corpus.train,
                memory_size,
                args.batch_size,
                args.steps_per_epoch,
                args.seed,
                args.short_context_fraction,
            )
            steps_per_epoch = None
        else:
            train_data = make_windows(
                corpus.train,
                memory_size=memory_size,
                batch_size=args.batch_size,
                num_windows=args.steps_per_epoch * args.batch_size,
                seed=args.seed,
                initial_epoch=initial_epoch,
            )
            steps_per_epoch = None
        callbacks, checkpoint = with_checkpoint(
            args, "memn2n", [limit] + recipe.callbacks(verbose=1)
        )
        if isinstance(train_data, RandomWindows):
            callbacks.insert(0, DataEpoch(train_data))
        history = model.fit(
            train_data,
            shuffle=False,
            steps_per_epoch=steps_per_epoch,
            validation_data=eval_sequences(valid, args),
            epochs=1_000_000,
            callbacks=callbacks,
            verbose=args.verbose,
        ).history
        if checkpoint is not None:
            # Every epoch's, those before a resume too.
            history = checkpoint.history
        targets_per_step = args.batch_size * (
            args.sequence_length if sequence_form else 1
        )
        trained_targets = limit.steps * targets_per_step
        print(
            f"Trained {limit.steps:,} steps ({trained_targets:,} targets, "
            f"{args.form} form) in {limit.elapsed:.0f} s."
        )
        evaluated = time.perf_counter()
        model.compile(
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            weighted_metrics=[
                BitsPerCharacter(from_logits=True),
                Perplexity(from_logits=True),
            ],
        )
        scores = model.evaluate(
            eval_sequences(test, args), return_dict=True, verbose=0
        )
        results.append(
            (
                "CharMemN2N",
                scores["bits_per_character"],
                f"{limit.steps:,} steps, {limit.elapsed:.0f} s, "
                f"{args.form} form"
                + (f" (T={args.sequence_length})" if sequence_form else ""),
            )
        )
        print(
            f"Evaluated in {time.perf_counter() - evaluated:.0f} s "
            f"(perplexity metric {scores['perplexity']:.3f})."
        )
        memn2n_record = {
            "test_bits_per_character": float(scores["bits_per_character"]),
            "test_perplexity": float(scores["perplexity"]),
            "form": args.form,
            "sequence_length": (
                args.sequence_length if sequence_form else None
            ),
            "batch_size": args.batch_size,
            "targets_per_step": targets_per_step,
            "short_context_fraction": short_fraction(args),
            "eval_sequence_length": args.eval_sequence_length,
            "recipe": repr(recipe),
            "hops": args.hops,
            "memory_size": memory_size,
            "embedding_dim": args.embedding_dim,
            "parameters": parameters,
            "steps": limit.steps,
            "trained_targets": trained_targets,
            "train_seconds": round(limit.elapsed, 1),
            "valid_bits_per_character": [
                round(float(value), 4)
                for value in history.get("val_bits_per_character", [])
            ],
        }
        if args.output:
            model.save(args.output)
            print(f"Saved {args.output}.")

    if "lstm" in args.models:
        units = args.lstm_units or lstm_units_for(
            parameters, args.lstm_embedding_dim, vocabulary.size
        )
        lstm = build_lstm(vocabulary.size, args.lstm_embedding_dim, units)
        print(
            f"\nLSTM: {units} units, embedding {args.lstm_embedding_dim}, "
            f"{lstm.count_params():,} parameters; Adam({args.lstm_lr}), "
            f"sequences of {args.lstm_length}, batch {args.lstm_batch_size}."
        )
        lstm.compile(
            optimizer=keras.optimizers.Adam(args.lstm_lr, global_clipnorm=1.0),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        limit = TimeLimit(60 * args.lstm_minutes, max_steps=args.max_steps)
        sequences = RandomSequences(
            corpus.train,
            args.lstm_length,
            args.lstm_batch_size,
            args.steps_per_epoch,
            args.seed,
        )
        callbacks, _ = with_checkpoint(args, "lstm", [limit])
        lstm.fit(
            sequences,
            epochs=1_000_000,
            callbacks=[DataEpoch(sequences)] + callbacks,
            verbose=args.verbose,
        )
        print(f"Trained {limit.steps:,} steps in {limit.elapsed:.0f} s.")
        bits = lstm_test_bits(lstm, test, memory_size, memory_size - 1)
        results.append(
            ("LSTM", bits, f"{limit.steps:,} steps, {limit.elapsed:.0f} s")
        )
        lstm_record = {
            "test_bits_per_character": float(bits),
            "units": units,
            "parameters": lstm.count_params(),
            "steps": limit.steps,
            "train_seconds": round(limit.elapsed, 1),
        }

    print(f"\nTest ({targets.size:,} characters):")
    print(f"  {'model':<28} {'BPC':>7} {'perplexity':>11}")
    for name, bits, extra in results:
        print_row(name, bits, extra)

    if "memn2n" in args.models:
        print(
            "\nCharMemN2N continuations of test prompts "
            "(ML: greedy, RC: random choice):"
        )
        rng = np.random.default_rng(args.seed)
        text = vocabulary.decode(test)
        starts = rng.integers(memory_size, len(text) - memory_size, 3)
        for number, start in enumerate(starts):
            # Start the continuation at a word boundary.
            space = text.find(" ", start)
            start = space + 1 if space >= 0 else start
            prompt = text[max(0, start - memory_size) : start]
            greedy = model.generate(prompt, args.sample_length)
            sampled = model.generate(
                prompt,
                args.sample_length,
                sampler="random",
                seed=args.seed + number,
            )
            print(f"  prompt: ...{prompt[-60:]!r}")
            print(f"    ML: {greedy!r}")
            print(f"    RC: {sampled!r}")
    if args.results_json:
        record = {
            "backend": keras.backend.backend(),
            "corpus": corpus.name,
            "scored_test_characters": int(targets.size),
            "unigram_bits_per_character": results[0][1],
            "args": {key: value for key, value in vars(args).items()},
        }
        if "memn2n" in args.models:
            record["char_memn2n"] = memn2n_record
        if "lstm" in args.models:
            record["lstm"] = lstm_record
        path = pathlib.Path(args.results_json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2) + "\n")
        print(f"Wrote {path}.")
    print(f"\nDone in {time.perf_counter() - started:.0f} s.")
    return results


if __name__ == "__main__":
    main()
