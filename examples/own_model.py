"""prunelab on your own model and your own images, from Python.

    python examples/own_model.py [--out runs/own-model]

Offline and in about a minute on two cores: it writes scikit-learn's bundled digits as PNG files in
class folders (torchvision's ImageFolder layout: your images go there instead), trains a small
network of its own class for a few hundred steps (yours would be trained already), and asks
prunelab how much of it can go. The run folder is the command line's: `prunelab report OUT`.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.datasets import load_digits
from torch import nn
from torchvision import datasets, transforms

import prunelab


class MyNet(nn.Module):
    """Any classifier: prunelab keeps its last nn.Linear dense (classifier= names another)."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2))
        self.head = nn.Linear(128, classes)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


def write_pngs(root: Path) -> tuple[Path, Path]:
    """The digits as 8x8 PNGs in train/<class>/ and test/<class>/ (the last 360 images are the test)."""
    digits = load_digits()
    images = (digits.images * 255 / 16).astype("uint8")
    for i, (image, label) in enumerate(zip(images, digits.target, strict=True)):
        split = "test" if i >= len(images) - 360 else "train"
        folder = root / split / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:04d}.png")
    return root / "train", root / "test"


def train(model: nn.Module, data: datasets.ImageFolder, steps: int = 400) -> nn.Module:
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(data, batch_size=64, shuffle=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    done = 0
    while done < steps:
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/own-model", help="run folder")
    args = parser.parse_args()
    transform = transforms.Compose([transforms.Grayscale(), transforms.ToTensor(),
                                    transforms.Normalize([0.3], [0.4])])  # your own transform
    with tempfile.TemporaryDirectory() as tmp:
        train_dir, test_dir = write_pngs(Path(tmp))
        train_set = datasets.ImageFolder(train_dir, transform=transform)
        test_set = datasets.ImageFolder(test_dir, transform=transform)
        model = train(MyNet(), train_set)

        # The ten lines a user writes:
        result = prunelab.sweep(model, test_set, out=args.out, methods=["layerwise", "global", "obs-global"],
                                levels="0:1:0.1", calibration_data=train_set, calibration=256)
        for method, answer in result.answers.items():
            print(f"{method:>10}: {answer.sparsity:.0%} can go ({answer.top1:.2f}% against dense "
                  f"{answer.dense_top1:.2f}%, 95% interval {answer.ci_low:.0%} to {answer.ci_high:.0%})")
        smaller = prunelab.prune(model, "obs-global", 0.8, calibration_data=train_set, calibration=256)
        exported = prunelab.export(smaller, Path(args.out) / "smaller.onnx", example_inputs=test_set[0][0])
        print(f"wrote {exported.path} ({exported.bytes:,} bytes; outputs within {exported.max_abs_diff:.1e})")
        print(f"report: prunelab report {args.out}")


if __name__ == "__main__":
    main()
