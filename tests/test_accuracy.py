"""Evaluation's layout: channels-last image batches on the CPU where the model takes them (faster),
the plain layout where its forward cannot, the same predictions either way."""

import pytest
import torch
from torch import nn

from prunelab.measure import evaluate_batches

X = torch.randn(37, 3, 4, 4, generator=torch.Generator().manual_seed(0))
Y = torch.randint(0, 5, (37,), generator=torch.Generator().manual_seed(1))


class Viewing(nn.Module):
    """A user's model that views its input as rows (no channels-last batch can be viewed so)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(48, 5)

    def forward(self, x):
        return self.fc(x.view(len(x), -1))


def test_evaluation_takes_channels_last_where_the_model_can_and_the_plain_layout_where_not():
    x, y = X, Y
    torch.manual_seed(0)
    conv = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16, 5)).eval()
    for model in (conv, Viewing()):
        with torch.no_grad():
            expected = model(x).argmax(1) == y  # what the plain layout gives, by hand
        got = evaluate_batches(model, ((x[i:i + 8], y[i:i + 8]) for i in range(0, len(x), 8)))
        assert got.hits.tolist() == expected.tolist()
    with pytest.raises(RuntimeError):
        Viewing()(x.contiguous(memory_format=torch.channels_last))  # what the fallback spares it
