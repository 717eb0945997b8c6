"""Pictures of what the models attend to, drawn with matplotlib.

- `plot_memory_attention(model, text)`: one heatmap per hop of a
  `MemN2NLM` (or `CharMemN2N`): for each prediction along the text, the
  hop's weights over the memory, with the memory's words on one axis (the
  paper's Figures 1 and 3 show such weights).
- `plot_translation_attention(model, source)`: a `Seq2SeqTranslator`'s
  attention, source words against output words.

matplotlib is imported only when a picture is drawn; install it with the
`plots` extra (`pip install "keras-memnet[plots]"`). The figures are
`matplotlib.figure.Figure` objects made without `pyplot`, so drawing one
changes no global matplotlib state and needs no display.
"""

import math

import numpy as np

from keras_memnet.utils.arguments import check_int

# Cells per inch of a heatmap; long texts give wide figures, not tiny cells.
CELLS_PER_INCH = 6.5
LABEL_FONT_SIZE = 7
# A space is invisible as a tick label; character models show it as this.
SPACE_MARK = "\u2423"


def require_matplotlib():
    """Imports matplotlib, or raises `ImportError` saying how to get it.

    Returns:
        The `matplotlib` module.
    """
    try:
        import matplotlib
        import matplotlib.figure  # noqa: F401
    except ImportError:
        raise ImportError(
            "Drawing attention needs matplotlib, which keras-memnet installs "
            'only with its `plots` extra: pip install "keras-memnet[plots]" '
            "(or pip install matplotlib)."
        ) from None
    return matplotlib


def plot_memory_attention(
    model, text, path=None, hops=None, max_predictions=20, dpi=100
):
    """Heatmaps of what each hop of a memory-network language model reads.

    One panel per hop. Rows are the model's predictions along `text`, the
    last `max_predictions` of them; columns are the text's tokens, in
    order, that those predictions hold in memory. Cell `(i, j)` is the
    hop's attention weight on token `j` while predicting the token after
    token `i` (`MemN2NLM.memory_attention`): each row reads the
    `memory_size` tokens ending on its diagonal cell, the most recent
    token, and the cells right of it (not yet read) or too far left (out
    of memory) are grey. A row is labelled with the token it predicts: the
    text's next token, and for the last row the model's most likely next
    token, in brackets. The colour scale runs from 0 to 1 as the square
    root of the weight, so that weights spread thinly over many slots stay
    visible.

    Args:
        model: a `keras_memnet.models.MemN2NLM` or `CharMemN2N`.
        text: a string (needs the model's `vocabulary`) or 1-D int token
            ids.
        path: optional file to save the figure to; the format follows its
            extension (`.png`, `.svg`, `.pdf`, ...).
        hops: optional list of hops to draw, counted from 1; `None`
            (default) draws every hop.
        max_predictions: int >= 1. Draw the last this many predictions.
            Defaults to `20`.
        dpi: int >= 1. Resolution of a saved raster image.

    Returns:
        The `matplotlib.figure.Figure`.

    Raises:
        ImportError: without matplotlib (the `plots` extra).
        ValueError: for a model that is not a `MemN2NLM`, hops out of
            range, or a text without tokens.

    Example:

    ```python
    from keras_memnet.models import MemN2NLM
    from keras_memnet.visualization import plot_memory_attention

    model = MemN2NLM.from_preset("memn2n_text8_12m")
    plot_memory_attention(
        model, "the history of the city", path="attention.png"
    )
    ```
    """
    from keras_memnet.models.memn2n_lm import MemN2NLM

    if not isinstance(model, MemN2NLM):
        raise ValueError(
            "`model` must be a keras_memnet.models.MemN2NLM (or CharMemN2N)"
            f"; this is a {type(model).__name__}. For a Seq2SeqTranslator, "
            "use `plot_translation_attention`."
        )
    hops = check_hops(hops, model.hops)
    max_predictions = check_int("max_predictions", max_predictions, minimum=1)
    dpi = check_int("dpi", dpi, minimum=1)
    matplotlib = require_matplotlib()

    attention = model.memory_attention(text)
    count, memory = attention["weights"].shape[0], model.memory_size
    first_row = max(0, count - max_predictions)
    first_column = max(0, first_row - memory + 1)
    rows = np.arange(first_row, count)
    columns = np.arange(first_column, count)
    # Prediction i's slot s holds token i - (memory - 1) + s.
    positions = rows[:, None] - (memory - 1) + np.arange(memory)
    in_view = positions >= first_column
    grids = []
    for hop in hops:
        grid = np.full((len(rows), len(columns)), np.nan, "float32")
        row_index = np.broadcast_to(
            np.arange(len(rows))[:, None], in_view.shape
        )
        grid[row_index[in_view], positions[in_view] - first_column] = attention[
            "weights"
        ][rows, hop - 1][in_view]
        grids.append(grid)

    unit = _token_unit(model)
    names = _token_names(model, attention["token_ids"], attention["tokens"])
    predicted = _token_names(model, attention["predicted_ids"][-1:], None)[0]
    row_labels = [names[i + 1] for i in rows[:-1]] + [f"[{predicted}]"]
    figure = _draw_heatmaps(
        matplotlib,
        grids,
        titles=[f"hop {hop}" for hop in hops],
        row_labels=row_labels,
        column_labels=[names[j] for j in columns],
        row_axis=f"{unit} predicted ([last]: the model's guess)",
        column_axis=f"{unit}s in memory (most recent on the diagonal)",
        title=(
            f"What each hop reads: attention over the last {memory} "
            f"{unit}s; next {unit} predicted: {predicted!r}"
        ),
    )
    if path is not None:
        figure.savefig(path, dpi=dpi)
    return figure


