"""Reproduces the earlier TensorFlow study's table with the paper's recipe.

The study trained `MemN2N` language models on the first 512 KB of text8 and
tested on the second 512 KB, with 30 words of context and 300-dimensional
embeddings, and reported test perplexities of 1870.63 (1 hop, Adagrad),
5776.39 (3 hops, SGD), 8519.64 (3 hops, Adam) and 10508.94 (6 hops, SGD).
Each row here trains the same hops and optimizer family, with the recipe of
Sukhbaatar et al., 2015 scaled for Keras's mean loss (`MemN2NLMRecipe`),
gradient clipping, plateau annealing, dropout and early stopping on a
validation slice carved from the end of the training chunk (never from the
test chunk).

By default (`--form sequence`) every training token is a target once per
epoch, in rows of `--sequence-length` targets (`Corpus.sequences`, the
recipe's sequence form); `--form window` trains on random windows of one
target each (`Corpus.windows`), as the paper describes it, optionally
`--train-windows` of them per epoch. Both forms measure the same
perplexity.

It writes, under `--output-dir`: `results.json`, `table.md`, `samples.md`
and `curves.png` (per-epoch train and test perplexity; needs matplotlib),
and regenerates its section of `docs/RESULTS.md`.

Usage:

    python examples/reproduce_study.py                      # every row
    python examples/reproduce_study.py --rows 1hop-adagrad --seeds 1,2,3
    python examples/reproduce_study.py --form window        # random windows
    python examples/reproduce_study.py --fast               # a smoke test
"""

import argparse
import json
import os
import sys

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from results_doc import command_line  # noqa: E402
from results_doc import machine_description  # noqa: E402
from results_doc import update_section  # noqa: E402

from keras_memnet.datasets import text8_sample  # noqa: E402
from keras_memnet.recipes import MemN2NLMRecipe  # noqa: E402
from keras_memnet.recipes import train_memn2n_lm  # noqa: E402

# name: (hops, optimizer, the study's test perplexity)
STUDY_ROWS = {
    "1hop-adagrad": (1, "adagrad", 1870.63),
    "3hop-sgd": (3, "sgd", 5776.39),
    "3hop-adam": (3, "adam", 8519.64),
    "6hop-sgd": (6, "sgd", 10508.94),
}
KNESER_NEY_BIGRAM = 1217
MEMORY_SIZE = 30
# Test-chunk positions whose preceding 30 words are the sample contexts.
SAMPLE_POSITIONS = (30, 20_000, 60_000)
FORMS = ("sequence", "window")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows", default="all", help=f"comma-separated from {list(STUDY_ROWS)}"
    )
    parser.add_argument(
        "--seeds",
        default="1",
        help="comma-separated seeds; several give mean ± std",
    )
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--embedding-dim", type=int, default=300)
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--weight-decay", type=float, default=None)
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument(
        "--form",
        choices=FORMS,
        default="sequence",
        help="train in the sequence form (rows of "
        "--sequence-length targets, every token once per "
        "epoch) or the window form (random windows of one "
        "target); default: sequence",
    )
    parser.add_argument(
        "--sequence-length",
        type=int,
        default=None,
        help="targets per row in the sequence form (default: "
        f"{MemN2NLMRecipe.PAPER_SEQUENCE_LENGTH}, the "
        "paper recipe's)",
    )
    parser.add_argument(
        "--train-windows",
        type=int,
        default=None,
        help="window form only: random training windows per "
        "epoch (default: as many as the training split has)",
    )
    parser.add_argument("--output-dir", default="docs/study512k")
    parser.add_argument("--results-doc", default="docs/RESULTS.md")
    parser.add_argument(
        "--section",
        default="study512k",
        help="the section of --results-doc to regenerate; "
        "give a seed study its own, to keep the full table",
    )
    parser.add_argument(
        "--fast", action="store_true", help="tiny sizes for a smoke test"
    )
    parser.add_argument(
        "--checkpoint-dir",
        default=None,
        help="checkpoint every epoch of every row and seed "
        "under this directory (one subdirectory each)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the runs checkpointed in "
        "--checkpoint-dir; finished ones are not retrained "
        "(their per-epoch test curve is then not redrawn)",
    )
    parser.add_argument("--verbose", type=int, default=2)
    args = parser.parse_args(argv)
    if args.resume and not args.checkpoint_dir:
        parser.error("--resume needs --checkpoint-dir")
    args.rows = list(STUDY_ROWS) if args.rows == "all" else args.rows.split(",")
    for row in args.rows:
        if row not in STUDY_ROWS:
            parser.error(f"unknown row {row!r}; choose from {list(STUDY_ROWS)}")
    args.seeds = [int(seed) for seed in args.seeds.split(",")]
    if args.form == "sequence":
        if args.train_windows is not None:
            parser.error(
                "--train-windows applies only to --form window; "
                "the sequence form trains on every token each epoch"
            )
        if args.sequence_length is None:
            args.sequence_length = MemN2NLMRecipe.PAPER_SEQUENCE_LENGTH
        if args.sequence_length < 1:
            parser.error("--sequence-length must be >= 1")
    elif args.sequence_length is not None:
        parser.error("--sequence-length applies only to --form sequence")
    if args.fast:
        args.epochs, args.embedding_dim = 2, 16
        if args.form == "window":
            args.train_windows = 2048
        # The sequence form reads the ~90,000 training tokens in about 45
        # batches an epoch: already small.
    return args


