"""The `keras-memnet` command line.

`keras-memnet train` with no arguments is the package's main job: it trains
a `MemN2NLM` on the bundled first 1,024,000 bytes of text8 under the earlier
study's protocol with the default recipe (`MemN2NLMRecipe()`; `--recipe
paper` for the paper's), prints perplexities and sample continuations, and
saves a `.keras` file. `keras-memnet generate` continues
a prompt with a saved model or a shipped preset, `keras-memnet evaluate`
scores a text file, `keras-memnet translate` translates English into
French with a translator preset, `keras-memnet explain` draws what each
memory hop reads along a prompt, and `keras-memnet presets` lists the
shipped presets with their measured figures.
"""

import argparse
import os
import sys
import tempfile
import time

# Each protocol's text8 split and memory size, and the defaults of the
# options left unset. The small corpus trains best with 2 hops and small
# batches, which take many steps, and is best after about 6 epochs
# (docs/RESULTS.md, "The main job"); text8 takes the paper's depth.
PROTOCOLS = {
    "study512k": {
        "split": "study512k",
        "memory_size": 30,
        "hops": 2,
        "batch_size": 32,
        "epochs": 6,
    },
    "text8": {
        "split": "standard",
        "memory_size": 100,
        "hops": 6,
        "batch_size": 128,
        "epochs": 10,
    },
}
SAMPLERS = ("greedy", "random", "top_k", "top_p", "beam")
# "none" is one device; the others are keras_memnet.distribution's modes.
DISTRIBUTE_CHOICES = ("none", "data-parallel", "model-parallel")
RECIPES = ("default", "paper")
UNSEEN_MIXTURE = {"auto": "auto", "on": True, "off": False}


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-memnet",
        description="End-To-End Memory Network language models in Keras.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser(
        "train",
        help="train a MemN2NLM (defaults: the bundled text8 sample, study "
        "protocol, the default recipe)",
    )
    train.add_argument(
        "--protocol",
        choices=sorted(PROTOCOLS),
        default="study512k",
        help="study512k: train on text8 bytes [0, 512000), test on "
        "[512000, 1024000), 30 words of context, every word type of both "
        "chunks (16,988), validation carved from the end of the training "
        "chunk. text8: the paper's 90M/5M/5M split with min count 10. "
        "(default: study512k)",
    )
    train.add_argument(
        "--data",
        default=None,
        help="path to text8, text8.zip or a prefix of it (plain or .gz). "
        "Default: the bundled sample for study512k; text8 is downloaded "
        "for the text8 protocol.",
    )
    train.add_argument(
        "--hops",
        type=int,
        default=None,
        help="memory hops (default: 2 for study512k, 6 for text8)",
    )
    train.add_argument(
        "--memory-size",
        type=int,
        default=None,
        help="words of context (default: 30 for study512k, 100 for text8)",
    )
    train.add_argument("--embedding-dim", type=int, default=150)
    train.add_argument("--dropout", type=float, default=0.3)
    train.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="the most epochs (default: 6 for study512k, 10 for text8)",
    )
    train.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="rows per batch: sequences, or windows with --form window "
        "(default: 32 for study512k, 128 for text8)",
    )
    train.add_argument(
        "--form",
        choices=("sequence", "window"),
        default="sequence",
        help="sequence: every training token is a target once per epoch, "
        "in rows of --sequence-length targets computed together (the "
        "default, much faster); window: one random window per target, as "
        "the paper describes it. The model and its perplexities are the "
        "same.",
    )
    train.add_argument(
        "--sequence-length",
        type=int,
        default=None,
        help="targets per row in the sequence form (default: the recipe's: "
        "16, or 4 with --recipe paper)",
    )
    train.add_argument(
        "--recipe",
        choices=RECIPES,
        default="default",
        help="default: Adam at 0.002, norm clipped at 1.0, halved on a "
        "validation plateau, rows of 16 targets (MemN2NLMRecipe()); "
        "paper: the paper's SGD, 0.01 and a clip of 50 on the summed loss, "
        "divided by 1.5 on a plateau, rows of 4 targets "
        "(MemN2NLMRecipe.paper()). (default: default)",
    )
    train.add_argument(
        "--optimizer",
        choices=("sgd", "adagrad", "adam"),
        default=None,
        help="the recipe's optimizer instead of its own (default: adam; "
        "sgd with --recipe paper)",
    )
    train.add_argument(
        "--lr",
        type=float,
        default=None,
        help="learning rate on Keras's mean loss (default: the recipe's: "
        "0.002 for adam; the paper's 0.01 on the summed loss, i.e. 0.01 * "
        "the targets of a step, for sgd; 0.05 for adagrad)",
    )
    train.add_argument(
        "--weight-decay",
        type=float,
        default=None,
        help="decoupled weight decay of the optimizer (default: none, as in "
        "the paper)",
    )
    train.add_argument(
        "--unseen-mixture",
        choices=("auto", "on", "off"),
        default="auto",
        help="give the vocabulary ids that never occur in the training "
        "split a share of the probability estimated on validation "
        "(keras_memnet.layers.UnseenTokenMixture); auto: when there are "
        "such ids, as in study512k's closed vocabulary (default: auto)",
    )
    train.add_argument(
        "--patience",
        type=int,
        default=2,
        help="epochs without validation improvement before early stopping; "
        "the best weights are kept (default: 2)",
    )
    train.add_argument("--seed", type=int, default=1)
    train.add_argument(
        "--output",
        default="memn2n_lm.keras",
        help="where to save the model, a .keras file in an existing, "
        "writable directory (default: memn2n_lm.keras)",
    )
    train.add_argument(
        "--checkpoint-dir",
        default=None,
        help="save a checkpoint there after every epoch (weights, optimizer, "
        "annealing and early-stopping state); with --resume, a run killed "
        "at any point continues from it and ends as an uninterrupted one. "
        "Must be empty without --resume.",
    )
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue from the checkpoint in --checkpoint-dir, if there is "
        "one (else start afresh): rerun the same command after a crash",
    )
    train.add_argument(
        "--distribute",
        choices=DISTRIBUTE_CHOICES,
        default="none",
        help="data-parallel: train on every device (all GPUs, or all CPU "
        "devices without one) with the backend's engine: JAX's "
        "keras.distribution.DataParallel (over several processes when "
        "KERAS_DISTRIBUTION_* name them), TensorFlow's MirroredStrategy; "
        "not on PyTorch. --batch-size is then the global batch, a multiple "
        "of the number of devices. model-parallel (JAX): split the "
        "embeddings and the output projection by vocabulary id across the "
        "devices (keras.distribution.ModelParallel); the vocabulary size "
        "must divide by their number. (default: none, one device)",
    )
    train.add_argument(
        "--verbose", type=int, default=1, help="Keras verbosity (0, 1, 2)"
    )

    generate = commands.add_parser(
        "generate",
        help="continue a prompt with a saved model; prints the most likely "
        "(ML) and a random-choice (RC) continuation side by side",
    )
    _add_model_arguments(generate)
    generate.add_argument("--prompt", required=True)
    generate.add_argument("--max-length", type=int, default=20)
    generate.add_argument(
        "--sampler",
        choices=SAMPLERS,
        action="append",
        default=None,
        help="repeat to compare several (default: greedy and random)",
    )
    generate.add_argument("--temperature", type=float, default=1.0)
    generate.add_argument("--top-k", type=int, default=10)
    generate.add_argument("--top-p", type=float, default=0.9)
    generate.add_argument("--num-beams", type=int, default=5)
    generate.add_argument("--seed", type=int, default=None)

    evaluate = commands.add_parser(
        "evaluate",
        help="perplexity (and bits per token) of a saved model or a preset "
        "on a text file",
    )
    _add_model_arguments(evaluate)
    evaluate.add_argument(
        "--data",
        required=True,
        help="a text file, plain or .gz; every token after the first "
        "memory_size is scored with its full context",
    )
    evaluate.add_argument("--batch-size", type=int, default=16)

    explain = commands.add_parser(
        "explain",
        help="draw what each memory hop of a language model reads along a "
        "prompt: one heatmap per hop, saved as a picture",
    )
    _add_model_arguments(explain)
    explain.add_argument(
        "--prompt",
        required=True,
        help="the text to read; each of its tokens is predicted from the "
        "ones before it, and one more after it",
    )
    explain.add_argument(
        "--output",
        default="attention.png",
        help="where to write the picture: a .png, .svg or .pdf file in an "
        "existing, writable directory (default: attention.png)",
    )
    explain.add_argument(
        "--max-tokens",
        type=int,
        default=20,
        help="draw the last this many predictions along the prompt "
        "(default: 20)",
    )
    explain.add_argument(
        "--hops",
        type=int,
        nargs="+",
        default=None,
        help="the hops to draw, counted from 1 (default: all)",
    )
    explain.add_argument(
        "--dpi",
        type=int,
        default=100,
        help="dots per inch of a .png (default: 100)",
    )

    translate = commands.add_parser(
        "translate",
        help="translate English sentences into French with a translator "
        "preset or .keras file, one translation per line",
    )
    _add_model_arguments(translate)
    translate.add_argument(
        "text",
        nargs="*",
        help="the sentences to translate, one per argument; none, or '-', "
        "reads them from standard input, one per line",
    )
    translate.add_argument(
        "--beams",
        type=int,
        default=5,
        help="beam width of the search; 1 decodes greedily (default: 5)",
    )
    translate.add_argument(
        "--replace-unknown",
        action="store_true",
        help="replace each <unk> of a translation by the source word that "
        "the attention weighs most at that step (Luong et al., 2015)",
    )
    translate.add_argument(
        "--batch-size",
        type=int,
        default=64,
        help="sentences decoded together (default: 64)",
    )
    translate.add_argument(
        "--allow-unknown-sources",
        action="store_true",
        help="translate a sentence even if none of its words is in the "
        "source vocabulary (by default that is an error)",
    )

    commands.add_parser(
        "presets", help="list the shipped presets and their figures"
    )
    return parser