def plot_translation_attention(
    model, source, path=None, translation=None, dpi=100
):
    """A heatmap of a translator's attention: source words against output
    words.

    Rows are the output words (then the end token), columns the source
    words in written order; row `t` is the last attention hop's weights
    while the decoder predicts output word `t`
    (`Seq2SeqTranslator.attention_weights`, under teacher forcing on the
    translation).

    Args:
        model: a `keras_memnet.models.Seq2SeqTranslator` with attention
            (`attention_hops >= 1`).
        source: str, one source sentence.
        path: optional file to save the figure to; the format follows its
            extension.
        translation: optional str (or list of tokens), the output to read;
            `None` (default) uses `model.translate([source])`, beam search.
        dpi: int >= 1. Resolution of a saved raster image.

    Returns:
        The `matplotlib.figure.Figure`.

    Raises:
        ImportError: without matplotlib (the `plots` extra).
        ValueError: for a model without attention, or an empty source or
            translation.

    Example:

    ```python
    from keras_memnet.models import Seq2SeqTranslator
    from keras_memnet.tokenizers import build_vocabularies
    from keras_memnet.visualization import plot_translation_attention

    pairs = [("1 2 3", "3 2 1"), ("4 5", "5 4")] * 8
    model = Seq2SeqTranslator(
        *build_vocabularies(pairs), embedding_dim=8, units=16, num_layers=1
    )
    model.compile(optimizer="adam")
    x, y = model.encode_pairs(pairs)
    model.fit(x, y, epochs=1, verbose=0)
    plot_translation_attention(model, "1 2 3", path="translation.png")
    ```
    """
    from keras_memnet.models.seq2seq_translator import Seq2SeqTranslator
    from keras_memnet.tokenizers import tokenize_sentence

    if not isinstance(model, Seq2SeqTranslator):
        raise ValueError(
            "`model` must be a keras_memnet.models.Seq2SeqTranslator; this "
            f"is a {type(model).__name__}. For a language model, use "
            "`plot_memory_attention`."
        )
    if not isinstance(source, str):
        raise ValueError(
            f"`source` must be one sentence, a str. Received: {source!r:.80}"
        )
    dpi = check_int("dpi", dpi, minimum=1)
    matplotlib = require_matplotlib()
    if not model.attention_hops:
        raise ValueError(
            "This translator was built with `attention_hops=0`: it has no "
            "attention to draw."
        )
    source_tokens = tokenize_sentence(source)
    source_ids = model.encode_sources([source])  # Refuses an empty source.
    if translation is None:
        output_tokens = model.translate([source], return_tokens=True)[0]
    elif isinstance(translation, str):
        output_tokens = tokenize_sentence(translation)
    else:
        output_tokens = [str(token) for token in translation]
    decoder_input_ids = np.array(
        [[model.start_id, *model.target_vocabulary.encode(output_tokens)]],
        dtype="int32",
    )
    weights = model.attention_weights(source_ids, decoder_input_ids)[0]
    figure = _draw_heatmaps(
        matplotlib,
        [weights],
        titles=[f"last attention hop (of {model.attention_hops})"],
        row_labels=[*output_tokens, model.end_token],
        column_labels=source_tokens,
        row_axis="output word",
        column_axis="source word",
        title="Which source words each output word reads",
    )
    if path is not None:
        figure.savefig(path, dpi=dpi)
    return figure


