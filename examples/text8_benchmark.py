r"""MemN2NLM against an LSTM and a Transformer on the 12 MB text8 prefix.

Split (character offsets of the prefix): train [0, 10M), validation
[10M, 11M), test [11M, end); words seen fewer than 5 times in training
become `<unk>` (19,502 types with `<unk>`). A Kneser-Ney trigram scores test
perplexity 332 on this split. The two anchors are what a user would train
instead of a memory network: a Keras LSTM, and a small decoder-only
Transformer built from keras-hub's layers (tied `ReversibleEmbedding`,
`PositionEmbedding`, pre-norm `TransformerDecoder` blocks, GPT-2's shape);
both are sized to MemN2NLM's parameter count unless `--lstm-units` or
`--transformer-dim` says otherwise. Every model gets the same wall-clock
budget (`--minutes` each) and keeps the checkpoint with the best
validation perplexity; test perplexity is measured once, at the end. With
`--ablation`, `MemN2NLM` is also trained with 1, 2, 3, 4 and 6 hops at a
short budget each.

`MemN2NLM` trains in the sequence form by default (`--form sequence`: rows
of `--sequence-length` targets, every training token once per epoch, a
validation after each epoch); `--form window` trains on
`--windows-per-epoch` random windows between validations instead. The
anchors are the same in both: rows of `--lstm-sequence-length` or
`--transformer-sequence-length` tokens (a token's context is the tokens
before it in its own row), `--windows-per-epoch` tokens between
validations.

Outputs under `--output-dir`: `results.json`, `time_curves.png` (validation
perplexity against wall-clock time, every model; needs matplotlib) and
`ablation.png`, and the `text8-12m` section of `docs/RESULTS.md`.

Usage:

    python examples/text8_benchmark.py \
        --data ../shared/data/text8-head12m.txt.gz --minutes 60
    python examples/text8_benchmark.py --data ... --ablation \
        --ablation-minutes 10
    python examples/text8_benchmark.py --data ... --form window \
        --windows-per-epoch 256000
    python examples/text8_benchmark.py --data ... --fast
"""

import argparse
import json
import math
import os
import sys

import keras
import keras_hub
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from results_doc import command_line  # noqa: E402
from results_doc import machine_description  # noqa: E402
from results_doc import update_section  # noqa: E402

from keras_memnet.callbacks import TimeLimit  # noqa: E402
from keras_memnet.datasets import TEXT8_12M_SPLIT  # noqa: E402
from keras_memnet.datasets import Corpus  # noqa: E402
from keras_memnet.datasets import text8  # noqa: E402
from keras_memnet.metrics import Perplexity  # noqa: E402
from keras_memnet.recipes import MemN2NLMRecipe  # noqa: E402
from keras_memnet.recipes import train_memn2n_lm  # noqa: E402

