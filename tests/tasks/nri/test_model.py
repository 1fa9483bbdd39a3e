"""NRI: graph indexing against the dense formulation, equivariance, the loss, the metrics."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from catlight.latent import DiscreteLatent, Exact, GumbelSoftmax, LeaveOneOut, Softmax
from catlight.tasks.nri import NRI
from catlight.tasks.nri.decoder import MLPDecoder, RNNDecoder
from catlight.tasks.nri.encoder import CNNEncoder, MLPEncoder
from catlight.tasks.nri.graph import edge_to_node, fully_connected_edge_index, node_to_edge
from catlight.tasks.nri.images import graph_comparison_image, trajectory_image
from catlight.tasks.nri.metrics import HorizonMSE, PermutationAccuracy
from catlight.tasks.nri.model import gaussian_nll
from tests.logged_steps import logged_steps

NUM_DIMS, HIDDEN = 4, 8


def dense_relations(num_nodes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """NRI's one-hot ``rel_send, rel_rec`` (E, N), off-diagonal pairs read row by row."""
    pairs = [(i, j) for i in range(num_nodes) for j in range(num_nodes) if i != j]
    senders = torch.tensor([i for i, _ in pairs])
    receivers = torch.tensor([j for _, j in pairs])
    return F.one_hot(senders, num_nodes).float(), F.one_hot(receivers, num_nodes).float()


def trajectories(batch: int, num_nodes: int, num_steps: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, num_nodes, num_steps, NUM_DIMS, generator=generator)


def edge_permutation(permutation: torch.Tensor) -> torch.Tensor:
    """Index e' -> e such that edge e' of the permuted graph is edge e of the original."""
    num_nodes = permutation.numel()
    senders, receivers = fully_connected_edge_index(num_nodes)
    pairs = list(zip(senders.tolist(), receivers.tolist(), strict=True))
    lookup = {pair: edge for edge, pair in enumerate(pairs)}
    return torch.tensor([lookup[int(permutation[i]), int(permutation[j])] for i, j in pairs])


def test_graph_ops_match_the_dense_formulation():
    num_nodes = 4
    rel_send, rel_rec = dense_relations(num_nodes)
    edge_index = fully_connected_edge_index(num_nodes)
    nodes = torch.randn(2, 3, num_nodes, 5)
    dense_edges = torch.cat([rel_send @ nodes, rel_rec @ nodes], -1)
    torch.testing.assert_close(node_to_edge(nodes, edge_index), dense_edges)
    edges = torch.randn(2, 3, num_nodes * (num_nodes - 1), 5)
    torch.testing.assert_close(edge_to_node(edges, edge_index, num_nodes), rel_rec.T @ edges)


def test_mlp_encoder_equals_the_dense_nri_encoder():
    num_nodes, num_steps = 4, 6
    torch.manual_seed(0)
    encoder = MLPEncoder(num_steps, NUM_DIMS, HIDDEN, num_scores=3).eval()
    x = trajectories(2, num_nodes, num_steps)
    rel_send, rel_rec = dense_relations(num_nodes)

    def node2edge(h):
        return torch.cat([rel_send @ h, rel_rec @ h], -1)

    h = encoder.node_embedding(x.flatten(-2))
    e = encoder.edge_embedding(node2edge(h))
    skip = e
    h = encoder.refinement.node_mlp(rel_rec.T @ e / num_nodes)
    e = encoder.refinement.edge_mlp(torch.cat([node2edge(h), skip], -1))
    expected = encoder.refinement.output(e)

    scores = encoder(x, fully_connected_edge_index(num_nodes))
    assert scores.shape == (2, num_nodes * (num_nodes - 1), 3)
    torch.testing.assert_close(scores, expected)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_encoder_is_permutation_equivariant(kind):
    num_nodes, num_steps = 5, 8
    torch.manual_seed(0)
    if kind == "mlp":
        encoder = MLPEncoder(num_steps, NUM_DIMS, HIDDEN, num_scores=2)
    else:
        encoder = CNNEncoder(NUM_DIMS, HIDDEN, num_scores=2)
    encoder.eval()
    edge_index = fully_connected_edge_index(num_nodes)
    x = trajectories(3, num_nodes, num_steps)
    permutation = torch.tensor([3, 0, 4, 1, 2])
    scores = encoder(x, edge_index)
    permuted_scores = encoder(x[:, permutation], edge_index)
    torch.testing.assert_close(permuted_scores, scores[:, edge_permutation(permutation)])


