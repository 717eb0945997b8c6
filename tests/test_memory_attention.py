"""What the memory hops read: `memory_attention`, its pictures, and
`keras-memnet explain`."""

import importlib.util
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_memnet.cli import main
from keras_memnet.models import CharMemN2N
from keras_memnet.models import MemN2NBackbone
from keras_memnet.models import MemN2NLM
from keras_memnet.tokenizers import WordVocabulary
from keras_memnet.tokenizers import build_vocabularies

ROOT = Path(__file__).resolve().parents[1]
MEMORY, HOPS, DIM = 6, 3, 8
TEXT = "the cat sat on the mat and the dog sat on the cat"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def word_model(**kwargs):
    vocabulary = WordVocabulary.from_text(TEXT)
    config = dict(hops=HOPS, memory_size=MEMORY, embedding_dim=DIM)
    config.update(kwargs)
    return MemN2NLM(vocabulary.size, vocabulary=vocabulary, **config)


def numpy_hop_weights(model, windows):
    """Each hop's softmax over the slots, written out in NumPy from the
    paper's equations (layer-wise tying): `(windows, hops, memory)`."""
    weights = {
        w.path.split("/", 1)[1]: keras.ops.convert_to_numpy(w)
        for w in model.weights
    }
    a = weights["memory_embedding_0/embeddings"][windows]
    a = a + weights["temporal_encoding_0/embeddings"]
    c = weights["memory_embedding_1/embeddings"][windows]
    c = c + weights["temporal_encoding_1/embeddings"]
    h = weights["memory_hop/query_kernel"]
    mask = windows != 0
    u = np.full((len(windows), DIM), model.query_value, dtype="float64")
    hops = []
    for _ in range(model.hops):
        scores = np.where(mask, np.einsum("bd,bmd->bm", u, a), -np.inf)
        p = np.exp(scores - scores.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        hops.append(p)
        u = u @ h + np.einsum("bm,bmd->bd", p, c)
        u[:, model.linear_units :] = np.maximum(u[:, model.linear_units :], 0)
    return np.stack(hops, axis=1)


def test_hop_weights_match_numpy_reference():
    model = word_model()
    attention = model.memory_attention(TEXT, sequence_length=4)
    ids = model.vocabulary.encode(TEXT)
    # Prediction i reads the MEMORY tokens ending at token i, left-padded.
    padded = np.concatenate([np.zeros(MEMORY - 1, "int32"), ids])
    windows = np.stack([padded[i : i + MEMORY] for i in range(len(ids))])
    np.testing.assert_array_equal(attention["memory_ids"], windows)
    np.testing.assert_array_equal(attention["token_ids"], ids)
    expected = numpy_hop_weights(model, windows)
    # One hop checked on its own, then all of them.
    np.testing.assert_allclose(
        attention["weights"][:, 0], expected[:, 0], rtol=1e-4, atol=1e-6
    )
    np.testing.assert_allclose(
        attention["weights"], expected, rtol=1e-4, atol=1e-6
    )


def test_backbone_gives_each_hops_weights_in_both_forms():
    backbone = MemN2NBackbone(
        vocabulary_size=20, hops=HOPS, memory_size=MEMORY, embedding_dim=DIM
    )
    ids = np.random.default_rng(0).integers(1, 20, (2, MEMORY + 4))
    windows = keras.ops.convert_to_numpy(
        backbone.memory_attention(ids[:, :MEMORY])
    )
    sequence = keras.ops.convert_to_numpy(backbone.memory_attention(ids))
    assert windows.shape == (2, HOPS, MEMORY)
    assert sequence.shape == (2, 5, HOPS, MEMORY)
    # The sequence form's first window is the window form's.
    np.testing.assert_allclose(sequence[:, 0], windows, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("weight_tying", ["layerwise", "adjacent"])
def test_weights_are_a_distribution_over_the_tokens_read(weight_tying):
    model = word_model(weight_tying=weight_tying)
    attention = model.memory_attention(TEXT)
    count = len(TEXT.split())
    assert attention["weights"].shape == (count, HOPS, MEMORY)
    assert attention["weights"].dtype == np.float32
    np.testing.assert_allclose(attention["weights"].sum(-1), 1.0, atol=1e-5)
    # The padding before the text's start gets nothing.
    padding = attention["memory_ids"] == 0
    assert padding[0].sum() == MEMORY - 1
    assert np.all(attention["weights"].transpose(0, 2, 1)[padding] == 0)
    assert attention["tokens"] == TEXT.split()


def test_rows_of_any_length_give_the_same_weights():
    model = word_model()
    reference = model.memory_attention(TEXT)
    for sequence_length, batch_size in ((1, 3), (4, 1), (5, 16)):
        attention = model.memory_attention(
            TEXT, sequence_length=sequence_length, batch_size=batch_size
        )
        np.testing.assert_allclose(
            attention["weights"], reference["weights"], rtol=1e-5, atol=1e-6
        )
        np.testing.assert_array_equal(
            attention["predicted_ids"], reference["predicted_ids"]
        )


def test_predicted_ids_are_the_most_likely_next_tokens():
    model = word_model()
    attention = model.memory_attention(model.vocabulary.encode(TEXT))
    logits = model.predict(attention["memory_ids"], verbose=0)
    np.testing.assert_array_equal(
        attention["predicted_ids"], np.argmax(logits[:, 1:], -1) + 1
    )


def test_character_model_reads_characters():
    model = CharMemN2N(hops=2, memory_size=10, embedding_dim=DIM)
    attention = model.memory_attention("the cat sat")
    assert attention["weights"].shape == (11, 2, 10)
    assert attention["tokens"] == list("the cat sat")
    np.testing.assert_allclose(attention["weights"].sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "holds no token"),
        (np.zeros(3, "int32"), "holds no token"),
        (np.ones((2, 3), "int32"), "1-D integer token ids"),
        (np.ones(3, "float32"), "1-D integer token ids"),
        (np.array([1, 99]), "vocabulary_size"),
    ],
)
def test_memory_attention_rejects_bad_text(text, message):
    with pytest.raises(ValueError, match=message):
        word_model().memory_attention(text)


