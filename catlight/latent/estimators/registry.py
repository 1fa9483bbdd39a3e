"""The estimator registry: every estimator by short name, with the settings configs use.

One table says which estimators catlight has. The generated configs
(``configs/generate.py`` and ``configs/_<family>.py``) loop over it and name their files
by its short names (``configs/vae/categorical/st_gs_softmax.yaml``), the benchmarks take
their choices and table labels from it, the generic tests build one example from each
entry, and a test checks that the README's estimator table lists exactly its classes.
Adding an estimator is one module in this package and one entry here.

Example::

    >>> from catlight.latent.estimators import ESTIMATORS, estimator_entry
    >>> list(ESTIMATORS)[:4]
    ['gs', 'st_gs', 'st', 'reinmax']
    >>> entry = estimator_entry("loo")
    >>> entry.display_name, entry.unbiased, entry.has_temperature
    ('LeaveOneOut', True, False)
    >>> entry.build(num_samples=8).num_samples
    8
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from catlight.latent.estimators.base import Estimator
from catlight.latent.estimators.carms import CARMS
from catlight.latent.estimators.disarm_tree import DisARMTree
from catlight.latent.estimators.exact import Exact
from catlight.latent.estimators.gapped import GappedStraightThrough
from catlight.latent.estimators.gumbel_rao import GumbelRao
from catlight.latent.estimators.indecater import IndeCateR
from catlight.latent.estimators.relaxed import (
    GumbelSoftmax,
    ReinMax,
    RelaxedEstimator,
    StraightThrough,
    StraightThroughGumbelSoftmax,
)
from catlight.latent.estimators.score import LeaveOneOut, Reinforce
from catlight.latent.estimators.unordered_set import UnorderedSet

__all__ = ["ESTIMATORS", "EstimatorEntry", "estimator_entry"]


@dataclass(frozen=True)
class EstimatorEntry:
    """One estimator: its short name, class, default settings and what it claims.

    Args:
        name: short name, used in config file names and benchmark options (``st_gs``).
        cls: the estimator class.
        settings: keyword arguments of ``cls`` that the generated configs use unless a
            family sets its own (a temperature schedule, a number of samples).
        display_name: its name in tables and figures (``ST-GS``).
        pathwise: it differentiates through the sample ``z`` (a relaxed estimator).
        unbiased: with these settings, the mean of its gradient estimates is the exact
            gradient of ``E[cost]``.
    """

    name: str
    cls: type[Estimator]
    settings: Mapping[str, Any]
    display_name: str
    pathwise: bool = False
    unbiased: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "settings", MappingProxyType(dict(self.settings)))

    @property
    def has_temperature(self) -> bool:
        """Whether it has a temperature ``tau`` (a buffer, set by ``set_tau``)."""
        return issubclass(self.cls, RelaxedEstimator)

    def init_args(self) -> dict[str, Any]:
        """A fresh copy of :attr:`settings`, to put in a config or change."""
        return dict(self.settings)

    def build(self, **overrides: Any) -> Estimator:
        """The estimator with its default settings, ``overrides`` replacing some of them."""
        return self.cls(**{**self.settings, **overrides})


# the Gumbel-Softmax paper's schedule, tau = max(0.5, exp(-3e-5 step)) updated every 500
# steps; an init argument of the estimator, so it goes with it when another replaces it
_ANNEALED_TAU = {"tau": 1.0, "tau_min": 0.5, "anneal_rate": 3e-5, "anneal_interval": 500}
_ENTRIES = (
    EstimatorEntry("gs", GumbelSoftmax, _ANNEALED_TAU, "GS", pathwise=True),
    EstimatorEntry("st_gs", StraightThroughGumbelSoftmax, _ANNEALED_TAU, "ST-GS", pathwise=True),
    EstimatorEntry("st", StraightThrough, {"tau": 1.0}, "ST", pathwise=True),
    EstimatorEntry("reinmax", ReinMax, {"tau": 1.3}, "ReinMax", pathwise=True),
    EstimatorEntry("gr", GumbelRao, {"tau": 1.0, "num_gumbels": 10}, "GR", pathwise=True),
    EstimatorEntry("gst", GappedStraightThrough, {"tau": 1.0, "gap": 1.0}, "GST", pathwise=True),
    EstimatorEntry(
        "reinforce", Reinforce, {"baseline": "moving_average"}, "REINFORCE", unbiased=True
    ),
    EstimatorEntry("loo", LeaveOneOut, {"num_samples": 4}, "LeaveOneOut", unbiased=True),
    EstimatorEntry("carms", CARMS, {"num_samples": 4}, "CARMS", unbiased=True),
    EstimatorEntry("disarm_tree", DisARMTree, {"num_samples": 4}, "DisARM-tree", unbiased=True),
    EstimatorEntry("exact", Exact, {}, "Exact", unbiased=True),
    EstimatorEntry("indecater", IndeCateR, {"num_samples": 1}, "IndeCateR", unbiased=True),
    EstimatorEntry(
        "unordered_set", UnorderedSet, {"num_samples": 4}, "UnorderedSet", unbiased=True
    ),
)
ESTIMATORS: Mapping[str, EstimatorEntry] = MappingProxyType({e.name: e for e in _ENTRIES})
"""Every estimator by short name, in the order tables list them."""


def estimator_entry(name: str) -> EstimatorEntry:
    """The registry entry of the estimator called ``name``.

    Args:
        name: a short name, a key of :data:`ESTIMATORS`.

    Raises:
        ValueError: if ``name`` is not in the registry.
    """
    if name not in ESTIMATORS:
        allowed = ", ".join(ESTIMATORS)
        raise ValueError(f"estimator must be one of {allowed}; got {name!r}")
    return ESTIMATORS[name]
