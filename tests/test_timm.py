"""timm models by name: classifier, stem, input size and normalisation from timm's own config."""

import numpy as np
import pytest
import torch
from cli_helpers import assert_user_error, run
from PIL import Image

from prunelab.experiment.store import Store
from prunelab.models import create_model, model_info

timm = pytest.importorskip("timm")


def test_a_timm_model_declares_what_timms_config_says():
    info = model_info("timm.resnet18")
    cfg = timm.get_pretrained_cfg("resnet18")
    assert (info.classifier, info.stem, info.input_size) == ("fc", "conv1", 224)
    assert info.mean == tuple(cfg.mean) and info.std == tuple(cfg.std)
    assert create_model("timm.resnet18", 3, 3).fc.out_features == 3


def test_a_timm_checkpoint_sweeps_over_an_image_folder_resized_to_its_input(tmp_path, monkeypatch, capsys):
    torch.manual_seed(0)
    torch.save(timm.create_model("resnet18", num_classes=3).state_dict(), tmp_path / "r18.pt")
    rng = np.random.default_rng(0)
    for i in range(6):
        folder = tmp_path / "images" / f"k{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    code, _, err = run(monkeypatch, capsys, "sweep", tmp_path / "r18.pt", "--model", "timm.resnet18",
                       "--data", tmp_path / "images", "--methods", "global", "--levels", "0.5",
                       "--device", "cpu", "--out", tmp_path / "run")
    assert code == 0, err
    store = Store.open(tmp_path / "run")
    point = next(p for p in store.points() if p.method == "global")
    store.close()
    assert point.n_images == 6 and "fc.weight" not in point.layers  # the classifier is kept dense
    code, _, err = run(monkeypatch, capsys, "sweep", tmp_path / "r18.pt", "--model", "timm.resnet1",
                       "--data", tmp_path / "images", "--out", tmp_path / "other")
    assert_user_error(code, err, "unknown model 'timm.resnet1'")