class TestCurve(keras.callbacks.Callback):
    """Records test perplexity after every epoch, for the curves only.

    Checkpoints are chosen on validation (early stopping); these figures are
    never used to choose anything.
    """

    def __init__(self, test_batches):
        super().__init__()
        # Windows or sequences of the test split; the model is compiled
        # with `weighted_metrics`, so the padded targets of sequence
        # batches (weight 0) do not count.
        self.test_batches = test_batches
        self.values = []

    def on_epoch_end(self, epoch, logs=None):
        result = self.model.evaluate(
            self.test_batches, return_dict=True, verbose=0
        )
        self.values.append(float(result["perplexity"]))


def run_row(corpus, row, seed, args):
    hops, optimizer, _ = STUDY_ROWS[row]
    recipe = MemN2NLMRecipe.paper(
        batch_size=128,
        sequence_length=(
            args.sequence_length if args.form == "sequence" else None
        ),
        optimizer=optimizer,
        weight_decay=args.weight_decay,
    )
    if args.form == "sequence":
        test_batches = corpus.sequences(
            "test",
            MEMORY_SIZE,
            recipe.sequence_length,
            recipe.batch_size,
            shuffle=False,
        )
    else:
        test_batches = corpus.windows(
            "test", MEMORY_SIZE, recipe.batch_size, shuffle=False
        )
    test_curve = TestCurve(test_batches)
    run = train_memn2n_lm(
        corpus,
        hops=hops,
        memory_size=MEMORY_SIZE,
        embedding_dim=args.embedding_dim,
        dropout=args.dropout,
        recipe=recipe,
        epochs=args.epochs,
        patience=args.patience,
        seed=seed,
        callbacks=[test_curve],
        train_windows=args.train_windows,
        checkpoint_dir=args.checkpoint_dir
        and os.path.join(args.checkpoint_dir, f"{hops}hops_seed{seed}"),
        resume=args.resume,
        verbose=args.verbose,
    )
    model = run["model"]
    samples = []
    for index, position in enumerate(SAMPLE_POSITIONS):
        context = corpus.vocabulary.decode(
            corpus.test[position - MEMORY_SIZE : position]
        )
        samples.append(
            {
                "context": context,
                "ML": model.generate(context, 15, sampler="greedy"),
                # A seed per context: one shared seed draws the same
                # uniforms, so a weakly conditioned model repeats itself.
                "RC": model.generate(
                    context, 15, sampler="random", seed=seed * 100 + index
                ),
            }
        )
    return {
        "row": row,
        "seed": seed,
        "form": args.form,
        "sequence_length": recipe.sequence_length,
        "recipe": repr(recipe),
        "perplexity": run["perplexity"],
        "train_curve": [float(v) for v in run["history"]["perplexity"]],
        "valid_curve": [float(v) for v in run["history"]["val_perplexity"]],
        "test_curve": test_curve.values,
        "epochs_run": len(run["history"]["loss"]),
        "seconds": run["seconds"],
        "samples": samples,
    }


