"""Model registry and checkpoints: architectures, parameter counts, safe loading, clear errors."""

from pathlib import Path

import pytest
import torch

from prunelab.errors import PrunelabError
from prunelab.io.checkpoint import load_checkpoint, save_checkpoint
from prunelab.models import ModelCard, create_model, model_info, model_names

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
    meta = ModelCard("smallcnn", 10, 1, (0.5,), (0.5,), classes=tuple("0123456789"))
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
    with pytest.raises(PrunelabError, match="as a tensor file"):
        load_checkpoint(tmp_path / "junk.pt", "resnet20")
    with pytest.raises(PrunelabError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt", "resnet20")


def test_checkpoint_with_code_is_refused(tmp_path):
    """A pickle that would run code on load is rejected, never executed."""
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "hook": print}, path)
    with pytest.raises(PrunelabError, match="needs the global print") as refused:
        load_checkpoint(path, "resnet20")
    assert "weights_only=False" not in str(refused.value)  # never the advice that runs the code
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(PrunelabError, match="cannot read checkpoint .* as a tensor file") as refused:
        load_checkpoint(path, "resnet20")
    assert "weights_only" not in str(refused.value)


def test_wrong_class_count_is_a_clear_error(tmp_path):
    m = create_model("smallcnn", 3, 1)
    meta = ModelCard("smallcnn", 10, 1, (0.5,), (0.5,))  # metadata lies about the classes
    save_checkpoint(tmp_path, m, meta)
    with pytest.raises(PrunelabError, match=r"num_classes 10 but fc.weight is \(3, 128\)"):
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
    from prunelab.measure import evaluate

    model, meta = load_checkpoint(RESNET20, "resnet20")
    test = load_dataset(SUBSET).test
    ev = evaluate(model, normalize(test.x, meta.mean, meta.std), test.y)
    assert (ev.correct, ev.n) == (932, 1017)


def test_sharded_half_precision_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    m = create_model("resnet20").eval()
    meta = ModelCard("resnet20", 10, 3, (0.5,) * 3, (0.25,) * 3)
    index = save_checkpoint(tmp_path, m, meta, max_shard_bytes=200_000, dtype=torch.float16)
    shards = sorted(tmp_path.glob("model-*-of-*.safetensors"))
    assert index.name == "model.safetensors.index.json" and len(shards) >= 3
    assert all(f.stat().st_size <= 200_000 for f in shards)
    assert shards[0].name == f"model-00001-of-{len(shards):05d}.safetensors"
    loaded, _ = load_checkpoint(tmp_path)
    for (k, a), b in zip(m.state_dict().items(), loaded.state_dict().values(), strict=True):
        want = a.half().to(a.dtype) if a.is_floating_point() else a  # exactly the fp16 values
        assert b.dtype == a.dtype and torch.equal(b, want), k
    save_checkpoint(tmp_path, m, meta)  # one layout per folder: the shards go
    assert not list(tmp_path.glob("model-*")) and (tmp_path / "model.safetensors").exists()


def test_a_missing_corrupt_or_foreign_shard_is_one_line(tmp_path):
    from prunelab.io.checkpoint import weights_digest

    m = create_model("resnet20").eval()
    save_checkpoint(tmp_path, m, ModelCard("resnet20", 10, 3, (0.5,) * 3, (0.25,) * 3),
                    max_shard_bytes=300_000)
    digest = weights_digest(tmp_path)
    assert digest == weights_digest(tmp_path / "model.safetensors.index.json")
    second = sorted(tmp_path.glob("model-*"))[1]
    data = bytearray(second.read_bytes())
    data[-1] ^= 1
    second.write_bytes(bytes(data))
    with pytest.raises(PrunelabError, match=rf"shard {second.name} is corrupt"):
        load_checkpoint(tmp_path)
    assert weights_digest(tmp_path) != digest
    second.unlink()
    with pytest.raises(PrunelabError, match=rf"shard {second.name} is missing"):
        load_checkpoint(tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text("{not json")
    with pytest.raises(PrunelabError, match="shard index .* is unreadable"):
        load_checkpoint(tmp_path)


def test_models_lists_every_registered_model_and_the_families_by_pattern(monkeypatch, capsys):
    from cli_helpers import run

    code, out, err = run(monkeypatch, capsys, "models")
    assert code == 0, err
    names = [line.split()[0] for line in out.splitlines()]
    assert {"resnet50", "smallcnn", "torchvision.<name>", "timm.<name>"} <= set(names)
    assert all("<" not in n for n in model_names(include_torchvision=False))


def test_models_lists_the_trained_networks_shipped_in_the_zoo(monkeypatch, capsys, tmp_path,
                                                               digits_checkpoint):
    import shutil

    from cli_helpers import run

    shutil.copytree(digits_checkpoint, tmp_path / "zoo" / "smallcnn-digits")
    (tmp_path / "zoo" / "broken").mkdir()
    (tmp_path / "zoo" / "broken" / "model.json").write_text("{not json")
    monkeypatch.setattr("prunelab.cli.commands.ZOO", tmp_path / "zoo")
    code, out, err = run(monkeypatch, capsys, "models")
    assert code == 0, err
    assert f"trained networks shipped in {tmp_path / 'zoo'}" in out
    line = next(x for x in out.splitlines() if "smallcnn-digits" in x)
    assert "smallcnn," in line and "% test top-1 on digits" in line
    assert "broken" in out and "cannot be read" in out
