"""Where a preset is: a shipped name, a local directory or an archive URL."""

import hashlib
import os
import re
import urllib.parse

import keras

from keras_memnet.presets.layout import CONFIG_FILE
from keras_memnet.presets.layout import METADATA_FILE
from keras_memnet.presets.layout import read_preset_json
from keras_memnet.utils.arguments import check_instance

SHIPPED_PRESETS_DIR = os.path.dirname(os.path.abspath(__file__))
URL_SCHEMES = ("http", "https", "file")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")


def shipped_preset_names():
    """The names of the presets that ship with keras-memnet, sorted."""
    return sorted(
        name
        for name in os.listdir(SHIPPED_PRESETS_DIR)
        if os.path.isfile(os.path.join(SHIPPED_PRESETS_DIR, name, CONFIG_FILE))
    )


def list_presets():
    """The presets that ship with keras-memnet, with their metadata.

    Returns:
        A dict from preset name to the content of its `metadata.json`
        (versions, class, parameter count, whether it has weights, the
        training data and command, measured figures, licence).

    Example:

    ```python
    from keras_memnet.presets import list_presets

    for name, metadata in list_presets().items():
        print(name, metadata["class_name"], metadata["parameter_count"])
    ```
    """
    return {
        name: read_preset_json(
            os.path.join(SHIPPED_PRESETS_DIR, name), METADATA_FILE
        )
        for name in shipped_preset_names()
    }


def resolve_preset(preset, file_hash=None, cache_dir=None):
    """The local directory of a preset, downloading it if it is a URL.

    Args:
        preset: str or path. A shipped preset name (see `list_presets`), a
            local preset directory, or the `http(s)://` or `file://` URL of
            a `.tar.gz`, `.tgz`, `.tar` or `.zip` archive of a preset
            directory.
        file_hash: str, the sha256 of the archive (64 hex digits). Required
            for a URL, and only for a URL.
        cache_dir: str or `None`. Where downloads go: `<cache_dir>/presets/`.
            `None` means `$KERAS_HOME`, else `~/.keras`.

    Returns:
        str, the preset directory.
    """
    check_instance("preset", preset, (str, os.PathLike), "a string or path")
    preset = os.fspath(preset)
    scheme = urllib.parse.urlsplit(preset).scheme
    if scheme in URL_SCHEMES:
        return _download(preset, file_hash, cache_dir)
    if "://" in preset:
        raise ValueError(
            f"Unsupported preset URL {preset!r}: keras-memnet loads "
            f"{', '.join(s + '://' for s in URL_SCHEMES)} archives, shipped "
            "preset names and local directories."
        )
    if file_hash is not None:
        raise ValueError(
            "`file_hash` checks a downloaded archive; it applies only to a "
            f"URL preset. Received: preset={preset!r}"
        )
    names = shipped_preset_names()
    if preset in names:
        return os.path.join(SHIPPED_PRESETS_DIR, preset)
    if os.path.isdir(preset):
        return preset
    if os.path.exists(preset):
        raise ValueError(
            f"{preset!r} is a file, not a preset directory. A `.keras` file "
            "loads with `keras_memnet.saving.load_model`."
        )
    raise ValueError(
        f"Unknown preset {preset!r}: it is not a shipped preset, a "
        "directory or a URL. Shipped presets: "
        f"{', '.join(names) or '(none)'}."
    )


def _download(url, file_hash, cache_dir):
    if file_hash is None:
        raise ValueError(
            "A preset URL needs the sha256 of its archive, so that what is "
            f"loaded is what was published: pass `file_hash`. Received: "
            f"preset={url!r}"
        )
    check_instance("file_hash", file_hash, str, "a sha256 (64 hex digits)")
    if not re.fullmatch(r"[0-9a-fA-F]{64}", file_hash):
        raise ValueError(
            "`file_hash` must be a sha256 (64 hex digits). Received: "
            f"file_hash={file_hash!r}"
        )
    file_hash = file_hash.lower()
    check_instance(
        "cache_dir", cache_dir, (str, os.PathLike), "a path", allow_none=True
    )
    file_name = os.path.basename(urllib.parse.urlsplit(url).path)
    suffix = next((s for s in ARCHIVE_SUFFIXES if file_name.endswith(s)), None)
    if suffix is None:
        raise ValueError(
            f"A preset URL must name a {', '.join(ARCHIVE_SUFFIXES)} archive "
            f"of a preset directory. Received: {url!r}"
        )
    # The hash in the name keeps two versions of an archive apart.
    stem = re.sub(r"[^A-Za-z0-9_-]", "_", file_name[: -len(suffix)])
    stem = f"{stem}_{file_hash[:16]}"
    if cache_dir is None:
        cache_dir = os.environ.get("KERAS_HOME") or os.path.join(
            os.path.expanduser("~"), ".keras"
        )
    download_dir = os.path.abspath(
        os.path.join(os.path.expanduser(os.fspath(cache_dir)), "presets")
    )
    os.makedirs(download_dir, exist_ok=True)
    # `keras.utils.get_file` names the archive `<fname>_archive` and
    # extracts it into `<fname>`, in an absolute `cache_subdir` as given.
    archive_path = os.path.join(download_dir, f"{stem}_archive")
    extraction_dir = os.path.join(download_dir, stem)
    try:
        keras.utils.get_file(
            fname=stem,
            origin=url,
            file_hash=file_hash,
            hash_algorithm="sha256",
            extract=True,
            cache_subdir=download_dir,
        )
    except Exception as error:
        if os.path.isfile(archive_path):
            actual_hash = _sha256(archive_path)
            if actual_hash != file_hash:
                # A file that failed its check must not be used later.
                os.remove(archive_path)
                raise ValueError(
                    f"The sha256 of the archive downloaded from {url!r} is "
                    f"{actual_hash}, not the expected {file_hash}. The "
                    "downloaded file was removed. Check the URL and the hash."
                ) from None
        raise ValueError(
            f"Could not download the preset archive {url!r}: {error}"
        ) from None
    if not os.path.isdir(extraction_dir):
        raise ValueError(
            f"The file downloaded from {url!r} is not a readable "
            f"{', '.join(ARCHIVE_SUFFIXES)} archive."
        )
    return _preset_root(extraction_dir, url)


def _preset_root(extraction_dir, url):
    """The preset directory in an extracted archive: its top level, or its
    one folder (as `tar czf name.tar.gz name/` makes)."""
    if os.path.isfile(os.path.join(extraction_dir, CONFIG_FILE)):
        return extraction_dir
    folders = [
        os.path.join(extraction_dir, name)
        for name in os.listdir(extraction_dir)
        if os.path.isdir(os.path.join(extraction_dir, name))
    ]
    if len(folders) == 1 and os.path.isfile(
        os.path.join(folders[0], CONFIG_FILE)
    ):
        return folders[0]
    raise ValueError(
        f"The archive {url!r} holds no preset: no `{CONFIG_FILE}` at its "
        "top level or in its one folder."
    )


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
