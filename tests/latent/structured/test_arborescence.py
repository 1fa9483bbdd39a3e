import itertools

import pytest
import torch

from catlight.latent.structured import Arborescence, StructuredLatent, TraceReinforce
from catlight.latent.structured.base import unit_exponentials
from tests.latent.structured.enumeration import all_traces, structure_keys

# K3 rooted at 0, edges (0,1) (0,2) (1,0) (1,2) (2,0) (2,1)
INTO_ROOT = 9.0


def every_arborescence(structure):
    """Edge masks of every arborescence, by brute force over the parent of each node."""
    n, root = structure.num_nodes, structure.root
    index = {tuple(edge): i for i, edge in enumerate(structure.edges.t().tolist())}
    others = [v for v in range(n) if v != root]
    masks = []
    for parents in itertools.product(range(n), repeat=len(others)):
        parent = dict(zip(others, parents, strict=True))
        if any(parent[v] == v for v in others):
            continue
        if all(reaches_root(parent, v, root) for v in others):
            mask = torch.zeros(structure.num_scores)
            mask[[index[(parent[v], v)] for v in others]] = 1.0
            masks.append(mask)
    return torch.stack(masks)


def reaches_root(parent, node, root):
    seen = set()
    while node != root:
        if node in seen:
            return False
        seen.add(node)
        node = parent[node]
    return True


def test_arborescence_edges_are_the_ordered_pairs_row_by_row():
    structure = Arborescence(3)
    assert structure.edges.t().tolist() == [[0, 1], [0, 2], [1, 0], [1, 2], [2, 0], [2, 1]]
    assert structure.num_scores == 6 and structure.num_steps == 3


def test_arborescence_contracts_a_cycle_by_hand():
    # node 1 takes (2,1) = 2, node 2 takes (1,2) = 1: a cycle; reduced weights into the
    # group {1, 2}: (0,1) 5 - 2 = 3 and (0,2) 6 - 1 = 5, so (0,1) enters and replaces (2,1)
    structure = Arborescence(3)
    trace = structure.trace(torch.tensor([5.0, 6.0, INTO_ROOT, 1.0, INTO_ROOT, 2.0]))
    assert trace.selected.tolist() == [5, 3, 0]
    assert trace.active.tolist() == [
        [True, False, False, False, False, True],
        [False, True, False, True, False, False],
        [True, True, False, False, False, False],
    ]
    assert structure.encode(trace).tolist() == [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]


def test_arborescence_pads_traces_without_contraction():
    structure = Arborescence(3)
    trace = structure.trace(torch.tensor([1.0, 2.0, INTO_ROOT, 5.0, INTO_ROOT, 5.0]))
    assert trace.selected.tolist() == [0, 1, 2]  # the third step only holds edge (1,0)
    assert trace.active[2].tolist() == [False, False, True, False, False, False]
    assert structure.encode(trace).tolist() == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    assert structure.log_prob(torch.randn(6), trace[2:]).shape == ()


@pytest.mark.parametrize("root", [0, 3])
def test_arborescence_is_the_minimum_arborescence(root):
    torch.manual_seed(0)
    structure = Arborescence(5, root=root)
    candidates = every_arborescence(structure)
    assert candidates.shape[0] == 125  # 5^3 arborescences per root
    weights = torch.rand(4, 100, structure.num_scores)
    found = structure.encode(structure.trace(weights))
    assert found.shape == (4, 100, 20)
    assert ((found @ candidates.T) == 4).any(-1).all()  # one of the candidates
    cheapest = (weights @ candidates.T).amin(-1)
    assert torch.allclose((found * weights).sum(-1), cheapest)


def test_arborescence_with_another_root_enumerates_its_16_arborescences():
    structure = Arborescence(4, root=2)
    traces = all_traces(structure)
    assert len(set(structure_keys(structure, traces))) == 16
    probs = structure.log_prob(torch.randn(12), traces).exp()
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-5)
    into_root = structure.encode(traces)[:, structure.edges[1] == 2]
    assert (into_root == 0).all()


def test_conditional_sample_of_eight_nodes_reproduces_the_trace():
    torch.manual_seed(1)
    structure = Arborescence(8)
    scores = 2 * torch.randn(structure.num_scores)
    trace = structure.trace(unit_exponentials((400, 56), scores.device) * torch.exp(-scores))
    rerun = structure.trace(structure.conditional(scores, trace))
    assert torch.equal(rerun.selected, trace.selected)
    assert torch.equal(rerun.active, trace.active)
    assert (trace.selected != structure.padding_edge).sum(-1).max() > 8  # contractions


def test_trace_kl_is_the_kl_to_the_zero_score_trace_distribution():
    structure = Arborescence(4)
    scores = 2 * torch.randn(12, generator=torch.Generator().manual_seed(3))
    traces = all_traces(structure)
    log_q = structure.log_prob(scores, traces)
    log_prior = structure.log_prob(torch.zeros(12), traces)
    exact = (log_q.exp() * (log_q - log_prior)).sum()
    estimates = structure.trace_kl(scores, traces)
    assert (log_q.exp() * estimates).sum().item() == pytest.approx(exact.item(), abs=1e-5)
    assert exact.item() > 0.01
    at_prior = structure.trace_kl(torch.zeros(12), traces)
    assert torch.allclose(at_prior, torch.zeros_like(at_prior), atol=1e-5)


def test_sample_kl_of_an_arborescence_uses_the_zero_score_prior():
    layer = StructuredLatent(Arborescence(5), TraceReinforce(num_samples=3))
    out = layer(torch.zeros(2, 20))
    assert torch.allclose(out.kl(), torch.zeros(3, 2), atol=1e-5)


def test_mode_is_the_minimum_arborescence_of_the_unit_noise():
    layer = StructuredLatent(Arborescence(4), TraceReinforce())
    scores = torch.randn(3, 12, generator=torch.Generator().manual_seed(4))
    candidates = every_arborescence(layer.structure)
    best = candidates[(torch.exp(-scores) @ candidates.T).argmin(-1)]
    assert torch.equal(layer.mode(scores), best)


def test_arborescence_has_no_count_of_traces():
    with pytest.raises(ValueError, match="Arborescence: log_num_traces is not defined"):
        _ = Arborescence(4).log_num_traces


@pytest.mark.parametrize(("num_nodes", "root"), [(1, 0), (4, 4), (4, -1), (4, 1.0)])
def test_arborescence_rejects_bad_settings(num_nodes, root):
    with pytest.raises(ValueError, match=r"Arborescence: (num_nodes|root) must be"):
        Arborescence(num_nodes, root)


def test_arborescence_needs_one_score_per_directed_edge():
    with pytest.raises(ValueError, match="num_scores = 12, got \\(2, 6\\)"):
        Arborescence(4).check_scores(torch.zeros(2, 6))
