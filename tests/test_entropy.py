"""The quantized file's codes are entropy-coded (`io/formats/_entropy.py`): they read back exactly,
cost close to their entropy, and a damaged stream is one line."""

import numpy as np
import pytest
from pruning_helpers import masked_resnet20

from prunelab.errors import PrunelabError
from prunelab.io.formats import _entropy
from prunelab.io.formats.quantized import code_entropy, load_quantized, save_quantized
from prunelab.models import ModelCard
from prunelab.quant import QuantSpec

CARD = ModelCard("resnet20", 10, 3, (0.5,) * 3, (0.25,) * 3, tuple("abcdefghij"))


def test_codes_round_trip_near_their_entropy():
    rng = np.random.default_rng(0)
    p = np.array([0.02, 0.1, 0.3, 0.3, 0.2, 0.06, 0.019, 0.001])
    codes = [rng.choice(8, size=n, p=p).astype(np.uint8) for n in (20000, 0, 5, 7000)]
    codes.append(np.full(300, 6, dtype=np.uint8))  # one symbol only: almost free
    freqs = [_entropy.frequencies(c, 3) for c in codes]
    for c, f in zip(codes, freqs, strict=True):
        assert ((f > 0) == (np.bincount(c, minlength=8) > 0)).all()  # every code that occurs can be coded
    data = _entropy.encode(codes, freqs)
    back = _entropy.decode(data, [c.size for c in codes], freqs)
    assert all(np.array_equal(a, b) for a, b in zip(codes, back, strict=True))
    floor = sum(code_entropy(c) for c in codes) / 8
    assert floor < len(data) < 1.02 * floor + 16  # within 2% of the entropy: 3 bits would be 9,800 bytes
    assert len(data) < 0.85 * sum(c.size for c in codes) * 3 / 8


def test_a_damaged_stream_is_one_line(tmp_path):
    path = tmp_path / "m.q"
    save_quantized(path, masked_resnet20(0.8), CARD, QuantSpec.parse("kmeans3"))
    data = bytearray(path.read_bytes())
    data[-9000:-8990] = bytes(10)  # inside the codes stream
    path.write_bytes(bytes(data))
    with pytest.raises(PrunelabError, match="damaged"):
        load_quantized(path)
