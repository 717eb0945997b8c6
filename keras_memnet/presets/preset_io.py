"""Saving a model as a preset directory, and loading one back."""

import datetime
import json
import os
import shutil
import uuid

import keras

from keras_memnet.presets.layout import CONFIG_FILE
from keras_memnet.presets.layout import METADATA_FILE
from keras_memnet.presets.layout import MODEL_WEIGHTS_FILE
from keras_memnet.presets.layout import preset_file_error
from keras_memnet.presets.layout import read_preset_json
from keras_memnet.presets.layout import write_json
from keras_memnet.presets.preset_location import resolve_preset
from keras_memnet.presets.vocabulary_assets import load_vocabularies
from keras_memnet.presets.vocabulary_assets import save_vocabularies
from keras_memnet.presets.weights_file import WEIGHTS_DTYPES
from keras_memnet.presets.weights_file import copy_weights_file
from keras_memnet.saving import PACKAGE_PREFIX
from keras_memnet.utils.arguments import check_bool
from keras_memnet.utils.arguments import check_instance
from keras_memnet.utils.arguments import check_one_of
from keras_memnet.version import __version__

# Metadata that `save_to_preset` writes itself; `metadata` may not set it.
RESERVED_METADATA_KEYS = (
    "keras_memnet_version",
    "keras_version",
    "keras_backend",
    "class_name",
    "registered_name",
    "parameter_count",
    "date_saved",
    "weights",
    "weights_dtype",
    "quantization",
)


def save_to_preset(
    model,
    preset_dir,
    overwrite=False,
    weights_dtype=None,
    metadata=None,
    include_weights=True,
):
    """Saves a keras-memnet model as a preset directory.

    The layout is keras-hub's: `config.json` (the model's config, each
    vocabulary moved out), `tokenizer.json` and `assets/tokenizer/*.txt`
    (the vocabularies, one token per line), `model.weights.h5` (the
    weights, without optimizer state) and `metadata.json`. See
    `keras_memnet.presets.layout`.

    A model quantized with Keras's own `model.quantize("int8")` is saved
    quantized: its int8 weights and their scales go into
    `model.weights.h5`, and `metadata.json`'s `"quantization"` names the
    quantized layers, their mode and quantization config, so that
    `load_preset` quantizes the same layers of the rebuilt model before
    loading the weights (on any backend).

    The preset is written into a temporary directory beside `preset_dir`
    and then moved into place, so a failure leaves no half-written preset
    and an existing one intact.

    Args:
        model: a built keras-memnet model, e.g. a `MemN2NLM`, `CharMemN2N`
            or `Seq2SeqTranslator`.
        preset_dir: str or path. Created if missing; it must be empty
            unless `overwrite`.
        overwrite: bool. Replace an existing preset at `preset_dir`. Only a
            directory holding a preset (`config.json`) is replaced.
        weights_dtype: `None` (the variables' dtype), `"float32"`,
            `"float16"` or `"bfloat16"`. Half precision halves the weights
            file; the weights load back into a float32 model. The int8
            weights of a quantized model stay int8.
        metadata: dict or `None`. JSON-serialisable facts to record in
            `metadata.json`, e.g. the training data, command, seed,
            measured figures and the data's licence.
        include_weights: bool. `False` saves a configuration only (a model
            loaded from it starts from fresh random weights); its metadata
            says `"weights": false`.

    Example:

    ```python
    from keras_memnet.models import MemN2NLM
    from keras_memnet.presets import load_preset
    from keras_memnet.presets import save_to_preset
    from keras_memnet.tokenizers import WordVocabulary

    vocabulary = WordVocabulary.from_text("the cat sat on the mat")
    model = MemN2NLM(
        vocabulary_size=vocabulary.size,
        hops=2,
        memory_size=4,
        embedding_dim=8,
        vocabulary=vocabulary,
    )
    model.build((None, 4))
    save_to_preset(
        model,
        "/tmp/tiny_preset",
        overwrite=True,
        metadata={"data": "one sentence", "seed": 0},
    )
    restored = load_preset("/tmp/tiny_preset")
    restored.generate("the cat", max_length=3)
    ```
    """
    check_instance("model", model, keras.Model, "a keras-memnet model")
    check_instance("preset_dir", preset_dir, (str, os.PathLike), "a path")
    overwrite = check_bool("overwrite", overwrite)
    include_weights = check_bool("include_weights", include_weights)
    weights_dtype = check_one_of(
        "weights_dtype", weights_dtype, (None,) + WEIGHTS_DTYPES
    )
    metadata = dict(
        check_instance("metadata", metadata, dict, "a dict", allow_none=True)
        or {}
    )
    _check_user_metadata(metadata)
    config = keras.saving.serialize_keras_object(model)
    registered_name = config.get("registered_name") or ""
    if not registered_name.startswith(PACKAGE_PREFIX):
        raise ValueError(
            "`save_to_preset` saves keras-memnet models; "
            f"{type(model).__name__} is registered as "
            f"{registered_name or config.get('class_name')!r}. Save other "
            "models with `model.save`."
        )
    if not model.built:
        raise ValueError(
            f"The {type(model).__name__} is not built, so it has no weights "
            "to save. Build it first, e.g. `model.build((None, "
            "memory_size))`, or call it on a batch."
        )
    if not hasattr(model, "build_for_preset") and (
        _preset_input_shape(model) is None
    ):
        raise ValueError(
            f"`load_preset` would not know how to build a "
            f"{type(model).__name__}: give the class a `build_for_preset()` "
            "method."
        )
    preset_dir = os.path.abspath(os.fspath(preset_dir))
    _check_target(preset_dir, overwrite)
    # Presets hold the model, not a training run (as in keras-hub).
    config.pop("compile_config", None)
    config.pop("build_config", None)

    parent = os.path.dirname(preset_dir)
    os.makedirs(parent, exist_ok=True)
    staging_dir = _sibling_name(preset_dir, "tmp")
    os.mkdir(staging_dir)
    try:
        write_json(
            os.path.join(staging_dir, CONFIG_FILE),
            save_vocabularies(config, staging_dir),
        )
        stored_dtype = None
        if include_weights:
            stored_dtype = _write_weights(model, staging_dir, weights_dtype)
        quantization = _quantization(model)
        write_json(
            os.path.join(staging_dir, METADATA_FILE),
            {
                "keras_memnet_version": __version__,
                "keras_version": keras.__version__,
                "keras_backend": keras.config.backend(),
                "class_name": type(model).__name__,
                "registered_name": registered_name,
                "parameter_count": int(model.count_params()),
                "date_saved": datetime.datetime.now(datetime.timezone.utc)
                .replace(microsecond=0)
                .isoformat(),
                "weights": include_weights,
                "weights_dtype": stored_dtype,
                **({"quantization": quantization} if quantization else {}),
                **metadata,
            },
        )
        _move_into_place(staging_dir, preset_dir)
    except BaseException:
        shutil.rmtree(staging_dir, ignore_errors=True)
        raise


