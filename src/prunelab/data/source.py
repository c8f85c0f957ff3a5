"""Data as a source: what evaluation, calibration and the run's identity read, in batches, whatever
holds the images (uint8 tensors in memory, or the user's torch Dataset / DataLoader, streamed)."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from ..errors import PrunelabError
from .calibration import calibration_images
from .sets import ImageSet, normalization, standardize

Batch = tuple[torch.Tensor, torch.Tensor]  # (images as the model takes them, int64 labels)


class Source(ABC):
    """Images and labels as the model takes them, read in batches, in one fixed order.

    Attributes:
        name: what the source is, for messages and the run's record.
        classes: class names where known, else None.
    """

    name: str = "data"
    classes: tuple[str, ...] | None = None

    @abstractmethod
    def __len__(self) -> int: ...

    @property
    @abstractmethod
    def image_shape(self) -> tuple[int, ...]:
        """(C, H, W) of one image."""

    @abstractmethod
    def batches(self, batch_size: int, device: torch.device) -> Iterator[Batch]:
        """Every image once, in order, `batch_size` at a time, on `device`."""

    def part(self, start: int, stop: int) -> Source:
        """Images `start`..`stop - 1` only, as a source of their own (one process's slice of an
        evaluation shared under torchrun). This default reads every batch and keeps the slice's."""
        return _Slice(self, start, stop)

    def tensors(self, device: torch.device) -> Batch:
        """Every image and label at once, in order (a set small enough to hold whole)."""
        xs, ys = zip(*self.batches(1024, device), strict=True)
        return torch.cat(xs), torch.cat(ys)

    def sample(self, n: int, seed: int, device: torch.device) -> torch.Tensor:
        """`n` images drawn without replacement by `seed`, in their order (calibration)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise PrunelabError(f"--calibration must be a positive number of images, got {n!r}")
        if n > len(self):
            raise PrunelabError(f"--calibration {n} asks for more images than the {len(self):,} of "
                                f"{self.name}; pass at most {len(self)}")
        pick = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n].sort().values
        return torch.stack([self._image(int(i)) for i in pick]).to(device)

    def draws(self, n: int, seed: int, batch_size: int, device: torch.device) -> Iterator[torch.Tensor]:
        """min(`n`, all) images in an order drawn by `seed`, `batch_size` at a time, on `device`
        (the batches batch norms are re-estimated on)."""
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n]
        for start in range(0, len(order), batch_size):
            yield torch.stack([self._image(int(i)) for i in order[start:start + batch_size]]).to(device)

    def _image(self, index: int) -> torch.Tensor:
        raise NotImplementedError

    def digest(self) -> str:
        """sha256 of every image and label, in order: the data's identity (one pass)."""
        h = hashlib.sha256()
        for x, y in self.batches(256, torch.device("cpu")):
            h.update(x.float().contiguous().numpy().tobytes())
            h.update(y.numpy().tobytes())
        return h.hexdigest()

    def max_label(self) -> int:
        return max(int(y.max()) for _, y in self.batches(512, torch.device("cpu")))


class TensorSource(Source):
    """uint8 images in memory (an `ImageSet`), normalised per batch with the model's statistics."""

    def __init__(self, images: ImageSet, mean: Sequence[float], std: Sequence[float], name: str = "data",
                 classes: tuple[str, ...] | None = None):
        self.images, self.mean, self.std = images, tuple(mean), tuple(std)
        self.name, self.classes = name, classes

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.images.x.shape[1:])

    def batches(self, batch_size: int, device: torch.device) -> Iterator[Batch]:
        m, s = normalization(self.mean, self.std, self.images.x.shape[1], device)
        for start in range(0, len(self), batch_size):
            x = self.images.x[start:start + batch_size].to(device)
            yield standardize(x, m, s), self.images.y[start:start + batch_size].to(device)

    def sample(self, n: int, seed: int, device: torch.device) -> torch.Tensor:
        m, s = normalization(self.mean, self.std, self.images.x.shape[1], device)
        return standardize(calibration_images(self.images, n, seed).to(device), m, s)

    def _image(self, index: int) -> torch.Tensor:
        m, s = normalization(self.mean, self.std, self.images.x.shape[1], torch.device("cpu"))
        return standardize(self.images.x[index:index + 1], m, s)[0]

    def part(self, start: int, stop: int) -> TensorSource:
        images = ImageSet(self.images.x[start:stop], self.images.y[start:stop])
        return TensorSource(images, self.mean, self.std, f"{self.name} [{start}:{stop}]", self.classes)

    def digest(self) -> str:  # of the uint8 pixels: the same identity stored runs were given
        return hashlib.sha256(self.images.x.numpy().tobytes() + self.images.y.numpy().tobytes()).hexdigest()

    def max_label(self) -> int:
        return int(self.images.y.max())