def _add_model_arguments(parser):
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a .keras file")
    source.add_argument(
        "--preset",
        help="a shipped preset name (see `keras-memnet presets`) or a "
        "preset directory",
    )


def _load(args):
    if args.preset is not None:
        from keras_memnet.presets import load_preset

        return load_preset(args.preset)
    from keras_memnet.saving import load_model

    return load_model(args.model)


def check_train_arguments(args):
    """Refuses bad numbers and paths before any data is read."""
    from keras_memnet.recipes.train_memn2n_lm import check_checkpoint_dir
    from keras_memnet.utils.arguments import check_float
    from keras_memnet.utils.arguments import check_int
    from keras_memnet.utils.arguments import check_one_of

    check_one_of("--distribute", args.distribute, DISTRIBUTE_CHOICES)
    check_one_of("--recipe", args.recipe, RECIPES)
    check_one_of("--unseen-mixture", args.unseen_mixture, tuple(UNSEEN_MIXTURE))
    # The protocol's defaults first, so that an explicit 0 is still refused.
    protocol = PROTOCOLS[args.protocol]
    for name in ("memory_size", "hops", "batch_size", "epochs"):
        if getattr(args, name) is None:
            setattr(args, name, protocol[name])
    for name in ("hops", "embedding_dim", "epochs", "batch_size"):
        check_int(_flag(name), getattr(args, name), minimum=1)
    for name in ("memory_size", "sequence_length"):
        # `None` is the default: the protocol's or the recipe's.
        check_int(_flag(name), getattr(args, name), minimum=1, allow_none=True)
    check_int("--patience", args.patience, minimum=0)
    check_int("--verbose", args.verbose, minimum=0, maximum=2)
    check_float(
        "--dropout", args.dropout, minimum=0, maximum=1, max_inclusive=False
    )
    check_float(
        "--lr", args.lr, minimum=0, min_inclusive=False, allow_none=True
    )
    check_float("--weight-decay", args.weight_decay, minimum=0, allow_none=True)
    if args.sequence_length is not None and args.form == "window":
        raise ValueError("--sequence-length applies only to --form sequence.")
    if args.data is not None and not os.path.isfile(args.data):
        raise ValueError(f"No file at --data {args.data!r}.")
    if args.distribute == "data-parallel":
        from keras_memnet.distribution import data_parallel_engine

        # Fails at once where there is no engine, and joins the JAX
        # processes before JAX computes anything.
        data_parallel_engine()
    elif args.distribute == "model-parallel":
        from keras_memnet.distribution import model_parallel_engine
        from keras_memnet.models import MemN2NLM

        model_parallel_engine(MemN2NLM)
    check_output_path(args.output)
    if args.resume and args.checkpoint_dir is None:
        raise ValueError("--resume needs --checkpoint-dir.")
    if args.checkpoint_dir is not None:
        try:
            check_checkpoint_dir(args.checkpoint_dir, args.resume)
        except ValueError as error:
            raise ValueError(
                str(error)
                .replace("`checkpoint_dir`=", "--checkpoint-dir ")
                .replace("`resume=True`", "--resume")
            ) from None


