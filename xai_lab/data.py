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
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

DATA_ENV = "XAI_LAB_DATA_DIR"
#: The license of the MSLD v1 images (Ali et al. 2022): attribution, non-commercial, share-alike.
MSLD_LICENSE = "CC BY-NC-SA 4.0"
IMAGENET_URL = ("https://raw.githubusercontent.com/EliSchwartz/imagenet-sample-images/"
                "bc69043e2862758a1906c6a24a792bb28c6bb2ff/{file}")
MSLD_URL = ("https://raw.githubusercontent.com/deepankarvarma/Monkeypox-Skin-Lesion-Detection-OpenCV-TensorFlow-Keras/"
            "e812950ab7f613259f721ac7ffdbbbf1377ce725/Dataset/Original%20Images/{folder}/{image_id}.jpg")
MSLD_REMOTE_FOLDER = {"Monkeypox": "Monkey%20Pox", "Others": "Others"}
MSLD_LABELS = ("Monkeypox", "Others")


class DataError(RuntimeError):
    """A data file is missing or does not match its checksum."""


class ImageError(ValueError):
    """An image file or PIL image that cannot be read as an RGB picture (not an image, truncated,
    values outside the range its mode allows). The message names the file."""


#: The color transparent pixels are composited on by :func:`load_image`.
BACKGROUND = (255, 255, 255)


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
    """A path, PIL image or HxW / HxWx3 / HxWx4 uint8 array -> 8-bit PIL RGB image.

    Every PIL mode is converted by what its values mean, never by clipping:

    * 16-bit grayscale (``I;16``, ``I;16B``, ...): scaled by the bit depth, level v -> round(v * 255 / 65535);
    * 32-bit integer ``I`` (its bit depth is not stored): values must lie in 0..65535; an image whose
      largest value is above 255 is taken as 16-bit and scaled like ``I;16``, otherwise as 8-bit
      (so a 16-bit image that is entirely darker than level 256 of 65535 reads as 8-bit);
    * float ``F``: finite values in [0, 1] are scaled by 255, values in [0, 255] (largest above 1)
      are taken as 8-bit levels; NaN, infinity or values outside [0, 255] raise :class:`ImageError`;
    * transparency (``RGBA``, ``LA``, ``PA``, premultiplied ``RGBa``/``La``, and ``P``/``L``/``RGB``/16-bit
      gray with a transparent color): composited on a **white** background (:data:`BACKGROUND`),
      out = (alpha * color + (255 - alpha) * 255) / 255, rounded;
    * ``1``, ``L``, ``P``, ``CMYK``, ``YCbCr``, ``HSV``, ``LAB``, ``RGBX``: PIL's conversion to RGB.

    A missing path raises ``FileNotFoundError``; a file that cannot be decoded as an image (not
    an image, truncated, an unsupported mode) raises :class:`ImageError` naming the path.
    """
    if isinstance(image, Image.Image):
        try:
            image.load()
        except Exception as exc:  # a lazily opened file that turns out broken
            source = getattr(image, "filename", "") or "the PIL image"
            raise ImageError(f"Cannot read {source} as an image ({type(exc).__name__}: {exc})") from exc
        return _to_rgb(image)
    if isinstance(image, (str, os.PathLike)):
        return _read_image_file(Path(image))
    if isinstance(image, np.ndarray):
        if image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4)):
            if image.dtype != np.uint8:
                raise TypeError(f"Image arrays must be uint8 (0..255), got {image.dtype}")
            if image.shape[0] == 0 or image.shape[1] == 0:
                raise ValueError(f"Image array has no pixels: shape {image.shape}")
            return _to_rgb(Image.fromarray(image))
        raise ValueError(f"Image arrays must be HxW, HxWx3 or HxWx4, got shape {image.shape}")
    raise TypeError(f"Cannot load an image from {type(image).__name__}")


def _read_image_file(path: Path) -> Image.Image:
    if not path.exists():
        raise FileNotFoundError(f"No image at {path}")
    if not path.is_file():
        raise ImageError(f"{path} is not a file, so it cannot be read as an image")
    try:
        with Image.open(path) as im:
            im.load()
            return _to_rgb(im)
    except ImageError as exc:
        raise ImageError(f"Cannot read {path} as an image: {exc}") from exc
    except Exception as exc:  # PIL's decoders raise many types on a broken file (OSError, SyntaxError, ...)
        raise ImageError(f"Cannot read {path} as an image ({type(exc).__name__}: {exc}); "
                         "is it an image file, and complete?") from exc


