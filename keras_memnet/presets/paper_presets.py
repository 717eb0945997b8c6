"""The paper's two language-model configurations, as presets without weights.

Sukhbaatar et al., 2015, "End-To-End Memory Networks" (NeurIPS 2015,
arXiv:1503.08895), section 5: layer-wise tied `MemN2NLM`s for Penn Treebank
and text8. The presets hold no weights and no vocabulary (neither corpus
ships with the package): a model loaded from one starts from random
weights, ready to train with `keras_memnet.recipes`.

Regenerate the shipped directories with
`python -m keras_memnet.presets.paper_presets`.
"""

import os

from keras_memnet.presets.preset_io import save_to_preset
from keras_memnet.presets.preset_location import SHIPPED_PRESETS_DIR

PAPER = (
    "Sukhbaatar, Szlam, Weston & Fergus (2015), End-To-End Memory "
    "Networks, NeurIPS, arXiv:1503.08895, section 5"
)
COMMAND = "python -m keras_memnet.presets.paper_presets"
LICENSE = "Apache-2.0 (the configuration; no weights or data are included)"
PAPER_PRESETS = {
    "memn2n_ptb_paper": {
        "config": dict(
            vocabulary_size=10_000,
            hops=7,
            memory_size=200,
            embedding_dim=150,
            linear_units=75,
            weight_tying="layerwise",
        ),
        "metadata": {
            "description": (
                "The paper's Penn Treebank language model: 7 hops, 150 "
                "dimensions, a memory of 200 words, layer-wise tying, 75 "
                "linear units. Configuration only: random weights, no "
                "vocabulary (build one from PTB's training text)."
            ),
            "data": "Penn Treebank (Mikolov's 10,000-word version)",
            "paper": PAPER,
            "command": COMMAND,
            "license": LICENSE,
        },
    },
    "memn2n_text8_paper": {
        "config": dict(
            vocabulary_size=44_000,
            hops=7,
            memory_size=100,
            embedding_dim=500,
            weight_tying="layerwise",
        ),
        "metadata": {
            "description": (
                "The paper's text8 language model: 7 hops, 500 dimensions, "
                "a memory of 100 words, layer-wise tying. Configuration "
                "only: random weights, no vocabulary; 44,000 ids is about "
                "text8's vocabulary of words seen at least 10 times."
            ),
            "data": "text8 (first 10^8 bytes of English Wikipedia, cleaned)",
            "paper": PAPER,
            "command": COMMAND,
            "license": LICENSE,
        },
    },
}


def write_paper_presets(presets_dir=SHIPPED_PRESETS_DIR, overwrite=True):
    """Writes the paper's configurations as weightless presets.

    Args:
        presets_dir: str, the folder to write one directory per preset
            into. Defaults to the package's shipped presets.
        overwrite: bool. Replace existing presets of the same name.

    Returns:
        The list of preset directories written.

    Example:

    ```python
    from keras_memnet.presets import load_preset
    from keras_memnet.presets.paper_presets import write_paper_presets

    directories = write_paper_presets("/tmp/paper_presets")
    model = load_preset(directories[0])
    ```
    """
    # Imported here: the models import this package for `PresetMixin`.
    from keras_memnet.models import MemN2NLM

    written = []
    for name, preset in PAPER_PRESETS.items():
        model = MemN2NLM(**preset["config"], name=name)
        model.build((None, model.memory_size))
        preset_dir = os.path.join(presets_dir, name)
        save_to_preset(
            model,
            preset_dir,
            overwrite=overwrite,
            metadata=preset["metadata"],
            include_weights=False,
        )
        written.append(preset_dir)
    return written


if __name__ == "__main__":
    for directory in write_paper_presets():
        print(directory)
