import json
import os

import keras
import numpy as np

from keras_memnet.callbacks.nan_guard import FAILURE_ATTRIBUTE

STATE_FILE = "callback_state.json"
FINAL_WEIGHTS_FILE = "final.weights.h5"
# Not a variable path (those hold a "/"), so no variable is mistaken for it.
TORCH_RNG_STATE = "torch_global_rng_state"


@keras.saving.register_keras_serializable(package="keras_memnet")
class TrainingCheckpoint(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` that also resumes the callbacks.

    After every epoch it saves what an exact resume needs in `backup_dir`:

    - the weights and the full optimizer state (Keras's
      `BackupAndRestore`, kept double so that a kill while writing falls
      back to the epoch before);
    - the state of the `callbacks` it is given: those with `get_state` /
      `set_state` (`PlateauAnnealing`), and `keras.callbacks.EarlyStopping`
      (its counters and best weights);
    - the `History` so far;
    - the states of the random generators of the model's layers (dropout),
      which Keras's weight files leave out, and on PyTorch the global
      generator's, which draws the dropout of layers created without a
      seed.

    When `fit` starts with a checkpoint in `backup_dir`, all of it is put
    back and training continues with the epoch after the saved one; what
    was done of the epoch that was running when the process died is lost.
    The data order must be a function of the epoch for the resumed run to
    match an uninterrupted one: `Corpus.windows` and `Corpus.sequences`
    take the `initial_epoch` to draw from (`read_resume_epoch` gives it).

    List it **after** the callbacks it resumes, since their
    `on_train_begin` may reset them. Weights that are not finite, or a
    stop by `keras_memnet.callbacks.NaNGuard`, are never saved over a good
    checkpoint. When `fit` ends, the weights it ends with (after
    `EarlyStopping` restored its best, if listed before) go to
    `final.weights.h5` and the checkpoint is marked finished, unless
    `delete_checkpoint` removes the directory.

    Args:
        backup_dir: str, the directory of the checkpoint.
        callbacks: the callbacks whose state is saved and restored.
        delete_checkpoint: bool, remove `backup_dir` when `fit` ends.
            Defaults to `False`.

    Example:

    ```python
    import keras
    import numpy as np
    from keras_memnet.callbacks import PlateauAnnealing, TrainingCheckpoint

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    x, y = np.ones((16, 4)), np.ones((16, 1))
    annealing = PlateauAnnealing()
    model.fit(
        x,
        y,
        validation_data=(x, y),
        epochs=3,
        verbose=0,
        callbacks=[annealing, TrainingCheckpoint("/tmp/run", [annealing])],
    )
    ```
    """

    def __init__(self, backup_dir, callbacks=(), delete_checkpoint=False):
        super().__init__(
            backup_dir,
            save_freq="epoch",
            double_checkpoint=True,
            delete_checkpoint=delete_checkpoint,
        )
        self.resumed_callbacks = list(callbacks)
        self._state_path = os.path.join(backup_dir, STATE_FILE)
        self._history = {}
        self.resumed_epoch = 0

    @property
    def history(self):
        """The `History` dict of every epoch, those before a resume too."""
        return self._history

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.resumed_epoch = 0
        self._history = {}
        saved = read_checkpoint_state(self.backup_dir)
        if saved is None:
            return
        epoch = self.model._initial_epoch or 0
        if saved.get("finished"):
            # Nothing is left to train: the final weights, and no epochs.
            self.model.load_weights(
                os.path.join(self.backup_dir, FINAL_WEIGHTS_FILE)
            )
            self.model._initial_epoch = self.params["epochs"]
        entry = saved["epochs"].get(str(epoch))
        if entry is None:
            raise ValueError(
                f"The checkpoint in {self.backup_dir!r} holds weights of "
                f"epoch {epoch} but no callback state for it. Start again "
                "in an empty directory."
            )
        for index, callback in enumerate(self.resumed_callbacks):
            state = entry["callbacks"].get(str(index))
            if state is not None:
                _set_state(callback, state, self._arrays_path(epoch, index))
        _set_unsaved_variables(self.model, entry.get("unsaved_variables", {}))
        self._history = entry["history"]
        self.resumed_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        for name, value in (logs or {}).items():
            self._history.setdefault(name, []).append(_to_python(value))
        if getattr(self.model, FAILURE_ATTRIBUTE, None):
            return
        if not _weights_are_finite(self.model):
            return
        # The callback state goes first, kept for this epoch and the one
        # before: a kill before the weights are written leaves the weights
        # of the epoch before, whose state is still there.
        os.makedirs(self.backup_dir, exist_ok=True)
        saved = read_checkpoint_state(self.backup_dir) or {"epochs": {}}
        states = {}
        for index, callback in enumerate(self.resumed_callbacks):
            state = _get_state(callback, self._arrays_path(epoch + 1, index))
            if state is not None:
                states[str(index)] = state
        saved["epochs"] = {
            key: value
            for key, value in saved["epochs"].items()
            if int(key) >= epoch
        }
        saved["epochs"][str(epoch + 1)] = {
            "callbacks": states,
            "history": self._history,
            "unsaved_variables": _unsaved_variables(self.model),
        }
        saved["finished"] = False
        _write_json_atomically(self._state_path, saved)
        self._remove_arrays_before(epoch)
        super().on_epoch_end(epoch, logs)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint or not os.path.isdir(self.backup_dir):
            super().on_train_end(logs)
            return
        if getattr(self.model, FAILURE_ATTRIBUTE, None):
            return
        self.model.save_weights(
            os.path.join(self.backup_dir, FINAL_WEIGHTS_FILE), overwrite=True
        )
        saved = read_checkpoint_state(self.backup_dir) or {"epochs": {}}
        saved["finished"] = True
        saved["history"] = self._history
        _write_json_atomically(self._state_path, saved)

    def _arrays_path(self, epoch, index):
        return os.path.join(self.backup_dir, f"arrays_{epoch}_{index}.npz")

    def _remove_arrays_before(self, epoch):
        for name in os.listdir(self.backup_dir):
            if name.startswith("arrays_") and name.endswith(".npz"):
                if int(name.split("_")[1]) < epoch:
                    os.remove(os.path.join(self.backup_dir, name))

    def get_config(self):
        # The resumed callbacks are objects of this run, not configuration.
        return {
            "backup_dir": self.backup_dir,
            "delete_checkpoint": self.delete_checkpoint,
        }


def read_checkpoint_state(backup_dir):
    """The saved state of a `TrainingCheckpoint` directory, or `None`."""
    path = os.path.join(backup_dir, STATE_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as file:
        return json.load(file)


def read_resume_epoch(backup_dir):
    """The epoch a `fit` resumed from `backup_dir` starts with (0 if none).

    Example:

    ```python
    from keras_memnet.callbacks import read_resume_epoch

    read_resume_epoch("/tmp/no_such_run")  # 0
    ```
    """
    path = os.path.join(backup_dir, "training_metadata.json")
    if not os.path.isfile(path):
        return 0
    with open(path) as file:
        return int(json.load(file)["epoch"])


def _get_state(callback, arrays_path):
    if hasattr(callback, "get_state"):
        return {"state": callback.get_state()}
    if isinstance(callback, keras.callbacks.EarlyStopping):
        best_weights = callback.best_weights
        if best_weights is not None:
            temporary = f"{arrays_path}.tmp"
            with open(temporary, "wb") as file:
                np.savez(file, *best_weights)
            os.replace(temporary, arrays_path)
        best = callback.best
        return {
            "early_stopping": {
                "wait": int(callback.wait),
                "best": None if best is None else _to_python(best),
                "best_epoch": int(callback.best_epoch),
                "has_best_weights": best_weights is not None,
            }
        }
    return None


def _set_state(callback, state, arrays_path):
    if "state" in state:
        callback.set_state(state["state"])
        return
    early_stopping = state["early_stopping"]
    callback.wait = early_stopping["wait"]
    best = early_stopping["best"]
    callback.best = None if best is None else float(best)
    callback.best_epoch = early_stopping["best_epoch"]
    if early_stopping["has_best_weights"]:
        with np.load(arrays_path) as arrays:
            callback.best_weights = [
                arrays[f"arr_{i}"] for i in range(len(arrays.files))
            ]


def _unsaved_variables(model):
    """The variables that weight files leave out (random-generator
    states), by path."""
    saved = {id(v) for v in model.weights}
    values = {
        v.path: keras.ops.convert_to_numpy(v).tolist()
        for v in model.variables
        if id(v) not in saved
    }
    if keras.config.backend() == "torch":
        # Keras's PyTorch dropout draws from torch's global generator when
        # the layer's seed generator was made without a seed.
        import torch

        values[TORCH_RNG_STATE] = torch.get_rng_state().tolist()
    return values


def _set_unsaved_variables(model, values):
    for variable in model.variables:
        if variable.path in values:
            variable.assign(
                np.asarray(values[variable.path], dtype=variable.dtype)
            )
    if TORCH_RNG_STATE in values:
        import torch

        torch.set_rng_state(
            torch.tensor(values[TORCH_RNG_STATE], dtype=torch.uint8)
        )


def _weights_are_finite(model):
    for weights in model.get_weights():
        if np.issubdtype(weights.dtype, np.floating) and not np.all(
            np.isfinite(weights)
        ):
            return False
    return True


def _to_python(value):
    value = float(value)
    return value if np.isfinite(value) else str(value)


def _write_json_atomically(path, content):
    # A kill while writing leaves the old file whole.
    temporary = f"{path}.tmp"
    with open(temporary, "w") as file:
        json.dump(content, file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