def check_output_path(output):
    """Refuses an output that `model.save` or `generate` would refuse."""
    if not output.endswith(".keras"):
        raise ValueError(
            f"--output {output!r} must end with .keras (the format that "
            "`keras-memnet generate` loads)."
        )
    check_writable_file(output)


def check_writable_file(output):
    """Refuses an --output that is a directory or cannot be created."""
    if os.path.isdir(output):
        raise ValueError(f"--output {output!r} is a directory.")
    directory = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(directory):
        raise ValueError(
            f"The directory of --output {output!r} does not exist: "
            f"{directory!r}."
        )
    if not os.access(directory, os.W_OK):
        raise ValueError(
            f"The directory of --output {output!r} is not writable: "
            f"{directory!r}."
        )


def _flag(name):
    return "--" + name.replace("_", "-")


def save_model(model, output, checkpoint_dir):
    """Saves to `output`; if that fails, next to the checkpoints.

    Returns the path written and the error of the failed save (or `None`).
    """
    try:
        model.save(output)
        return output, None
    except (OSError, ValueError) as error:
        failure = error
    fallback_dir = checkpoint_dir or tempfile.mkdtemp(prefix="keras-memnet-")
    fallback = os.path.join(fallback_dir, os.path.basename(output))
    if not fallback.endswith(".keras"):
        fallback += ".keras"
    model.save(fallback)
    return fallback, failure


