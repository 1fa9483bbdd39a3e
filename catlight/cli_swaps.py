"""Estimator swaps on the command line start from the new estimator's defaults.

jsonargparse keeps, when a class path changes, every old init arg that the new class
also accepts. For estimators that carries settings that mean something else or are
invalid across classes: a Gumbel-Softmax ``tau = 0.5`` given to ReinMax (which needs
``tau >= 1``), REINFORCE's ``num_samples = 1`` given to LeaveOneOut (which needs 2).
So ``--<...>.estimator NewClass`` is followed here by the new class's own defaults,
before any init arg the command line gives it.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re

import catlight.latent
import catlight.latent.structured

__all__ = ["estimators_start_from_defaults"]

_CLASS_NAME = re.compile(r"^[A-Za-z_][\w.]*$")
_ESTIMATOR_OPTION = re.compile(
    r"^--(?P<key>(?:[\w]+\.)*estimator)(?:\.class_path)?(?:=(?P<value>.*))?$"
)


def estimators_start_from_defaults(args: list[str]) -> list[str]:
    """``args`` with the defaults of every estimator class they name inserted after it.

    ``--model.latent.estimator ReinMax --model.latent.estimator.tau 1.3`` becomes
    ``--model.latent.estimator ReinMax --model.latent.estimator.tau=1.0
    --model.latent.estimator.num_samples=1 --model.latent.estimator.tau 1.3``. Values
    that are not a class name (a dict, ``null``) are left alone.
    """
    rewritten: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        match = _ESTIMATOR_OPTION.match(arg)
        rewritten.append(arg)
        index += 1
        if match is None:
            continue
        value = match.group("value")
        if value is None and index < len(args) and not args[index].startswith("--"):
            value = args[index]
            rewritten.append(value)
            index += 1
        defaults = _class_defaults(value) if value and _CLASS_NAME.match(value) else None
        if defaults is not None:
            key = match.group("key")
            rewritten += [
                f"--{key}.{name}={_render(default)}" for name, default in defaults.items()
            ]
    return rewritten


def _render(value: object) -> str:
    """A default as jsonargparse parses it back: strings as they are, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def _class_defaults(name: str) -> dict[str, object] | None:
    """The defaulted ``__init__`` arguments of the class ``name`` (short or dotted)."""
    cls = _resolve(name)
    if not isinstance(cls, type):
        return None
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return {
        parameter.name: parameter.default
        for parameter in parameters
        # None cannot be given to a nested key on the command line (jsonargparse 4.x)
        if parameter.default not in (inspect.Parameter.empty, None)
    }


def _resolve(name: str) -> object:
    if "." not in name:
        for namespace in (catlight.latent, catlight.latent.structured):
            if hasattr(namespace, name):
                return getattr(namespace, name)
        return None
    module_name, _, class_name = name.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), class_name, None)
    except ImportError:
        return None