def summarise(results, args):
    lines = [
        "| row | the study | keras-memnet test perplexity | valid | "
        "epochs | minutes |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in args.rows:
        runs = [r for r in results if r["row"] == row]
        tests = np.array([r["perplexity"]["test"] for r in runs])
        valids = np.array([r["perplexity"]["valid"] for r in runs])
        test = (
            f"{tests.mean():.1f} ± {tests.std(ddof=1):.1f} ({len(tests)} seeds)"
            if len(tests) > 1
            else f"{tests[0]:.1f}"
        )
        lines.append(
            f"| {row} | {STUDY_ROWS[row][2]:.2f} | {test} | "
            f"{valids.mean():.1f} | "
            f"{np.mean([r['epochs_run'] for r in runs]):.0f} | "
            f"{np.mean([r['seconds'] for r in runs]) / 60:.1f} |"
        )
    return "\n".join(lines)


def samples_markdown(results):
    lines = []
    for result in results:
        lines.append(f"**{result['row']}, seed {result['seed']}**\n")
        for sample in result["samples"]:
            lines.append(
                f"- context: …{' '.join(sample['context'].split()[-10:])}"
            )
            lines.append(f"  - ML: {sample['ML']}")
            lines.append(f"  - RC: {sample['RC']}")
        lines.append("")
    return "\n".join(lines)


def plot_curves(results, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(
            "matplotlib is not installed; skipping the plot "
            "(pip install 'keras-memnet[plots]')."
        )
        return False
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for result in results:
        epochs = np.arange(1, len(result["train_curve"]) + 1)
        label = f"{result['row']} (seed {result['seed']})"
        line = axis.plot(epochs, result["test_curve"], label=f"{label} test")
        axis.plot(
            epochs,
            result["train_curve"],
            "--",
            color=line[0].get_color(),
            label=f"{label} train",
        )
    axis.axhline(
        KNESER_NEY_BIGRAM,
        color="gray",
        linestyle=":",
        label="Kneser-Ney bigram (1217)",
    )
    axis.set_yscale("log")
    axis.set_xlabel("epoch")
    axis.set_ylabel("perplexity")
    axis.set_title("text8 study512k: train (dashed) and test perplexity")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return True


def form_description(args):
    if args.form == "sequence":
        return (
            f"sequence form ({args.sequence_length} targets per row, "
            "every training token once per epoch)"
        )
    return (
        "window form ("
        + (
            f"{args.train_windows:,} random windows per epoch"
            if args.train_windows
            else "as many random windows per epoch as training positions"
        )
        + ")"
    )


def write_outputs(results, args):
    """Writes every output for the rows finished so far."""
    done = [row for row in args.rows if any(r["row"] == row for r in results)]
    table = summarise(results, argparse.Namespace(rows=done))
    with open(os.path.join(args.output_dir, "results.json"), "w") as file:
        json.dump(results, file, indent=1)
    with open(os.path.join(args.output_dir, "table.md"), "w") as file:
        file.write(table + "\n")
    with open(os.path.join(args.output_dir, "samples.md"), "w") as file:
        file.write(samples_markdown(results))
    plotted = plot_curves(results, os.path.join(args.output_dir, "curves.png"))
    if args.results_doc:
        section = [
            "## The earlier study's table, reproduced (text8 study512k)"
            + ("" if args.section == "study512k" else f": {args.section}"),
            "",
            f"Command: `{command_line()}`  ",
            f"Machine: {machine_description()}.",
            "",
            "Protocol: train on text8 bytes [0, 512000) (the last 5% held out "
            "for validation), test on [512000, 1024000), 30 words of context, "
            f"embedding {args.embedding_dim}, dropout {args.dropout}, at most "
            f"{args.epochs} epochs, checkpoint chosen on validation; "
            + form_description(args)
            + ". Kneser-Ney bigram: 1217.",
            "",
            table,
            "",
        ]
        if plotted:
            folder = os.path.relpath(
                args.output_dir, os.path.dirname(args.results_doc) or "."
            )
            section += [f"![curves]({folder}/curves.png)", ""]
        section += [
            "Samples (ML = greedy, RC = random choice):",
            "",
            samples_markdown(results),
        ]
        update_section(args.results_doc, args.section, "\n".join(section))
    return table


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.output_dir, exist_ok=True)
    corpus = text8_sample(split="study512k")
    print(f"Training in the {form_description(args)}.")
    results = []
    for row in args.rows:
        for seed in args.seeds:
            results.append(run_row(corpus, row, seed, args))
            # After every run, so that an interrupted reproduction keeps
            # what it finished.
            table = write_outputs(results, args)
    print("\n" + table)
    return results


if __name__ == "__main__":
    main()
