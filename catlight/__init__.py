"""catlight: PyTorch Lightning for neural networks with categorical latent variables."""

from catlight import latent
from catlight.latent import DiscreteLatent

__all__ = ["DiscreteLatent", "latent"]
__version__ = "0.1.0"
