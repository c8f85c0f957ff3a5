"""Kernel granularity (`pruning/methods/kernels.py`): whole k x k kernels go, lowest mean |w| first,
the total exact; the quantized file stores such a mask at about one bit per kernel and reads it back
bit for bit, and still reads the flat masks of format /2."""

import json
import lzma

import numpy as np
import pytest
import torch
from pruning_helpers import masked_resnet20, masks_of

from prunelab.errors import PrunelabError
from prunelab.io.formats._framing import write_framed
from prunelab.io.formats.quantized import (
    QUANT_MAGIC,
    load_quantized,
    mask_entropy,
    quantized_floor,
    save_quantized,
)
from prunelab.models import ModelCard, create_model
from prunelab.pruning import PRUNERS
from prunelab.pruning.masks import prunable_weights
from prunelab.pruning.methods.kernels import kernel_l1
from prunelab.quant import QuantSpec, quantize_model
from prunelab.quant.model import dequantized

CARD = ModelCard("resnet20", 10, 3, (0.5,) * 3, (0.25,) * 3, tuple("abcdefghij"))


def weights_of_resnet20():
    torch.manual_seed(0)
    return {k: v.detach() for k, v in prunable_weights(create_model("resnet20"), "linear").items()}


def test_scores_are_kernel_means_and_pure():
    w = torch.tensor([[[[1.0, -3.0], [0.0, 0.0]], [[2.0, 2.0], [-2.0, 2.0]]]])  # 1 x 2 x 2 x 2
    before = w.clone()
    assert torch.equal(kernel_l1(w, None), torch.tensor([[[[1.0] * 2] * 2, [[2.0] * 2] * 2]]))
    assert torch.equal(w, before)
    flat = torch.tensor([[0.5, -1.5]])
    assert torch.equal(kernel_l1(flat, None), flat.abs())  # a linear weight is its own kernel


@pytest.mark.parametrize("level", [0.3, 0.8, 0.95])
def test_whole_kernels_go_and_the_count_is_exact(level):
    weights = weights_of_resnet20()
    masks = masks_of("kernels-global", weights, level)
    total = sum(m.numel() for m in masks.values())
    assert sum(int((~m).sum()) for m in masks.values()) == round(level * total)
    split, kept_means, gone_means = 0, [], []
    for name, m in masks.items():
        means, kept = weights[name].abs().flatten(2).mean(-1), m.flatten(2).sum(-1)
        split += int(((kept > 0) & (kept < m.shape[2] * m.shape[3])).sum())
        kept_means.append(means[kept == m.shape[2] * m.shape[3]])
        gone_means.append(means[kept == 0])
    assert split <= 1  # only where the threshold falls inside one kernel
    lowest, highest_gone = float(torch.cat(kept_means).min()), float(torch.cat(gone_means).max())
    assert highest_gone <= lowest  # one threshold over all layers


def test_listed_with_its_description():
    assert PRUNERS.get("kernels-global").description.startswith("whole k x k kernels")


def test_kernel_masks_cost_a_bit_per_kernel_in_the_quantized_file(tmp_path):
    spec = QuantSpec.parse("kmeans3")
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    sizes = {}
    for method in ("global", "kernels-global"):
        model = masked_resnet20(0.9, method)
        sizes[method] = save_quantized(tmp_path / f"{method}.q", model, CARD, spec)
        back, _ = load_quantized(tmp_path / f"{method}.q")
        with torch.inference_mode():
            assert torch.equal(back(x), dequantized(masked_resnet20(0.9, method), spec, fold=True).eval()(x))
        floor = quantized_floor(model, spec).per_layer
        assert 0.8 < sizes[method] / floor < 1.2, (method, sizes[method], floor)
    q = quantize_model(masked_resnet20(0.9, "kernels-global"), spec)
    mask_bytes = sum(mask_entropy(c.mask, c.shape) for c in q.coded.values()) / 8
    assert mask_bytes < sum(c.mask.size for c in q.coded.values()) / 9 / 8 * 0.6  # under a bit per kernel
    assert sizes["kernels-global"] < 0.75 * sizes["global"]


def test_mask_entropy_by_hand():
    mask = np.zeros((2, 2, 3, 3), dtype=bool)
    mask[0, 0] = True  # one kernel of four kept, all of it: H(1/4) x 4 kernels, nothing inside
    assert mask_entropy(mask.reshape(-1), mask.shape) == pytest.approx(4 * 0.8112781244591328)
    ones = np.ones(6, dtype=bool)
    assert mask_entropy(ones, (2, 3)) == 0


def old_layout(path, model, spec):
    """The same network in format /2 (flat masks), as files written before format /3 hold it."""
    q = quantize_model(model, spec, fold=True)
    entries, raw = [], {k: b"" for k in ("mask", "codes", "tables", "rest")}
    for name in q.order:
        if name in q.coded:
            c = q.coded[name]
            entries.append({"name": name, "shape": list(c.shape), "coded": True, "nonzero": int(c.codes.size),
                            "table": int(c.table.size)})
            raw["mask"] += np.packbits(c.mask).tobytes()
            raw["codes"] += c.codes.tobytes()
            raw["tables"] += c.table.astype("<f2").tobytes()
        else:
            a = q.rest[name]
            entries.append({"name": name, "shape": list(a.shape), "dtype": a.dtype.name})
            raw["rest"] += a.astype(a.dtype.newbyteorder("<")).tobytes()
    streams = {k: lzma.compress(v) for k, v in raw.items()}
    header = {"format": "prunelab-quantized/2", **CARD.ref_json(), "scheme": spec.quantizer.name,
              "bits": spec.bits, "tensors": entries, "streams": {k: len(v) for k, v in streams.items()}}
    write_framed(path, QUANT_MAGIC, lzma.compress(json.dumps(header).encode()), b"".join(streams.values()))
    return header


def test_files_of_format_2_still_read_and_unknown_formats_are_one_line(tmp_path):
    spec = QuantSpec.parse("kmeans4")
    model = masked_resnet20(0.8)
    header = old_layout(tmp_path / "old.q", model, spec)
    save_quantized(tmp_path / "new.q", model, CARD, spec)
    old, new = load_quantized(tmp_path / "old.q")[0], load_quantized(tmp_path / "new.q")[0]
    pairs = zip(old.state_dict().values(), new.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    header["format"] = "prunelab-quantized/9"
    write_framed(tmp_path / "future.q", QUANT_MAGIC, lzma.compress(json.dumps(header).encode()), b"")
    with pytest.raises(PrunelabError, match="'prunelab-quantized/9', which this version does not read"):
        load_quantized(tmp_path / "future.q")
