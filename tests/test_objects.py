"""The Python API over the user's own objects: a module in no registry and a torchvision
ImageFolder with the user's own transform give, through prunelab.sweep, exactly the counts an
independent evaluator gives; prune and export work on the module; bad objects are one line."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cli_helpers import run
from PIL import Image
from torch import nn
from torch.nn.utils import prune as torch_prune
from torch.utils.data import DataLoader, TensorDataset
from torchvision import datasets, transforms

import prunelab
from prunelab.errors import PrunelabError
from prunelab.recovery import RecoveryConfig


class MyNet(nn.Module):
    """A user's own classifier, in no registry."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2))
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


MEAN, STD = 0.3, 0.4  # the user's own normalisation, in their transform


@pytest.fixture(scope="module")
def folder(tmp_path_factory, digits):
    """The digits' test split as PNG files in class folders (torchvision's ImageFolder layout)."""
    root = tmp_path_factory.mktemp("pngs")
    for i, (x, y) in enumerate(zip(digits.test.x[:120], digits.test.y[:120], strict=True)):
        (root / f"c{int(y)}").mkdir(exist_ok=True)
        Image.fromarray(x[0].numpy()).save(root / f"c{int(y)}" / f"{i:04d}.png")
    return root


@pytest.fixture(scope="module")
def image_folder(folder):
    tf = transforms.Compose([transforms.Grayscale(), transforms.ToTensor(),
                             transforms.Normalize([MEAN], [STD])])
    return datasets.ImageFolder(folder, transform=tf)


