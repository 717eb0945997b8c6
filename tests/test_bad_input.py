"""Every bad input tried, its message, and whether anything on disk changed.

Each case runs in a fresh directory (the working directory too, for the
command line's default paths); the test asserts that it fails with a
clear message before anything is written, and writes the table of all of
them to `docs/BAD_INPUT.md`:

    KERAS_MEMNET_WRITE_DOCS=1 python -m pytest tests/test_bad_input.py

Without that variable it checks that the table there is current.
"""

import hashlib
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np

from keras_memnet.cli import main
from keras_memnet.saving import load_model

TABLE = Path(__file__).resolve().parents[1] / "docs" / "BAD_INPUT.md"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
VOCABULARY_SIZE = 20
MEMORY_SIZE = 4


def tiny_model():
    from keras_memnet.models import MemN2NLM

    model = MemN2NLM(
        VOCABULARY_SIZE, hops=1, memory_size=MEMORY_SIZE, embedding_dim=8
    )
    model.build((None, MEMORY_SIZE))
    return model


def unseen_mixture():
    from keras_memnet.layers import UnseenTokenMixture

    return UnseenTokenMixture(VOCABULARY_SIZE)


def ids(rows=4, high=VOCABULARY_SIZE):
    return np.random.default_rng(0).integers(1, high, (rows, MEMORY_SIZE))


