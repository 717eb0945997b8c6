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

**A preset.** `--save-preset DIR` writes the (reversed-source) model as a
preset directory in keras-memnet's layout (weights in float16, or with
`--quantize int8` quantized by Keras's own `model.quantize("int8")`),
loads it back from disk and scores the loaded preset on the fixed split,
and records in its `metadata.json` the data and its licence, the
commands, the seed, the training curve, the BLEU of the float32 model and
of the stored one, and the sizes (the weights file, and zipped as in a
wheel). `--heldout-sample FILE` also writes a seeded sample of the
held-out sentences (`--heldout-sample-size`, with all their references,
`english<TAB>french` lines) and records the stored preset's BLEU on it,
which `tests/test_shipped_presets.py` checks. `--load-model PATH` (a
`.keras` file or a preset directory) scores or packages a trained model
without training, for example float16 and int8 presets of one model side
by side:

    python examples/translate_fra_eng.py --save runs/t/model.keras \
        --output runs/t/train.json
    python examples/translate_fra_eng.py --load-model runs/t/model.keras \
        --training-results runs/t/train.json --quantize int8 \
        --save-preset runs/t/preset_int8 --output runs/t/int8.json
    python examples/translate_fra_eng.py --load-model runs/t/preset_int8
"""

import argparse
import io
import json
import os
import pathlib
import shlex
import sys
import tempfile
import time
import warnings
import zipfile

import keras
import numpy as np

from keras_memnet.callbacks import GradientNormClipping
from keras_memnet.callbacks import TimeLimit
from keras_memnet.callbacks import TrainingCheckpoint
from keras_memnet.callbacks import read_resume_epoch
from keras_memnet.datasets import sentence_pairs
from keras_memnet.metrics import corpus_bleu
from keras_memnet.models import Seq2SeqTranslator
from keras_memnet.presets import load_preset
from keras_memnet.recipes.train_memn2n_lm import check_checkpoint_dir

DEFAULT_DATA = (
    pathlib.Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "fra-eng-76k.txt.gz"
)

REPOSITORY = pathlib.Path(__file__).resolve().parents[1]
# What `--quantize` passes to `model.quantize` before the preset is saved.
QUANTIZE_MODES = ("none", "int8")
PRESET_LICENSE = (
    "The sentence pairs are from the Tatoeba project (https://tatoeba.org), "
    "as listed by https://www.manythings.org/anki/ ('fra-eng'), licensed "
    "CC-BY 2.0 FR; the weights are shipped under the same terms with this "
    "attribution."
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
    parser.add_argument(
        "--load-model",
        metavar="PATH",
        help="Score (and with --save-preset, package) a trained model, a "
        ".keras file or a preset directory, instead of training one. Its "
        "vocabularies must be those of --min-count on the split.",
    )
    parser.add_argument(
        "--training-results",
        metavar="JSON",
        help="With --load-model: the --output JSON of the run that trained "
        "it, whose command, curve and figures go into the preset's "
        "metadata.",
    )
    parser.add_argument(
        "--save-preset",
        metavar="DIR",
        help="Write the (reversed-source) model as a preset directory here "
        "(an existing preset there is replaced), then score the preset "
        "loaded back from disk.",
    )
    parser.add_argument(
        "--quantize",
        choices=QUANTIZE_MODES,
        default="none",
        help="int8: quantize the model with Keras's model.quantize('int8') "
        "before writing the preset (embeddings and dense layers; the LSTMs "
        "and the attention hop stay float).",
    )
    parser.add_argument(
        "--preset-weights-dtype",
        choices=("float32", "float16", "bfloat16"),
        default="float16",
        help="dtype of the preset's float weights (default: float16).",
    )
    parser.add_argument(
        "--heldout-sample",
        metavar="FILE",
        help="With --save-preset: write a seeded sample of the held-out "
        "sentences with all their references here (english<TAB>french), "
        "and record the preset's BLEU on it.",
    )
    parser.add_argument("--heldout-sample-size", type=int, default=200)
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
    check_preset_arguments(parser, args)
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


def check_preset_arguments(parser, args):
    """Refuses preset options that cannot work, before any training."""
    if args.load_model:
        path = pathlib.Path(args.load_model)
        if not (path.is_dir() or (path.is_file() and path.suffix == ".keras")):
            parser.error(
                f"--load-model {args.load_model}: not a .keras file or a "
                "preset directory."
            )
        for name in ("checkpoint_dir", "save", "curve_every_minutes"):
            if getattr(args, name):
                parser.error(
                    f"--{name.replace('_', '-')} trains; --load-model does not."
                )
    if args.training_results and not args.load_model:
        parser.error("--training-results goes with --load-model.")
    if args.training_results and not os.path.isfile(args.training_results):
        parser.error(f"--training-results {args.training_results}: no file.")
    if not args.save_preset:
        if args.heldout_sample:
            parser.error("--heldout-sample needs --save-preset.")
        if args.quantize != "none":
            parser.error("--quantize needs --save-preset.")
        return
    if args.reverse_source == "both" and not args.load_model:
        parser.error(
            "--save-preset saves one model: give --reverse-source on or off."
        )
    preset_dir = pathlib.Path(args.save_preset)
    if preset_dir.exists() and (
        not preset_dir.is_dir()
        or (
            any(preset_dir.iterdir())
            and not (preset_dir / "config.json").exists()
        )
    ):
        parser.error(
            f"--save-preset {args.save_preset}: exists and is not a preset "
            "directory (only a preset is replaced)."
        )
    if args.heldout_sample_size < 1:
        parser.error(
            "--heldout-sample-size must be >= 1. Received: "
            f"{args.heldout_sample_size}"
        )
    if args.heldout_sample:
        folder = pathlib.Path(args.heldout_sample).resolve().parent
        if not folder.is_dir():
            parser.error(f"--heldout-sample: no folder {str(folder)!r}.")


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
        "train_loss_per_epoch": [float(loss) for loss in history["loss"]],
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
    return result, model


def invocation():
    """This run's command line, as run from the repository root."""
    script = pathlib.Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(REPOSITORY)
    except ValueError:
        pass
    backend = os.environ.get("KERAS_BACKEND")
    prefix = f"KERAS_BACKEND={backend} " if backend else ""
    return f"{prefix}python {shlex.join([str(script), *sys.argv[1:]])}"


