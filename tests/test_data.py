import os
import shutil
from pathlib import Path

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


# --- load_image: every PIL mode against the same picture saved as 8-bit RGB ---

def _gray(seed=0, shape=(6, 7)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _color(seed=0, shape=(6, 7)):
    return np.random.default_rng(seed).integers(0, 256, shape + (3,), dtype=np.uint8)


def _on_white(color, alpha):
    """The documented compositing: alpha * color + (1 - alpha) * white, rounded."""
    a = alpha[..., None].astype(np.float64) / 255
    rgb = np.broadcast_to(color[..., None] if color.ndim == 2 else color, alpha.shape + (3,))
    return np.rint(rgb * a + 255 * (1 - a)).astype(np.uint8)


def _as_rgb(gray):
    return np.repeat(gray[..., None], 3, axis=2)


def _cases():
    """(mode, make the PIL image, the same content as an 8-bit RGB array, file suffix)."""
    g, c = _gray(), _color()
    alpha = _gray(seed=1)
    cmyk = np.random.default_rng(2).integers(0, 256, (6, 7, 4), dtype=np.uint8)
    bits = np.random.default_rng(3).random((6, 7)) > 0.5
    palette = _color(seed=4, shape=(4,))
    index = np.random.default_rng(5).integers(0, 4, (6, 7), dtype=np.uint8)

    def p_with_transparency():
        im = Image.fromarray(index, "P")
        im.putpalette(palette.flatten().tolist())
        im.info["transparency"] = 2
        return im

    p_expected = palette[index].copy()
    p_expected[index == 2] = 255
    return [
        ("I;16", lambda: Image.fromarray(g.astype(np.uint16) * 257), _as_rgb(g), "png"),
        ("I;16B", lambda: Image.frombytes("I;16B", (7, 6), (g.astype(">u2") * 257).tobytes()), _as_rgb(g), "tif"),
        ("I 16-bit", lambda: Image.fromarray(g.astype(np.int32) * 257, "I"), _as_rgb(g), "tif"),
        ("I 8-bit", lambda: Image.fromarray(g.astype(np.int32), "I"), _as_rgb(g), "tif"),
        ("F in [0, 1]", lambda: Image.fromarray(g.astype(np.float32) / 255, "F"), _as_rgb(g), "tif"),
        ("F in [0, 255]", lambda: Image.fromarray(g.astype(np.float32), "F"), _as_rgb(g), "tif"),
        ("L", lambda: Image.fromarray(g, "L"), _as_rgb(g), "png"),
        ("1", lambda: Image.fromarray(bits), _as_rgb(bits.astype(np.uint8) * 255), "png"),
        ("LA", lambda: Image.fromarray(np.stack([g, alpha], axis=2), "LA"), _on_white(g, alpha), "png"),
        ("RGBA", lambda: Image.fromarray(np.concatenate([c, alpha[..., None]], axis=2), "RGBA"),
         _on_white(c, alpha), "png"),
        ("P with transparency", p_with_transparency, p_expected, "png"),
        ("CMYK", lambda: Image.fromarray(cmyk, "CMYK"),
         np.rint((255.0 - cmyk[..., :3]) * (255.0 - cmyk[..., 3:]) / 255).astype(np.uint8), "tif"),
        ("RGB", lambda: Image.fromarray(c, "RGB"), c, "png"),
    ]


@pytest.mark.parametrize("mode, make, expected, suffix", _cases(), ids=[case[0] for case in _cases()])
def test_every_mode_loads_like_the_same_picture_saved_as_8_bit_rgb(tmp_path, mode, make, expected, suffix):
    image = make()
    assert image.mode == mode.split()[0]
    path = tmp_path / f"image.{suffix}"
    image.save(path)
    reference = tmp_path / "reference.png"
    Image.fromarray(expected, "RGB").save(reference)
    loaded = np.asarray(data.load_image(path)).astype(int)
    want = np.asarray(data.load_image(reference)).astype(int)
    assert loaded.shape == want.shape == expected.shape
    assert np.abs(loaded - want).max() <= 1, f"{mode}: off by up to {np.abs(loaded - want).max()} levels"
    from_pil = np.asarray(data.load_image(make())).astype(int)
    assert np.abs(from_pil - want).max() <= 1


def test_a_16_bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    loaded = np.asarray(data.load_image(tmp_path / "ramp.png"))[..., 0]
    assert (loaded == 255).mean() < 0.01
    assert loaded.min() == 0 and loaded.max() == 255
    assert np.abs(loaded.astype(float) - ramp / 257).max() <= 0.5


def test_array_with_alpha_is_composited_on_white():
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (200, 0, 0, 255)
    assert data.BACKGROUND == (255, 255, 255)
    loaded = np.asarray(data.load_image(rgba))
    assert tuple(loaded[0, 0]) == (200, 0, 0) and tuple(loaded[1, 1]) == data.BACKGROUND


def _png_bytes(size=64):
    import io

    buffer = io.BytesIO()
    Image.fromarray(_color(shape=(size, size))).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg_bytes(size=64):
    import io

    buffer = io.BytesIO()
    Image.fromarray(_color(shape=(size, size))).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize("content", [b"", b"not an image at all", _png_bytes()[:40], _png_bytes()[:-200],
                                     _jpeg_bytes()[:-300], _jpeg_bytes()[:200]],
                         ids=["empty", "text", "png header only", "truncated png", "truncated jpeg",
                              "jpeg header only"])
def test_unreadable_files_raise_image_error_naming_the_path(tmp_path, content):
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(data.ImageError, match="broken.png"):
        data.load_image(path)
    assert issubclass(data.ImageError, ValueError)


def test_a_folder_and_out_of_range_values_raise_image_error(tmp_path):
    with pytest.raises(data.ImageError, match="not a file"):
        data.load_image(tmp_path)
    with pytest.raises(data.ImageError, match="NaN"):
        data.load_image(Image.fromarray(np.full((3, 3), np.nan, dtype=np.float32), "F"))
    with pytest.raises(data.ImageError, match=r"\[0, 1\] or \[0, 255\]"):
        data.load_image(Image.fromarray(np.full((3, 3), 300, dtype=np.float32), "F"))
    with pytest.raises(data.ImageError, match="0..65535"):
        data.load_image(Image.fromarray(np.full((3, 3), -5, dtype=np.int32), "I"))
    with pytest.raises(ValueError, match="no pixels"):
        data.load_image(np.zeros((0, 4, 3), dtype=np.uint8))


def test_a_transparent_level_of_a_16_bit_png_becomes_the_background(tmp_path):
    levels = (np.arange(12).reshape(3, 4) * 5000).astype(np.uint16)
    Image.fromarray(levels).save(tmp_path / "key.png", transparency=10000)
    loaded = np.asarray(data.load_image(tmp_path / "key.png"))
    expected = _as_rgb(np.rint(levels / 257).astype(np.uint8))
    expected[levels == 10000] = data.BACKGROUND
    assert np.array_equal(loaded, expected)


def test_the_cache_folder_is_pooch_s_and_offline_use_never_imports_pooch(tmp_path):
    import subprocess
    import sys

    import pooch

    assert data.cache_dir() == Path(pooch.os_cache("xai_lab"))
    code = ("import sys, xai_lab; from xai_lab import data; data.cache_dir(); data.imagenet_samples(2); "
            "print('pooch' in sys.modules, 'tqdm.auto' in sys.modules)")
    env = {**os.environ, "XAI_LAB_DATA_DIR": str(data.data_dir() or tmp_path)}
    if data.data_dir() is None:
        pytest.skip("needs the local data folder (XAI_LAB_DATA_DIR)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == ["False", "False"]
