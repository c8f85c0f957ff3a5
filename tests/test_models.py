"""Model registry and checkpoints: architectures, parameter counts, safe loading, clear errors."""

from pathlib import Path

import pytest
import torch

from prunelab.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint
from prunelab.errors import PrunelabError
from prunelab.models import create_model, model_info, model_names

SHARED = Path(__file__).resolve().parents[2] / "shared"
RESNET20 = SHARED / "models" / "cifar10" / "resnet20-12fca82f.th"


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_resnet50_cifar_variant_matches_the_classic_study():
    m = create_model("resnet50", 10)
    assert n_params(m) == 23_520_842
    assert m.conv1.kernel_size == (3, 3) and m.conv1.stride == (1, 1)
    assert isinstance(m.maxpool, torch.nn.Identity)


@pytest.mark.parametrize("depth,params", [(20, 269_722), (56, 853_018)])
def test_cifar_resnets(depth, params):
    m = create_model(f"resnet{depth}", 10)
    assert n_params(m) == params
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("name", [n for n in model_names(include_torchvision=False)])
def test_registry_declares_real_classifier_and_stem(name):
    info = model_info(name)
    modules = dict(create_model(name, 7, 3 if name != "smallcnn" else 1).named_modules())
    assert modules[info.classifier].out_features == 7
    assert isinstance(modules[info.stem], torch.nn.Conv2d)


@pytest.mark.parametrize("name", ["torchvision.resnet18", "torchvision.mobilenet_v2", "torchvision.vgg11"])
def test_torchvision_classifiers_declared(name):
    info = model_info(name)
    modules = dict(create_model(name, 5).named_modules())
    assert modules[info.classifier].out_features == 5
    assert info.stem in modules


def test_unknown_model_suggests():
    with pytest.raises(PrunelabError, match="resnet56"):
        create_model("resnet65")


def test_safetensors_roundtrip(tmp_path):
    m = create_model("smallcnn", 10, 1).eval()
    meta = CheckpointMeta("smallcnn", 10, 1, (0.5,), (0.5,), classes=tuple("0123456789"))
    save_checkpoint(tmp_path, m, meta)
    loaded, got = load_checkpoint(tmp_path)
    x = torch.randn(3, 1, 8, 8)
    assert torch.equal(m(x), loaded(x))
    assert got.classes == meta.classes and got.mean == (0.5,)


def test_foreign_checkpoint_errors(tmp_path):
    m = create_model("resnet20", 10)
    path = tmp_path / "r20.th"
    torch.save({"state_dict": {"module." + k: v for k, v in m.state_dict().items()}}, path)
    model, meta = load_checkpoint(path, "resnet20")
    assert meta.num_classes == 10 and meta.mean == model_info("resnet20").mean
    with pytest.raises(PrunelabError, match="pass --model"):
        load_checkpoint(path)
    with pytest.raises(PrunelabError, match="does not fit model 'resnet32'.*missing"):
        load_checkpoint(path, "resnet32")
    with pytest.raises(PrunelabError, match="not a 'smallcnn'"):
        load_checkpoint(path, "smallcnn")
    state = m.state_dict()
    del state["layer3.2.conv2.weight"]
    torch.save(state, tmp_path / "cut.pt")
    with pytest.raises(PrunelabError, match="1 missing: layer3.2.conv2.weight"):
        load_checkpoint(tmp_path / "cut.pt", "resnet20")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(PrunelabError, match="weights_only"):
        load_checkpoint(tmp_path / "junk.pt", "resnet20")
    with pytest.raises(PrunelabError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt", "resnet20")


def test_checkpoint_with_code_is_refused(tmp_path):
    """A pickle that would run code on load is rejected, never executed."""
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "hook": print}, path)
    with pytest.raises(PrunelabError, match="weights_only"):
        load_checkpoint(path, "resnet20")


def test_wrong_class_count_is_a_clear_error(tmp_path):
    m = create_model("smallcnn", 3, 1)
    meta = CheckpointMeta("smallcnn", 10, 1, (0.5,), (0.5,))  # metadata lies about the classes
    save_checkpoint(tmp_path, m, meta)
    with pytest.raises(PrunelabError, match=r"fc.weight \(3, 128\) vs \(10, 128\)"):
        load_checkpoint(tmp_path)


@pytest.mark.skipif(not RESNET20.exists(), reason="../shared pretrained models absent")
def test_pretrained_resnet20_loads_through_prunelab():
    model, meta = load_checkpoint(RESNET20, "resnet20")
    assert meta.num_classes == 10 and meta.in_channels == 3
    assert n_params(model) == 269_722


SUBSET = SHARED / "data" / "cifar10" / "cifar10_subset.npz"


@pytest.mark.skipif(not (RESNET20.exists() and SUBSET.exists()), reason="../shared data or models absent")
def test_pretrained_resnet20_scores_932_of_1017():
    """The published ResNet-20 through prunelab's own loading path: 91.6% on the byte-exact subset."""
    from prunelab.data import load_dataset, normalize
    from prunelab.metrics import evaluate

    model, meta = load_checkpoint(RESNET20, "resnet20")
    test = load_dataset(SUBSET).test
    ev = evaluate(model, normalize(test.x, meta.mean, meta.std), test.y)
    assert (ev.correct, ev.n) == (932, 1017)