def train(args):
    from keras_memnet import datasets
    from keras_memnet.recipes import MemN2NLMRecipe
    from keras_memnet.recipes import train_memn2n_lm

    check_train_arguments(args)
    split = PROTOCOLS[args.protocol]["split"]
    memory_size = args.memory_size  # set by check_train_arguments
    started = time.time()
    if args.data is None and args.protocol == "study512k":
        corpus = datasets.text8_sample(split=split)
    else:
        corpus = datasets.text8(args.data, split=split)
    vocabulary = corpus.vocabulary
    print(
        f"Corpus {corpus.name}: {corpus.train.size:,} train, "
        f"{corpus.valid.size:,} valid, {corpus.test.size:,} test tokens; "
        f"vocabulary {vocabulary.size:,} (with <pad>)."
    )
    make_recipe = (
        MemN2NLMRecipe.paper if args.recipe == "paper" else MemN2NLMRecipe
    )
    options = {
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "weight_decay": args.weight_decay,
    }
    if args.form == "window":
        options["sequence_length"] = None
    elif args.sequence_length is not None:
        options["sequence_length"] = args.sequence_length
    if args.optimizer is not None:
        options["optimizer"] = args.optimizer
    recipe = make_recipe(**options)
    print(f"Recipe: {recipe}")
    run = train_memn2n_lm(
        corpus,
        hops=args.hops,
        memory_size=memory_size,
        embedding_dim=args.embedding_dim,
        dropout=args.dropout,
        recipe=recipe,
        epochs=args.epochs,
        patience=args.patience,
        seed=args.seed,
        verbose=args.verbose,
        checkpoint_dir=args.checkpoint_dir,
        resume=args.resume,
        distribute=None if args.distribute == "none" else args.distribute,
        unseen_mixture=UNSEEN_MIXTURE[args.unseen_mixture],
    )
    model = run["model"]

    if model.unseen_mixture is not None:
        mixture = model.unseen_mixture.mixture_state()
        print(
            f"\nUnseen words: the {mixture['unseen_count']:,} ids never seen "
            f"in training get {mixture['unseen_mass']:.1%} of the "
            "probability (estimated on validation); the training unigram's "
            f"weight is {mixture['unigram_weight']:.2f}."
        )
    print("\nPerplexity (best validation epoch):")
    for split_name, value in run["perplexity"].items():
        print(f"  {split_name:<5} {value:10.1f}")

    prompt = vocabulary.decode(corpus.test[:memory_size])
    print(f"\nTest context: ...{' '.join(prompt.split()[-12:])}")
    greedy = model.generate(prompt, 15, sampler="greedy")
    sampled = model.generate(prompt, 15, sampler="random", seed=args.seed)
    print(f"  greedy (ML): {greedy}")
    print(f"  random (RC): {sampled}")

    saved, failure = save_model(model, args.output, args.checkpoint_dir)
    if failure is not None:
        print(
            f"keras-memnet: error: cannot save --output {args.output!r} "
            f"({failure}); the model was saved to {saved} instead.",
            file=sys.stderr,
        )
        return 1
    print(f"\nSaved {saved} ({time.time() - started:.0f} s in all).")
    return 0


