"""A learnable critic (control variate) for :class:`~catlight.latent.structured.Relax`."""

from __future__ import annotations

from torch import Tensor, nn

from catlight.latent._checks import check_int_at_least

__all__ = ["MLPCritic"]


class MLPCritic(nn.Module):
    r"""``c_phi(E)``: a one-hidden-layer tanh MLP on the log-perturbations ``-log E``.

    ``-log E_i = theta_i + G_i`` with standard Gumbel ``G_i``: unbounded in neither
    direction and on the scale of the scores, a better input than ``E`` itself. The
    output layer starts at zero, so RELAX starts as T-REINFORCE without baseline and the
    critic learns from there (tanh keeps it twice differentiable, as RELAX's critic
    training needs).

    Args:
        num_inputs: n, the number of scores of the structure (``layer.num_scores``).
        hidden_size: width of the hidden layer.

    Raises:
        ValueError: if ``num_inputs`` or ``hidden_size`` is not an int >= 1.

    Shapes:
        - exponentials: ``(*shape, n)``, positive
        - output: ``(*shape)``
    """

    def __init__(self, num_inputs: int, hidden_size: int = 32) -> None:
        super().__init__()
        check_int_at_least("MLPCritic", "num_inputs", num_inputs, 1)
        check_int_at_least("MLPCritic", "hidden_size", hidden_size, 1)
        self.num_inputs = num_inputs
        self.hidden = nn.Linear(num_inputs, hidden_size)
        self.output = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def forward(self, exponentials: Tensor) -> Tensor:
        """The control variate of each perturbation vector. See the class for shapes."""
        return self.output(self.hidden(-exponentials.log()).tanh()).squeeze(-1)
