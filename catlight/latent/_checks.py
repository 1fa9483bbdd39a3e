"""Argument validation shared by the layer, parameterizations and estimators."""

from __future__ import annotations


def check_num_categories(num_categories: int) -> None:
    """Raise a ValueError unless ``num_categories`` is an integer >= 2."""
    if isinstance(num_categories, bool) or not isinstance(num_categories, int):
        raise ValueError(f"num_categories must be an int >= 2, got {num_categories!r}")
    if num_categories < 2:
        raise ValueError(f"num_categories must be >= 2, got {num_categories}")


def check_positive(owner: str, name: str, value: float) -> None:
    """Raise a ValueError unless ``value`` is a finite number > 0 (a bool is not)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (number and value > 0 and value != float("inf")):
        raise ValueError(f"{owner}: {name} must be a finite number > 0, got {value!r}")


def check_int_at_least(owner: str, name: str, value: int, minimum: int) -> None:
    """Raise a ValueError unless ``value`` is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an int >= {minimum}, got {value!r}")