def generate(args):
    model = _load(args)
    if not hasattr(model, "generate"):
        raise ValueError(
            "`generate` continues text with a language model; this is a "
            f"{type(model).__name__}. Translators translate with "
            "`keras-memnet translate`."
        )
    samplers = args.sampler or ["greedy", "random"]
    labels = {"greedy": "ML", "random": "RC"}
    print(f"Prompt: {args.prompt}")
    for sampler in samplers:
        text = model.generate(
            args.prompt,
            max_length=args.max_length,
            sampler=sampler,
            temperature=args.temperature,
            top_k=args.top_k,
            top_p=args.top_p,
            num_beams=args.num_beams,
            seed=args.seed,
        )
        label = (
            f"{sampler} ({labels[sampler]})" if sampler in labels else sampler
        )
        print(f"  {label:<12} {text}")
    return 0


def evaluate(args):
    import gzip
    import os

    from keras_memnet.models import CharMemN2N
    from keras_memnet.models import MemN2NLM

    if not os.path.isfile(args.data):
        raise ValueError(f"No text file at --data {args.data!r}.")
    model = _load(args)
    if not isinstance(model, MemN2NLM):
        raise ValueError(
            f"`evaluate` scores language models; this is a "
            f"{type(model).__name__}."
        )
    opener = gzip.open if args.data.endswith(".gz") else open
    try:
        with opener(args.data, "rt", encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"Cannot read --data {args.data!r}: {error}")
    figures = model.evaluate_text(text, batch_size=args.batch_size)
    unit = "character" if isinstance(model, CharMemN2N) else "token"
    print(f"{figures['targets']:,} {unit}s scored")
    print(f"  perplexity: {figures['perplexity']:.2f}")
    print(f"  bits per {unit}: {figures['bits_per_token']:.3f}")
    return 0


def explain(args):
    import numpy as np

    from keras_memnet.models import MemN2NLM
    from keras_memnet.utils.arguments import check_int
    from keras_memnet.visualization import check_hops
    from keras_memnet.visualization import plot_memory_attention
    from keras_memnet.visualization import require_matplotlib

    # Everything that needs no model is checked before loading one.
    if not args.prompt.strip():
        raise ValueError("--prompt is empty: give at least one word.")
    check_int("--max-tokens", args.max_tokens, minimum=1)
    check_int("--dpi", args.dpi, minimum=10, maximum=1000)
    check_picture_path(args.output)
    try:
        require_matplotlib()
    except ImportError as error:
        raise ValueError(str(error)) from None
    model = _load(args)
    if not isinstance(model, MemN2NLM):
        raise ValueError(
            "`explain` draws a language model's memory attention; this is "
            f"a {type(model).__name__}. For a translator, use keras_memnet."
            "visualization.plot_translation_attention."
        )
    hops = check_hops(args.hops, model.hops, name="--hops")
    figure = plot_memory_attention(
        model, args.prompt, hops=hops, max_predictions=args.max_tokens
    )
    # The figures printed are those of the prediction after the prompt.
    attention = model.memory_attention(args.prompt)
    names = model.vocabulary.tokens if model.vocabulary is not None else None

    def name(token_id):
        return str(token_id) if names is None else repr(names[token_id])

    weights, memory_ids = attention["weights"][-1], attention["memory_ids"][-1]
    print(f"Prompt: {args.prompt}")
    print(f"Next token, most likely: {name(attention['predicted_ids'][-1])}")
    for hop in hops:
        top = np.argsort(weights[hop - 1])[::-1][:3]
        # Slot memory_size - 1 is the token just read: 1 back.
        read = ", ".join(
            f"{name(memory_ids[slot])} ({model.memory_size - slot} back) "
            f"{weights[hop - 1, slot]:.2f}"
            for slot in top
            if weights[hop - 1, slot] > 0
        )
        recent = weights[hop - 1, -5:].sum()
        print(
            f"  hop {hop}: {recent:.0%} on the last 5 tokens; reads most: "
            f"{read}"
        )
    figure.savefig(args.output, dpi=args.dpi)
    print(f"Wrote {args.output}")
    return 0


PICTURE_FORMATS = (".png", ".svg", ".pdf")


def check_picture_path(output):
    """Refuses an --output that cannot take a picture."""
    if not output.lower().endswith(PICTURE_FORMATS):
        raise ValueError(
            f"--output {output!r} must end with .png, .svg or .pdf."
        )
    check_writable_file(output)


