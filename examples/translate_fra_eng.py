"""English -> French with a deep LSTM encoder-decoder (Sutskever et al.,
2014) that reads the encoder's states through `MemoryHop` attention.

Trains `keras_memnet.models.Seq2SeqTranslator` on the Tatoeba
English-French pairs in `../shared/data/fra-eng-76k.txt.gz` (76,038 pairs)
and reports corpus BLEU and the `<unk>` rate of the outputs on a fixed
held-out split (`split_sentence_pairs(test_size=1000, seed=0)`: English
sentences that never occur in training, all their French translations as
references), for greedy decoding and beam search, each also with every
output `<unk>` replaced by the source word the attention weighs most
(Luong et al., 2015).

The defaults are the measured best within 15 minutes on 2 CPU cores (see
`docs/RESULTS.md`, "Translation on fra-eng-76k"):

- 2 LSTM layers of 256 cells, 256-dimensional embeddings, words seen once
  in training mapped to `<unk>` (`--min-count 2`);
- one `MemoryHop` of attention per decoder step (`--attention-hops 1`;
  `0` is the paper's attention-free model);
- the source read reversed (`--reverse-source on`; `off`, or `both` to
  train one model each way);
- `--recipe adam`: Adam at 0.002, batch 128, the gradient's global norm
  capped at 1.0, a constant rate; training stops at `--max-train-minutes`
  (15).

`--recipe paper-sgd` is the paper's recipe scaled to this data: every
weight from uniform(-0.08, 0.08) (as in both recipes), plain SGD at rate
10 with the global norm capped at 0.8 (the paper's 0.7 and 5 on a loss
summed over about 6.3 French tokens a sentence, as Keras averages), and
the rate halved 5 times, every `--anneal-every-steps` after
`--anneal-start-step`. The paper set that schedule in epochs (halving
every half epoch after epoch 5 of 7.5); here it is set in steps, so that
it fires within the time budget (2,500 and 250 match the paper's shape
for the about 3,800 steps that 15 minutes allow on 2 cores).

Run from the repository root:

    python examples/translate_fra_eng.py --output runs/translate.json

`--curve-every-minutes M` also scores the test set every M minutes of
training (the clock stops while it does), for a learning curve.
`--save PATH` writes the (reversed-source) model to PATH, a `.keras` file
that loads with `keras.saving.load_model(PATH, safe_mode=True)`, right
after training and before it is evaluated; the path is checked before any
training starts, and the saved model is reloaded to confirm that it gives
the same translations.

`--checkpoint-dir DIR` saves a checkpoint of each model after every epoch
(`keras_memnet.callbacks.TrainingCheckpoint`, in `DIR/reversed` and
`DIR/forward`); with `--resume`, the same command restarted after a crash
goes on from the last saved epoch, and a model whose training had ended
is loaded instead of trained again. The pairs come in an order seeded by
the epoch (`sentence_pair_dataset(initial_epoch=...)`), so a run limited
by `--epochs` or `--max-steps` ends with the same weights as an
uninterrupted one. The time budget (`--max-train-minutes`) and the
learning curve go on where the checkpoint left them: a resumed run
counts the training time of the saved epochs as spent, not the time of
the epoch that was lost nor that of the restart, and keeps the curve's
points so far. A run stopped by the clock cannot stop at exactly the
same step twice, so only step- or epoch-limited runs resume exactly.
"""

import argparse
import json
import pathlib
import tempfile
import time

import keras

from keras_memnet.callbacks import GradientNormClipping
from keras_memnet.callbacks import TimeLimit
from keras_memnet.callbacks import TrainingCheckpoint
from keras_memnet.callbacks import read_resume_epoch
from keras_memnet.datasets import sentence_pairs
from keras_memnet.metrics import corpus_bleu
from keras_memnet.models import Seq2SeqTranslator
from keras_memnet.recipes.train_memn2n_lm import check_checkpoint_dir

DEFAULT_DATA = (
    pathlib.Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "fra-eng-76k.txt.gz"
)

