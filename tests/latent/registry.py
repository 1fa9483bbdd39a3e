"""The test registry: ``(EstimatorClass, kwargs)`` examples that generic tests loop over.

Generic tests loop over :data:`EXAMPLES` (shapes, gradient flow, float32 under
autocast, unbiasedness where claimed): one example per entry of the package's registry
``catlight.latent.ESTIMATORS``, with the settings the configs use, and more settings of
the same estimators. An estimator exported from ``catlight.latent`` but missing from
that registry fails ``test_registry_covers_every_exported_estimator``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from catlight.latent import (
    CARMS,
    ESTIMATORS,
    Catnat,
    DisARMTree,
    Estimator,
    EstimatorEntry,
    Exact,
    GappedStraightThrough,
    GumbelRao,
    GumbelSoftmax,
    IndeCateR,
    Parameterization,
    Reinforce,
    ReinMax,
    Softmax,
    StraightThroughGumbelSoftmax,
    UnorderedSet,
)


@dataclass(frozen=True)
class EstimatorExample:
    """An estimator class, the keyword arguments to build it, and what it claims.

    ``unbiased``: the mean of its gradient estimates is the exact gradient of E[f(z)].
    ``pathwise``: it differentiates through ``z`` (a relaxed estimator with a ``tau``).
    """

    cls: type[Estimator]
    kwargs: dict[str, Any] = field(default_factory=dict)
    unbiased: bool = False
    pathwise: bool = False

    @classmethod
    def default(cls, entry: EstimatorEntry) -> EstimatorExample:
        """The example of a package registry entry, with its settings and claims."""
        return cls(entry.cls, entry.init_args(), unbiased=entry.unbiased, pathwise=entry.pathwise)

    def build(self, **overrides: Any) -> Estimator:
        return self.cls(**{**self.kwargs, **overrides})

    def num_samples(self, num_categories: int, num_variables: int) -> int:
        """S, the leading dimension of ``z``."""
        if self.cls is Exact:
            return num_categories**num_variables
        if self.cls is IndeCateR:
            return self.build().num_samples * num_variables * num_categories
        return self.build().num_samples

    @property
    def id(self) -> str:
        args = ",".join(f"{key}={value}" for key, value in self.kwargs.items())
        return f"{self.cls.__name__}({args})"


# more settings of the registry's estimators than the configs use
MORE_EXAMPLES: list[EstimatorExample] = [
    EstimatorExample(GumbelSoftmax, {"tau": 0.5}, pathwise=True),
    EstimatorExample(GumbelSoftmax, {"tau": 1.0, "num_samples": 3}, pathwise=True),
    EstimatorExample(GumbelSoftmax, {"tau": 0.5, "hard": True}, pathwise=True),
    EstimatorExample(StraightThroughGumbelSoftmax, {"tau": 0.5}, pathwise=True),
    EstimatorExample(ReinMax, {"tau": 1.0, "num_samples": 2}, pathwise=True),
    EstimatorExample(GumbelRao, {"tau": 0.5, "num_samples": 2, "num_gumbels": 3}, pathwise=True),
    EstimatorExample(
        GappedStraightThrough, {"tau": 0.5, "num_samples": 3, "gap": 2.0}, pathwise=True
    ),
    EstimatorExample(Reinforce, {"num_samples": 1}, unbiased=True),
    EstimatorExample(
        Reinforce, {"num_samples": 3, "baseline": "moving_average", "decay": 0.9}, unbiased=True
    ),
    EstimatorExample(CARMS, {"num_samples": 2}, unbiased=True),
    EstimatorExample(CARMS, {"num_samples": 4, "unbiased": False}),
    EstimatorExample(DisARMTree, {"num_samples": 2}, unbiased=True),
    EstimatorExample(Exact, {"max_configurations": 1000}, unbiased=True),
]
EXAMPLES: list[EstimatorExample] = [
    *(EstimatorExample.default(entry) for entry in ESTIMATORS.values()),
    *MORE_EXAMPLES,
]

UNBIASED_SAMPLING = [ex for ex in EXAMPLES if ex.unbiased and ex.cls is not Exact]
PATHWISE = [ex for ex in EXAMPLES if ex.pathwise]
SAMPLING = [ex for ex in EXAMPLES if ex.cls is not Exact]
# estimators whose every row of z is marginally a draw from q: not IndeCateR (rows with
# a variable set to each category in turn) nor UnorderedSet (draws without replacement)
MARGINAL_SAMPLING = [ex for ex in SAMPLING if ex.cls not in (IndeCateR, UnorderedSet)]


def _catnat_sigmoid() -> Catnat:
    return Catnat("sigmoid")


# the parameterizations generic tests loop over, by id
PARAMETERIZATIONS: dict[str, Callable[[], Parameterization]] = {
    "softmax": Softmax,
    "catnat": Catnat,
    "catnat-sigmoid": _catnat_sigmoid,
}