@pytest.mark.parametrize("decoder_class", [MLPDecoder, RNNDecoder])
def test_decoder_is_permutation_equivariant(decoder_class):
    num_nodes = 4
    torch.manual_seed(0)
    decoder = decoder_class(NUM_DIMS, 2, HIDDEN)
    edge_index = fully_connected_edge_index(num_nodes)
    x = trajectories(2, num_nodes, 7)
    weights = torch.softmax(torch.randn(3, 2, num_nodes * (num_nodes - 1), 2), -1)
    permutation = torch.tensor([2, 0, 3, 1])
    predictions = decoder(x, weights, edge_index, 3)
    permuted = decoder(
        x[:, permutation], weights[:, :, edge_permutation(permutation)], edge_index, 3
    )
    torch.testing.assert_close(permuted, predictions[:, :, permutation])


@pytest.mark.parametrize("decoder_class", [MLPDecoder, RNNDecoder])
def test_decoder_reads_ground_truth_only_every_prediction_steps(decoder_class):
    torch.manual_seed(0)
    decoder = decoder_class(NUM_DIMS, 2, HIDDEN)
    edge_index = fully_connected_edge_index(3)
    x = trajectories(2, 3, 8)
    weights = F.one_hot(torch.randint(0, 2, (1, 2, 6)), 2).float()
    predictions = decoder(x, weights, edge_index, 3)
    assert predictions.shape == (1, 2, 3, 7, NUM_DIMS)
    # ground truth is read at steps 0, 3 and 6 only: the others cannot matter
    changed = x.clone()
    changed[:, :, [1, 2, 4, 5, 7]] += 10.0
    torch.testing.assert_close(decoder(changed, weights, edge_index, 3), predictions)
    # with prediction_steps = 1 every prediction reads the step before it
    one_step = decoder(x, weights, edge_index, 1)
    changed = x.clone()
    changed[:, :, 4] += 10.0
    moved = (decoder(changed, weights, edge_index, 1) - one_step).abs().amax((0, 1, 2, 4))
    assert torch.all(moved[:4] == 0) and moved[4] > 0


def test_mlp_decoder_chunks_equal_sequential_steps():
    torch.manual_seed(0)
    decoder = MLPDecoder(NUM_DIMS, 2, HIDDEN)
    edge_index = fully_connected_edge_index(3)
    x = trajectories(2, 3, 9)
    weights = torch.softmax(torch.randn(2, 2, 6, 2), -1)
    predictions = decoder(x, weights, edge_index, 3)
    for start in (0, 3, 6):
        state = x[:, :, start].expand(2, -1, -1, -1)
        for step in range(start, min(start + 3, 8)):
            state = decoder.step(state, weights, edge_index)
            torch.testing.assert_close(predictions[:, :, :, step], state)


@pytest.mark.parametrize("decoder_class", [MLPDecoder, RNNDecoder])
def test_skip_first_type_zero_sends_no_message(decoder_class):
    torch.manual_seed(0)
    decoder = decoder_class(NUM_DIMS, 2, HIDDEN, skip_first=True)
    edge_index = fully_connected_edge_index(3)
    x = trajectories(1, 3, 5)
    no_edges = F.one_hot(torch.zeros(1, 1, 6, dtype=torch.long), 2).float()
    changed = x.clone()
    changed[:, 1:] += 5.0  # move every particle but the first
    first = decoder(x, no_edges, edge_index, 2)[:, :, 0]
    torch.testing.assert_close(decoder(changed, no_edges, edge_index, 2)[:, :, 0], first)
    with_edges = F.one_hot(torch.ones(1, 1, 6, dtype=torch.long), 2).float()
    assert not torch.allclose(decoder(changed, with_edges, edge_index, 2)[:, :, 0], first)


def tiny_nri(estimator, **kwargs) -> NRI:
    settings = {
        "num_timesteps": 4,
        "encoder_hidden_size": HIDDEN,
        "decoder_hidden_size": HIDDEN,
        "prediction_steps": 2,
        "test_horizons": [1, 2],
        **kwargs,
    }
    return NRI(DiscreteLatent(2, Softmax(), estimator), **settings)


