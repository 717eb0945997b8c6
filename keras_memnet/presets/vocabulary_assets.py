"""Vocabularies of a preset, kept as text assets instead of in its config.

A model's config holds each vocabulary's full token list. In a preset each
one moves to `assets/tokenizer/<config key path>.txt`, one token per line
(line `i` is id `i`, special tokens included), as keras-hub keeps its
`vocabulary.txt`. `config.json` keeps `null` in its place, and
`tokenizer.json` says where each went and holds the vocabulary's other
settings, so the config can be put back together exactly.
"""

import copy
import os
import re

from keras_memnet.presets.layout import TOKENIZER_ASSET_DIR
from keras_memnet.presets.layout import TOKENIZER_CONFIG_FILE
from keras_memnet.presets.layout import preset_file_error
from keras_memnet.presets.layout import read_preset_json
from keras_memnet.presets.layout import write_json

# The config field holding each vocabulary class's ordinary tokens (without
# `<pad>` and `<unk>`, which `Vocabulary` always puts first).
VOCABULARY_TOKEN_FIELDS = {
    "keras_memnet>WordVocabulary": "tokens",
    "keras_memnet>CharVocabulary": "symbols",
}
TOKENIZER_FORMAT_VERSION = 1
# Escapes for the rare token holding a line break (a character vocabulary
# of text with newlines), so that every line still holds one token.
_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r"}
_UNESCAPES = {"\\\\": "\\", "\\n": "\n", "\\r": "\r"}


def save_vocabularies(config, preset_dir):
    """Moves the vocabularies of a model config out into text assets.

    Finds every serialized `WordVocabulary` or `CharVocabulary` anywhere in
    `config`, writes its tokens to `assets/tokenizer/` under `preset_dir`
    and writes `tokenizer.json`, which describes them.

    Args:
        config: dict, a serialized model
            (`keras.saving.serialize_keras_object(model)`). Not modified.
        preset_dir: str, the (new) preset directory.

    Returns:
        A copy of `config` with `None` in place of each vocabulary.

    Example:

    ```python
    import os
    import keras
    from keras_memnet.models import MemN2NLM
    from keras_memnet.presets.vocabulary_assets import load_vocabularies
    from keras_memnet.presets.vocabulary_assets import save_vocabularies
    from keras_memnet.tokenizers import WordVocabulary

    vocabulary = WordVocabulary.from_text("the cat sat on the mat")
    model = MemN2NLM(
        vocabulary_size=vocabulary.size,
        hops=1,
        memory_size=4,
        embedding_dim=8,
        vocabulary=vocabulary,
    )
    config = keras.saving.serialize_keras_object(model)
    os.makedirs("/tmp/vocabulary_demo", exist_ok=True)
    stripped = save_vocabularies(config, "/tmp/vocabulary_demo")
    assert stripped["config"]["vocabulary"] is None
    assert load_vocabularies(stripped, "/tmp/vocabulary_demo") == config
    ```
    """
    config = copy.deepcopy(config)
    entries = []
    used_names = set()
    for path, node in _find_vocabularies(config):
        token_field = VOCABULARY_TOKEN_FIELDS[node["registered_name"]]
        settings = dict(node["config"])
        types = settings.pop(token_field)
        specials = _special_tokens(settings)
        tokens = specials + list(types)
        escaped = any(("\n" in t or "\r" in t) for t in tokens)
        asset = f"{TOKENIZER_ASSET_DIR}/{_asset_name(path, used_names)}"
        _write_tokens(os.path.join(preset_dir, asset), tokens, escaped)
        entries.append(
            {
                "config_path": path,
                "asset": asset,
                "size": len(tokens),
                "num_special_tokens": len(specials),
                "token_field": token_field,
                # `CharVocabulary` keeps its symbols as one string.
                "token_field_is_string": isinstance(types, str),
                "escaped": escaped,
                "vocabulary": {**node, "config": settings},
            }
        )
        _set_at(config, path, None)
    write_json(
        os.path.join(preset_dir, TOKENIZER_CONFIG_FILE),
        {"format_version": TOKENIZER_FORMAT_VERSION, "vocabularies": entries},
    )
    return config


def load_vocabularies(config, preset_dir):
    """Puts the vocabularies of a preset back into its model config.

    Reads `tokenizer.json` and the assets it names. Raises `ValueError`
    naming the file when one is missing, corrupt or does not match
    `config.json`.

    Args:
        config: dict, the content of the preset's `config.json`.
        preset_dir: str, the preset directory.

    Returns:
        A copy of `config` with each vocabulary in place.
    """
    config = copy.deepcopy(config)
    spec = read_preset_json(preset_dir, TOKENIZER_CONFIG_FILE)
    if spec.get("format_version") != TOKENIZER_FORMAT_VERSION:
        raise preset_file_error(
            preset_dir,
            TOKENIZER_CONFIG_FILE,
            f"has format_version {spec.get('format_version')!r}; this "
            f"keras-memnet reads {TOKENIZER_FORMAT_VERSION} (a newer "
            "keras-memnet may read it)",
        )
    entries = spec.get("vocabularies")
    if not isinstance(entries, list):
        raise preset_file_error(
            preset_dir, TOKENIZER_CONFIG_FILE, "has no 'vocabularies' list"
        )
    for entry in entries:
        path, node = _checked_entry(entry, config, preset_dir)
        tokens = _read_tokens(preset_dir, entry)
        types = tokens[entry["num_special_tokens"] :]
        if entry.get("token_field_is_string"):
            types = "".join(types)
        node["config"][entry["token_field"]] = types
        _set_at(config, path, node)
    return config


