"""The images a data path names, as one network takes them: sized and normalised by its card."""

from __future__ import annotations

from ..models import ModelCard
from . import load_dataset, with_training_set
from .folder import FolderSource, folder_splits, is_image_folder
from .source import Source, TensorSource


def sources_for(card: ModelCard, data: str, data_root: str | None = None, train_data: str | None = None,
                download: bool = False) -> tuple[Source, Source | None]:
    """(test images, training images or None) of `data` (an image folder, a dataset file or name;
    `train_data`'s training images where given) for `card`'s network."""
    if is_image_folder(data):
        size = card.input_size or card.info.input_size
        splits = {k: FolderSource(path, size, card.mean, card.std) for k, path in folder_splits(data).items()}
        return splits["test"], splits.get("train")
    loaded = load_dataset(data, data_root, download)
    loaded = with_training_set(loaded, load_dataset(train_data, data_root, download), train_data) \
        if train_data else loaded
    training = TensorSource(loaded.train, card.mean, card.std, "the training split")
    return (TensorSource(loaded.test, card.mean, card.std, data, loaded.classes),
            training if len(loaded.train) else None)