KNESER_NEY_TRIGRAM = 332
FORMS = ("sequence", "window")
# MemN2NLM's rows and output layer at this size: see docs/RESULTS.md,
# "Choosing the default recipe".
MEMN2N_SEQUENCE_LENGTH = 50
# More, smaller Adam steps: at the same tokens a second on 2 cores, 4 times
# the updates a pass (docs/RESULTS.md, MemN2NLM against an LSTM ...).
MEMN2N_BATCH_SIZE = 32
MEMN2N_OUTPUT = "adaptive"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        required=True,
        help="the text8 prefix (text8-head12m.txt.gz) or text8",
    )
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--hops", type=int, default=6)
    parser.add_argument("--memory-size", type=int, default=100)
    parser.add_argument("--embedding-dim", type=int, default=150)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help=f"MemN2NLM's rows per batch (default: {MEMN2N_BATCH_SIZE} "
        "with the default recipe in the sequence form, where it scored "
        "260.5 against 292.7 for 128 rows in 15 minutes, docs/RESULTS.md; "
        "otherwise the recipe's, 128)",
    )
    parser.add_argument(
        "--dropout",
        type=float,
        default=0.4,
        help="MemN2NLM's dropout (default: 0.4, the word preset's)",
    )
    parser.add_argument(
        "--anchor-dropout",
        type=float,
        default=0.1,
        help="the LSTM's and the Transformer's dropout (default: 0.1)",
    )
    parser.add_argument(
        "--lstm-units",
        type=int,
        default=None,
        help="default: sized to MemN2NLM's parameter count",
    )
    parser.add_argument(
        "--form",
        choices=FORMS,
        default="sequence",
        help="MemN2NLM's training form: sequence (rows of "
        "--sequence-length targets, an epoch is a full pass "
        "over the training split) or window (random "
        "windows, --windows-per-epoch of them); default: "
        "sequence",
    )
    parser.add_argument(
        "--sequence-length",
        type=int,
        default=None,
        help="MemN2NLM targets per row in the sequence form "
        f"(default: {MEMN2N_SEQUENCE_LENGTH},"
        " the word preset's)",
    )
    parser.add_argument(
        "--lstm-sequence-length",
        type=int,
        default=35,
        help="LSTM unroll length",
    )
    parser.add_argument(
        "--transformer-sequence-length",
        type=int,
        default=64,
        help="Transformer context: tokens per row, the length "
        "of its position embedding",
    )
    parser.add_argument("--transformer-layers", type=int, default=2)
    parser.add_argument("--transformer-heads", type=int, default=4)
    parser.add_argument(
        "--transformer-dim",
        type=int,
        default=None,
        help="Transformer width, a multiple of --transformer-heads "
        "(default: sized to MemN2NLM's parameter count)",
    )
    parser.add_argument(
        "--windows-per-epoch",
        type=int,
        default=256_000,
        help="MemN2NLM random windows between validations "
        "(window form only), and the LSTM's and the "
        "Transformer's training tokens between validations",
    )
    parser.add_argument(
        "--train-tokens",
        type=int,
        default=None,
        help="train on only the first N training tokens "
        "(default: all; --fast: 50,000)",
    )
    parser.add_argument(
        "--recipe",
        choices=("default", "paper"),
        default="default",
        help="MemN2NLM's recipe: default (MemN2NLMRecipe(): Adam, halved "
        "on a plateau) or paper (MemN2NLMRecipe.paper(): the paper's "
        "clipped SGD); default: default",
    )
    parser.add_argument(
        "--optimizer",
        choices=("sgd", "adagrad", "adam"),
        default=None,
        help="MemN2NLM's optimizer instead of the recipe's",
    )
    parser.add_argument(
        "--output",
        choices=("softmax", "adaptive"),
        default=MEMN2N_OUTPUT,
        help=f"MemN2NLM's output layer (default: {MEMN2N_OUTPUT})",
    )
    parser.add_argument(
        "--lr",
        type=float,
        default=None,
        help="MemN2NLM's learning rate on the mean loss "
        "(default: the recipe's)",
    )
    parser.add_argument(
        "--models",
        default="memn2n,lstm,transformer",
        help="comma-separated: memn2n, lstm, transformer "
        "(default: all three; MemN2NLM always trains, since "
        "it sets the anchors' parameter budget)",
    )
    parser.add_argument(
        "--section",
        default="text8-12m",
        help="the section of --results-doc to write",
    )
    parser.add_argument("--ablation", action="store_true")
    parser.add_argument("--ablation-minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output-dir", default="docs/text8_12m")
    parser.add_argument("--results-doc", default="docs/RESULTS.md")
    parser.add_argument(
        "--eval-tokens",
        type=int,
        default=None,
        help="evaluate on only the first N validation and "
        "test tokens (default: all)",
    )
    parser.add_argument("--fast", action="store_true")
    parser.add_argument(
        "--checkpoint-dir",
        default=None,
        help="checkpoint every MemN2NLM epoch under this "
        "directory (one subdirectory per hop count)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue MemN2NLM runs from --checkpoint-dir; "
        "the wall-clock budget starts again on resume",
    )
    parser.add_argument("--verbose", type=int, default=2)
    args = parser.parse_args(argv)
    if args.resume and not args.checkpoint_dir:
        parser.error("--resume needs --checkpoint-dir")
    if args.form == "sequence":
        if args.sequence_length is None:
            args.sequence_length = MEMN2N_SEQUENCE_LENGTH
        if args.sequence_length < 1:
            parser.error("--sequence-length must be >= 1")
    elif args.sequence_length is not None:
        parser.error("--sequence-length applies only to --form sequence")
    if args.batch_size is None:
        if args.form == "sequence" and args.recipe == "default":
            args.batch_size = MEMN2N_BATCH_SIZE
        else:
            args.batch_size = recipe_class(args.recipe)().batch_size
    if args.batch_size < 1:
        parser.error("--batch-size must be >= 1")
    if args.train_tokens is not None and args.train_tokens < 2:
        parser.error("--train-tokens must be >= 2")
    if args.transformer_sequence_length < 1:
        parser.error("--transformer-sequence-length must be >= 1")
    if args.transformer_dim is not None and (
        args.transformer_dim < 1
        or args.transformer_dim % args.transformer_heads
    ):
        # Each head gets transformer_dim // heads dimensions; a remainder
        # would silently shrink the attention below the stated width.
        parser.error(
            "--transformer-dim must be a positive multiple of "
            "--transformer-heads"
        )
    if args.fast:
        args.minutes, args.ablation_minutes = 0.3, 0.2
        args.embedding_dim, args.memory_size = 16, 20
        args.windows_per_epoch, args.eval_tokens = 4096, 5000
        # A sequence-form epoch is a full pass over the training split.
        args.train_tokens = args.train_tokens or 50_000
    return args


