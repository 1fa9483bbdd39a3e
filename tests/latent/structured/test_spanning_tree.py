import pytest
import torch

from catlight.latent.structured import SpanningTree


def reference_kruskal(weights, num_nodes):
    """Textbook Kruskal on one graph: sorted edges, union-find, skip cycles."""
    edges = torch.triu_indices(num_nodes, num_nodes, 1).t().tolist()
    parent = list(range(num_nodes))

    def root(node):
        while parent[node] != node:
            node = parent[node]
        return node

    chosen = []
    for index in sorted(range(len(edges)), key=lambda i: weights[i]):
        first, second = (root(node) for node in edges[index])
        if first != second:
            parent[first] = second
            chosen.append(index)
    return chosen


def test_spanning_tree_edges_are_numbered_row_major():
    assert SpanningTree(4).edges.t().tolist() == [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]


def test_spanning_tree_kruskal_by_hand():
    # (0,1) 0.1, (0,2) 0.2, (0,3) 0.9, (1,2) 0.3 closes a cycle, (1,3) 0.8, (2,3) 0.5
    structure = SpanningTree(4)
    trace = structure.trace(torch.tensor([0.1, 0.2, 0.9, 0.3, 0.8, 0.5]))
    assert trace.selected.tolist() == [0, 1, 5]
    assert trace.active.tolist() == [
        [True] * 6,
        [False, True, True, True, True, True],
        [False, False, True, False, True, True],  # only edges to node 3 join components
    ]
    assert structure.encode(trace).tolist() == [1.0, 1.0, 0.0, 0.0, 0.0, 1.0]


def test_spanning_tree_batched_kruskal_matches_the_textbook_one():
    torch.manual_seed(0)
    structure = SpanningTree(6)
    weights = torch.rand(3, 20, structure.num_scores)
    selected = structure.trace(weights).selected
    for index in range(3 * 20):
        row = weights.view(-1, structure.num_scores)[index].tolist()
        assert selected.view(-1, 5)[index].tolist() == reference_kruskal(row, 6)


def test_spanning_tree_samples_are_connected_trees():
    structure = SpanningTree(7)
    adjacency = structure.adjacency(structure.encode(structure.trace(torch.rand(50, 21))))
    assert adjacency.shape == (50, 7, 7)
    assert torch.equal(adjacency, adjacency.transpose(-1, -2))
    assert (adjacency.sum((-2, -1)) == 2 * 6).all()
    reach = torch.linalg.matrix_power(adjacency + torch.eye(7), 6)
    assert (reach > 0).all()


def test_spanning_tree_adjacency_by_hand():
    structure = SpanningTree(3)  # edges (0,1), (0,2), (1,2)
    adjacency = structure.adjacency(torch.tensor([1.0, 0.0, 1.0]))
    assert adjacency.tolist() == [[0, 1, 0], [1, 0, 1], [0, 1, 0]]


def test_spanning_tree_rejects_fewer_than_two_nodes():
    with pytest.raises(ValueError, match="SpanningTree: num_nodes must be an int >= 2, got 1"):
        SpanningTree(1)


def test_spanning_tree_needs_one_score_per_edge():
    with pytest.raises(ValueError, match="num_scores = 6, got \\(2, 4\\)"):
        SpanningTree(4).check_scores(torch.zeros(2, 4))
