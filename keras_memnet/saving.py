"""Loading keras-memnet models with a clear error for anything else."""

import json
import os
import zipfile

import keras

PACKAGE_PREFIX = "keras_memnet>"


def load_model(filepath, compile=True):
    """Loads a keras-memnet model from a `.keras` file, in safe mode.

    Unlike `keras.saving.load_model`, it first checks that the file is a
    whole Keras archive (every member's checksum) holding a keras-memnet
    model, and says so clearly when it is not; a damaged weights file
    inside it is reported as such too. Lambda layers and other arbitrary
    code are refused (`safe_mode=True`).

    Args:
        filepath: path to a `.keras` file.
        compile: whether to restore the training configuration.

    Returns:
        The model, e.g. a `keras_memnet.models.MemN2NLM`.

    Example:

    ```python
    from keras_memnet.models import MemN2NLM
    from keras_memnet.saving import load_model

    model = MemN2NLM(vocabulary_size=20, hops=1, memory_size=4, embedding_dim=8)
    model.build((None, 4))
    model.save("/tmp/tiny.keras")
    restored = load_model("/tmp/tiny.keras")
    ```
    """
    filepath = os.fspath(filepath)
    if not os.path.isfile(filepath):
        raise ValueError(f"No model file at `filepath`={filepath!r}.")
    try:
        with zipfile.ZipFile(filepath) as archive:
            damaged = archive.testzip()
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as error:
        raise ValueError(
            f"{filepath!r} is not a Keras `.keras` model file ({error}). "
            "Save models with `model.save('name.keras')`."
        ) from None
    registered_name = config.get("registered_name") or ""
    if not registered_name.startswith(PACKAGE_PREFIX):
        name = registered_name or config.get("class_name")
        raise ValueError(
            f"{filepath!r} holds a {name!r}"
            ", not a keras-memnet model. Load it with "
            "`keras.saving.load_model` instead."
        )
    if damaged is not None:
        raise ValueError(
            f"{filepath!r} is damaged: its member {damaged!r} fails its "
            "checksum. Save the model again or restore the file from a copy."
        )
    try:
        return keras.saving.load_model(
            filepath, compile=compile, safe_mode=True
        )
    except (OSError, zipfile.BadZipFile, EOFError) as error:
        # h5py reports a damaged weights file as an `OSError`.
        raise ValueError(
            f"{filepath!r} holds a keras-memnet model whose weights cannot "
            f"be read ({type(error).__name__}: {error}). Save the model "
            "again or restore the file from a copy."
        ) from None