def load_preset(
    preset,
    cls=None,
    load_weights=True,
    dtype=None,
    file_hash=None,
    cache_dir=None,
):
    """Loads a keras-memnet model from a preset.

    The config is deserialized in safe mode (no arbitrary code), the
    vocabularies are read back from the preset's assets, the model is built
    and its weights are loaded. A preset without weights (such as the
    paper's configurations) gives a model with fresh random weights.

    Args:
        preset: str or path. A shipped preset name (see `list_presets`),
            a local preset directory, or the `http(s)://` or `file://` URL
            of a `.tar.gz` or `.zip` archive of a preset directory, which is
            downloaded with `keras.utils.get_file` and checked against
            `file_hash`.
        cls: a class or `None`. When given, the preset must hold an
            instance of it (e.g. `MemN2NLM` accepts a `CharMemN2N`).
        load_weights: bool. `False` leaves the weights random.
        dtype: `None` (the saved dtype policy) or a dtype policy name for
            the model, e.g. `"bfloat16"`.
        file_hash: str, the sha256 of the archive, for a URL `preset`.
        cache_dir: str or `None`, where a URL preset is downloaded
            (`<cache_dir>/presets/`); `None` means `~/.keras`.

    Returns:
        The model.

    Raises:
        ValueError: for an unknown preset name (the message lists the
            shipped ones), a missing or corrupt file (the message names
            it), a preset of another package or class, or a sha256
            mismatch (the downloaded file is removed).

    Example:

    ```python
    from keras_memnet.models import MemN2NLM
    from keras_memnet.presets import load_preset

    model = load_preset("memn2n_ptb_paper")  # the paper's PTB model
    assert isinstance(model, MemN2NLM) and model.hops == 7
    ```
    """
    check_instance("cls", cls, type, "a model class", allow_none=True)
    load_weights = check_bool("load_weights", load_weights)
    what = "a dtype policy name, e.g. 'bfloat16'"
    if check_instance("dtype", dtype, str, what, allow_none=True):
        try:
            keras.dtype_policies.get(dtype)
        except ValueError:
            raise ValueError(
                f"`dtype` must be {what}. Received: dtype={dtype!r}"
            ) from None
    # Registers the keras-memnet classes that the config names.
    import keras_memnet.models  # noqa: F401
    import keras_memnet.tokenizers  # noqa: F401

    preset_dir = resolve_preset(
        preset, file_hash=file_hash, cache_dir=cache_dir
    )
    config = read_preset_json(preset_dir, CONFIG_FILE)
    metadata = read_preset_json(preset_dir, METADATA_FILE)
    model_cls = _model_class(config, preset_dir)
    if cls is not None and not issubclass(model_cls, cls):
        raise ValueError(
            f"The preset at {preset_dir!r} holds a {model_cls.__name__}, "
            f"not a {cls.__name__}. Load it with "
            f"`{model_cls.__name__}.from_preset` or "
            "`keras_memnet.presets.load_preset`."
        )
    has_weights = metadata.get("weights")
    if not isinstance(has_weights, bool):
        raise preset_file_error(
            preset_dir, METADATA_FILE, "has no true/false 'weights' entry"
        )
    weights_path = os.path.join(preset_dir, MODEL_WEIGHTS_FILE)
    if has_weights and load_weights and not os.path.isfile(weights_path):
        raise preset_file_error(preset_dir, MODEL_WEIGHTS_FILE, "is missing")
    config = load_vocabularies(config, preset_dir)
    try:
        if dtype is not None:
            config["config"] = {**config["config"], "dtype": dtype}
        model = keras.saving.deserialize_keras_object(config, safe_mode=True)
    except Exception as error:
        raise preset_file_error(
            preset_dir,
            CONFIG_FILE,
            f"does not describe a valid model ({error})",
        ) from None
    _build(model)
    _quantize_like(model, metadata.get("quantization"), preset_dir)
    if has_weights and load_weights:
        try:
            model.load_weights(weights_path)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise preset_file_error(
                preset_dir,
                MODEL_WEIGHTS_FILE,
                f"is corrupt, truncated or does not match {CONFIG_FILE} "
                f"({error})",
            ) from None
    return model


