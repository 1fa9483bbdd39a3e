"""Configuration errors in a few lines: the key, the value, what is allowed.

jsonargparse reports a bad value deep in a config as a tree of every union branch it
tried (dozens of lines), and a ValueError raised while a class is built comes with the
whole chained traceback. The ``catlight`` command line shows instead::

    error: model.latent.estimator: unknown class 'GumbelSoftMax'; did you mean GumbelSoftmax?
      allowed: CARMS, Exact, GumbelSoftmax, LeaveOneOut, ...

Set ``CATLIGHT_DEBUG=1`` (or pass ``--debug``) for the full error and traceback.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
from typing import Any

__all__ = ["DEBUG_HINT", "ConfigError", "locate_setting", "short_parse_error"]

DEBUG_HINT = "(CATLIGHT_DEBUG=1 or --debug shows the full error)"

# lines of jsonargparse's union report that say nothing about the value itself
_NOISE = re.compile(
    r"^(Does not validate against|Subtypes:|Errors:|Given value|Expected a <class 'NoneType'>|"
    r"Problem with given class_path)"
)
_UNKNOWN_CLASS = re.compile(
    r"not accessible or invalid|dot import path|does not correspond to a subclass|"
    r"No module named|not a subclass"
)


class ConfigError(ValueError):
    """A setting that a class rejected when the CLI built it.

    Args:
        key: the setting's dotted key, as on the command line
            (``model.latent.estimator.tau``).
        value: the value it had.
        message: the class's own error message.
    """

    def __init__(self, key: str, value: Any, message: str) -> None:
        super().__init__(f"{key} = {value!r}: {message}")
        self.key = key
        self.value = value


def short_parse_error(message: str) -> str:
    """A few lines for jsonargparse's error ``message``: key, value, what is allowed."""
    keys = re.findall(r'Parser key "([^"]+)"', message)
    if not keys:
        return "\n".join(message.strip().splitlines()[:3])
    innermost = message[message.rindex('Parser key "') :].splitlines()[1:]
    lines = [line.strip().removeprefix("- ").strip() for line in innermost]
    key = ".".join(keys)
    given = next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("Given value:")), None
    )
    reasons = [line for line in lines if line and not _NOISE.match(line)]
    if given is not None and any(_UNKNOWN_CLASS.search(reason) for reason in reasons):
        base = re.search(r"Subtypes: \[<class '([\w.]+)'>", "\n".join(innermost))
        return _unknown_class(key, given, base.group(1) if base else None)
    text = "; ".join(list(dict.fromkeys(reasons))[:2]) or "invalid value"
    if given is not None and given not in text and not given.startswith("NestedArg("):
        text += f", got {given}"
    return f"error: {key}: {text}"


def _unknown_class(key: str, name: str, base_path: str | None) -> str:
    known = _known_classes(base_path) if base_path else []
    close = difflib.get_close_matches(name.rsplit(".", 1)[-1], known, n=3, cutoff=0.5)
    text = f"error: {key}: unknown class {name!r}"
    if close:
        text += f"; did you mean {' or '.join(close)}?"
    if known:
        text += f"\n  allowed: {', '.join(known)}"
    return text


def _known_classes(base_path: str) -> list[str]:
    """Short names of catlight's concrete subclasses of the class at ``base_path``."""
    module_name, _, class_name = base_path.rpartition(".")
    try:
        base = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        return []
    found: set[type] = set()
    pending = [base]
    while pending:
        for subclass in pending.pop().__subclasses__():
            if subclass not in found:
                found.add(subclass)
                pending.append(subclass)
    return sorted(
        cls.__name__
        for cls in found
        if cls.__module__.startswith("catlight.")
        and not cls.__name__.startswith("_")
        and not (cls.__subclasses__() and _has_required_arguments(cls))
    )


def _has_required_arguments(cls: type) -> bool:
    """Whether ``cls(...)`` needs an argument: the mark of an abstract intermediate base."""
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return any(
        parameter.default is inspect.Parameter.empty
        and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
        for parameter in parameters
    )


def locate_setting(config: Any, message: str) -> tuple[str, Any, str] | None:
    """The key, value and reason of the setting a class rejected, or None.

    ``message`` (a ValueError's, perhaps inside jsonargparse's union report) holds a
    line ``"Owner: name must ..."``; the setting is the ``init_args`` entry ``name`` of
    a class in the resolved ``config`` (nested dicts) whose class path ends in ``Owner``.
    """
    for line in message.splitlines():
        reason = line.strip().removeprefix("- ")
        match = re.match(r"([A-Z]\w*): (\w+) ", reason)
        if match is not None:
            found = _find(config, *match.groups(), [])
            if found is not None:
                return (*found, reason)
    return None


def _find(node: Any, owner: str, name: str, path: list[str]) -> tuple[str, Any] | None:
    if isinstance(node, dict):
        class_path = node.get("class_path")
        init_args = node.get("init_args")
        if (
            isinstance(class_path, str)
            and class_path.rsplit(".", 1)[-1] == owner
            and isinstance(init_args, dict)
            and name in init_args
        ):
            return ".".join([*path, name]), init_args[name]
        for key, value in node.items():
            child_path = path if key == "init_args" else [*path, str(key)]
            found = _find(value, owner, name, child_path)
            if found is not None:
                return found
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found = _find(value, owner, name, [*path[:-1], f"{path[-1]}[{index}]"] if path else [])
            if found is not None:
                return found
    return None