def repository_path(path):
    """`path` relative to the repository root when it is inside it."""
    path = pathlib.Path(path).resolve()
    try:
        return str(path.relative_to(REPOSITORY))
    except ValueError:
        return str(path)


def load_trained_model(path, source_vocab, target_vocab):
    """A trained translator from a `.keras` file or a preset directory,
    checked to use the vocabularies of this split and `--min-count`."""
    if pathlib.Path(path).is_dir():
        model = load_preset(path, cls=Seq2SeqTranslator)
    else:
        model = keras.saving.load_model(path, safe_mode=True)
    if not isinstance(model, Seq2SeqTranslator):
        raise SystemExit(
            f"--load-model {path}: holds a {type(model).__name__}, not a "
            "Seq2SeqTranslator."
        )
    if (
        model.source_vocabulary != source_vocab
        or model.target_vocabulary != target_vocab
    ):
        raise SystemExit(
            f"--load-model {path}: its vocabularies "
            f"({model.source_vocabulary.size} English, "
            f"{model.target_vocabulary.size} French words) are not "
            f"those of this split with --min-count ({source_vocab.size}, "
            f"{target_vocab.size}). Give the --data, --test-size, "
            "--split-seed and --min-count it was trained with."
        )
    return model


def sample_heldout(sources, references, size, seed=0):
    """A seeded sample of `size` held-out sources (in split order) with
    all their references."""
    size = min(size, len(sources))
    chosen = sorted(
        np.random.default_rng(seed).choice(len(sources), size, replace=False)
    )
    return [sources[i] for i in chosen], [references[i] for i in chosen]


def write_heldout_sample(path, sources, references):
    """Writes `english<TAB>french` lines, every reference of each source,
    which `load_sentence_pairs` and `group_references` read back."""
    lines = [
        f"{source}\t{reference}"
        for source, source_references in zip(sources, references)
        for reference in source_references
    ]
    with open(path, "w", encoding="utf-8", newline="\n") as file:
        file.write("\n".join(lines) + "\n")
    return len(lines)