def _build(model):
    """Builds a freshly deserialized model so it has its weights.

    A class may define `build_for_preset()`; otherwise language models
    (with a `memory_size`) are built for windows of `memory_size` ids, and
    translators (with source and target vocabularies) for id batches of
    any length.
    """
    if model.built:
        return
    if hasattr(model, "build_for_preset"):
        model.build_for_preset()
        return
    input_shape = _preset_input_shape(model)
    if input_shape is None:
        raise ValueError(
            f"Cannot build a {type(model).__name__} from a preset: give the "
            "class a `build_for_preset()` method."
        )
    model.build(input_shape)


def _quantization(model):
    """What `model.quantize` changed, for `metadata.json`, or `None`.

    A list of `{"layer": path below the model, "mode": ..., "config":
    the serialized quantization config or None}`, one per quantized layer.
    """
    prefix = model.path + "/"
    layers = []
    for layer in model._flatten_layers(include_self=False):
        mode = getattr(layer, "quantization_mode", None)
        if mode is None:
            continue
        config = getattr(layer, "quantization_config", None)
        layers.append(
            {
                "layer": layer.path[len(prefix) :]
                if layer.path.startswith(prefix)
                else layer.path,
                "mode": mode,
                "config": None
                if config is None
                else keras.saving.serialize_keras_object(config),
            }
        )
    return layers or None


def _quantize_like(model, quantization, preset_dir):
    """Quantizes the layers of a rebuilt `model` that `quantization` (the
    metadata's entry) names, so that the saved int8 weights load."""
    if quantization is None:
        return
    if not isinstance(quantization, list) or not all(
        isinstance(entry, dict)
        and isinstance(entry.get("layer"), str)
        and isinstance(entry.get("mode"), str)
        for entry in quantization
    ):
        raise preset_file_error(
            preset_dir,
            METADATA_FILE,
            "has a 'quantization' entry that is not a list of "
            "{'layer', 'mode', 'config'}",
        )
    prefix = model.path + "/"
    layers = {
        layer.path[len(prefix) :]
        if layer.path.startswith(prefix)
        else layer.path: layer
        for layer in model._flatten_layers(include_self=False)
    }
    missing = sorted({e["layer"] for e in quantization} - set(layers))
    if missing:
        raise preset_file_error(
            preset_dir,
            METADATA_FILE,
            f"names quantized layers that {CONFIG_FILE}'s model does not "
            f"have: {missing}",
        )
    try:
        for entry in quantization:
            config = entry.get("config")
            if config is not None:
                config = keras.saving.deserialize_keras_object(
                    config, safe_mode=True
                )
            layers[entry["layer"]].quantize(entry["mode"], config=config)
    except Exception as error:
        raise preset_file_error(
            preset_dir,
            METADATA_FILE,
            f"describes a quantization that this Keras "
            f"({keras.__version__}) cannot apply ({error})",
        ) from None
    if hasattr(model, "_post_quantize"):
        # What `Model.quantize` does after its layers: on PyTorch, track
        # the new variables.
        model._post_quantize(quantization[0]["mode"])