def form_description(args):
    if args.form == "sequence":
        return (
            f"sequence form ({args.sequence_length} targets per row, "
            "an epoch is a full pass over the training split)"
        )
    return (
        f"window form ({args.windows_per_epoch:,} random windows "
        "between validations)"
    )


class ValidationCurve(TimeLimit):
    """`TimeLimit` that also records `(elapsed seconds, validation
    perplexity)` at the end of every epoch."""

    def __init__(self, minutes):
        super().__init__(seconds=60 * minutes)
        self.curve = []

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        self.curve.append((self.elapsed, float(logs["val_perplexity"])))


def best_weights_callback():
    return keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=10**6, restore_best_weights=True
    )


def recipe_class(name):
    """`MemN2NLMRecipe` for "default", its `paper` constructor for "paper"."""
    return MemN2NLMRecipe.paper if name == "paper" else MemN2NLMRecipe


def train_memn2n(corpus, hops, minutes, args):
    clock = ValidationCurve(minutes)
    window_form = args.form == "window"
    make_recipe = recipe_class(args.recipe)
    options = {"optimizer": args.optimizer} if args.optimizer else {}
    recipe = make_recipe(
        batch_size=args.batch_size,
        sequence_length=None if window_form else args.sequence_length,
        learning_rate=args.lr,
        **options,
    )
    run = train_memn2n_lm(
        corpus,
        hops=hops,
        memory_size=args.memory_size,
        embedding_dim=args.embedding_dim,
        dropout=args.dropout,
        output=args.output,
        epochs=10**6,  # The wall clock ends training.
        patience=10**6,
        seed=args.seed,
        recipe=recipe,
        callbacks=[clock],
        # The sequence form reads the whole training split every epoch.
        train_windows=args.windows_per_epoch if window_form else None,
        evaluate=("test",),
        checkpoint_dir=args.checkpoint_dir
        and os.path.join(args.checkpoint_dir, f"memn2n_{hops}hops"),
        resume=args.resume,
        verbose=args.verbose,
    )
    return {
        "model": f"MemN2NLM ({hops} hops)",
        "form": args.form,
        "recipe": repr(recipe),
        "parameters": run["model"].count_params(),
        "test_perplexity": run["perplexity"]["test"],
        "curve": clock.curve,
    }


def sequences(tokens, length):
    """Non-overlapping (input, target) sequences of a token stream."""
    count = (len(tokens) - 1) // length
    inputs = tokens[: count * length].reshape(count, length)
    targets = tokens[1 : count * length + 1].reshape(count, length)
    return inputs, targets


def lstm_units_for(parameters, vocabulary_size, embedding_dim):
    # Embedding V*e + LSTM 4*u*(e+u+1) + softmax V*u: solve for u.
    a = 4.0
    b = 4.0 * (embedding_dim + 1) + vocabulary_size
    c = vocabulary_size * embedding_dim - parameters
    return max(8, int((-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)))


