"""`keras-memnet translate`, with a small translator saved in tmp_path."""

import io

import keras
import pytest

from keras_memnet.cli import main
from keras_memnet.models import Seq2SeqTranslator
from keras_memnet.tokenizers import build_vocabularies

PAIRS = [
    ("where is the station ?", "où est la gare ?"),
    ("where is the cat ?", "où est le chat ?"),
    ("the cat is here .", "le chat est ici ."),
    ("i am here .", "je suis ici ."),
] * 4


@pytest.fixture(scope="module")
def translator_files(tmp_path_factory):
    """A translator trained on four pairs, as a preset and a .keras file,
    and a language model as a .keras file."""
    from keras_memnet.models import MemN2NLM

    directory = tmp_path_factory.mktemp("translator")
    keras.utils.set_random_seed(0)
    model = Seq2SeqTranslator(
        *build_vocabularies(PAIRS), embedding_dim=16, units=32, num_layers=1
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    x, y = model.encode_pairs(PAIRS)
    model.fit(x, y, epochs=40, batch_size=8, verbose=0)
    model.save_to_preset(directory / "preset")
    model.save(directory / "translator.keras")
    language_model = MemN2NLM(20, hops=1, memory_size=4, embedding_dim=8)
    language_model.build((None, 4))
    language_model.save(directory / "lm.keras")
    return directory


def translate(capsys, *argv, stdin=None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(["translate", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def test_translates_arguments_with_a_preset(translator_files, capsys):
    code, lines, _ = translate(
        capsys,
        "--preset",
        translator_files / "preset",
        "Where is the station?",
        "I am here.",
    )
    assert code == 0
    assert lines == ["où est la gare ?", "je suis ici ."]


def test_reads_standard_input_one_line_each(
    translator_files, capsys, monkeypatch
):
    for argv in ([], ["-"]):
        code, lines, _ = translate(
            capsys,
            "--model",
            translator_files / "translator.keras",
            "--beams",
            "1",
            *argv,
            stdin="Where is the cat?\nThe cat is here.\n",
            monkeypatch=monkeypatch,
        )
        assert code == 0
        assert lines == ["où est le chat ?", "le chat est ici ."]


def test_replace_unknown_copies_the_source_word(translator_files, capsys):
    code, lines, _ = translate(
        capsys,
        "--preset",
        translator_files / "preset",
        "--replace-unknown",
        "--beams",
        "3",
        "Where is the station?",
    )
    assert code == 0 and lines == ["où est la gare ?"]


@pytest.mark.parametrize(
    "argv, stdin, message",
    [
        (["I am here.", "  "], None, "Sentence argument 2 is empty"),
        ([], "I am here.\n\nWhere is the cat?\n", "Sentence line 2 is empty"),
        ([], "", "No sentences to translate"),
        (["-", "I am here."], None, "'-' (read standard input) must be"),
        (["--beams", "0", "I am here."], None, "--beams"),
        (["zorg blix"], None, "only words outside the source vocabulary"),
    ],
)
def test_bad_sentences_are_refused(
    translator_files, capsys, monkeypatch, argv, stdin, message
):
    code, lines, error = translate(
        capsys,
        "--preset",
        translator_files / "preset",
        *argv,
        stdin=stdin,
        monkeypatch=monkeypatch,
    )
    assert code == 2 and lines == []
    assert message in error
    assert "Traceback" not in error


def test_unknown_sources_are_translated_when_allowed(translator_files, capsys):
    code, lines, _ = translate(
        capsys,
        "--preset",
        translator_files / "preset",
        "--allow-unknown-sources",
        "zorg blix",
    )
    assert code == 0 and len(lines) == 1


def test_a_language_model_is_refused(translator_files, capsys):
    code, _, error = translate(
        capsys, "--preset", "char_memn2n_text8", "I am here."
    )
    assert code == 2
    assert "needs a translator" in error and "CharMemN2N" in error
    assert "keras-memnet generate" in error
    code, _, error = translate(
        capsys, "--model", translator_files / "lm.keras", "I am here."
    )
    assert code == 2 and "this is a MemN2NLM" in error


def test_an_unknown_preset_is_named(capsys):
    code, _, error = translate(capsys, "--preset", "no_such_preset", "Hi.")
    assert code == 2
    assert "no_such_preset" in error and "memn2n_text8_12m" in error


def test_generate_refuses_a_translator(translator_files, capsys):
    code = main(
        ["generate", "--preset", str(translator_files / "preset"), "--prompt"]
        + ["where is"]
    )
    assert code == 2
    assert "keras-memnet translate" in capsys.readouterr().err


def test_presets_lists_a_translator_with_its_bleu(capsys, monkeypatch):
    metadata = {
        "class_name": "Seq2SeqTranslator",
        "parameter_count": 1234,
        "weights": True,
        "description": "English -> French translator.",
        "figures": {
            "bleu": 35.3249,
            "test_sources": 617,
            "headline": "bleu_beam5_unk_replaced",
        },
    }
    monkeypatch.setattr(
        "keras_memnet.presets.list_presets",
        lambda: {"seq2seq_eng_fra": metadata},
    )
    assert main(["presets"]) == 0
    output = capsys.readouterr().out
    assert (
        "BLEU 35.32 on 617 held-out sentences (beam 5, <unk> replaced)"
        in output
    )
