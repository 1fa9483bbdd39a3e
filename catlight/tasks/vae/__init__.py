"""Categorical VAE and structured output prediction on binarized images.

Data: :mod:`catlight.data.images` (shared with the semi-supervised family).
Modules: :mod:`.categorical_vae` (the VAE of the Gumbel-Softmax paper's Table 1) and
:mod:`.structured_output` (the top half of an image to its bottom half through
stochastic layers).
"""

from catlight.tasks.vae.categorical_vae import CategoricalVAE
from catlight.tasks.vae.structured_output import StructuredOutputPrediction

__all__ = ["CategoricalVAE", "StructuredOutputPrediction"]