def train_lstm(corpus, parameters, args):
    keras.utils.set_random_seed(args.seed)
    vocabulary_size = corpus.vocabulary.size
    units = args.lstm_units or lstm_units_for(
        parameters, vocabulary_size, args.embedding_dim
    )
    model = keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            keras.layers.Embedding(vocabulary_size, args.embedding_dim),
            keras.layers.Dropout(args.anchor_dropout),
            keras.layers.LSTM(units, return_sequences=True),
            keras.layers.Dropout(args.anchor_dropout),
            keras.layers.Dense(vocabulary_size),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(2e-3, global_clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[Perplexity(from_logits=True)],
    )
    train = sequences(corpus.train, args.lstm_sequence_length)
    valid = sequences(corpus.valid, args.lstm_sequence_length)
    test = sequences(corpus.test, args.lstm_sequence_length)
    steps = max(1, args.windows_per_epoch // (32 * args.lstm_sequence_length))
    clock = ValidationCurve(args.minutes)
    model.fit(
        *train,
        batch_size=32,
        epochs=10**6,
        steps_per_epoch=steps,
        validation_data=valid,
        verbose=args.verbose,
        callbacks=[clock, best_weights_callback()],
    )
    result = model.evaluate(*test, batch_size=32, return_dict=True, verbose=0)
    return {
        "model": f"Keras LSTM ({units} units)",
        "parameters": model.count_params(),
        "test_perplexity": float(result["perplexity"]),
        "curve": clock.curve,
    }


def transformer_parameters(width, vocabulary_size, sequence_length, layers):
    # Tied embedding V*d, positions L*d and the final norm 2d; each block
    # has attention 4d^2 + 4d, a 4d-wide feed-forward 8d^2 + 5d and two
    # norms 4d.
    return (
        vocabulary_size * width
        + sequence_length * width
        + 2 * width
        + layers * (12 * width * width + 13 * width)
    )


def transformer_width_for(
    parameters, vocabulary_size, sequence_length, layers, heads
):
    # Solve transformer_parameters(d) = parameters for d, then round to a
    # multiple of the head count so every head gets d // heads dimensions.
    a = 12.0 * layers
    b = vocabulary_size + sequence_length + 2 + 13.0 * layers
    width = (-b + math.sqrt(b * b + 4 * a * parameters)) / (2 * a)
    return max(heads, heads * round(width / heads))


def transformer_lm(
    vocabulary_size, width, sequence_length, layers, heads, dropout
):
    """A decoder-only Transformer language model from keras-hub layers,
    shaped like GPT-2: pre-norm blocks, GELU, a final norm, logits from the
    tied token embedding."""
    # GPT-2's initialization; glorot's scale for a (64, d) position table
    # would swamp the token embeddings at the start.
    initializer = keras.initializers.RandomNormal(stddev=0.02)
    tokens = keras.Input((sequence_length,), dtype="int32")
    embedding = keras_hub.layers.ReversibleEmbedding(
        vocabulary_size, width, embeddings_initializer=initializer
    )
    x = embedding(tokens)
    positions = keras_hub.layers.PositionEmbedding(
        sequence_length, initializer=initializer
    )(x)
    x = keras.layers.Add()([x, positions])
    x = keras.layers.Dropout(dropout)(x)
    for _ in range(layers):
        # Called with the decoder sequence only: no cross-attention is
        # built, and the self-attention is causal by default.
        x = keras_hub.layers.TransformerDecoder(
            intermediate_dim=4 * width,
            num_heads=heads,
            dropout=dropout,
            activation="gelu",
            layer_norm_epsilon=1e-5,
            normalize_first=True,
        )(x)
    x = keras.layers.LayerNormalization(epsilon=1e-5)(x)
    return keras.Model(tokens, embedding(x, reverse=True))


def train_transformer(corpus, parameters, args):
    keras.utils.set_random_seed(args.seed)
    vocabulary_size = corpus.vocabulary.size
    length = args.transformer_sequence_length
    width = args.transformer_dim or transformer_width_for(
        parameters,
        vocabulary_size,
        length,
        args.transformer_layers,
        args.transformer_heads,
    )
    model = transformer_lm(
        vocabulary_size,
        width,
        length,
        args.transformer_layers,
        args.transformer_heads,
        args.anchor_dropout,
    )
    # The LSTM's optimizer, and no warm-up: pre-norm blocks train stably
    # without one (Xiong et al., 2020), and a schedule would be one more
    # difference between the anchors.
    model.compile(
        optimizer=keras.optimizers.Adam(2e-3, global_clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[Perplexity(from_logits=True)],
    )
    train = sequences(corpus.train, length)
    valid = sequences(corpus.valid, length)
    test = sequences(corpus.test, length)
    # Same tokens between validations as the LSTM, so the curves compare.
    steps = max(1, args.windows_per_epoch // (32 * length))
    clock = ValidationCurve(args.minutes)
    model.fit(
        *train,
        batch_size=32,
        epochs=10**6,
        steps_per_epoch=steps,
        validation_data=valid,
        verbose=args.verbose,
        callbacks=[clock, best_weights_callback()],
    )
    result = model.evaluate(*test, batch_size=32, return_dict=True, verbose=0)
    return {
        "model": (
            f"Transformer ({args.transformer_layers} layers, width {width}, "
            f"{args.transformer_heads} heads, context {length})"
        ),
        "parameters": model.count_params(),
        "test_perplexity": float(result["perplexity"]),
        "curve": clock.curve,
    }


def plot(results, ablation, output_dir):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed; skipping plots.")
        return []
    names = []
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for result in results:
        seconds, values = zip(*result["curve"])
        axis.plot(
            np.array(seconds) / 60, values, marker="o", label=result["model"]
        )
    axis.axhline(
        KNESER_NEY_TRIGRAM,
        color="gray",
        linestyle=":",
        label="Kneser-Ney trigram (test)",
    )
    axis.set_xlabel("wall-clock minutes")
    axis.set_ylabel("validation perplexity")
    axis.set_yscale("log")
    axis.legend()
    figure.tight_layout()
    figure.savefig(os.path.join(output_dir, "time_curves.png"), dpi=110)
    names.append("time_curves.png")
    if ablation:
        figure, axis = plt.subplots(figsize=(5, 3.5))
        axis.plot(
            [r["hops"] for r in ablation],
            [r["test_perplexity"] for r in ablation],
            marker="o",
        )
        axis.set_xlabel("hops")
        axis.set_ylabel("test perplexity")
        figure.tight_layout()
        figure.savefig(os.path.join(output_dir, "ablation.png"), dpi=110)
        names.append("ablation.png")
    return names


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.output_dir, exist_ok=True)
    corpus = text8(args.data, split=TEXT8_12M_SPLIT, min_count=5)
    if args.eval_tokens or args.train_tokens:
        # The vocabulary stays the one built from the full training split.
        corpus = Corpus(
            corpus.train[: args.train_tokens],
            corpus.valid[: args.eval_tokens],
            corpus.test[: args.eval_tokens],
            corpus.vocabulary,
            name=corpus.name,
            level=corpus.level,
            metadata=corpus.metadata,
        )
    print(
        f"{corpus.vocabulary.size:,} ids (with <pad>), "
        f"{corpus.train.size:,} training words"
    )
    print(f"MemN2NLM trains in the {form_description(args)}.")
    models = args.models.split(",")
    if not models or set(models) - {"memn2n", "lstm", "transformer"}:
        raise SystemExit(
            f"--models: use memn2n, lstm and/or transformer, not {models}"
        )
    memn2n = train_memn2n(corpus, args.hops, args.minutes, args)
    main_results = [memn2n]
    if "lstm" in models:
        main_results.append(train_lstm(corpus, memn2n["parameters"], args))
    if "transformer" in models:
        main_results.append(
            train_transformer(corpus, memn2n["parameters"], args)
        )
    ablation = []
    if args.ablation:
        for hops in (1, 2, 3, 4, 6):
            result = train_memn2n(corpus, hops, args.ablation_minutes, args)
            ablation.append(dict(result, hops=hops))
    lines = [
        "| model | parameters | test perplexity |",
        "| --- | ---: | ---: |",
        f"| Kneser-Ney trigram | - | {KNESER_NEY_TRIGRAM} |",
    ] + [
        f"| {r['model']} | {r['parameters']:,} | {r['test_perplexity']:.1f} |"
        for r in main_results
    ]
    if ablation:
        lines += [
            "",
            f"Hops ablation ({args.ablation_minutes:g} minutes each):",
            "",
            "| hops | test perplexity |",
            "| ---: | ---: |",
        ]
        lines += [
            f"| {r['hops']} | {r['test_perplexity']:.1f} |" for r in ablation
        ]
    table = "\n".join(lines)
    print("\n" + table)
    with open(os.path.join(args.output_dir, "results.json"), "w") as file:
        json.dump({"main": main_results, "ablation": ablation}, file, indent=1)
    images = plot(main_results, ablation, args.output_dir)
    if args.results_doc:
        folder = os.path.relpath(
            args.output_dir, os.path.dirname(args.results_doc) or "."
        )
        section = "\n".join(
            [
                "## MemN2NLM against an LSTM and a Transformer on the "
                "12 MB text8 prefix"
                + ("" if args.section == "text8-12m" else f": {args.section}"),
                "",
                f"Command: `{command_line()}`  ",
                f"Machine: {machine_description()}.",
                "",
                f"Budget: {args.minutes:g} wall-clock minutes per model; "
                "checkpoints chosen on validation; MemN2NLM in the "
                + form_description(args)
                + (
                    f"; trained on the first {args.train_tokens:,} training "
                    "tokens only"
                    if args.train_tokens
                    else ""
                )
                + (
                    f"; evaluated on the first {args.eval_tokens:,} validation "
                    "and test tokens only"
                    if args.eval_tokens
                    else ""
                )
                + ".",
                "",
                table,
                "",
            ]
            + [f"![{name}]({folder}/{name})" for name in images]
        )
        update_section(args.results_doc, args.section, section)


if __name__ == "__main__":
    main()