@pytest.mark.parametrize("prior", ["uniform", "sparse"])
def test_exact_loss_equals_the_enumerated_negative_elbo(prior):
    """3 particles, 6 edges, 2 types: the 64 graphs enumerated by hand."""
    torch.manual_seed(0)
    model = tiny_nri(Exact(), prior=prior, sparse_prior_first=0.8).eval()
    x = trajectories(2, 3, 4)
    loss, kl = model.loss(x)

    log_q = torch.log_softmax(model.encode(x), -1)  # [B, E, K]
    log_prior = torch.log(torch.tensor([0.8, 0.2] if prior == "sparse" else [0.5, 0.5]))
    expected_nll = torch.zeros(2)
    for graph in itertools.product(range(2), repeat=6):
        types = torch.tensor(graph)
        z = F.one_hot(types, 2).float().expand(1, 2, 6, 2)
        predictions = model.decoder(x, z, fully_connected_edge_index(3), 2)[0]
        nll = ((predictions - x[:, :, 1:]) ** 2).sum((1, 2, 3)) / (2 * 5e-5) / 3
        expected_nll += log_q[:, range(6), types].sum(-1).exp() * nll
    expected_kl = (log_q.exp() * (log_q - log_prior)).sum((-2, -1)) / 3
    torch.testing.assert_close(kl, expected_kl)
    torch.testing.assert_close(loss, expected_nll + expected_kl, rtol=1e-5, atol=1e-3)


def test_gaussian_nll_is_the_scaled_sum_of_squares():
    predictions = torch.zeros(2, 1, 2, 3, 4)
    predictions[1] += 0.1
    targets = torch.zeros(1, 2, 3, 4)
    nll = gaussian_nll(predictions, targets, variance=0.5)
    assert nll.shape == (2, 1)
    torch.testing.assert_close(nll, torch.tensor([[0.0], [24 * 0.01 / 1.0]]))


def test_score_function_loss_trains_the_encoder():
    torch.manual_seed(0)
    model = tiny_nri(LeaveOneOut(num_samples=3))
    loss, _ = model.loss(trajectories(2, 3, 4))
    loss.mean().backward()
    assert model.encoder.refinement.output.weight.grad.abs().sum() > 0
    assert model.decoder.output[-1].weight.grad.abs().sum() > 0


def test_sparse_prior_favours_the_first_type():
    model = NRI(DiscreteLatent(4, Softmax(), GumbelSoftmax(0.5)), prior="sparse")
    torch.testing.assert_close(
        model.edge_latent.prior_log_probs.exp(), torch.tensor([0.91, 0.03, 0.03, 0.03])
    )


def test_permutation_accuracy_picks_the_best_relabelling():
    metric = PermutationAccuracy(3)
    # the model calls true type 0 "2", true 1 "0" and true 2 "1", with one mistake
    metric.update(torch.tensor([2, 2, 0, 0, 1, 1]), torch.tensor([0, 0, 1, 1, 2, 0]))
    metric.update(torch.tensor([[1, 2]]), torch.tensor([[2, 1]]))
    assert metric.compute().item() == pytest.approx(6 / 8)
    assert metric.compute_identity().item() == pytest.approx(0.0)
    with pytest.raises(ValueError, match=r"target types must be in \[0, 3\)"):
        metric.update(torch.tensor([0]), torch.tensor([3]))
    with pytest.raises(ValueError, match="num_types must be in"):
        PermutationAccuracy(7)


def test_horizon_mse_averages_by_horizon():
    metric = HorizonMSE(2)
    metric.update(torch.tensor([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]]), torch.tensor([1, 2, 1]))
    torch.testing.assert_close(metric.compute(), torch.tensor([3.0, 3.0]))


def test_nri_validation_and_test_log_their_metrics():
    torch.manual_seed(0)
    model = tiny_nri(GumbelSoftmax(0.5)).eval()
    x = trajectories(3, 3, 4)
    edges = torch.randint(0, 2, (3, 6))
    logged = {}
    model.log = lambda name, value, **kwargs: logged.__setitem__(name, torch.as_tensor(value))
    model.validation_step((x, edges), 0)
    assert {"val/nll", "val/kl", "val/mse", "val/mse_1step"} <= set(logged)
    predicted = model(x).argmax(-1)
    accuracy = (predicted == edges).float().mean()
    assert model.val_accuracy.compute_identity() == pytest.approx(accuracy.item())
    long = trajectories(3, 3, 8)
    model.test_step((long, edges), 0)
    model.on_test_epoch_end()
    assert {"test/edge_acc", "test/edge_acc_best", "test/mse_1step", "test/mse_2step"} <= set(
        logged
    )
    assert math.isfinite(logged["test/mse_2step"].item())
    with pytest.raises(ValueError, match="test_horizons up to 2 need at least 3"):
        model.test_step((trajectories(3, 3, 6), edges), 0)


def rank_auroc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """P(score of a positive > score of a negative), ties counting 1/2, by all pairs."""
    positives, negatives = scores[labels], scores[~labels]
    wins = (positives[:, None] > negatives[None, :]).double()
    ties = (positives[:, None] == negatives[None, :]).double()
    return (wins + ties / 2).mean().item()