def translate(args):
    from keras_memnet.models import Seq2SeqTranslator
    from keras_memnet.tokenizers import tokenize_sentence
    from keras_memnet.utils.arguments import check_int

    check_int("--beams", args.beams, minimum=1)
    check_int("--batch-size", args.batch_size, minimum=1)
    # The kind of model is checked before its weights are read.
    _check_model_class(args, Seq2SeqTranslator, "translate", "a translator")
    if not args.text or args.text == ["-"]:
        where = "line"
        texts = sys.stdin.read().splitlines()
        if not texts:
            raise ValueError(
                "No sentences to translate: give them as arguments, or one "
                "per line on standard input."
            )
    elif "-" in args.text:
        raise ValueError(
            "'-' (read standard input) must be the only sentence argument."
        )
    else:
        where, texts = "argument", args.text
    for number, text in enumerate(texts, 1):
        if not tokenize_sentence(text):
            raise ValueError(
                f"Sentence {where} {number} is empty: give one sentence "
                f"per {where}. Received: {text!r}"
            )
    model = _load(args)
    if not isinstance(model, Seq2SeqTranslator):
        raise ValueError(
            "`translate` needs a translator (a Seq2SeqTranslator); this is "
            f"a {type(model).__name__}. Language models continue text with "
            "`keras-memnet generate`."
        )
    if args.replace_unknown and not model.attention_hops:
        raise ValueError(
            "--replace-unknown needs a translator with attention; this one "
            "was built with attention_hops=0."
        )
    try:
        translations = model.translate(
            texts,
            sampler="greedy" if args.beams == 1 else "beam",
            num_beams=args.beams,
            batch_size=args.batch_size,
            replace_unknown=args.replace_unknown,
            allow_unknown_sources=args.allow_unknown_sources,
        )
    except ValueError as error:
        raise ValueError(
            str(error).replace(
                "pass `allow_unknown_sources=True`", "--allow-unknown-sources"
            )
        ) from None
    for translation in translations:
        print(translation)
    return 0


def _check_model_class(args, cls, command, kind):
    """Refuses a preset of another kind from its metadata, before loading
    its weights (a .keras file is checked once loaded)."""
    if args.preset is None:
        return
    from keras_memnet.presets.layout import METADATA_FILE
    from keras_memnet.presets.layout import read_preset_json
    from keras_memnet.presets.preset_location import resolve_preset

    if "://" in args.preset:
        return  # Checked once downloaded, by load_preset.
    class_name = read_preset_json(
        resolve_preset(args.preset), METADATA_FILE
    ).get("class_name")
    if class_name != cls.__name__:
        other = (
            " Language models continue text with `keras-memnet generate`."
            if class_name in ("MemN2NLM", "CharMemN2N")
            else ""
        )
        raise ValueError(
            f"`{command}` needs {kind} ({cls.__name__}); the preset "
            f"{args.preset!r} holds a {class_name}.{other}"
        )


def presets(args):
    from keras_memnet.presets import list_presets

    for name, metadata in sorted(list_presets().items()):
        figures = metadata.get("figures") or {}
        if "test_perplexity" in figures:
            shown = (
                f"test perplexity {figures['test_perplexity']:.1f} "
                f"({figures['test_bits_per_token']:.3f} bits per token)"
            )
        elif "bleu" in figures:
            decoding = (
                figures.get("headline", "bleu_")[len("bleu_") :]
                .replace("beam", "beam ")
                .replace("_unk_replaced", ", <unk> replaced")
            )
            shown = (
                f"BLEU {figures['bleu']:.2f} on {figures['test_sources']} "
                f"held-out sentences ({decoding})"
            )
        else:
            shown = "configuration only, no weights"
        print(
            f"{name:<22} {metadata.get('parameter_count', 0):>11,} "
            f"parameters  {shown}"
        )
        print(f"    {metadata.get('description', '')}")
    return 0


COMMANDS = {
    "train": train,
    "generate": generate,
    "evaluate": evaluate,
    "translate": translate,
    "explain": explain,
    "presets": presets,
}


def main(argv=None):
    from keras_memnet.callbacks.nan_guard import NonFiniteTrainingError

    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ValueError as error:
        print(f"keras-memnet: error: {error}", file=sys.stderr)
        return 2
    except NonFiniteTrainingError as error:
        # Nothing is saved: a NaN model must not replace a good file.
        print(
            f"keras-memnet: error: {error} Nothing was saved.", file=sys.stderr
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
