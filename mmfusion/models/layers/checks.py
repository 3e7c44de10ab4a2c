"""Argument checks shared by the model components.

Each raises an error that names the component (``owner``) and the argument,
so a bad config is reported where it is built rather than deep in a forward
pass.
"""
from collections.abc import Sequence

from mmfusion.errors import ConfigError


def check_dropout(owner: str, dropout: float) -> None:
    """Raise a ValueError naming ``owner`` unless ``0 <= dropout < 1``."""
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f'{owner}: dropout must be in [0, 1), got {dropout}')


def check_positive(owner: str, integer: bool = False, **values) -> None:
    """Raise a ValueError for the first of ``values`` (argument name -> value) below 1.

    With ``integer=True`` a value that is not a whole number is refused too,
    and the message says so.
    """
    for arg, value in values.items():
        if integer and (int(value) != value or value < 1):
            raise ValueError(f'{owner}: {arg} must be an integer >= 1, got {value!r}')
        if value < 1:
            raise ValueError(f'{owner}: {arg} must be >= 1, got {value}')


def check_min_modalities(owner: str, in_dims: dict[str, int],
                         baseline: str | None = None) -> None:
    """Raise a ValueError unless ``in_dims`` has at least 2 modalities.

    ``baseline`` names the module to use instead for a single modality, if any.
    """
    if len(in_dims) < 2:
        hint = f'; use {baseline} for a unimodal baseline' if baseline else ''
        raise ValueError(f'{owner} fuses at least 2 modalities, got in_dims with '
                         f'{len(in_dims)}: {sorted(in_dims)}{hint}')


def check_int(owner: str, arg: str, value, minimum: int = 1) -> int:
    """Return ``value`` if it is an int >= ``minimum`` (a bool is not), else
    raise a ConfigError naming ``owner`` and ``arg``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f'{owner}: {arg} must be an integer >= {minimum}, got {value!r}')
    return value


def check_strides(owner: str, strides: Sequence[int]) -> tuple[int, ...]:
    """The strides of a feature pyramid, one per level, finest first, as a tuple.

    Raises a ConfigError naming ``owner`` unless they are strictly increasing
    positive integers.
    """
    if (isinstance(strides, (int, str)) or not strides
            or not all(isinstance(s, int) and s >= 1 for s in strides)
            or list(strides) != sorted(set(strides))):
        raise ConfigError(f'{owner}: strides must be increasing positive integers, one per '
                          f'pyramid level (finest first), e.g. (8, 16, 32); got {strides!r}')
    return tuple(strides)
