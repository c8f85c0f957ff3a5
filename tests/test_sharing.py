"""One evaluation split over processes (`--share images`): each source cuts out any slice of its
images, each process's slice is consecutive, and the slices' evaluations join into exactly the
evaluation of the whole set; and each source draws a seed's images as its batches hold them. (Two
real processes: tests/test_distributed.py, -m slow.)"""

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from prunelab import distributed
from prunelab.data.sets import ImageSet
from prunelab.data.source import Source, TensorSource, TorchSource
from prunelab.errors import PrunelabError
from prunelab.experiment.config import SweepConfig, validate
from prunelab.measure import Evaluation, evaluate_batches

CPU = torch.device("cpu")
X = torch.randint(0, 256, (37, 3, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
Y = torch.randint(0, 5, (37,), generator=torch.Generator().manual_seed(1))


class Listed(Source):
    """A source with nothing but batches: the default `part` cuts its slice out of them."""

    def __init__(self, inner: Source):
        self.inner = inner

    def __len__(self):
        return len(self.inner)

    @property
    def image_shape(self):
        return self.inner.image_shape

    def batches(self, batch_size, device):
        return self.inner.batches(batch_size, device)


def sources():
    tensors = TensorSource(ImageSet(X, Y), (0.5,) * 3, (0.25,) * 3)
    x, y = tensors.tensors(CPU)
    return {"tensors": tensors, "dataset": TorchSource(TensorDataset(x, y)), "batches only": Listed(tensors)}


@pytest.mark.parametrize("kind", ["tensors", "dataset", "batches only"])
@pytest.mark.parametrize(("start", "stop"), [(0, 37), (5, 16), (30, 37), (36, 37)])
def test_every_source_cuts_out_exactly_the_slice_asked_for(kind, start, stop):
    source = sources()[kind]
    whole_x, whole_y = source.tensors(CPU)
    part = source.part(start, stop)
    assert len(part) == stop - start
    x, y = torch.cat([b[0] for b in part.batches(4, CPU)]), torch.cat([b[1] for b in part.batches(4, CPU)])
    assert torch.equal(x, whole_x[start:stop]) and torch.equal(y, whole_y[start:stop])


@pytest.mark.parametrize("processes", [1, 2, 3, 5, 40])
def test_the_slices_of_every_process_join_into_the_whole_evaluation(processes, monkeypatch):
    source = sources()["tensors"]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 5))
    whole = evaluate_batches(model, source.batches(8, CPU))
    monkeypatch.setattr(distributed, "world_size", lambda: processes)
    slices = []
    for rank in range(processes):
        monkeypatch.setattr(distributed, "rank", lambda rank=rank: rank)
        slices.append(distributed.my_slice(len(source)))
    assert slices[0][0] == 0 and slices[-1][1] == len(source)
    assert all(a[1] == b[0] for a, b in zip(slices, slices[1:], strict=False))  # consecutive, no gap
    parts = [evaluate_batches(model, source.part(*s).batches(8, CPU)) for s in slices if s[1] > s[0]]
    joined = Evaluation.joined(parts)
    assert (joined.correct, joined.n) == (whole.correct, whole.n)
    assert (joined.hits == whole.hits).all()
    assert joined.top5 == pytest.approx(whole.top5) and joined.loss == pytest.approx(whole.loss)


def test_an_unknown_share_is_one_line():
    with pytest.raises(PrunelabError, match="--share must be one of points, images"):
        validate(SweepConfig(checkpoint="x", methods=("global",), share="layers"))



@pytest.mark.parametrize("kind", ["tensors", "dataset"])
def test_every_source_draws_the_same_images_for_a_seed_as_the_batches_hold_them(kind):
    """draws (the batches batch norms are re-estimated on): min(n, all) images in the order the
    seed draws, each as the source's batches give it."""
    source = sources()[kind]
    whole, _ = source.tensors(CPU)
    order = torch.randperm(len(source), generator=torch.Generator().manual_seed(7))[:20]
    drawn = torch.cat(list(source.draws(20, 7, 8, CPU)))
    assert torch.equal(drawn, whole[order])
    assert len(torch.cat(list(source.draws(100, 7, 8, CPU)))) == len(source)
