"""Opening a `datasets` dataset given as an object, a `save_to_disk` folder or a Hub id, and its columns."""

from __future__ import annotations

import os
from pathlib import Path


def open_dataset(value, *, split: str, argument: str):
    """A map-style `datasets.Dataset` from a Dataset, a DatasetDict (``split`` is taken), a saved folder or a Hub id."""
    import datasets

    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if path.is_dir():
            if not ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists() or (path / "state.json").exists()):
                raise ValueError(
                    f"`{argument}`: folder {str(path)!r} is not a `datasets` folder (no dataset_info.json / dataset_dict.json); "
                    "pass a folder written by Dataset.save_to_disk, a Hub dataset id, or an image folder with a metadata file."
                )
            value = datasets.load_from_disk(str(path))
        elif path.exists():
            raise ValueError(f"`{argument}`: {str(path)!r} is a file; pass a folder or a Hub dataset id.")
        else:
            value = datasets.load_dataset(str(value), split=split)
    if isinstance(value, datasets.DatasetDict):
        if split not in value:
            raise ValueError(f"`{argument}`: the dataset has no split {split!r}; it has {sorted(value)}. Pass one of them as the split.")
        value = value[split]
    if isinstance(value, datasets.IterableDataset):
        raise ValueError(f"`{argument}`: a streaming IterableDataset cannot be sharded by index; load it without streaming=True.")
    if not isinstance(value, datasets.Dataset):
        raise ValueError(f"`{argument}`: expected a datasets.Dataset, a saved dataset folder or a Hub id, got {type(value).__name__}.")
    return value


def require_column(dataset, column: str, *, argument: str) -> None:
    """Raise naming the columns that exist when ``column`` is not one of them."""
    if column not in dataset.column_names:
        raise ValueError(
            f"`{argument}`: column {column!r} is not in the dataset; its columns are {list(dataset.column_names)}. "
            f"Map one of them with `{argument}`."
        )


def first_image_column(dataset) -> str | None:
    """``"image"`` if present, else the first column with an `Image` feature."""
    if "image" in dataset.column_names:
        return "image"
    features = dataset.features or {}
    return next((name for name, feature in features.items() if type(feature).__name__ == "Image"), None)
