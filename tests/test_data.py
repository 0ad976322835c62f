import shutil

import numpy as np
import pytest
from PIL import Image

from xai_lab import data


@pytest.fixture
def shared_data(monkeypatch):
    import os

    root = os.environ.get(data.DATA_ENV)
    if not root:
        pytest.skip(f"{data.DATA_ENV} is not set (CI sets it to ../shared/data)")
    return root


def test_imagenet_samples_labels_follow_sorted_wnids(shared_data):
    recs = data.imagenet_samples()
    assert len(recs) == 1000
    assert [r.label for r in recs] == list(range(1000))
    assert recs[0].wnid == "n01440764" and recs[0].name == "tench"
    assert all(r.path.is_file() for r in recs[:5])


def test_msld_records_and_patient_split(shared_data):
    recs = data.msld()
    assert len(recs) == 182
    assert {r.label for r in recs} == {"Monkeypox", "Others"}
    assert sum(r.label == "Monkeypox" for r in recs) == 84
    assert len({r.patient_id for r in recs}) == 130
    split = data.patient_split(recs, val=0.2, test=0.2, seed=0)
    patients = {name: {r.patient_id for r in part} for name, part in split.items()}
    assert not (patients["train"] & patients["val"]) and not (patients["train"] & patients["test"])
    assert not (patients["val"] & patients["test"])
    assert sum(len(p) for p in split.values()) == 182
    for part in split.values():
        assert {r.label for r in part} == {"Monkeypox", "Others"}
    again = data.patient_split(recs, val=0.2, test=0.2, seed=0)
    assert [r.image_id for r in again["test"]] == [r.image_id for r in split["test"]]
    other = data.patient_split(recs, val=0.2, test=0.2, seed=1)
    assert [r.image_id for r in other["test"]] != [r.image_id for r in split["test"]]


def test_patient_split_rejects_bad_fractions_and_records(tmp_path):
    with pytest.raises(ValueError, match="fractions"):
        data.patient_split([], val=0.6, test=0.5)
    with pytest.raises(ValueError, match="patient_id"):
        data.patient_split([data.ImageRecord(path=tmp_path, label=1)])


def _copy_layout(src, dst, n_files=3):
    (dst / "imagenet-samples").mkdir(parents=True)
    for rec in data.imagenet_samples(n_files):
        shutil.copy(rec.path, dst / "imagenet-samples" / rec.path.name)
    return dst


def test_missing_and_corrupted_files_name_the_variable_and_source(shared_data, tmp_path, monkeypatch):
    root = _copy_layout(shared_data, tmp_path / "data")
    monkeypatch.setenv(data.DATA_ENV, str(root))
    assert len(data.imagenet_samples(3)) == 3
    with pytest.raises(data.DataError, match="XAI_LAB_DATA_DIR.*raw.githubusercontent.com/EliSchwartz"):
        data.imagenet_samples(4)
    victim = root / "imagenet-samples" / "n01443537_goldfish.JPEG"
    victim.write_bytes(victim.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(data.DataError, match="checksum"):
        data.imagenet_samples(3)


def test_download_path_is_used_without_the_variable(monkeypatch, tmp_path):
    import pooch

    calls = []

    def fake_retrieve(url, known_hash, fname, path, progressbar):
        calls.append((url, known_hash))
        raise OSError("no network here")

    monkeypatch.delenv(data.DATA_ENV, raising=False)
    monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
    with pytest.raises(data.DataError, match="Could not download.*XAI_LAB_DATA_DIR"):
        data.msld()
    url, known_hash = calls[0]
    assert url.endswith("Original%20Images/Monkey%20Pox/M01_01.jpg") and known_hash.startswith("sha256:")


def test_load_image_accepts_paths_arrays_and_pil(tmp_path):
    arr = np.zeros((5, 6, 3), dtype=np.uint8)
    assert data.load_image(arr).size == (6, 5)
    assert data.load_image(np.zeros((5, 6), dtype=np.uint8)).mode == "RGB"
    path = tmp_path / "x.png"
    Image.fromarray(arr).save(path)
    assert data.load_image(path).mode == "RGB"
    assert data.load_image(Image.new("L", (3, 3))).mode == "RGB"
    with pytest.raises(TypeError, match="uint8"):
        data.load_image(np.zeros((5, 6, 3), dtype=np.float32))
    with pytest.raises(FileNotFoundError):
        data.load_image(tmp_path / "missing.png")
