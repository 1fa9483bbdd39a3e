"""Probabilities of sets drawn without replacement, by enumerating their orders."""

import itertools


def set_probability(probs, members, removed=()):
    """P(the first draws without replacement are ``members``), ``removed`` taken out.

    ``probs`` is a list of probabilities indexed by element; the sum runs over every
    order of ``members``.
    """
    total = 0.0
    for order in itertools.permutations(members):
        left, probability = 1.0 - sum(probs[r] for r in removed), 1.0
        for member in order:
            probability, left = probability * probs[member] / left, left - probs[member]
        total += probability
    return total
