"""YAML with duplicate keys rejected, for the configs the ``catlight`` command reads.

PyYAML, and so jsonargparse, keeps the last of two equal keys of a mapping without a
word: ``tau: 0.5`` followed further down by ``tau: 1.0`` silently trains with 1.0.
:func:`use_strict_yaml` makes jsonargparse's YAML loader refuse such a document,
naming the key and both lines; everything else it loads as before.
"""

from __future__ import annotations

from typing import Any

import yaml
from jsonargparse import get_loader, set_loader

__all__ = ["DuplicateKeyError", "check_duplicate_keys", "use_strict_yaml"]


class DuplicateKeyError(ValueError):
    """A YAML mapping holds the same key twice."""


def check_duplicate_keys(text: str) -> None:
    """Raise a :class:`DuplicateKeyError` if a mapping of the YAML ``text`` repeats a key.

    Raises:
        DuplicateKeyError: naming the key and the lines of both occurrences.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return  # not YAML: the loader itself reports it (or takes it as a string)
    pending = [root] if root is not None else []
    while pending:
        node = pending.pop()
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else None
                line = key.start_mark.line + 1
                if name is not None and name in seen:
                    raise DuplicateKeyError(
                        f"duplicate key {name!r} in the YAML (lines {seen[name]} and {line}): "
                        "only the last would count; keep one"
                    )
                if name is not None:
                    seen[name] = line
                pending.append(value)
        elif isinstance(node, yaml.SequenceNode):
            pending.extend(node.value)


def use_strict_yaml() -> None:
    """Make jsonargparse's ``yaml`` loader reject duplicate keys (idempotent)."""
    loader = get_loader("yaml")
    if getattr(loader, "rejects_duplicate_keys", False):
        return

    def strict_yaml_load(stream: str) -> Any:
        check_duplicate_keys(stream)
        return loader(stream)

    strict_yaml_load.rejects_duplicate_keys = True
    set_loader("yaml", strict_yaml_load, exceptions=(yaml.YAMLError, DuplicateKeyError))
