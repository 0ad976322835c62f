"""The book's image sets, offline first.

Files are read from ``$XAI_LAB_DATA_DIR`` (same layout as the project's ``shared/data``:
``imagenet-samples/*.JPEG`` and ``msld-v1/images/<label>/<id>.jpg``). Without the variable they
are downloaded once with pooch from their public addresses into a user cache, and every file is
checked against the sha256 registry kept in this package (``xai_lab/_registry``).

Sources: one ImageNet image per class (GitHub EliSchwartz/imagenet-sample-images, ImageNet
terms); Monkeypox Skin Lesion Dataset v1 (Ali et al. 2022, arXiv:2207.03342, CC BY-NC-SA 4.0).
"""
from __future__ import annotations

import csv
import hashlib
import os
import random
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

DATA_ENV = "XAI_LAB_DATA_DIR"
IMAGENET_URL = ("https://raw.githubusercontent.com/EliSchwartz/imagenet-sample-images/"
                "bc69043e2862758a1906c6a24a792bb28c6bb2ff/{file}")
MSLD_URL = ("https://raw.githubusercontent.com/deepankarvarma/Monkeypox-Skin-Lesion-Detection-OpenCV-TensorFlow-Keras/"
            "e812950ab7f613259f721ac7ffdbbbf1377ce725/Dataset/Original%20Images/{folder}/{image_id}.jpg")
MSLD_REMOTE_FOLDER = {"Monkeypox": "Monkey%20Pox", "Others": "Others"}
MSLD_LABELS = ("Monkeypox", "Others")


class DataError(RuntimeError):
    """A data file is missing or does not match its checksum."""


@dataclass(frozen=True)
class ImageRecord:
    """One image of a data set. ``label`` is the class index (ImageNet) or name (MSLD)."""

    path: Path
    label: int | str
    wnid: str | None = None
    name: str | None = None
    patient_id: str | None = None
    image_id: str | None = None

    def load(self) -> Image.Image:
        return load_image(self.path)