def _to_rgb(im: Image.Image) -> Image.Image:
    """One PIL image of any mode -> 8-bit RGB (the rules are listed in :func:`load_image`)."""
    if im.mode.startswith("I;16"):
        values = np.asarray(im)
        return _gray_to_rgb(values, 255 / 65535, im.info.get("transparency"))
    if im.mode == "I":
        values = np.asarray(im)
        low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
        if low < 0 or high > 65535:
            raise ImageError(f"a 32-bit integer (mode I) image must hold levels 0..65535 (8 or 16 bit), "
                             f"got {low}..{high}; scale it to 0..255 yourself")
        return _gray_to_rgb(values, 255 / 65535 if high > 255 else 1.0, im.info.get("transparency"))
    if im.mode == "F":
        values = np.asarray(im).astype(np.float64)
        if not np.isfinite(values).all():
            raise ImageError("a float (mode F) image holds NaN or infinite values")
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if low < 0 or high > 255:
            raise ImageError(f"a float (mode F) image must hold values in [0, 1] or [0, 255], got {low:g}..{high:g}")
        return _levels_to_rgb(values * (255.0 if high <= 1 else 1.0))
    if im.mode in ("RGBa", "La"):  # premultiplied: the color is already alpha * color
        pixels = np.asarray(im).astype(np.float64)
        alpha = pixels[..., -1:] / 255.0
        color = np.broadcast_to(pixels[..., :-1], pixels.shape[:2] + (3,))
        return _rgb_array(color + np.asarray(BACKGROUND, dtype=np.float64) * (1.0 - alpha))
    if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
        pixels = np.asarray(im.convert("RGBA")).astype(np.float64)
        alpha = pixels[..., 3:] / 255.0
        return _rgb_array(pixels[..., :3] * alpha + np.asarray(BACKGROUND, dtype=np.float64) * (1.0 - alpha))
    try:
        return im.convert("RGB")
    except ValueError as exc:
        raise ImageError(f"cannot convert a mode {im.mode} image to RGB ({exc})") from exc


def _levels_to_rgb(levels: np.ndarray) -> Image.Image:
    """Grayscale levels in [0, 255] (floats) [H, W] -> RGB, rounded to the nearest level."""
    return _rgb_array(np.repeat(levels[..., None], 3, axis=2))


def _gray_to_rgb(values: np.ndarray, scale: float, transparent) -> Image.Image:
    """Integer gray levels [H, W] times ``scale`` -> RGB; pixels equal to the ``transparent`` level
    (a PNG tRNS key, if any) become the background."""
    rgb = np.repeat((values.astype(np.float64) * scale)[..., None], 3, axis=2)
    if isinstance(transparent, int):
        rgb[values == transparent] = BACKGROUND
    return _rgb_array(rgb)


def _rgb_array(levels: np.ndarray) -> Image.Image:
    """Color levels in [0, 255] (floats) [H, W, 3] -> RGB, rounded to the nearest level."""
    return Image.fromarray(np.clip(np.rint(levels), 0, 255).astype(np.uint8), "RGB")


def _registry(name: str) -> list[dict]:
    with resources.files("xai_lab").joinpath("_registry", name).open() as fh:
        return list(csv.DictReader(fh))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@cache
def _checked(path: Path, sha256: str, size: int, mtime: float) -> bool:
    return sha256_file(path) == sha256


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
    """Where downloads and trained models are kept: the per-user cache folder for 'xai_lab'
    (``platformdirs.user_cache_dir``, the folder pooch's ``os_cache`` names). pooch itself is
    imported only to download, so that offline use never loads it (it imports ``tqdm.auto``,
    which warns in a notebook without ipywidgets)."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("xai_lab"))


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
        records.append(ImageRecord(path=path, label=row["label"], patient_id=row["patient_id"],
                                   image_id=row["image_id"]))
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


def example_batch(n: int = 4, *, preprocess, names: Sequence[str] | None = None):
    """The ImageNet sample images the chapters explain, preprocessed and stacked: ``(x, labels)``
    with ``x`` [N, 3, H, W] and ``labels`` [N] (int64 class indices). Name an image by its label
    (``classifier.categories[label]``), the data set's class, not by what a model predicts.

    ``names``: these classes, in this order (class names as in ``classifier.categories``,
    "Egyptian cat", or as in the file names, "Egyptian_cat"). Otherwise ``n`` images spread
    over the classes: every ``1000 // n``-th class from the first (n = 30 takes classes
    0, 33, ..., 957). ``preprocess``: image -> [3, H, W], e.g. ``classifier.preprocess``."""
    import torch

    records = imagenet_samples()
    if names is not None:
        by_name: dict[str, list[ImageRecord]] = {}
        for r in records:
            by_name.setdefault(r.name.replace("_", " "), []).append(r)
        unclear = [name for name in names if len(by_name.get(name.replace("_", " "), [])) != 1]
        if unclear:
            raise ValueError(f"no single ImageNet sample of class {unclear} (names as in classifier.categories; "
                             f"a name shared by two classes, like 'crane', is ambiguous)")
        picked = [by_name[name.replace("_", " ")][0] for name in names]
    else:
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(records):
            raise ValueError(f"n must be an integer in 1..{len(records)}, got {n!r}")
        picked = records[::len(records) // n][:n]
    x = torch.stack([preprocess(r.load()) for r in picked])
    return x, torch.tensor([r.label for r in picked], dtype=torch.long)