def test_plot_has_a_panel_per_hop_and_saves_a_png(tmp_path):
    from keras_memnet.visualization import plot_memory_attention

    model = word_model()
    path = tmp_path / "attention.png"
    figure = plot_memory_attention(model, TEXT, path=path, max_predictions=5)
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    panels = [axis for axis in figure.axes if axis.get_title()]
    assert [axis.get_title() for axis in panels] == ["hop 1", "hop 2", "hop 3"]
    # 5 predictions; the first reads back MEMORY - 1 tokens.
    labels = [t.get_text() for t in panels[0].get_xticklabels()]
    assert labels == TEXT.split()[-5 - MEMORY + 1 :]
    rows = [t.get_text() for t in panels[0].get_yticklabels()]
    assert rows[:-1] == TEXT.split()[-4:] and rows[-1].startswith("[")

    figure = plot_memory_attention(model, TEXT, hops=[2])
    assert [a.get_title() for a in figure.axes if a.get_title()] == ["hop 2"]
    with pytest.raises(ValueError, match="hops"):
        plot_memory_attention(model, TEXT, hops=[HOPS + 1])


def test_plotting_without_matplotlib_says_how_to_get_it(monkeypatch):
    from keras_memnet.visualization import plot_memory_attention

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"keras-memnet\[plots\]"):
        plot_memory_attention(word_model(), TEXT)


def tiny_translator():
    from keras_memnet.models import Seq2SeqTranslator

    pairs = [("i am here", "je suis ici"), ("you are here", "tu es ici")]
    model = Seq2SeqTranslator(
        *build_vocabularies(pairs), embedding_dim=8, units=8, num_layers=1
    )
    model(model.encode_pairs(pairs)[0])
    return model