def load_image(image) -> Image.Image:
    """A path, PIL image or HxWx3 (or HxW) uint8 array -> PIL RGB image."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"No image at {path}")
        with Image.open(path) as im:
            return im.convert("RGB")
    if isinstance(image, np.ndarray):
        if image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4)):
            if image.dtype != np.uint8:
                raise TypeError(f"Image arrays must be uint8 (0..255), got {image.dtype}")
            return Image.fromarray(image).convert("RGB")
        raise ValueError(f"Image arrays must be HxW or HxWx3, got shape {image.shape}")
    raise TypeError(f"Cannot load an image from {type(image).__name__}")


def _registry(name: str) -> list[dict]:
    with resources.files("xai_lab").joinpath("_registry", name).open() as fh:
        return list(csv.DictReader(fh))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@lru_cache(maxsize=None)
def _checked(path: Path, sha256: str, size: int, mtime: float) -> bool:
    return _sha256(path) == sha256


def _verify(path: Path, sha256: str, source: str) -> Path:
    if not path.is_file():
        raise DataError(f"Missing data file {path}. Set {DATA_ENV} to a folder laid out like the project's "
                        f"shared/data, or unset it to download from {source}.")
    stat = path.stat()
    if not _checked(path, sha256, stat.st_size, stat.st_mtime):
        raise DataError(f"Data file {path} does not match its sha256 checksum (corrupted?). "
                        f"Replace it from {source}, or point {DATA_ENV} at a good copy.")
    return path


def data_dir() -> Path | None:
    """The folder named by ``$XAI_LAB_DATA_DIR``, or None (then files are downloaded)."""
    value = os.environ.get(DATA_ENV)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise DataError(f"{DATA_ENV}={value} is not a folder")
    return path


def cache_dir() -> Path:
    """Where downloads and trained models are kept (pooch's per-user cache for 'xai_lab')."""
    import pooch

    return Path(pooch.os_cache("xai_lab"))


def _fetch(relative: str, url: str, sha256: str) -> Path:
    """Local file under $XAI_LAB_DATA_DIR (checked), or a pooch download (checked by pooch)."""
    root = data_dir()
    if root is not None:
        return _verify(root / relative, sha256, url)
    import pooch

    try:
        return Path(pooch.retrieve(url, known_hash=f"sha256:{sha256}", fname=Path(relative).name,
                                   path=cache_dir() / Path(relative).parent, progressbar=False))
    except Exception as exc:  # network errors of several kinds, or a checksum mismatch (ValueError)
        raise DataError(f"Could not download {url} ({exc}). To work offline, set {DATA_ENV} to a folder "
                        f"with the same layout as the project's shared/data.") from exc


@lru_cache(maxsize=1)
def _wnids() -> list[str]:
    return sorted(row["file"].split("_", 1)[0] for row in _registry("imagenet_samples.csv"))


def imagenet_samples(n: int | None = None) -> list[ImageRecord]:
    """One ImageNet image per class, 1000 in all, sorted by class index (``label`` = position of
    the wnid in the sorted wnid list, the standard ImageNet-1k order). ``n`` takes the first n."""
    wnids = _wnids()
    rows = sorted(_registry("imagenet_samples.csv"), key=lambda r: r["file"])[:n]
    records = []
    for row in rows:
        wnid, name = row["file"].rsplit(".", 1)[0].split("_", 1)
        path = _fetch(f"imagenet-samples/{row['file']}", IMAGENET_URL.format(file=row["file"]), row["sha256"])
        records.append(ImageRecord(path=path, label=wnids.index(wnid), wnid=wnid, name=name))
    return records


def msld() -> list[ImageRecord]:
    """Monkeypox Skin Lesion Dataset v1, original images: ``label`` "Monkeypox" or "Others",
    ``patient_id`` (split by it, never by image: see :func:`patient_split`)."""
    records = []
    for row in _registry("msld_v1.csv"):
        url = MSLD_URL.format(folder=MSLD_REMOTE_FOLDER[row["label"]], image_id=row["image_id"])
        path = _fetch(f"msld-v1/images/{row['label']}/{row['image_id']}.jpg", url, row["sha256"])
        records.append(ImageRecord(path=path, label=row["label"], patient_id=row["patient_id"], image_id=row["image_id"]))
    return records


def patient_split(records: Sequence[ImageRecord], val: float = 0.2, test: float = 0.2,
                  seed: int = 0) -> dict[str, list[ImageRecord]]:
    """Split records into ``train``/``val``/``test`` by patient: every patient's images land in
    exactly one split. Patients are shuffled per label (stratified), then the first ``test``
    fraction of each label's patients goes to test and the next ``val`` fraction to validation."""
    if not (0 <= val and 0 <= test and val + test < 1):
        raise ValueError(f"val and test must be fractions with val + test < 1, got {val}, {test}")
    by_label: dict = {}
    for rec in records:
        if rec.patient_id is None:
            raise ValueError(f"{rec.path} has no patient_id: patient_split needs MSLD-style records")
        by_label.setdefault(rec.label, set()).add(rec.patient_id)
    rng = random.Random(seed)
    split_of = {}
    for label in sorted(by_label):
        patients = sorted(by_label[label])
        rng.shuffle(patients)
        n_test, n_val = round(test * len(patients)), round(val * len(patients))
        for i, pid in enumerate(patients):
            split_of[pid] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    out = {"train": [], "val": [], "test": []}
    for rec in records:
        out[split_of[rec.patient_id]].append(rec)
    return out


def where() -> str:
    """A sentence saying where data is read from (for ``xai-lab info``)."""
    root = data_dir()
    return f"{DATA_ENV}={root}" if root else f"downloads cached in {cache_dir()} ({DATA_ENV} not set)"