def _find_vocabularies(node, path=()):
    """Yields `(key path, serialized vocabulary)` for every vocabulary."""
    if isinstance(node, dict):
        if node.get("registered_name") in VOCABULARY_TOKEN_FIELDS and (
            isinstance(node.get("config"), dict)
        ):
            yield list(path), node
            return
        for key, value in node.items():
            yield from _find_vocabularies(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _find_vocabularies(value, path + (index,))


def _special_tokens(settings):
    # The fixed id layout of `keras_memnet.tokenizers.Vocabulary`.
    unk_token = settings.get("unk_token")
    return [settings["pad_token"]] + ([] if unk_token is None else [unk_token])


def _asset_name(path, used_names):
    """`vocabulary.txt` for `config.vocabulary`, and so on.

    The `config` keys of serialized objects are left out of the name; the
    name is made unique among the preset's assets.
    """
    parts = [str(part) for part in path if part != "config"]
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", ".".join(parts)) or "vocabulary"
    name, suffix = f"{stem}.txt", 2
    while name in used_names:
        name, suffix = f"{stem}_{suffix}.txt", suffix + 1
    used_names.add(name)
    return name


def _write_tokens(path, tokens, escaped):
    if escaped:
        pattern = re.compile(r"[\\\n\r]")
        tokens = [pattern.sub(lambda m: _ESCAPES[m.group()], t) for t in tokens]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # Bytes, so that no newline translation happens on any platform.
    with open(path, "wb") as file:
        file.write(("\n".join(tokens) + "\n").encode("utf-8"))


def _read_tokens(preset_dir, entry):
    asset = entry["asset"]
    path = os.path.join(preset_dir, asset)
    if not os.path.isfile(path):
        raise preset_file_error(
            preset_dir, asset, f"is missing (named in {TOKENIZER_CONFIG_FILE})"
        )
    with open(path, "rb") as file:
        content = file.read()
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        raise preset_file_error(
            preset_dir, asset, f"is not UTF-8 text ({error})"
        ) from None
    if text.endswith("\n"):
        text = text[:-1]
    tokens = text.split("\n")
    if entry.get("escaped"):
        pattern = re.compile(r"\\[\\nr]")
        tokens = [
            pattern.sub(lambda m: _UNESCAPES[m.group()], t) for t in tokens
        ]
    if len(tokens) != entry["size"]:
        raise preset_file_error(
            preset_dir,
            asset,
            f"holds {len(tokens)} tokens where {TOKENIZER_CONFIG_FILE} says "
            f"{entry['size']}: it is truncated or was changed",
        )
    return tokens


def _checked_entry(entry, config, preset_dir):
    """The config path and vocabulary node of a `tokenizer.json` entry."""
    fields = (
        "config_path",
        "asset",
        "size",
        "num_special_tokens",
        "token_field",
        "vocabulary",
    )
    if not isinstance(entry, dict) or not all(f in entry for f in fields):
        raise preset_file_error(
            preset_dir,
            TOKENIZER_CONFIG_FILE,
            f"has a vocabulary entry without the fields {fields}",
        )
    asset = entry["asset"]
    # Assets must stay inside the preset's tokenizer folder.
    if (
        not isinstance(asset, str)
        or not asset.startswith(TOKENIZER_ASSET_DIR + "/")
        or ".." in asset.split("/")
        or "\\" in asset
    ):
        raise preset_file_error(
            preset_dir,
            TOKENIZER_CONFIG_FILE,
            f"names the asset {asset!r}, which is not under "
            f"{TOKENIZER_ASSET_DIR}/",
        )
    node = entry["vocabulary"]
    if (
        not isinstance(node, dict)
        or node.get("registered_name") not in VOCABULARY_TOKEN_FIELDS
        or not isinstance(node.get("config"), dict)
        or entry["token_field"]
        != VOCABULARY_TOKEN_FIELDS.get(node.get("registered_name"))
    ):
        raise preset_file_error(
            preset_dir,
            TOKENIZER_CONFIG_FILE,
            "describes a vocabulary that is not a keras-memnet "
            "WordVocabulary or CharVocabulary",
        )
    path = entry["config_path"]
    try:
        placeholder = _get_at(config, path)
    except (KeyError, IndexError, TypeError):
        placeholder = ...
    if placeholder is not None:
        raise preset_file_error(
            preset_dir,
            TOKENIZER_CONFIG_FILE,
            f"puts a vocabulary at {path}, where config.json has no "
            "vocabulary placeholder (null): the two files do not match",
        )
    return path, copy.deepcopy(node)


def _get_at(config, path):
    for key in path:
        config = config[key]
    return config


def _set_at(config, path, value):
    _get_at(config, path[:-1])[path[-1]] = value
