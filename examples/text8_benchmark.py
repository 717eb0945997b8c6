r"""MemN2NLM against a Keras LSTM language model on the 12 MB text8 prefix.

Split (character offsets of the prefix): train [0, 10M), validation
[10M, 11M), test [11M, end); words seen fewer than 5 times in training
become `<unk>` (19,502 types with `<unk>`). A Kneser-Ney trigram scores test
perplexity 332 on this split. Both models get the same wall-clock budget
(`--minutes` each) and keep the checkpoint with the best validation
perplexity; test perplexity is measured once, at the end. With
`--ablation`, `MemN2NLM` is also trained with 1, 2, 3, 4 and 6 hops at a
short budget each.

`MemN2NLM` trains in the sequence form by default (`--form sequence`: rows
of `--sequence-length` targets, every training token once per epoch, a
validation after each epoch); `--form window` trains on
`--windows-per-epoch` random windows between validations instead. The
LSTM is the same in both (`--lstm-sequence-length` tokens per row,
`--windows-per-epoch` tokens between validations).

Outputs under `--output-dir`: `results.json`, `time_curves.png` (validation
perplexity against wall-clock time, both models; needs matplotlib) and
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
    parser.add_argument("--dropout", type=float, default=0.1)
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
        f"(default: {MemN2NLMRecipe.DEFAULT_SEQUENCE_LENGTH},"
        " the recipe's)",
    )
    parser.add_argument(
        "--lstm-sequence-length",
        type=int,
        default=35,
        help="LSTM unroll length",
    )
    parser.add_argument(
        "--windows-per-epoch",
        type=int,
        default=256_000,
        help="MemN2NLM random windows between validations "
        "(window form only), and the LSTM's training tokens "
        "between validations",
    )
    parser.add_argument(
        "--train-tokens",
        type=int,
        default=None,
        help="train on only the first N training tokens "
        "(default: all; --fast: 50,000)",
    )
    parser.add_argument(
        "--optimizer",
        choices=("sgd", "adagrad", "adam"),
        default="sgd",
        help="MemN2NLM's optimizer (default: the paper's SGD recipe)",
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
        default="memn2n,lstm",
        help="comma-separated: memn2n, lstm (default: both)",
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
            args.sequence_length = MemN2NLMRecipe.DEFAULT_SEQUENCE_LENGTH
        if args.sequence_length < 1:
            parser.error("--sequence-length must be >= 1")
    elif args.sequence_length is not None:
        parser.error("--sequence-length applies only to --form sequence")
    if args.train_tokens is not None and args.train_tokens < 2:
        parser.error("--train-tokens must be >= 2")
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


def train_memn2n(corpus, hops, minutes, args):
    clock = ValidationCurve(minutes)
    window_form = args.form == "window"
    recipe = MemN2NLMRecipe(
        batch_size=128,
        sequence_length=None if window_form else args.sequence_length,
        optimizer=args.optimizer,
        learning_rate=args.lr,
    )
    run = train_memn2n_lm(
        corpus,
        hops=hops,
        memory_size=args.memory_size,
        embedding_dim=args.embedding_dim,
        dropout=args.dropout,
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
            keras.layers.Dropout(args.dropout),
            keras.layers.LSTM(units, return_sequences=True),
            keras.layers.Dropout(args.dropout),
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
    if not models or set(models) - {"memn2n", "lstm"}:
        raise SystemExit(f"--models: use memn2n and/or lstm, not {models}")
    memn2n = train_memn2n(corpus, args.hops, args.minutes, args)
    main_results = [memn2n]
    if "lstm" in models:
        main_results.append(train_lstm(corpus, memn2n["parameters"], args))
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
                "## MemN2NLM against an LSTM on the 12 MB text8 prefix"
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