# Each recipe's optimizer, learning rate and gradient-norm cap.
RECIPES = {
    "adam": ("adam", 0.002, 1.0),
    "paper-sgd": ("sgd", 10.0, 0.8),
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--min-count", type=int, default=2)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--embedding-dim", type=int, default=256)
    parser.add_argument(
        "--attention-hops",
        type=int,
        default=1,
        help="MemoryHop attention hops per decoder step (0: no attention, "
        "the paper's model).",
    )
    parser.add_argument(
        "--reverse-source",
        choices=("on", "off", "both"),
        default="on",
        help="Read the source reversed (on), in order (off), or train one "
        "model each way (both).",
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="adam")
    parser.add_argument(
        "--learning-rate", type=float, help="Overrides the recipe's rate."
    )
    parser.add_argument(
        "--clip-norm", type=float, help="Overrides the recipe's norm cap."
    )
    parser.add_argument(
        "--anneal-start-step",
        type=int,
        default=2500,
        help="paper-sgd: the step of the first halving of the rate.",
    )
    parser.add_argument(
        "--anneal-every-steps",
        type=int,
        default=250,
        help="paper-sgd: steps between the 5 halvings.",
    )
    parser.add_argument("--init-scale", type=float, default=0.08)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--max-train-minutes", type=float, default=15.0)
    parser.add_argument("--max-steps", type=int, help="Also stop here.")
    parser.add_argument(
        "--curve-every-minutes",
        type=float,
        default=0.0,
        help="Score the test set every this many minutes of training "
        "(0: only at the end).",
    )
    parser.add_argument("--num-beams", type=int, default=5)
    parser.add_argument("--length-penalty", type=float, default=1.0)
    parser.add_argument(
        "--replace-unknown",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Also decode with each <unk> replaced by the most attended "
        "source word (needs attention).",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", help="Write the results as JSON here.")
    parser.add_argument(
        "--save",
        metavar="PATH",
        help="Save the trained reversed-source model to this .keras file.",
    )
    parser.add_argument(
        "--checkpoint-dir",
        help="Save a checkpoint of each model here after every epoch; "
        "must be empty without --resume.",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="Continue from the checkpoints in --checkpoint-dir, if any.",
    )
    args = parser.parse_args()
    for name in (
        "test_size",
        "min_count",
        "num_layers",
        "units",
        "embedding_dim",
        "batch_size",
        "epochs",
        "num_beams",
        "anneal_start_step",
        "anneal_every_steps",
    ):
        if getattr(args, name) < 1:
            parser.error(
                f"--{name.replace('_', '-')} must be >= 1. "
                f"Received: {getattr(args, name)}"
            )
    if args.attention_hops < 0:
        parser.error(
            f"--attention-hops must be >= 0. Received: {args.attention_hops}"
        )
    if args.max_train_minutes <= 0 or args.curve_every_minutes < 0:
        parser.error(
            "--max-train-minutes must be > 0 and --curve-every-minutes "
            f">= 0. Received: {args.max_train_minutes}, "
            f"{args.curve_every_minutes}"
        )
    # Replacement reads the attention, so it is off without attention.
    args.replace_unknown = args.replace_unknown and args.attention_hops > 0
    optimizer, learning_rate, clip_norm = RECIPES[args.recipe]
    args.optimizer = optimizer
    if args.learning_rate is None:
        args.learning_rate = learning_rate
    if args.clip_norm is None:
        args.clip_norm = clip_norm
    if args.save:
        problem = check_save_path(args.save)
        if problem:
            parser.error(f"--save {args.save}: {problem}")
    if args.resume and not args.checkpoint_dir:
        parser.error("--resume needs --checkpoint-dir.")
    if args.checkpoint_dir:
        trained = {"on": (True,), "off": (False,), "both": (True, False)}
        for reverse_source in trained[args.reverse_source]:
            try:
                check_checkpoint_dir(
                    checkpoint_dir(args, reverse_source), args.resume
                )
            except ValueError as error:
                parser.error(str(error).replace("`resume=True`", "--resume"))
    return args


def checkpoint_dir(args, reverse_source):
    """The checkpoint directory of one direction's model, or None."""
    if not args.checkpoint_dir:
        return None
    name = "reversed" if reverse_source else "forward"
    return str(pathlib.Path(args.checkpoint_dir) / name)


def check_save_path(path):
    """Returns why a model cannot be saved at `path`, or None if it can.

    Checked before training, so that a bad path costs no training time:
    the name must end in `.keras`, must not be a folder, and its folder
    (created if missing) must accept a new file.
    """
    path = pathlib.Path(path)
    if path.suffix != ".keras":
        return (
            "the file name must end in `.keras` (Keras's saving format). "
            f"Received suffix {path.suffix!r}."
        )
    if path.is_dir():
        return "this is a folder; give a file name ending in `.keras`."
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as error:
        return f"its folder {str(folder)!r} is not writable ({error})."
    return None


def unknown_rate(translations, unknown_token):
    """The share of output words that are `unknown_token`."""
    words = [
        word for translation in translations for word in translation.split()
    ]
    if not words:
        return 0.0
    return sum(word == unknown_token for word in words) / len(words)


def save_and_check(model, path, test_sources):
    """Saves `model` to `path`, reloads it in safe mode and checks that it
    translates a sample of the test sentences identically."""
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    sample = test_sources[:50]
    identical = all(
        model.translate(sample, allow_unknown_sources=True, **kwargs)
        == loaded.translate(sample, allow_unknown_sources=True, **kwargs)
        for kwargs in ({"sampler": "greedy"}, {"num_beams": 2})
    )
    print(f"saved {path}; reloaded translations identical: {identical}")
    return {"path": str(path), "reloaded_translations_identical": identical}


def decodings(args):
    """(name, translate() arguments) of every decoding that is scored."""
    named = [
        ("greedy", {"sampler": "greedy"}),
        (
            f"beam{args.num_beams}",
            {
                "sampler": "beam",
                "num_beams": args.num_beams,
                "length_penalty": args.length_penalty,
            },
        ),
    ]
    if args.replace_unknown:
        named += [
            (f"{name}_unk_replaced", dict(kwargs, replace_unknown=True))
            for name, kwargs in named
        ]
    return named


def score(model, args, test_sources, test_references, verbose=True):
    """BLEU, `<unk>` rate and decoding seconds of every decoding."""
    result = {}
    unknown_token = model.target_vocabulary.unk_token
    for name, kwargs in decodings(args):
        start = time.perf_counter()
        # A test sentence made only of unknown words is still scored.
        hypotheses = model.translate(
            test_sources, allow_unknown_sources=True, **kwargs
        )
        seconds = time.perf_counter() - start
        bleu = corpus_bleu(hypotheses, test_references)
        rate = unknown_rate(hypotheses, unknown_token)
        result[f"bleu_{name}"] = round(bleu, 2)
        result[f"unk_rate_{name}"] = round(rate, 4)
        result[f"decode_seconds_{name}"] = round(seconds, 1)
        if verbose:
            print(
                f"reverse_source={model.reverse_source} {name}: BLEU "
                f"{bleu:.2f}, <unk> {100 * rate:.1f}% ({seconds:.1f}s)"
            )
            for source, hypothesis in list(zip(test_sources, hypotheses))[:5]:
                print(f"  {source} -> {hypothesis}")
    return result


class LearningCurve(keras.callbacks.Callback):
    """Scores the test set every `every_seconds` of training time.

    The time limit's clock is paused while it scores, so the curve's
    minutes are training minutes.
    """

    def __init__(self, every_seconds, time_limit, score_model):
        super().__init__()
        self.every_seconds = every_seconds
        self.time_limit = time_limit
        self.score_model = score_model
        self.points = []

    def get_state(self):
        """The points so far, for `TrainingCheckpoint`."""
        return {"points": self.points}

    def set_state(self, state):
        self.points = list(state["points"])

    def on_train_begin(self, logs=None):
        self.points = []

    def on_train_batch_end(self, batch, logs=None):
        # `time_limit` comes first among the callbacks, so its clock is
        # current here.
        marks_passed = int(self.time_limit.elapsed // self.every_seconds)
        if marks_passed > len(self.points):
            self._add_point(logs)

    def on_train_end(self, logs=None):
        if not self.points or self.points[-1]["steps"] != self.time_limit.steps:
            self._add_point(logs)

    def _add_point(self, logs):
        with self.time_limit.paused():
            point = {
                "minutes": round(self.time_limit.elapsed / 60, 2),
                "steps": self.time_limit.steps,
                "train_loss": float((logs or {}).get("loss", float("nan"))),
                **self.score_model(),
            }
        self.points.append(point)
        print(
            "curve: "
            + ", ".join(
                f"{key} {value}"
                for key, value in point.items()
                if not key.startswith(("unk_rate", "decode_seconds"))
            )
        )


def learning_rate_schedule(args):
    """The recipe's rate: constant, or halved 5 times (paper-sgd)."""
    if args.recipe != "paper-sgd":
        return args.learning_rate
    boundaries = [
        args.anneal_start_step + k * args.anneal_every_steps for k in range(5)
    ]
    values = [args.learning_rate / 2**k for k in range(6)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def train_and_evaluate(
    args,
    reverse_source,
    train_pairs,
    test_sources,
    test_references,
    source_vocab,
    target_vocab,
):
    keras.utils.set_random_seed(args.seed)
    model = Seq2SeqTranslator(
        source_vocab,
        target_vocab,
        embedding_dim=args.embedding_dim,
        units=args.units,
        num_layers=args.num_layers,
        reverse_source=reverse_source,
        initializer=keras.initializers.RandomUniform(
            -args.init_scale, args.init_scale
        ),
        attention_hops=args.attention_hops,
    )
    optimizer_class = {
        "sgd": keras.optimizers.SGD,
        "adam": keras.optimizers.Adam,
    }[args.optimizer]
    model.compile(optimizer=optimizer_class(learning_rate_schedule(args)))
    directory = checkpoint_dir(args, reverse_source)
    if directory:
        # Built before `fit`, so that a checkpoint can be loaded into it.
        model(model.encode_pairs(train_pairs[:1])[0])
    dataset = sentence_pairs.sentence_pair_dataset(
        train_pairs,
        source_vocab,
        target_vocab,
        batch_size=args.batch_size,
        seed=args.seed,
        initial_epoch=(
            read_resume_epoch(directory) if directory and args.resume else 0
        ),
    )
    steps_per_epoch = int(dataset.cardinality())
    time_limit = TimeLimit(
        60 * args.max_train_minutes, max_steps=args.max_steps
    )
    callbacks = [GradientNormClipping(args.clip_norm), time_limit]
    curve = None
    if args.curve_every_minutes:
        curve = LearningCurve(
            60 * args.curve_every_minutes,
            time_limit,
            lambda: score(
                model, args, test_sources, test_references, verbose=False
            ),
        )
        callbacks.append(curve)
    checkpoint = None
    if directory:
        # Last: it restores the clock and the curve after they reset.
        checkpoint = TrainingCheckpoint(
            directory, [c for c in (time_limit, curve) if c is not None]
        )
        callbacks.append(checkpoint)
    history = model.fit(
        dataset, epochs=args.epochs, callbacks=callbacks, verbose=2
    ).history
    if checkpoint is not None:
        # Every epoch's, those before a restart too.
        history = checkpoint.history
    steps_done = time_limit.steps
    result = {
        "reverse_source": reverse_source,
        "attention_hops": args.attention_hops,
        "train_seconds": round(time_limit.elapsed, 1),
        "steps": steps_done,
        "epochs": round(steps_done / steps_per_epoch, 3),
        "stopped_by_time_limit": time_limit.stopped_early,
        "final_train_loss": float(history["loss"][-1]),
        "final_learning_rate": float(
            keras.ops.convert_to_numpy(model.optimizer.learning_rate)
        ),
    }
    if curve is not None:
        result["curve"] = curve.points
    if args.save and reverse_source:
        # Saved before evaluation, so a failure there loses no training.
        result["saved"] = save_and_check(model, args.save, test_sources)
    result.update(score(model, args, test_sources, test_references))
    return result


def main():
    args = parse_args()
    run_start = time.perf_counter()
    pairs = sentence_pairs.load_sentence_pairs(args.data)
    train_pairs, test_pairs = sentence_pairs.split_sentence_pairs(
        pairs, test_size=args.test_size, seed=args.split_seed
    )
    test_sources, test_references = sentence_pairs.group_references(test_pairs)
    source_vocab, target_vocab = sentence_pairs.build_vocabularies(
        train_pairs, min_count=args.min_count
    )
    print(
        f"{len(train_pairs)} training pairs, {len(test_pairs)} test pairs "
        f"({len(test_sources)} distinct English sentences); vocabularies: "
        f"{source_vocab.size} English, {target_vocab.size} French; "
        f"backend {keras.config.backend()}"
    )
    results = {
        "command": "python examples/translate_fra_eng.py "
        + " ".join(
            f"--{k.replace('_', '-')}={v}"
            for k, v in vars(args).items()
            if v is not None and v is not False
        ),
        "settings": vars(args),
        "backend": keras.config.backend(),
        "train_pairs": len(train_pairs),
        "test_pairs": len(test_pairs),
        "test_sources": len(test_sources),
        "source_vocabulary_size": source_vocab.size,
        "target_vocabulary_size": target_vocab.size,
        "models": [],
    }
    directions = {"on": (True,), "off": (False,), "both": (True, False)}
    for reverse_source in directions[args.reverse_source]:
        results["models"].append(
            train_and_evaluate(
                args,
                reverse_source,
                train_pairs,
                test_sources,
                test_references,
                source_vocab,
                target_vocab,
            )
        )
    results["total_seconds"] = round(time.perf_counter() - run_start, 1)
    print(json.dumps(results, indent=2))
    if args.output:
        path = pathlib.Path(args.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
