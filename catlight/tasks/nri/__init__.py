"""Neural relational inference (Kipf et al. 2018): interaction graphs as latent edges.

Read in the order data flows: :mod:`.simulation` (particle systems), :mod:`.kuramoto`
(phase-coupled oscillators), :mod:`.data`
(trajectories and their data module), :mod:`.graph` (the fully connected edge list and
node/edge message passing), :mod:`.encoder` (trajectories to edge-type scores),
:mod:`.edge_latents` (independent edge types or a spanning tree), :mod:`.decoder`
(typed messages predict the next positions), :mod:`.metrics`, :mod:`.images` and
:mod:`.model` (the LightningModule).
"""

from catlight.tasks.nri.data import ParticlesDataModule, simulate_main
from catlight.tasks.nri.graph import fully_connected_edge_index
from catlight.tasks.nri.kuramoto import KuramotoSystem
from catlight.tasks.nri.model import NRI
from catlight.tasks.nri.simulation import ParticleSystem, random_spanning_trees

__all__ = [
    "NRI",
    "KuramotoSystem",
    "ParticleSystem",
    "ParticlesDataModule",
    "fully_connected_edge_index",
    "random_spanning_trees",
    "simulate_main",
]