class TorchSource(Source):
    """The user's map-style `torch.utils.data.Dataset` yielding (image tensor, int label), or a
    `DataLoader` over one: streamed in batches, never held whole. The tensors are what the model
    takes (the user's transform resized and normalised them); prunelab adds nothing.

    Args:
        data: a Dataset (read in index order) or a DataLoader (read as it iterates: it must not
            shuffle, or no two passes agree).
        name: for messages.
        workers: DataLoader worker processes when given a Dataset.
    """

    def __init__(self, data: TorchDataset | DataLoader, name: str = "dataset", workers: int = 0):
        self.loader = data if isinstance(data, DataLoader) else None
        self.dataset = data.dataset if isinstance(data, DataLoader) else data
        self.name, self.workers = name, workers
        if not hasattr(self.dataset, "__getitem__") or not hasattr(self.dataset, "__len__"):
            raise PrunelabError(f"{name}: a map-style torch Dataset (with __getitem__ and __len__) or a "
                                f"DataLoader over one is needed, got {type(self.dataset).__name__}")
        sampler = getattr(self.loader, "sampler", None)
        if self.loader is not None and not isinstance(sampler, torch.utils.data.SequentialSampler):
            raise PrunelabError(f"{name}: the DataLoader shuffles (or samples); pass one with "
                                f"shuffle=False, or the Dataset itself")
        if len(self.dataset) == 0:
            raise PrunelabError(f"{name} has no images")
        classes = getattr(self.dataset, "classes", None)
        self.classes = tuple(map(str, classes)) if classes is not None else None
        self._shape = tuple(self._item(0)[0].shape)

    def __len__(self) -> int:
        return len(self.dataset)

    def _item(self, index: int) -> tuple[torch.Tensor, int]:
        try:
            x, y = self.dataset[index]
        except PrunelabError:
            raise
        except Exception as exc:  # the user's Dataset raises whatever its reading meets
            raise PrunelabError(f"{self.name}: item {index} cannot be read ({type(exc).__name__}: "
                                f"{(str(exc).splitlines() or [''])[0][:120]})") from None
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or not x.is_floating_point():
            what = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise PrunelabError(f"{self.name}: item {index} gives {what} images; a float (C, H, W) "
                                f"tensor is needed (add transforms.ToTensor() or v2.ToDtype to its "
                                f"transform)")
        label = int(y) if not isinstance(y, torch.Tensor) or y.numel() == 1 else None
        if label is None or label < 0:
            raise PrunelabError(f"{self.name}: item {index} has label {y!r}; an int class index >= 0 "
                                f"is needed")
        return x, label

    def _image(self, index: int) -> torch.Tensor:
        return self._item(index)[0]

    def max_label(self) -> int:
        targets = getattr(self.dataset, "targets", None)  # torchvision's folders and sets list them
        if targets is not None and len(targets) == len(self):
            return int(max(int(t) for t in targets))
        return super().max_label()

    @property
    def image_shape(self) -> tuple[int, ...]:
        return self._shape

    def batches(self, batch_size: int, device: torch.device) -> Iterator[Batch]:
        if self.loader is not None:
            batches = ((x, y) for x, y in self.loader)
        else:
            batches = (self._collate(range(i, min(i + batch_size, len(self))))
                       for i in range(0, len(self), batch_size))
        seen = 0
        for x, y in batches:
            if x.dim() != 4 or tuple(x.shape[1:]) != self._shape:
                raise PrunelabError(f"{self.name}: images {seen}..{seen + len(x) - 1} have shape "
                                    f"{tuple(x.shape[1:])}, the first {self._shape}; every image must "
                                    f"have one shape (resize them in the transform)")
            seen += len(x)
            yield x.to(device, torch.float32), torch.as_tensor(y, dtype=torch.int64).to(device)

    def part(self, start: int, stop: int) -> TorchSource:
        return TorchSource(torch.utils.data.Subset(self.dataset, range(start, stop)),
                           f"{self.name} [{start}:{stop}]", self.workers)

    def _collate(self, indices: range) -> Batch:
        items = [self._item(i) for i in indices]
        shapes = {tuple(x.shape) for x, _ in items}
        if len(shapes) > 1:
            raise PrunelabError(f"{self.name}: items {indices.start}..{indices.stop - 1} have shapes "
                                f"{sorted(shapes)}; every image must have one shape (resize them in "
                                f"the transform)")
        return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items], dtype=torch.int64)


class _Slice(Source):
    """Images `start`..`stop - 1` of any source, cut out of its batches."""

    def __init__(self, source: Source, start: int, stop: int):
        self.source, self.start, self.stop = source, start, stop
        self.name, self.classes = f"{source.name} [{start}:{stop}]", source.classes

    def __len__(self) -> int:
        return self.stop - self.start

    @property
    def image_shape(self) -> tuple[int, ...]:
        return self.source.image_shape

    def batches(self, batch_size: int, device: torch.device) -> Iterator[Batch]:
        seen = 0
        for x, y in self.source.batches(batch_size, device):
            lo, hi = max(self.start - seen, 0), min(self.stop - seen, len(x))
            seen += len(x)
            if lo < hi:
                yield x[lo:hi], y[lo:hi]
            if seen >= self.stop:
                return


def as_source(data, name: str = "data") -> Source:
    """A Source from what a user hands in: a Source, a torch Dataset or a DataLoader."""
    if isinstance(data, Source):
        return data
    if isinstance(data, TorchDataset | DataLoader) or hasattr(data, "__getitem__"):
        return TorchSource(data, name)
    raise PrunelabError(f"{name}: expected a torch Dataset or DataLoader, got {type(data).__name__}")