def zipped_sizes(preset_dir):
    """Bytes of the preset's files, raw and deflated as in a wheel."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for root, _, files in os.walk(preset_dir):
            for name in sorted(files):
                full = os.path.join(root, name)
                archive.write(full, os.path.relpath(full, preset_dir))
    with zipfile.ZipFile(buffer) as archive:
        infos = archive.infolist()
    weights = next(i for i in infos if i.filename == "model.weights.h5")
    return {
        "weights_file_bytes": weights.file_size,
        "weights_zipped_bytes": weights.compress_size,
        "preset_bytes": sum(i.file_size for i in infos),
        "preset_zipped_bytes": sum(i.compress_size for i in infos),
        "preset_zipped_mib": round(
            sum(i.compress_size for i in infos) / 2**20, 3
        ),
    }


def heldout_decoding(args):
    """The `translate()` arguments of the preset's headline figure: beam
    search, `<unk>` replaced (when the model attends)."""
    return {
        "sampler": "beam",
        "num_beams": args.num_beams,
        "length_penalty": args.length_penalty,
        "replace_unknown": bool(args.replace_unknown),
        "batch_size": 64,
        "allow_unknown_sources": True,
    }


def quantize(model, mode):
    if mode == "none":
        return
    with warnings.catch_warnings():
        # Keras warns for each layer it cannot quantize (the LSTM cells,
        # the attention's softmax); they stay float.
        warnings.simplefilter("ignore")
        model.quantize(mode)


def write_preset(model, args, data, training, float_figures, test_set):
    """Saves `model` as a preset, scores the preset loaded back from disk
    and records everything in its `metadata.json`.

    Args:
        model: the trained translator (float32); quantized in place with
            `--quantize`.
        args: the parsed arguments.
        data: facts about the data (pairs, split, vocabularies).
        training: the training run's record (command, settings, curve).
        float_figures: `score()` of the float32 model.
        test_set: `(test_sources, test_references)`.

    Returns:
        The preset's figures (also in its metadata).
    """
    test_sources, test_references = test_set
    quantize(model, args.quantize)
    description = (
        "English -> French translator (Sutskever et al., 2014, with "
        f"MemoryHop attention): {model.num_layers} LSTM layers of "
        f"{model.units} cells, {model.embedding_dim}-dimensional "
        f"embeddings, {model.attention_hops} attention hop(s), source "
        f"{'reversed' if model.reverse_source else 'in order'}; "
        f"{model.source_vocabulary.size:,} English and "
        f"{model.target_vocabulary.size:,} French words"
        + (
            f"; {args.quantize} weights (Keras model.quantize)"
            if args.quantize != "none"
            else ""
        )
        + "."
    )
    preset_dir = pathlib.Path(args.save_preset)
    metadata = {
        "description": description,
        "data": data,
        "license": PRESET_LICENSE,
        "training_command": training.get("command"),
        "packaging_command": invocation(),
        "seed": training.get("seed"),
        "training": training,
    }
    model.save_to_preset(
        preset_dir,
        overwrite=True,
        weights_dtype=args.preset_weights_dtype,
        metadata=metadata,
    )
    stored = load_preset(preset_dir, cls=Seq2SeqTranslator)
    print(f"wrote the preset {preset_dir}; scoring it as loaded from disk")
    stored_figures = score(stored, args, test_sources, test_references)
    headline = headline_key(args)
    figures = {
        "test_sources": len(test_sources),
        "headline": headline,
        "bleu": stored_figures[headline],
        "quantization": args.quantize,
        "weights_dtype": args.preset_weights_dtype,
        "stored": stored_figures,
        "float32": float_figures,
        "bleu_cost_of_storage": round(
            float_figures[headline] - stored_figures[headline], 2
        ),
        **zipped_sizes(preset_dir),
    }
    if args.heldout_sample:
        sources, references = sample_heldout(
            test_sources, test_references, args.heldout_sample_size
        )
        pairs = write_heldout_sample(args.heldout_sample, sources, references)
        decoding = heldout_decoding(args)
        hypotheses = stored.translate(sources, **decoding)
        figures["heldout_sample"] = {
            "file": repository_path(args.heldout_sample),
            "sources": len(sources),
            "pairs": pairs,
            "seed": 0,
            "decoding": decoding,
            "bleu": round(corpus_bleu(hypotheses, references), 4),
        }
    metadata_path = preset_dir / "metadata.json"
    written = json.loads(metadata_path.read_text(encoding="utf-8"))
    written["figures"] = figures
    # Written in place, as `save_to_preset` writes JSON.
    with open(metadata_path, "w", encoding="utf-8") as file:
        json.dump(written, file, indent=4, ensure_ascii=False)
        file.write("\n")
    # The metadata grew: the sizes are those of the final files.
    figures.update(zipped_sizes(preset_dir))
    written["figures"] = figures
    with open(metadata_path, "w", encoding="utf-8") as file:
        json.dump(written, file, indent=4, ensure_ascii=False)
        file.write("\n")
    print(
        f"preset {preset_dir}: {headline} {figures['bleu']} (float32 "
        f"{float_figures[headline]}), weights "
        f"{figures['weights_file_bytes'] / 2**20:.2f} MiB, zipped "
        f"{figures['preset_zipped_mib']} MiB"
    )
    return figures


def is_quantized(model):
    return any(
        getattr(layer, "quantization_mode", None)
        for layer in model._flatten_layers()
    )


def scores_of(result):
    """The BLEU, `<unk>` rate and timing entries of a model's result."""
    return {
        key: value
        for key, value in result.items()
        if key.startswith(("bleu_", "unk_rate_", "decode_seconds_"))
    }