def _preset_input_shape(model):
    memory_size = getattr(model, "memory_size", None)
    if isinstance(memory_size, int):
        return (None, memory_size)
    if hasattr(model, "source_vocabulary") and hasattr(
        model, "target_vocabulary"
    ):
        return {"source_ids": (None, None), "decoder_input_ids": (None, None)}
    return None


def _model_class(config, preset_dir):
    """The registered keras-memnet model class that `config` names."""
    registered_name = config.get("registered_name")
    if not isinstance(registered_name, str) or not registered_name.startswith(
        PACKAGE_PREFIX
    ):
        raise ValueError(
            f"The preset at {preset_dir!r} holds "
            f"{registered_name or config.get('class_name')!r}, which is not "
            "a keras-memnet model (its registered name does not start with "
            f"{PACKAGE_PREFIX!r}). Load keras-hub presets with keras-hub."
        )
    model_cls = keras.saving.get_registered_object(registered_name)
    if not isinstance(model_cls, type) or not issubclass(
        model_cls, keras.Model
    ):
        raise ValueError(
            f"The preset at {preset_dir!r} holds a {registered_name!r}, "
            f"which is not a model of this keras-memnet ({__version__}): "
            "it may need a newer version."
        )
    return model_cls


def _check_user_metadata(metadata):
    reserved = sorted(set(metadata) & set(RESERVED_METADATA_KEYS))
    if reserved:
        raise ValueError(
            f"`metadata` may not set {reserved}: `save_to_preset` records "
            f"them itself. Received: metadata={metadata!r:.200}"
        )
    for key in metadata:
        if not isinstance(key, str):
            raise ValueError(
                f"`metadata` keys must be strings. Received: key={key!r}"
            )
    try:
        json.dumps(metadata)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"`metadata` must be JSON-serialisable ({error}). "
            f"Received: metadata={metadata!r:.200}"
        ) from None


def _check_target(preset_dir, overwrite):
    if not os.path.exists(preset_dir):
        return
    if not os.path.isdir(preset_dir):
        raise ValueError(
            f"`preset_dir`={preset_dir!r} exists and is not a directory."
        )
    if not os.listdir(preset_dir):
        return
    if not overwrite:
        raise ValueError(
            f"`preset_dir`={preset_dir!r} is not empty. Pass "
            "`overwrite=True` to replace the preset in it, or choose a new "
            "directory."
        )
    if not os.path.isfile(os.path.join(preset_dir, CONFIG_FILE)):
        # `overwrite` replaces a preset, never an arbitrary folder.
        raise ValueError(
            f"`preset_dir`={preset_dir!r} is not empty and holds no preset "
            f"({CONFIG_FILE}), so it is not replaced even with "
            "`overwrite=True`. Choose a new directory."
        )


def _write_weights(model, staging_dir, weights_dtype):
    """Writes `model.weights.h5`; returns the dtype of its float weights."""
    full_path = os.path.join(staging_dir, "full.weights.h5")
    model.save_weights(full_path)
    copy_weights_file(
        full_path, os.path.join(staging_dir, MODEL_WEIGHTS_FILE), weights_dtype
    )
    os.remove(full_path)
    if weights_dtype is not None:
        return weights_dtype
    float_dtypes = sorted(
        {
            keras.backend.standardize_dtype(variable.dtype)
            for variable in model.weights
            if "float" in keras.backend.standardize_dtype(variable.dtype)
        }
    )
    return ", ".join(float_dtypes) or None


def _move_into_place(staging_dir, preset_dir):
    """Renames `staging_dir` to `preset_dir`, replacing what is there only
    once the new preset is complete, and restoring it if that fails."""
    if not os.path.exists(preset_dir):
        os.rename(staging_dir, preset_dir)
        return
    backup_dir = _sibling_name(preset_dir, "old")
    os.rename(preset_dir, backup_dir)
    try:
        os.rename(staging_dir, preset_dir)
    except BaseException:
        os.rename(backup_dir, preset_dir)
        raise
    shutil.rmtree(backup_dir, ignore_errors=True)


def _sibling_name(preset_dir, suffix):
    """A new hidden path beside `preset_dir`, on the same file system so
    that renaming it is atomic."""
    name = f".{os.path.basename(preset_dir)}.{uuid.uuid4().hex[:12]}.{suffix}"
    return os.path.join(os.path.dirname(preset_dir), name)