def test_translation_plot_is_source_words_against_output_words(tmp_path):
    from keras_memnet.visualization import plot_memory_attention
    from keras_memnet.visualization import plot_translation_attention

    model = tiny_translator()
    path = tmp_path / "translation.png"
    figure = plot_translation_attention(
        model, "you are here", path=path, translation="tu es ici"
    )
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    (axis,) = [a for a in figure.axes if a.get_title()]
    columns = [t.get_text() for t in axis.get_xticklabels()]
    rows = [t.get_text() for t in axis.get_yticklabels()]
    assert columns == ["you", "are", "here"]
    assert rows == ["tu", "es", "ici", model.end_token]
    # The picture shows `attention_weights`, row by row.
    image = axis.get_images()[0].get_array()
    expected = model.attention_weights(
        model.encode_sources(["you are here"]),
        [[model.start_id, *model.target_vocabulary.encode(rows[:-1])]],
    )[0]
    np.testing.assert_allclose(np.ma.getdata(image), expected, rtol=1e-6)
    # Without a translation, the model's own is drawn.
    plot_translation_attention(model, "i am here")
    with pytest.raises(ValueError, match="plot_translation_attention"):
        plot_memory_attention(model, "i am here")


def save_word_model(tmp_path):
    path = tmp_path / "lm.keras"
    model = word_model()
    model.build((None, MEMORY))
    model.save(path)
    return path


def test_explain_writes_the_picture_for_a_saved_model(tmp_path, capsys):
    model_path = save_word_model(tmp_path)
    output = tmp_path / "attention.png"
    argv = ["explain", "--model", str(model_path), "--prompt", TEXT]
    assert main([*argv, "--output", str(output), "--hops", "1", "3"]) == 0
    printed = capsys.readouterr().out
    assert output.read_bytes().startswith(PNG_SIGNATURE)
    assert "Next token, most likely:" in printed
    assert "hop 1:" in printed and "hop 3:" in printed
    assert "hop 2:" not in printed


def test_explain_with_the_shipped_word_preset(tmp_path, capsys):
    output = tmp_path / "attention.png"
    argv = [
        "explain",
        "--preset",
        "memn2n_text8_12m",
        "--prompt",
        "the history of the city",
        "--output",
        str(output),
    ]
    assert main(argv) == 0
    assert output.read_bytes().startswith(PNG_SIGNATURE)
    assert "hop 6:" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--prompt", "  "], "--prompt is empty"),
        (["--output", "attention.jpg"], "must end with .png, .svg or .pdf"),
        (["--max-tokens", "0"], "--max-tokens"),
        (["--hops", str(HOPS + 1)], "--hops"),
    ],
)
def test_explain_reports_bad_input(tmp_path, capsys, extra, message):
    model_path = save_word_model(tmp_path)
    argv = ["explain", "--model", str(model_path), "--prompt", "the cat"]
    argv += ["--output", str(tmp_path / "a.png")] + extra
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "a.png").exists()


def test_explain_refuses_a_translator(tmp_path, capsys):
    path = tmp_path / "translator.keras"
    tiny_translator().save(path)
    argv = ["explain", "--model", str(path), "--prompt", "i am here"]
    assert main([*argv, "--output", str(tmp_path / "a.png")]) == 2
    error = capsys.readouterr().err
    assert "Seq2SeqTranslator" in error
    assert "plot_translation_attention" in error


def test_attention_by_hop_example_prints_a_row_per_hop(tmp_path, capsys):
    model_path = save_word_model(tmp_path)
    text_path = tmp_path / "text.txt"
    text_path.write_text(" ".join([TEXT] * 4))
    # Loaded in this process, so that it runs this checkout's package.
    spec = importlib.util.spec_from_file_location(
        "attention_by_hop", ROOT / "examples" / "attention_by_hop.py"
    )
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    example.main(
        ["--model", str(model_path), "--data", str(text_path), "--recent", "2"]
    )
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.startswith("hop")]
    assert len(rows) == HOPS
    # Shares of each hop's attention: the recent and the rest make 100%.
    for row in rows:
        recent, rest = (float(v.rstrip("%")) for v in row.split()[3:5])
        assert recent + rest == pytest.approx(100, abs=0.2)
