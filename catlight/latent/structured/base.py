r"""Recursive argmin over exponential perturbations: traces, their log-probability, E | T.

Struminsky et al., "Leveraging Recursive Gumbel-Max Trick for Approximate Inference in
Combinatorial Spaces", NeurIPS 2021 (https://arxiv.org/abs/2110.15072).

Sign convention (the one of :class:`~catlight.latent.DiscreteLatent`: a higher score
makes an item more likely). Item ``i`` with score ``theta_i`` gets an exponential
perturbation ``E_i ~ Exp(rate = exp(theta_i))``, i.e. ``E_i = exp(-theta_i) * Exp(1)``,
so that ``P(argmin_i E_i = j) = softmax(theta)_j`` (Gumbel-Max: ``-log E_i`` is
``theta_i`` plus standard Gumbel noise). With the rate written ``exp(-theta_i)``
instead, as some texts do, ``theta`` is minus ours.

A structure is the output of an algorithm that repeatedly takes the argmin of ``E``
over an *active set* of items. Its execution trace ``T`` lists, for each step ``t``, the
item ``e_t`` chosen and the active set ``A_t`` (which contains ``e_t``). Then

``log p(T) = sum_t [theta_{e_t} - logsumexp_{i in A_t} theta_i]``,

and, by memorylessness, ``E | T`` is sampled step by step: the minimum of step ``t`` is
``D_t = D_{t'} + Exp(rate = sum_{i in A_t} exp(theta_i))``, where ``t'`` is the latest
earlier step whose active set held ``e_t`` (0 if none); an item never chosen is
``max_{t: i in A_t} D_t + Exp(rate = exp(theta_i))``. This holds for every algorithm
here: the steps at which an item is active form a chain whose minima increase.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from catlight.latent.estimators.base import uniform_noise

__all__ = [
    "Structure",
    "Trace",
    "chain_trace",
    "conditional_exponentials",
    "exponential_log_density",
    "selection_mask",
    "trace_kl_to_uniform",
    "trace_log_prob",
    "unit_exponentials",
]


@dataclass(frozen=True)
class Trace:
    """The execution trace of a recursive argmin: the item and the active set of each step.

    Attributes:
        selected: the item chosen at each step, int64.
        active: the items the argmin ran over at each step (the chosen one included).

    Shapes:
        - selected: ``(*shape, T)``, ``T`` the number of steps
        - active: ``(*shape, T, n)`` bool, ``n`` the number of items
    """

    selected: Tensor
    active: Tensor

    def __getitem__(self, index: object) -> Trace:
        """The traces at ``index`` of the leading ``*shape`` dimensions."""
        return Trace(self.selected[index], self.active[index])


class Structure(nn.Module):
    """Base class of a combinatorial structure built by a recursive argmin.

    Subclasses set :attr:`num_scores` (the number of items ``n``) and implement
    :meth:`trace` (the algorithm) and :meth:`encode` (the structure in a form that a
    network downstream can use). The trace's log-probability and ``E | T`` are the
    generic ones of this module.
    """

    num_scores: int

    @property
    def log_num_traces(self) -> float:
        """``log`` of the number of traces, the support of the uniform prior over traces.

        Every structure here is built by the same number of traces (one, or one per
        order of its steps), so the uniform prior over traces is the uniform prior over
        structures with a uniform order of the steps.
        """
        raise NotImplementedError

    def trace(self, exponentials: Tensor) -> Trace:
        """Run the algorithm on perturbations (no gradient flows through a trace).

        Shapes:
            - exponentials: ``(*shape, n)``
            - output: a Trace with ``selected`` ``(*shape, T)``
        """
        raise NotImplementedError

    def encode(self, trace: Trace) -> Tensor:
        """The structure a trace builds, as a float32 tensor (see the subclass).

        Shapes:
            - output: ``(*shape, ...)``
        """
        raise NotImplementedError

    def log_prob(self, scores: Tensor, trace: Trace) -> Tensor:
        """``log p(T)``. Shapes: scores ``(*batch, n)``, trace ``(*shape, T)`` -> ``(*shape)``.

        ``*batch`` broadcasts against ``*shape`` from the right (``*shape = (S, *batch)``).
        """
        return trace_log_prob(scores, trace)

    def conditional(self, scores: Tensor, trace: Trace) -> Tensor:
        """A reparameterised sample of ``E | T`` (differentiable in ``scores``).

        Shapes:
            - scores: ``(*batch, n)``, broadcast against the trace's ``*shape``
            - output: ``(*shape, n)``
        """
        return conditional_exponentials(scores, trace)

    def trace_kl(self, scores: Tensor, trace: Trace) -> Tensor:
        """One-sample estimate of ``KL(q(tau) || prior)`` for each trace.

        The prior is uniform over traces (:func:`trace_kl_to_uniform` with
        :attr:`log_num_traces`) unless a subclass says otherwise.

        Shapes:
            - scores: ``(*batch, n)``, broadcast against the trace's ``*shape``
            - output: ``(*shape)``
        """
        return trace_kl_to_uniform(scores, trace, self.log_num_traces)

    def check_scores(self, scores: Tensor) -> None:
        """Raise a ValueError unless ``scores`` ends in :attr:`num_scores`."""
        if scores.dim() < 1 or scores.shape[-1] != self.num_scores:
            raise ValueError(
                f"{type(self).__name__}: scores must have shape (*batch, num_scores) with "
                f"num_scores = {self.num_scores}, got {tuple(scores.shape)}"
            )


def unit_exponentials(shape: tuple[int, ...], device: torch.device) -> Tensor:
    """Float32 ``Exp(1)`` draws, finite and positive.

    Shapes:
        - output: ``shape``
    """
    return -torch.log(uniform_noise(shape, device))


def exponential_log_density(scores: Tensor, exponentials: Tensor) -> Tensor:
    """``log q(E) = sum_i [theta_i - exp(theta_i) E_i]``, the density of the perturbations.

    Shapes:
        - scores: ``(*batch, n)``
        - exponentials: ``(*shape, n)`` with ``*batch`` broadcasting against ``*shape``
        - output: ``(*shape)``
    """
    return (scores - scores.exp() * exponentials).sum(-1)


def trace_log_prob(scores: Tensor, trace: Trace) -> Tensor:
    """``log p(T) = sum_t [theta_{e_t} - logsumexp_{i in A_t} theta_i]``.

    Shapes:
        - scores: ``(*batch, n)``, broadcast against the trace's ``*shape``
        - trace: ``selected`` ``(*shape, T)``, ``active`` ``(*shape, T, n)``
        - output: ``(*shape)``
    """
    step_scores = scores.unsqueeze(-2).expand(trace.active.shape)
    chosen = step_scores.gather(-1, trace.selected.unsqueeze(-1)).squeeze(-1)
    normaliser = step_scores.masked_fill(~trace.active, -torch.inf).logsumexp(-1)
    return (chosen - normaliser).sum(-1)


def trace_kl_to_uniform(scores: Tensor, trace: Trace, log_num_traces: float) -> Tensor:
    r"""One-sample estimate of ``KL(q(tau) || uniform over traces)`` for each trace.

    ``log_num_traces - sum_t H(softmax_{A_t}(theta))``: each step is a categorical over
    its active set ``A_t`` given the steps before, whose entropy is closed-form, and the
    sum of those entropies along a sampled trace is an unbiased estimate of the entropy
    of the trace distribution (chain rule of entropy). Differentiable in ``scores`` for
    the sampled trace, so the estimate belongs in the cost given to an estimator's
    ``objective``, which then differentiates it both through the trace and pathwise.

    Args:
        scores: the scores ``theta``.
        trace: sampled traces.
        log_num_traces: ``log`` of the number of traces (see
            :attr:`Structure.log_num_traces`).

    Returns:
        The estimate for each trace.

    Shapes:
        - scores: ``(*batch, n)``, broadcast against the trace's ``*shape``
        - trace: ``selected`` ``(*shape, T)``, ``active`` ``(*shape, T, n)``
        - output: ``(*shape)``
    """
    step_scores = scores.float().unsqueeze(-2).expand(trace.active.shape)
    log_probs = step_scores.masked_fill(~trace.active, -torch.inf).log_softmax(-1)
    # zero the log-probabilities off the active sets first: 0 * -inf has no gradient
    terms = log_probs.exp() * log_probs.masked_fill(~trace.active, 0.0)
    return log_num_traces + terms.sum((-2, -1))


def conditional_exponentials(scores: Tensor, trace: Trace) -> Tensor:
    """Sample ``E | T`` by memorylessness (see the module docstring), reparameterised.

    The step minima are ``D_t = sum_{s: e_t in A_s} X_s`` with independent
    ``X_s ~ Exp(rate = sum_{i in A_s} exp(theta_i))``; a chosen item's value is the
    minimum of its step; another item's is the largest minimum of the steps it took part
    in plus ``Exp(rate = exp(theta_i))``.

    Shapes:
        - scores: ``(*batch, n)``, broadcast against the trace's ``*shape``
        - trace: ``selected`` ``(*shape, T)``, ``active`` ``(*shape, T, n)``
        - output: ``(*shape, n)`` float32
    """
    active = trace.active
    step_scores = scores.unsqueeze(-2).expand(active.shape)
    log_step_rates = step_scores.masked_fill(~active, -torch.inf).logsumexp(-1)  # (*, T)
    num_steps = trace.selected.shape[-1]
    noise = unit_exponentials((*active.shape[:-2], num_steps + active.shape[-1]), scores.device)
    increments = noise[..., :num_steps] * torch.exp(-log_step_rates)  # (*, T)
    # took_part[s, t]: the item chosen at step t was in the active set of step s
    chosen = trace.selected.unsqueeze(-2).expand(*active.shape[:-1], num_steps)
    took_part = active.gather(-1, chosen).to(increments.dtype)  # (*, T, T)
    minima = (increments.unsqueeze(-2) @ took_part).squeeze(-2)  # (*, T)
    floor = (minima.unsqueeze(-1) * active).amax(-2)  # (*, n): largest minimum seen
    was_chosen = torch.zeros_like(active[..., 0, :]).scatter_(-1, trace.selected, True)
    excess = noise[..., num_steps:] * torch.exp(-scores)
    return floor + excess.masked_fill(was_chosen, 0.0)


def chain_trace(selected: Tensor, num_items: int) -> Trace:
    """The trace of repeated argmins without replacement (top-k, Plackett-Luce).

    The active set of step ``t`` is every item not chosen before ``t``.

    Shapes:
        - selected: ``(*shape, T)`` int64, distinct items
        - output: a Trace with ``active`` ``(*shape, T, n)``
    """
    chosen = torch.nn.functional.one_hot(selected, num_items)  # (*, T, n)
    chosen_before = chosen.cumsum(-2) - chosen
    return Trace(selected, chosen_before == 0)


def selection_mask(selected: Tensor, num_items: int) -> Tensor:
    """The float32 indicator of the chosen items (a k-hot mask).

    Shapes:
        - selected: ``(*shape, T)`` int64, distinct items
        - output: ``(*shape, n)``
    """
    mask = torch.zeros((*selected.shape[:-1], num_items), device=selected.device)
    return mask.scatter_(-1, selected, 1.0)