def data_record(args, pairs, results):
    """What the preset was trained and scored on, for its metadata."""
    return {
        "corpus": (
            "Tatoeba English-French sentence pairs (manythings.org 'fra-eng' "
            f"list), {pathlib.Path(args.data).name}: {len(pairs):,} "
            "pairs; source English, target French"
        ),
        "split": (
            f"split_sentence_pairs(test_size={args.test_size}, "
            f"seed={args.split_seed}): {results['train_pairs']:,} training "
            f"pairs; {results['test_pairs']:,} held-out pairs, "
            f"{results['test_sources']:,} English sentences never seen in "
            "training, all their French translations as references"
        ),
        "vocabularies": (
            f"words seen at least {args.min_count} times in training: "
            f"{results['source_vocabulary_size']:,} English, "
            f"{results['target_vocabulary_size']:,} French (with the "
            "special tokens); rarer words are <unk>"
        ),
    }


def training_record(results, reverse_source):
    """The training run of the model with `reverse_source`, from an
    `--output` JSON (or this run's results), for the preset's metadata."""
    models = [
        model
        for model in results["models"]
        if model.get("reverse_source") == reverse_source
    ]
    if not models:
        raise SystemExit(
            f"The training results hold no model with reverse_source="
            f"{reverse_source}."
        )
    model = models[-1]
    settings = dict(results.get("settings") or {})
    for key in ("data", "output", "save", "checkpoint_dir", "save_preset"):
        if settings.get(key):
            settings[key] = repository_path(settings[key])
    record = {
        "command": results.get("invocation") or results.get("command"),
        "seed": settings.get("seed"),
        "backend": results.get("backend"),
        "settings": settings,
    }
    for key in (
        "train_seconds",
        "steps",
        "epochs",
        "stopped_by_time_limit",
        "final_train_loss",
        "train_loss_per_epoch",
        "curve",
    ):
        if key in model:
            record[key] = model[key]
    record["scores_after_training"] = scores_of(model)
    return record


def headline_key(args):
    name = f"beam{args.num_beams}"
    if args.replace_unknown:
        name += "_unk_replaced"
    return f"bleu_{name}"


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
        "invocation": invocation(),
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
    data = data_record(args, pairs, results)
    test_set = (test_sources, test_references)
    if args.load_model:
        model = load_trained_model(args.load_model, source_vocab, target_vocab)
        if args.quantize != "none" and is_quantized(model):
            raise SystemExit(
                f"--load-model {args.load_model} is already quantized; "
                "--quantize needs the float model."
            )
        result = {
            "loaded": repository_path(args.load_model),
            "reverse_source": model.reverse_source,
            "attention_hops": model.attention_hops,
            "quantized": is_quantized(model),
            "parameters": int(model.count_params()),
            **score(model, args, test_sources, test_references),
        }
        if args.save_preset:
            training = {"command": None, "seed": None}
            if args.training_results:
                training = training_record(
                    json.loads(pathlib.Path(args.training_results).read_text()),
                    model.reverse_source,
                )
            result["preset"] = write_preset(
                model, args, data, training, scores_of(result), test_set
            )
        results["models"].append(result)
    directions = {"on": (True,), "off": (False,), "both": (True, False)}
    for reverse_source in (
        () if args.load_model else directions[args.reverse_source]
    ):
        result, model = train_and_evaluate(
            args,
            reverse_source,
            train_pairs,
            test_sources,
            test_references,
            source_vocab,
            target_vocab,
        )
        results["models"].append(result)
        if args.save_preset:
            result["preset"] = write_preset(
                model,
                args,
                data,
                training_record(results, reverse_source),
                scores_of(result),
                test_set,
            )
    results["total_seconds"] = round(time.perf_counter() - run_start, 1)
    print(json.dumps(results, indent=2))
    if args.output:
        path = pathlib.Path(args.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
