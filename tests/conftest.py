"""Shared fixtures: a small CNN trained on the embedded digits, once per test session."""

from pathlib import Path

import pytest
import torch

from prunelab.data import load_dataset
from prunelab.io.checkpoint import save_checkpoint
from prunelab.models import ModelCard, create_model
from prunelab.training import TrainConfig, fit

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="session")
def digits_checkpoint(tmp_path_factory, digits):
    """A smallcnn trained for 3 epochs on digits (~95% top-1): real weights to prune."""
    folder = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    model = create_model("smallcnn", 10, 1)
    cfg = TrainConfig(epochs=3, lr=0.05, batch_size=64)
    history = fit(model, digits, (0.5,), (0.5,), cfg, torch.device("cpu"))
    meta = ModelCard("smallcnn", 10, 1, (0.5,), (0.5,), classes=digits.classes, data="digits",
                          epochs=3, top1=history.test_top1)
    save_checkpoint(folder, model.cpu(), meta)
    return folder