def check_hops(hops, num_hops, name="hops"):
    """`hops` (1-based, or `None` for all) as a list, or raises."""
    if hops is None:
        return list(range(1, num_hops + 1))
    if isinstance(hops, (int, np.integer)):
        hops = [hops]
    hops = [check_int(name, hop, minimum=1, maximum=num_hops) for hop in hops]
    if not hops:
        raise ValueError(f"`{name}` is empty: give at least one hop.")
    return hops


def _token_unit(model):
    from keras_memnet.tokenizers import CharVocabulary
    from keras_memnet.tokenizers import WordVocabulary

    if isinstance(model.vocabulary, CharVocabulary):
        return "character"
    if isinstance(model.vocabulary, WordVocabulary):
        return "word"
    return "token"


def _token_names(model, token_ids, tokens):
    """Tick labels: tokens as text (spaces made visible), or the ids."""
    if model.vocabulary is None:
        return [str(token_id) for token_id in np.asarray(token_ids).tolist()]
    if tokens is None:
        names = model.vocabulary.tokens
        tokens = [names[i] for i in np.asarray(token_ids).tolist()]
    return [SPACE_MARK if token == " " else token for token in tokens]


def _draw_heatmaps(
    matplotlib,
    grids,
    titles,
    row_labels,
    column_labels,
    row_axis,
    column_axis,
    title,
):
    """Heatmaps on one square-root colour scale; NaN cells are grey."""
    from matplotlib.colors import PowerNorm
    from matplotlib.figure import Figure

    num_rows, num_columns = grids[0].shape
    grid_columns = min(3, len(grids))
    grid_rows = math.ceil(len(grids) / grid_columns)
    # Room for the tick labels: about one inch, more for long tokens.
    longest = max(len(label) for label in [*row_labels, *column_labels])
    label_inches = 0.4 + 0.07 * min(longest, 16)
    panel_width = max(2.5, num_columns / CELLS_PER_INCH) + label_inches
    panel_height = max(1.5, num_rows / CELLS_PER_INCH) + label_inches + 0.3
    figure = Figure(
        figsize=(
            grid_columns * panel_width + 1.0,
            grid_rows * panel_height + 0.5,
        ),
        layout="constrained",
    )
    axes = figure.subplots(grid_rows, grid_columns, squeeze=False)
    colours = matplotlib.colormaps["YlGnBu"].with_extremes(bad="#d9d9d9")
    # A fixed scale: an even spread looks pale, a sharp read dark.
    norm = PowerNorm(0.5, vmin=0.0, vmax=1.0)
    image = None
    for axis, grid, panel_title in zip(axes.flat, grids, titles):
        image = axis.imshow(
            np.ma.masked_invalid(grid),
            cmap=colours,
            norm=norm,
            aspect="auto",
            interpolation="nearest",
        )
        axis.set_title(panel_title, fontsize=9)
        axis.set_xticks(
            range(num_columns),
            column_labels,
            rotation=90,
            fontsize=LABEL_FONT_SIZE,
        )
        axis.set_yticks(range(num_rows), row_labels, fontsize=LABEL_FONT_SIZE)
        axis.tick_params(length=0)
        axis.set_xlabel(column_axis, fontsize=8)
        axis.set_ylabel(row_axis, fontsize=8)
    for axis in list(axes.flat)[len(grids) :]:
        axis.set_visible(False)
    colour_bar = figure.colorbar(image, ax=axes, shrink=0.6)
    colour_bar.set_label("attention weight", fontsize=8)
    colour_bar.ax.tick_params(labelsize=LABEL_FONT_SIZE)
    figure.suptitle(title, fontsize=10)
    return figure
