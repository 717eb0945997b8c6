"""One place for argument validation.

Every public constructor and function checks its arguments through these
helpers, so the same mistake always gets the same message:
"`name` must be <what>. Received: name=<value>".
"""

import numbers

import numpy as np


def _fail(name, what, value):
    raise ValueError(f"`{name}` must be {what}. Received: {name}={value!r}")


def check_int(name, value, minimum=None, maximum=None, allow_none=False):
    """Returns `value` as a Python int, or raises `ValueError`.

    Accepts Python and NumPy integers (not bools) within
    `[minimum, maximum]` (either bound may be `None`), and `None` when
    `allow_none`.
    """
    if value is None and allow_none:
        return None
    what = "an integer" + _bounds_text(minimum, maximum, True, True)
    if allow_none:
        what += " or None"
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (numbers.Integral, np.integer)
    ):
        _fail(name, what, value)
    if (minimum is not None and value < minimum) or (
        maximum is not None and value > maximum
    ):
        _fail(name, what, value)
    return int(value)


def check_float(
    name,
    value,
    minimum=None,
    maximum=None,
    min_inclusive=True,
    max_inclusive=True,
    allow_none=False,
):
    """Returns `value` as a Python float, or raises `ValueError`.

    Accepts real numbers (not bools), finite, within the bounds; a bound is
    exclusive when its `*_inclusive` is False. `None` passes when
    `allow_none`.
    """
    if value is None and allow_none:
        return None
    what = "a number" + _bounds_text(
        minimum, maximum, min_inclusive, max_inclusive
    )
    if allow_none:
        what += " or None"
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, numbers.Real
    ):
        _fail(name, what, value)
    value = float(value)
    if not np.isfinite(value):
        _fail(name, what, value)
    if minimum is not None and (
        value < minimum or (value == minimum and not min_inclusive)
    ):
        _fail(name, what, value)
    if maximum is not None and (
        value > maximum or (value == maximum and not max_inclusive)
    ):
        _fail(name, what, value)
    return value


def check_one_of(name, value, choices):
    """Returns `value` if it is one of `choices`, or raises `ValueError`."""
    if isinstance(value, str) or value is None:
        if value in choices:
            return value
    _fail(name, f"one of {tuple(choices)}", value)


def check_bool(name, value):
    """Returns `value` if it is a bool, or raises `ValueError`."""
    if not isinstance(value, (bool, np.bool_)):
        _fail(name, "True or False", value)
    return bool(value)


def check_instance(name, value, types, what, allow_none=False):
    """Returns `value` if it is an instance of `types`, or raises
    `ValueError`.

    `what` describes the accepted values for the message, e.g. "a dict".
    Bools are refused where `types` holds no bool type. `None` passes when
    `allow_none`.
    """
    if value is None and allow_none:
        return None
    if allow_none:
        what += " or None"
    types = types if isinstance(types, tuple) else (types,)
    is_bool = isinstance(value, (bool, np.bool_))
    if not isinstance(value, types) or (
        is_bool and not any(issubclass(t, (bool, np.bool_)) for t in types)
    ):
        _fail(name, what, value)
    return value


def _bounds_text(minimum, maximum, min_inclusive, max_inclusive):
    if minimum is not None and maximum is not None:
        left = "[" if min_inclusive else "("
        right = "]" if max_inclusive else ")"
        return f" in {left}{minimum}, {maximum}{right}"
    if minimum is not None:
        return f" {'>=' if min_inclusive else '>'} {minimum}"
    if maximum is not None:
        return f" {'<=' if max_inclusive else '<'} {maximum}"
    return ""


def check_mesh_axes(device_mesh, *axis_names):
    """Returns `device_mesh` if it is a `keras.distribution.DeviceMesh`
    with every axis of `axis_names`, or raises `ValueError`."""
    import keras

    check_instance(
        "device_mesh",
        device_mesh,
        keras.distribution.DeviceMesh,
        "a keras.distribution.DeviceMesh",
    )
    for axis_name in axis_names:
        if axis_name not in device_mesh.axis_names:
            raise ValueError(
                f"The device mesh has no axis {axis_name!r}; its axes are "
                f"{tuple(device_mesh.axis_names)}."
            )
    return device_mesh