@pytest.fixture(scope="module")
def trained(digits):
    """MyNet trained for a few hundred steps on the digits' training split, as its user would."""
    torch.manual_seed(0)
    net = MyNet()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    x = (digits.train.x.float() / 255 - MEAN) / STD
    for _ in range(300):
        idx = torch.randint(0, len(x), (64,))
        loss = F.cross_entropy(net(x[idx]), digits.train.y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def independent_counts(model, dataset, method, level):
    """Correct predictions after pruning with torch.nn.utils.prune itself, evaluated by hand."""
    net = copy.deepcopy(model)
    layers = [m for name, m in net.named_modules() if isinstance(m, nn.Conv2d | nn.Linear) and name != "head"]
    n = sum(m.weight.numel() for m in layers)
    if method == "global":
        torch_prune.global_unstructured([(m, "weight") for m in layers], torch_prune.L1Unstructured,
                                        amount=round(level * n))
    else:
        for m in layers:
            torch_prune.l1_unstructured(m, "weight", amount=round(level * m.weight.numel()))
    right = 0
    with torch.no_grad():
        for x, y in DataLoader(dataset, batch_size=50):
            right += int((net(x).argmax(1) == y).sum())
    return right


def test_a_sweep_of_a_module_and_an_image_folder_counts_what_an_independent_evaluator_counts(
        trained, image_folder, tmp_path, monkeypatch, capsys):
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    result = prunelab.sweep(trained, image_folder, out=tmp_path / "run", methods=["global", "layerwise"],
                            levels=[0.0, 0.5, 0.8], device="cpu")
    assert all(torch.equal(before[k], v) for k, v in trained.state_dict().items())  # the user's model
    by_key = {(p.method, round(p.target_sparsity, 3)): p for p in result.points}
    assert by_key[("dense", 0.0)].n_images == len(image_folder) == 120
    for method in ("global", "layerwise"):
        for level in (0.5, 0.8):
            assert by_key[(method, level)].correct == independent_counts(trained, image_folder, method, level)
    assert by_key[("dense", 0.0)].correct == independent_counts(trained, image_folder, "layerwise", 0.0)
    assert by_key[("dense", 0.0)].top1 > 80  # a trained network: the counts mean something
    assert set(result.answers) == {"global", "layerwise"}
    # The run folder is the CLI's: its report is written from the store alone.
    code, _, err = run(monkeypatch, capsys, "report", tmp_path / "run")
    assert code == 0, err
    assert (tmp_path / "run" / "report" / "report.md").exists()
    # Called again it resumes: nothing left to compute, the same points.
    again = prunelab.sweep(trained, image_folder, out=tmp_path / "run", methods=["global", "layerwise"],
                           levels=[0.0, 0.5, 0.8], device="cpu")
    assert [(p.method, p.correct) for p in again.points] == [(p.method, p.correct) for p in result.points]


def test_a_changed_model_is_refused_by_its_run_folder(trained, image_folder, tmp_path):
    prunelab.sweep(trained, image_folder, out=tmp_path / "run", methods=["global"], levels=[0.5],
                   device="cpu")
    other = copy.deepcopy(trained)
    with torch.no_grad():
        other.head.bias.add_(1.0)
    with pytest.raises(PrunelabError, match="weights_sha256"):
        prunelab.sweep(other, image_folder, out=tmp_path / "run", methods=["global"], levels=[0.5],
                       device="cpu")


def test_prune_and_export_a_module_of_ones_own(trained, image_folder, tmp_path):
    x = torch.stack([image_folder[i][0] for i in range(4)])
    smaller = prunelab.prune(trained, "global", 0.7, example_inputs=x)
    assert smaller is not trained and smaller.head.weight.ne(0).all()  # the classifier is kept
    convs = [m.weight for m in smaller.features if isinstance(m, nn.Conv2d)]
    zeros = sum(int((w == 0).sum()) for w in convs)
    assert zeros == round(0.7 * sum(w.numel() for w in convs))
    exported = prunelab.export(smaller, tmp_path / "smaller.onnx", example_inputs=x)
    assert exported.max_abs_diff < 1e-4 and exported.bytes > 0
    with pytest.raises(PrunelabError, match="format='onnx'"):
        prunelab.export(smaller, tmp_path / "smaller.sparse", format="sparse", example_inputs=x)


def test_second_order_pruning_reads_the_calibration_data_given(trained, image_folder):
    calib = TensorDataset(torch.randn(64, 1, 8, 8), torch.zeros(64, dtype=torch.long))
    pruned = prunelab.prune(trained, "obs-global", 0.5, calibration_data=calib, calibration=64)
    assert pruned.features[0].weight.eq(0).any()
    with pytest.raises(PrunelabError, match="calibration_data"):
        prunelab.prune(trained, "obs-global", 0.5, example_inputs=calib[0][0])


class Wrong(torch.utils.data.Dataset):
    def __init__(self, item):
        self.item = item

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return self.item(i)


@pytest.mark.parametrize("item,needle", [
    (lambda i: (np.zeros((1, 8, 8), np.float32), 0), "float (C, H, W) tensor"),
    (lambda i: (torch.zeros(1, 8, 8), 12), "labels up to 12"),
    (lambda i: (torch.zeros(1, 8, 8 + i % 2), 0), "one shape"),
    (lambda i: (torch.zeros(3, 8, 8), 0), "3-channel"),
    (lambda i: 1 / 0, "item 0 cannot be read"),
])
def test_bad_objects_are_one_line_before_any_point(trained, tmp_path, item, needle):
    with pytest.raises(PrunelabError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        prunelab.sweep(trained, Wrong(item), out=tmp_path / "run", methods=["global"], levels=[0.5],
                       device="cpu")
    assert not (tmp_path / "run" / "results.sqlite").exists()


def test_methods_that_retrain_are_refused_over_objects_up_front(trained, image_folder, tmp_path):
    with pytest.raises(PrunelabError, match="retrains"):
        prunelab.sweep(trained, image_folder, out=tmp_path / "run", methods=["global+ft"], levels=[0.5],
                       device="cpu")
    with pytest.raises(PrunelabError, match="calibration_data"):  # +bn reads training images
        prunelab.sweep(trained, image_folder, out=tmp_path / "run", methods=["global+bn"], levels=[0.5],
                       device="cpu")
    with pytest.raises(PrunelabError, match="shuffles"):
        prunelab.sweep(trained, DataLoader(image_folder, shuffle=True), out=tmp_path / "r2", device="cpu")


def test_batch_norm_is_re_estimated_on_the_calibration_data_given(image_folder, tmp_path):
    """global+bn over a module with batch norms: the statistics come from `calibration_data` as it
    is (the user's transform, no augmentation added), one batch of all its images here, so a
    re-estimation by hand after torch's own global pruning counts the same."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3),
                        nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(8, 10)).eval()
    scales = torch.tensor([0.2, 0.5, 1.0, 2.0, 4.0, 8.0]).view(6, 1, 1, 1)  # images unlike each other
    calib = TensorDataset(torch.randn(6, 1, 8, 8) * scales + scales, torch.zeros(6, dtype=torch.long))
    result = prunelab.sweep(net, image_folder, out=tmp_path / "run", methods=["global+bn"], levels=[0.5],
                            calibration_data=calib, device="cpu",
                            recovery=RecoveryConfig(bn_batches=1, batch_size=6), calibration=6)
    by_hand = copy.deepcopy(net)
    convs = [m for m in by_hand if isinstance(m, nn.Conv2d)]
    torch_prune.global_unstructured([(m, "weight") for m in convs], torch_prune.L1Unstructured,
                                    amount=round(0.5 * sum(m.weight.numel() for m in convs)))
    for m in by_hand.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        by_hand.train()(torch.stack([x for x, _ in calib]))
        by_hand.eval()
        batches = [(by_hand(x), y) for x, y in DataLoader(image_folder, batch_size=50)]
        logits, labels = zip(*batches, strict=True)
        logits, labels = torch.cat(logits), torch.cat(labels)
    point = next(p for p in result.points if p.method == "global+bn")
    assert point.hits.tolist() == (logits.argmax(1) == labels).tolist()
    assert point.loss == pytest.approx(float(F.cross_entropy(logits, labels)), rel=1e-5)
