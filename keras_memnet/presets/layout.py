"""The files of a preset directory: their names, and reading them.

The names are keras-hub's (`keras_hub/src/utils/preset_utils.py`), so a
keras-hub user recognises a keras-memnet preset:

```
<preset>/
    config.json              the model, `keras.saving.serialize_keras_object`,
                             with each vocabulary moved out (null in its place)
    tokenizer.json           where each vocabulary went, and its settings
    assets/tokenizer/*.txt   the vocabularies, one token per line, line i = id i
    model.weights.h5         the weights (`model.save_weights`), if any
    metadata.json            versions, class, parameter count, date, data, ...
```

They are defined here rather than imported from keras-hub's private
`src` package, which may move between releases.
"""

import json
import os

CONFIG_FILE = "config.json"
TOKENIZER_CONFIG_FILE = "tokenizer.json"
METADATA_FILE = "metadata.json"
MODEL_WEIGHTS_FILE = "model.weights.h5"
ASSET_DIR = "assets"
TOKENIZER_ASSET_DIR = f"{ASSET_DIR}/tokenizer"


def preset_file_error(preset_dir, file_name, problem):
    """A `ValueError` that names the preset and the file at fault."""
    return ValueError(
        f"`{file_name}` of the preset at {preset_dir!r} {problem}. Save "
        "presets with `keras_memnet.presets.save_to_preset` (or fetch the "
        "preset again) rather than editing its files."
    )


def read_preset_json(preset_dir, file_name):
    """The JSON object in `preset_dir/file_name`, or a `ValueError` naming
    the file when it is missing or not a JSON object."""
    path = os.path.join(preset_dir, file_name)
    if not os.path.isfile(path):
        raise preset_file_error(preset_dir, file_name, "is missing")
    try:
        with open(path, encoding="utf-8") as file:
            content = json.load(file)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise preset_file_error(
            preset_dir, file_name, f"is not valid JSON ({error})"
        ) from None
    if not isinstance(content, dict):
        raise preset_file_error(
            preset_dir,
            file_name,
            f"holds a JSON {type(content).__name__}, not an object",
        )
    return content


def write_json(path, content):
    """Writes `content` as indented UTF-8 JSON, as keras-hub does."""
    with open(path, "w", encoding="utf-8") as file:
        json.dump(content, file, indent=4, ensure_ascii=False)
        file.write("\n")
