"""MSLD images for the classifier: the patient split, folders laid out like MSLD, labels as
class indices, and pixels (optionally edited by a ``transform(pixels, record)``)."""
from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import torch

from .settings import CATEGORIES, DEFAULT_SETTINGS, IMAGE_SIZE, TrainSettings

PixelTransform = Callable[[torch.Tensor, object], torch.Tensor]
"""``transform(pixels, record) -> pixels``: edits one image ([3, H, W] in [0, 1]) before the
model sees it, e.g. plants a mark or removes salient pixels (the shortcut and ROAR experiments)."""


def split_records(records=None, settings: TrainSettings = DEFAULT_SETTINGS) -> dict:
    """``patient_split`` of the MSLD records (default: all of ``data.msld()``) with the settings' fractions."""
    from ...data import msld, patient_split

    return patient_split(msld() if records is None else records, val=settings.val, test=settings.test,
                         seed=settings.split_seed)


def folder_records(root) -> list:
    """Records of a folder laid out like ``msld-v1``: ``metadata.csv`` with columns
    ``image_id,label,patient_id[,sha256]`` and images at ``images/<label>/<image_id>.jpg``.
    Files with a ``sha256`` are checked against it."""
    from ...data import DataError, ImageRecord, sha256_file

    root = Path(root)
    meta = root / "metadata.csv"
    if not meta.is_file():
        raise DataError(f"No metadata.csv in {root} (expected columns image_id,label,patient_id[,sha256])")
    with open(meta, newline="") as fh:
        rows = list(csv.DictReader(fh))
    missing = {"image_id", "label", "patient_id"} - set(rows[0] if rows else {})
    if missing:
        raise DataError(f"{meta} lacks the column(s) {', '.join(sorted(missing))}")
    records = []
    for row in rows:
        if row["label"] not in CATEGORIES:
            raise DataError(f"{meta}: label {row['label']!r} of {row['image_id']} is not one of {CATEGORIES}")
        path = root / "images" / row["label"] / f"{row['image_id']}.jpg"
        if not path.is_file():
            raise DataError(f"Missing image {path} (listed in {meta})")
        if row.get("sha256") and sha256_file(path) != row["sha256"]:
            raise DataError(f"{path} does not match the sha256 in {meta}")
        records.append(ImageRecord(path=path, label=row["label"], patient_id=row["patient_id"],
                                   image_id=row["image_id"]))
    return records


def label_indices(records) -> torch.Tensor:
    """Each record's class as its index in :data:`CATEGORIES`."""
    return torch.tensor([CATEGORIES.index(r.label) for r in records])


def load_pixels(record, transform: PixelTransform | None = None) -> torch.Tensor:
    """The image as a float tensor [3, H, W] in [0, 1], unresized, edited by ``transform``."""
    from torchvision.transforms.functional import to_tensor

    pixels = to_tensor(record.load())
    return pixels if transform is None else transform(pixels, record).clamp(0, 1)


def center_view(pixels: torch.Tensor, size: int = IMAGE_SIZE) -> torch.Tensor:
    """The classifier's geometry on a pixel tensor: short side resized to ``size``, center crop
    (the identity on MSLD's 224 x 224 images)."""
    import torchvision.transforms.functional as TF

    if min(pixels.shape[1:]) != size:
        pixels = TF.resize(pixels, size, antialias=True)
    return TF.center_crop(pixels, [size, size])