def damaged_keras_file(directory):
    path = directory / "model.keras"
    tiny_model().save(path)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("model.weights.h5")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 200
    data[start : start + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    return path


def saved_model(directory):
    path = directory / "model.keras"
    tiny_model().save(path)
    return path


def checkpoint_dir(directory):
    path = directory / "checkpoint"
    path.mkdir()
    (path / "training_metadata.json").write_text('{"epoch": 2, "batch": 0}')
    return path


def fit(x, y):
    model = tiny_model()
    model.compile(optimizer="sgd")
    model.fit(x, y, verbose=0)


def as_dataset(x, y):
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((x, y)).batch(2)


def batches(x, y):
    """`(x, y)` in batches of two from a Python generator."""
    return ((x[i : i + 2], y[i : i + 2]) for i in range(0, len(x), 2))


class Batches(keras.utils.PyDataset):
    """`(x, y)` in batches of two, as a `keras.utils.PyDataset`."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x) // 2

    def __getitem__(self, index):
        return self.x[2 * index : 2 * index + 2], self.y[
            2 * index : 2 * index + 2
        ]


def tiny_translator():
    from keras_memnet.datasets.sentence_pairs import build_vocabularies
    from keras_memnet.models import Seq2SeqTranslator

    pairs = [("i am here", "je suis ici"), ("you are here", "tu es ici")]
    model = Seq2SeqTranslator(
        *build_vocabularies(pairs), embedding_dim=8, units=8, num_layers=1
    )
    model(model.encode_pairs(pairs)[0])
    return model


def saved_translator(directory):
    tiny_translator().save(directory / "translator.keras")


def translate_stdin(text, *argv):
    """`keras-memnet translate ARGV` reading `text` on standard input."""

    def run(tmp):
        stdin = sys.stdin
        sys.stdin = io.StringIO(text)
        try:
            return main(
                ["translate", *(a.replace("{tmp}", str(tmp)) for a in argv)]
            )
        finally:
            sys.stdin = stdin

    return run


def pairs_file(name, content):
    def make(directory):
        (directory / name).write_bytes(content)

    return make


def run_example(script, *args):
    """Runs an example script; returns its exit status, and shows the last
    line of its stderr (the error) as the message."""

    def run(tmp):
        argv = [arg.replace("{tmp}", str(tmp)) for arg in args]
        result = subprocess.run(
            [sys.executable, str(EXAMPLES / script), *argv],
            capture_output=True,
            text=True,
            timeout=300,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        )
        sys.stderr.write(result.stderr.strip().splitlines()[-1])
        return result.returncode

    return run


def load_pairs(name):
    from keras_memnet.datasets.sentence_pairs import load_sentence_pairs

    return lambda tmp: load_sentence_pairs(tmp / name)


def train_memn2n_lm_into(directory):
    from keras_memnet.datasets import Corpus
    from keras_memnet.recipes import train_memn2n_lm
    from keras_memnet.tokenizers import WordVocabulary

    vocabulary = WordVocabulary.from_text("a b c d e")
    tokens = vocabulary.encode("a b c d e " * 20)
    corpus = Corpus(tokens, tokens, tokens, vocabulary)
    train_memn2n_lm(
        corpus, checkpoint_dir=directory / "checkpoint", epochs=1, verbose=0
    )


# (what is tried, how: a list of command-line arguments, or a function of
# the directory, and optionally a function that sets the directory up
# first; "{tmp}" in arguments is that directory).
CASES = [
    ("train --memory-size 0", ["train", "--memory-size", "0"]),
    ("train --epochs 0", ["train", "--epochs", "0"]),
    ("train --patience -3", ["train", "--patience", "-3"]),
    ("train --hops 0", ["train", "--hops", "0"]),
    ("train --dropout 1.5", ["train", "--dropout", "1.5"]),
    ("train --lr 0", ["train", "--lr", "0"]),
    ("train --lr nan", ["train", "--lr", "nan"]),
    ("train --batch-size 0", ["train", "--batch-size", "0"]),
    ("train --verbose 7", ["train", "--verbose", "7"]),
    (
        "train --form window --sequence-length 4",
        ["train", "--form", "window", "--sequence-length", "4"],
    ),
    ("train --output m.h5", ["train", "--output", "m.h5"]),
    (
        "train --output missing_dir/x.keras",
        ["train", "--output", "{tmp}/missing_dir/x.keras"],
    ),
    (
        "train --output an existing directory named x.keras",
        ["train", "--output", "{tmp}/x.keras"],
        lambda tmp: (tmp / "x.keras").mkdir(),
    ),
    ("train --data /nonexistent", ["train", "--data", "{tmp}/nonexistent"]),
    ("train --resume without --checkpoint-dir", ["train", "--resume"]),
    (
        "train --checkpoint-dir a file",
        ["train", "--checkpoint-dir", "{tmp}/file"],
        lambda tmp: (tmp / "file").write_text("x"),
    ),
    (
        "train --checkpoint-dir holding a checkpoint, without --resume",
        ["train", "--checkpoint-dir", "{tmp}/checkpoint"],
        checkpoint_dir,
    ),
    (
        "generate --model a damaged .keras file",
        ["generate", "--model", "{tmp}/model.keras", "--prompt", "a"],
        damaged_keras_file,
    ),
    (
        "generate --model a text file",
        ["generate", "--model", "{tmp}/notes.keras", "--prompt", "a"],
        lambda tmp: (tmp / "notes.keras").write_text("hello"),
    ),
    (
        "generate --sampler top_k --top-k 1000 (vocabulary of 20)",
        [
            "generate",
            "--model",
            "{tmp}/model.keras",
            "--prompt",
            "1 2",
            "--sampler",
            "top_k",
            "--top-k",
            "1000",
        ],
        saved_model,
    ),
    (
        "generate --max-length 1000000000000",
        [
            "generate",
            "--model",
            "{tmp}/model.keras",
            "--prompt",
            "1 2",
            "--max-length",
            str(10**12),
        ],
        saved_model,
    ),
    (
        "evaluate --data /nonexistent",
        [
            "evaluate",
            "--preset",
            "char_memn2n_text8",
            "--data",
            "{tmp}/nonexistent",
        ],
    ),
    (
        'explain --prompt ""',
        ["explain", "--preset", "memn2n_text8_12m", "--prompt", ""],
    ),
    (
        "explain --preset no_such_preset",
        ["explain", "--preset", "no_such_preset", "--prompt", "a"],
    ),
    (
        "explain --model /nonexistent.keras",
        ["explain", "--model", "{tmp}/nonexistent.keras", "--prompt", "a"],
    ),
    (
        "explain --model a translator's .keras file",
        ["explain", "--model", "{tmp}/translator.keras", "--prompt", "a"],
        lambda tmp: tiny_translator().save(tmp / "translator.keras"),
    ),
    (
        "explain --output attention.jpg",
        [
            "explain",
            "--model",
            "{tmp}/model.keras",
            "--prompt",
            "1 2",
            "--output",
            "attention.jpg",
        ],
        saved_model,
    ),
    (
        "explain --hops 5 (a model of 1 hop)",
        [
            "explain",
            "--model",
            "{tmp}/model.keras",
            "--prompt",
            "1 2",
            "--hops",
            "5",
        ],
        saved_model,
    ),
    (
        "MemN2NLM.memory_attention: no token ids",
        lambda tmp: tiny_model().memory_attention(np.array([], "int32")),
    ),
    (
        "MemN2NLM.fit: an id >= vocabulary_size (NumPy)",
        lambda tmp: fit(ids(high=VOCABULARY_SIZE + 5) + 5, ids()[:, 0]),
    ),
    (
        "MemN2NLM.fit: a negative id (tensor)",
        lambda tmp: fit(keras.ops.convert_to_tensor(-ids()), ids()[:, 0]),
    ),
    (
        "MemN2NLM.fit: an id >= vocabulary_size (tf.data)",
        lambda tmp: fit(as_dataset(ids() + VOCABULARY_SIZE, ids()[:, 0]), None),
    ),
    (
        "MemN2NLM.fit: float ids",
        lambda tmp: fit(ids().astype("float32"), ids()[:, 0]),
    ),
    (
        "MemN2NLM.fit: float ids (tf.data)",
        lambda tmp: fit(as_dataset(ids().astype("float32"), ids()[:, 0]), None),
    ),
    (
        "MemN2NLM.fit: a target >= vocabulary_size (NumPy)",
        lambda tmp: fit(ids(), ids()[:, 0] + VOCABULARY_SIZE),
    ),
    (
        "MemN2NLM.fit: a target >= vocabulary_size (tf.data)",
        lambda tmp: fit(as_dataset(ids(), ids()[:, 0] + VOCABULARY_SIZE), None),
    ),
    (
        "MemN2NLM.fit: float ids (Python generator)",
        lambda tmp: fit(batches(ids().astype("float32"), ids()[:, 0]), None),
    ),
    (
        "MemN2NLM.fit: an id >= vocabulary_size (keras.utils.PyDataset)",
        lambda tmp: fit(Batches(ids() + VOCABULARY_SIZE, ids()[:, 0]), None),
    ),
    (
        "MemN2NLM.fit: a target >= vocabulary_size (Python generator)",
        lambda tmp: fit(batches(ids(), ids()[:, 0] + VOCABULARY_SIZE), None),
    ),
    ("MemN2NLM.fit: targets 0.5", lambda tmp: fit(ids(), np.full((4,), 0.5))),
    (
        "MemN2NLM.predict: an id >= vocabulary_size (tensor)",
        lambda tmp: tiny_model().predict(
            keras.ops.convert_to_tensor(ids() + VOCABULARY_SIZE), verbose=0
        ),
    ),
    (
        "MemN2NLM.generate(top_k=1000) with a vocabulary of 20",
        lambda tmp: tiny_model().generate(
            np.array([1, 2]), 2, sampler="top_k", top_k=1000
        ),
    ),
    (
        "MemN2NLM.generate(max_length=10**12)",
        lambda tmp: tiny_model().generate(np.array([1, 2]), 10**12),
    ),
    (
        "keras_memnet.saving.load_model: a damaged model.weights.h5",
        lambda tmp: load_model(tmp / "model.keras"),
        damaged_keras_file,
    ),
    (
        "train_memn2n_lm: checkpoint_dir holding a checkpoint, resume=False",
        train_memn2n_lm_into,
        checkpoint_dir,
    ),
    (
        "Seq2SeqTranslator.translate([]) (an empty source list)",
        lambda tmp: tiny_translator().translate([]),
    ),
    (
        "Seq2SeqTranslator.translate: a source made only of unknown words",
        lambda tmp: tiny_translator().translate(["i am here", "zorg blix"]),
    ),
    (
        "translate --preset char_memn2n_text8 (a language model)",
        ["translate", "--preset", "char_memn2n_text8", "I am here."],
    ),
    (
        "translate --model a language model's .keras file",
        ["translate", "--model", "{tmp}/model.keras", "I am here."],
        saved_model,
    ),
    (
        "translate --preset no_such_preset",
        ["translate", "--preset", "no_such_preset", "I am here."],
    ),
    (
        'translate "I am here." "" (an empty sentence)',
        ["translate", "--model", "{tmp}/translator.keras", "I am here.", ""],
        saved_translator,
    ),
    (
        "translate: an empty line on standard input",
        translate_stdin(
            "i am here\n\nyou are here\n",
            "--model",
            "{tmp}/translator.keras",
        ),
        saved_translator,
    ),
    (
        "translate --beams 0",
        [
            "translate",
            "--model",
            "{tmp}/translator.keras",
            "--beams",
            "0",
            "i am here",
        ],
        saved_translator,
    ),
    (
        "translate_fra_eng.py --save into a path that cannot be written "
        "(its folder is a file)",
        run_example(
            "translate_fra_eng.py", "--save", "{tmp}/a_file/model.keras"
        ),
        pairs_file("a_file", b"not a folder"),
    ),
    (
        "load_sentence_pairs: a line without a tab",
        load_pairs("pairs.txt"),
        pairs_file("pairs.txt", b"go\tva\nhello bonjour\n"),
    ),
    (
        "load_sentence_pairs: a file that is not UTF-8 (Latin-1)",
        load_pairs("pairs.txt"),
        pairs_file(
            "pairs.txt",
            "go\tva\nhe ran\til a couru\ncafe\tcaf\u00e9\n".encode("latin-1"),
        ),
    ),
    (
        "MemN2NLM.adapt_unseen_mixture: a model built without the mixture",
        lambda tmp: tiny_model().adapt_unseen_mixture(ids()[0], ids()[1]),
    ),
    (
        "UnseenTokenMixture.adapt: a training id >= vocabulary_size",
        lambda tmp: unseen_mixture().adapt([1, VOCABULARY_SIZE + 3]),
    ),
    (
        "UnseenTokenMixture.adapt: unseen_mass=1.0",
        lambda tmp: unseen_mixture().adapt([1, 2], unseen_mass=1.0),
    ),
]


def snapshot(directory):
    return {
        str(path.relative_to(directory)): (
            hashlib.sha1(path.read_bytes()).hexdigest()
            if path.is_file()
            else "dir"
        )
        for path in sorted(directory.rglob("*"))
    }


def try_case(how, directory, capsys):
    """Runs a case; returns its message (the exception or stderr)."""
    if isinstance(how, list):
        argv = [arg.replace("{tmp}", str(directory)) for arg in how]
        how = lambda tmp: main(argv)  # noqa: E731
    try:
        code = how(directory)
    except ValueError as error:
        return f"ValueError: {error}"
    stderr = capsys.readouterr().err.strip()
    assert code == 2, f"accepted, exit status {code}: {stderr}"
    return f"exit status 2: {stderr}"


def test_every_bad_input_fails_clearly_and_changes_nothing(
    tmp_path, capsys, monkeypatch
):
    rows = []
    for number, (what, how, *set_up) in enumerate(CASES, 1):
        directory = tmp_path / str(number)
        directory.mkdir()
        monkeypatch.chdir(directory)
        for make in set_up:
            make(directory)
        before = snapshot(directory)
        message = try_case(how, directory, capsys)
        after = snapshot(directory)
        changed = sorted(
            name
            for name in set(before) | set(after)
            if before.get(name) != after.get(name)
        )
        message = " ".join(message.replace(str(directory), "<dir>").split())
        assert "Traceback" not in message, (what, message)
        rows.append(
            (number, what, message, f"yes: {changed}" if changed else "no")
        )
    # Every bad input is refused before anything is written.
    assert all(row[3] == "no" for row in rows), rows
    table = render(rows)
    if os.environ.get("KERAS_MEMNET_WRITE_DOCS"):
        TABLE.write_text(table)
    elif keras.config.backend() == "tensorflow":
        assert TABLE.read_text() == table, (
            "docs/BAD_INPUT.md is out of date: run KERAS_MEMNET_WRITE_DOCS=1 "
            "python -m pytest tests/test_bad_input.py"
        )


def render(rows):
    lines = [
        "# Bad input",
        "",
        "Every bad input tried on keras-memnet, the message it gets, and "
        "whether anything on disk changed (the case's directory, set up "
        "with any file it needs, compared before and after). Generated by "
        "`tests/test_bad_input.py` (`KERAS_MEMNET_WRITE_DOCS=1 python -m "
        "pytest tests/test_bad_input.py`), which also checks that every "
        "case fails before training and writes nothing. `<dir>` is the "
        "case's own directory, also the working directory.",
        "",
        "| # | Input | Message | Disk changed |",
        "|---|---|---|---|",
    ]
    for number, what, message, changed in rows:
        cells = [str(number), what, message, changed]
        lines.append(
            "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
        )
    return "\n".join(lines) + "\n"