def test_edge_auroc_ranks_q_of_an_edge_against_its_existence():
    torch.manual_seed(0)
    model = tiny_nri(GumbelSoftmax(0.5), skip_first=True).eval()
    logged = {}
    model.log = lambda name, value, **kwargs: logged.__setitem__(name, torch.as_tensor(value))
    batches = [(trajectories(3, 4, 8, seed), torch.randint(0, 2, (3, 12))) for seed in (1, 2)]
    for batch in batches:
        model.validation_step(batch, 0)
        model.test_step(batch, 0)
    model.on_validation_epoch_end()
    model.on_test_epoch_end()
    scores = torch.cat([1 - model(x)[..., 0].exp() for x, _ in batches]).flatten()
    labels = torch.cat([edges for _, edges in batches]).flatten().bool()
    expected = rank_auroc(scores, labels)
    assert 0 < expected < 1
    assert logged["val/edge_auroc"].item() == pytest.approx(expected, abs=1e-5)
    assert logged["test/edge_auroc"].item() == pytest.approx(expected, abs=1e-5)
    # a perfect score ranks every edge above every non-edge
    model.val_edge_auroc.update(labels.float(), labels.long())
    assert model.val_edge_auroc.compute().item() == 1.0


@pytest.mark.parametrize("settings", [{"skip_first": False}, {"skip_first": True, "types": 3}])
def test_edge_auroc_is_logged_only_when_type_zero_means_no_edge(settings):
    types = settings.get("types", 2)
    latent = DiscreteLatent(types, Softmax(), GumbelSoftmax(0.5))
    model = NRI(
        latent,
        num_timesteps=4,
        encoder_hidden_size=HIDDEN,
        decoder_hidden_size=HIDDEN,
        skip_first=settings["skip_first"],
        test_horizons=[1],
    ).eval()
    logged = {}
    model.log = lambda name, value, **kwargs: logged.__setitem__(name, torch.as_tensor(value))
    model.validation_step((trajectories(2, 3, 4), torch.randint(0, types, (2, 6))), 0)
    model.on_validation_epoch_end()
    assert "val/edge_acc" in logged and "val/edge_auroc" not in logged
    assert model.val_edge_auroc is None and model.test_edge_auroc is None


def test_nri_rejects_invalid_settings():
    with pytest.raises(ValueError, match=r"encoder must be one of \('mlp', 'cnn'\), got 'gnn'"):
        NRI(encoder="gnn")
    with pytest.raises(ValueError, match="prediction_steps must be >= 1, got 0"):
        NRI(prediction_steps=0)
    with pytest.raises(ValueError, match="the smallest of test_horizons must be >= 1, got 0"):
        NRI(test_horizons=[])
    with pytest.raises(ValueError, match="sparse_prior_first"):
        NRI(prior="sparse", sparse_prior_first=1.0)
    model = tiny_nri(GumbelSoftmax(0.5))
    with pytest.raises(ValueError, match="set the model's num_timesteps to the data's train_steps"):
        model.loss(trajectories(2, 3, 6))


def test_images_show_the_adjacency_and_the_paths():
    edge_index = fully_connected_edge_index(3)
    true = torch.tensor([[1.0, 0, 0, 0, 0, 1]])  # edges 0 -> 1 and 2 -> 1
    image = graph_comparison_image(true, 1 - true, edge_index, cell=2)
    assert image.shape == (1, 6, 14)
    assert image[0, 0, 2] == 1 and image[0, 4, 2] == 1 and image[0, 0, 4] == 0
    assert image[0, 0, 0] == 0.5  # the diagonal
    assert image[0, 0, 8 + 2] == 0 and image[0, 0, 8 + 4] == 1  # the inferred matrix
    positions = torch.tensor([[[0.0, 0.0], [1.0, 1.0]]])
    paths = trajectory_image(positions, positions, size=12)
    assert paths.shape == (3, 12, 26)
    torch.testing.assert_close(paths[:, :, :12], paths[:, :, 14:])
    assert paths[:, 10, 1].sum() > 0 and paths[:, 1, 10].sum() > paths[:, 10, 1].sum()


def test_nri_logs_the_training_loss_only_on_the_steps_lightning_writes(tmp_path):
    batches = [(trajectories(2, 3, 4, seed), torch.zeros(2, 6)) for seed in range(6)]
    model = tiny_nri(GumbelSoftmax())
    steps, trainer = logged_steps(model, "train/kl", batches, tmp_path)
    assert steps == [2, 5]
    assert {"train/loss", "train/nll", "train/kl"} <= set(trainer.callback_metrics)
