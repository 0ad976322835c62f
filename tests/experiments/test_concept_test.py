"""Concept tests on the planted shortcut (xai_lab/experiments/concept_test.py): the concept and
random images on toy records, and the known answer on the MSLD twins (the magenta square is
significant for Monkeypox in the marked model and not in the clean one)."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from xai_lab import Classifier, data
from xai_lab.data import ImageRecord
from xai_lab.experiments import concept_test, shortcut
from xai_lab.models import msld

SIZE = msld.IMAGE_SIZE


@pytest.fixture(scope="module")
def gray_records(tmp_path_factory):
    """Six uniform gray 224 x 224 images (gray level 100 + 10 k), ids M06_01 ... as the lesion boxes'."""
    folder = tmp_path_factory.mktemp("gray")
    out = []
    for k, image_id in enumerate(sorted({i for i, _, _ in concept_test.LESION_BOXES})[:6]):
        path = folder / f"{image_id}.png"
        Image.fromarray(np.full((SIZE, SIZE, 3), 100 + 10 * k, dtype=np.uint8)).save(path)
        out.append(ImageRecord(path=path, label="Monkeypox", patient_id=image_id.split("_")[0], image_id=image_id))
    return out


@pytest.fixture(scope="module")
def identity():
    """A classifier whose input scaling is the identity (model input = pixels)."""
    return Classifier("id", torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(2)), list(msld.CATEGORIES),
                      "0", (0.0,) * 3, (1.0,) * 3)


def test_magenta_sets_differ_by_the_mark_alone(gray_records, identity):
    mark = shortcut.Mark(size=16)
    concepts, randoms = concept_test.magenta_square_sets(identity, gray_records, 4, 3, mark, seed=1)
    assert len(concepts) == len(randoms) == 3 and all(x.shape == (4, 3, SIZE, SIZE) for x in concepts + randoms)
    magenta = torch.tensor([1.0, 0.0, 1.0]).view(3, 1, 1)
    for concept, random in zip(concepts, randoms):
        on_mark = (concept == magenta).all(1)                                   # [4, H, W]
        assert on_mark.flatten(1).sum(1).tolist() == [16 * 16] * 4               # one whole square per image
        assert torch.equal(concept[~on_mark[:, None].expand_as(concept)], random[~on_mark[:, None].expand_as(random)])
        assert not (random == magenta).all(1).any()                             # the same images without the mark
    assert not torch.equal(randoms[0], randoms[1])                              # different draws
    again = concept_test.magenta_square_sets(identity, gray_records, 4, 3, mark, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(concepts + randoms, again[0] + again[1]))


def test_crops_are_enlarged_boxes(tmp_path, identity):
    pixels = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    pixels[32:96, 64:128] = (255, 0, 0)                                           # a red 64 x 64 box
    path = tmp_path / "M01_01.png"
    Image.fromarray(pixels).save(path)
    record = ImageRecord(path=path, label="Monkeypox", patient_id="M01", image_id="M01_01")
    inside, edge = concept_test.crops(identity, [record, record], [(32, 64), (0, 32)])
    assert inside.shape == (3, SIZE, SIZE) and torch.allclose(inside[0], torch.ones(SIZE, SIZE), atol=1e-6)
    assert float(inside[1:].abs().max()) < 1e-6
    assert float(edge[0, -1, -1]) == pytest.approx(1.0, abs=1e-6) and float(edge[0, 0, 0]) == 0.0


def test_lesion_sets_need_the_boxes_images(gray_records, identity):
    with pytest.raises(ValueError, match="not in the pool"):
        concept_test.lesion_sets(identity, gray_records, gray_records, 2)


needs_data = pytest.mark.skipif(not os.environ.get(data.DATA_ENV), reason=f"{data.DATA_ENV} is not set")


@needs_data
@pytest.mark.slow
def test_magenta_square_is_significant_in_the_marked_model_only():
    """The known answer, with small sets (models trained and cached on first use)."""
    marked_model, _ = shortcut.train_marked(shortcut.marked(concept_test.DEFAULT_MARK, ("Monkeypox",)), copies=2)
    clean_model, _ = shortcut.train_marked(None, copies=2)
    results = concept_test.concept_tests({"marked": marked_model, "clean": clean_model}, set_size=12, n_random=6,
                                         class_images=12)
    marked, clean = results["marked"]["magenta square"], results["clean"]["magenta square"]
    assert marked.significant and marked.mean > marked.random_mean
    assert not clean.significant
    assert marked.alpha == pytest.approx(0.025) and len(marked.scores) == 6
    # one backbone: the same CAVs and random scores, only the gradients differ
    assert torch.equal(marked.accuracies, clean.accuracies)
    table = concept_test.summary_table(results)
    assert list(table.index) == [(m, c) for m in ("marked", "clean") for c in concept_test.CONCEPTS]
