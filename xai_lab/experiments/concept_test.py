"""Concept tests with a known answer: TCAV (:mod:`xai_lab.tcav`) on the planted shortcut
(:mod:`.shortcut`).

The marked model learned the magenta square as a sign of Monkeypox; its clean twin
(``shortcut.train_marked(None)``: the same recipe and settings on unmarked images) never saw
the square. So the concept "magenta square" must be significant for the Monkeypox class in
the marked model and not in the clean one. Both are the frozen ImageNet EfficientNet-Lite0
with a logistic head of their own, so at a backbone layer the two models have the same
activations and the same CAVs: only the gradient of the class logit differs, and it alone
decides the answer.

* "magenta square" (:func:`magenta_square_sets`): random sets are MSLD images of either class as
  they are, drawn with a seed; the concept set paired with each random set is the same images
  with the mark planted (:func:`xai_lab.experiments.shortcut.marked`), so each CAV separates
  images by the mark alone. (With one concept set drawn apart from the random sets, its CAVs
  also carry whatever else its images have in common -- their mix of classes, say -- and the
  clean model passed the test at one seed of five.)
* "lesion" (:func:`lesion_sets`), a clinical concept: 64 x 64 crops of Monkeypox lesions chosen
  by hand (:data:`LESION_BOXES`), enlarged to the model's input size, against random sets of
  64 x 64 crops at seeded random positions of random ImageNet sample images, enlarged the same
  way (the paper's random images). Random crops of MSLD images would not do: most of them show
  lesions too (of monkeypox, chickenpox or measles): a CAV of the lesion crops against them
  classified 4 + 4 held-out crops with an accuracy of 0.5 to 0.75 at :data:`LAYER` (four
  random sets; 0.75 to 1 against ImageNet crops). So the concept is "a skin lesion seen close
  up" against anything seen close up, not lesion against healthy skin.

The class images are the Monkeypox images of the test patients, unmarked; the concept images
and the magenta square's random sets come from the training patients.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from ..models import Classifier, msld
from ..tcav import (
    ALPHA,
    CAV,
    ConceptTest,
    cavs_against,
    fit_cav,
    layer_activations,
    layer_gradients,
    random_cavs,
    tcav_tests,
)
from .shortcut import Mark, inputs, marked, shared_backbone

#: 64 x 64 boxes (image id, top, left) on Monkeypox lesions of training patients, chosen by looking
#: at the images on a grid: each holds one or more lesions (pustules, blisters, crusts, a rash).
LESION_BOXES = (("M06_01", 64, 64), ("M07_01", 20, 20), ("M07_01", 80, 80), ("M11_01", 88, 86),
                ("M12_01", 60, 80), ("M17_01", 40, 96), ("M21_01", 32, 150), ("M21_01", 60, 20),
                ("M23_01", 90, 80), ("M27_01", 96, 80), ("M29_01", 140, 30), ("M31_01", 80, 100),
                ("M31_01", 150, 60), ("M35_01", 104, 36), ("M35_01", 104, 80))
CROP = 64
#: The layer tested: the last block of the backbone (320 channels, 7 x 7 at 224 pixels), before
#: the head's 1 x 1 convolution. At the pooled features the gradient of a logistic head would be
#: the same for every image (its weights), and every TCAV score 0 or 1.
LAYER = "features.blocks.15"
CONCEPTS = ("magenta square", "lesion")
DEFAULT_MARK = Mark()  # the shortcut chapters' mark: a 48-pixel magenta square
#: The share of each concept and random set held out to measure a CAV's accuracy.
TEST_FRACTION = 0.2


def _pixels(record) -> torch.Tensor:
    """The record's image as pixels [3, S, S] in [0, 1], S = the MSLD image size: the short side
    resized to S and the center cropped (the identity on MSLD images)."""
    from torchvision.transforms.functional import center_crop, resize, to_tensor

    size = msld.IMAGE_SIZE
    return to_tensor(center_crop(resize(record.load().convert("RGB"), size), [size, size]))


def crops(classifier: Classifier, records, corners: Sequence[tuple[int, int]], size: int = CROP) -> torch.Tensor:
    """``size`` x ``size`` crops at ``corners`` (top, left), one per record, of the records' images
    (:func:`_pixels`), enlarged (bilinear) to the image size and scaled for ``classifier``:
    [N, 3, H, W]."""
    from torchvision.transforms.functional import resized_crop

    out = []
    for record, (top, left) in zip(records, corners, strict=True):
        pixels = _pixels(record)
        out.append(classifier.from_pixels(resized_crop(pixels, top, left, size, size, list(pixels.shape[-2:]),
                                                       antialias=True)))
    return torch.stack(out)


def _sample(records: Sequence, k: int, generator: torch.Generator) -> list:
    if k > len(records):
        raise ValueError(f"set_size={k} exceeds the {len(records)} images to draw from")
    return [records[i] for i in torch.randperm(len(records), generator=generator)[:k].tolist()]


def magenta_square_sets(classifier: Classifier, pool: Sequence, set_size: int, n_random: int,
                        mark: Mark = DEFAULT_MARK, seed: int = 0) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(concept sets, random sets): ``n_random`` random sets R_j of ``set_size`` images of ``pool``
    as they are, each drawn with a generator seeded by ``seed``, and the concept set C_j of each:
    the same images with the mark planted. A CAV of C_j against R_j separates the images with
    the mark from the same images without it: the mark is all that differs."""
    generator = torch.Generator().manual_seed(seed)
    draws = [_sample(pool, set_size, generator) for _ in range(n_random)]
    with_mark = marked(mark, msld.CATEGORIES)
    return [inputs(classifier, d, with_mark) for d in draws], [inputs(classifier, d) for d in draws]


def lesion_sets(classifier: Classifier, pool: Sequence, random_pool: Sequence, n_random: int, seed: int = 0,
                set_size: int | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(concept images, random sets): the crops of :data:`LESION_BOXES` (their images taken from
    ``pool``), and ``n_random`` sets of as many (or ``set_size``) crops at uniform random positions
    of random images of ``random_pool`` (the ImageNet samples in :func:`concept_tests`)."""
    by_id = {r.image_id: r for r in pool}
    missing = sorted({i for i, _, _ in LESION_BOXES} - set(by_id))
    if missing:
        raise ValueError(f"the lesion boxes' images {', '.join(missing)} are not in the pool of records")
    concept = crops(classifier, [by_id[i] for i, _, _ in LESION_BOXES], [(t, left) for _, t, left in LESION_BOXES])
    k = len(LESION_BOXES) if set_size is None else set_size
    generator = torch.Generator().manual_seed(seed + 1)
    random_sets = []
    for _ in range(n_random):
        chosen = _sample(random_pool, k, generator)
        corners = torch.randint(0, msld.IMAGE_SIZE - CROP + 1, (k, 2), generator=generator).tolist()
        random_sets.append(crops(classifier, chosen, corners))
    return concept, random_sets


def concept_cavs(classifier: Classifier, pool: Sequence, random_pool: Sequence, set_size: int, n_random: int,
                 mark: Mark = DEFAULT_MARK, layer: str = LAYER, batch_size: int = 16, seed: int = 0,
                 progress: bool = False) -> dict[str, tuple[list[CAV], list[CAV]]]:
    """{concept: (its CAVs against R_1..R_m, the random-vs-random CAVs of R_1..R_m)} for
    :data:`CONCEPTS` at ``layer``, seeded by ``seed`` as :func:`xai_lab.tcav.cavs_against` and
    :func:`xai_lab.tcav.random_cavs` (the magenta square's j-th CAV: its concept set C_j against
    R_j, with seed ``seed + j``), a fifth of each set held out for the CAV's accuracy."""
    def activations(x):
        return layer_activations(classifier, x, layer, batch_size, progress)

    def null(random_sets):
        return random_cavs([activations(x) for x in random_sets], seed=seed, test_fraction=TEST_FRACTION)

    squares, square_random = magenta_square_sets(classifier, pool, set_size, n_random, mark, seed)
    square_cavs = [fit_cav(activations(c), activations(r), seed=seed + j, test_fraction=TEST_FRACTION)
                   for j, (c, r) in enumerate(zip(squares, square_random), 1)]
    lesion, lesion_random = lesion_sets(classifier, pool, random_pool, n_random, seed)
    lesion_acts = [activations(x) for x in lesion_random]
    return {"magenta square": (square_cavs, null(square_random)),
            "lesion": (cavs_against(activations(lesion), lesion_acts, seed=seed, test_fraction=TEST_FRACTION),
                       random_cavs(lesion_acts, seed=seed, test_fraction=TEST_FRACTION))}


def concept_tests(classifiers: Mapping[str, Classifier], records=None, set_size: int = 20, n_random: int = 10,
                  mark: Mark = DEFAULT_MARK, layer: str = LAYER, alpha: float = ALPHA, class_images: int | None = None,
                  batch_size: int = 16, seed: int = 0, progress: bool = False) -> dict[str, dict[str, ConceptTest]]:
    """TCAV's test (:func:`xai_lab.tcav.tcav_tests`) of the concepts :data:`CONCEPTS` for the
    Monkeypox class of each classifier ``{label: classifier}`` at ``layer``: ``{label: {concept:
    ConceptTest}}``.

    ``records`` (default: every MSLD record) are split by :func:`xai_lab.models.msld.split_records`;
    concept images and the magenta square's random sets come from the training patients, the
    lesion's random sets from the ImageNet samples (:func:`xai_lab.data.imagenet_samples`);
    ``n_random`` random sets R_1..R_m per concept, ``set_size`` images per magenta set. The
    class images are the first ``class_images`` (default all) Monkeypox images of the test
    patients, unmarked. The two concepts are two hypotheses per model: each is significant when
    p < ``alpha`` / 2 (Bonferroni). Classifiers that share their backbone
    (:func:`xai_lab.experiments.shortcut.shared_backbone`: the MSLD twins) share the
    activations, so their CAVs are fitted once; each has its own gradients."""
    from ..data import imagenet_samples

    if not classifiers:
        raise ValueError("no classifiers to test")
    split = msld.split_records(records)
    pool = list(split["train"])
    pox = [r for r in split["test"] if r.label == msld.POSITIVE][:class_images]
    if not pox:
        raise ValueError("no Monkeypox images among the test patients")
    random_pool = imagenet_samples()
    shared = len(classifiers) > 1 and shared_backbone(list(classifiers.values()))
    cavs = None
    out = {}
    for label, classifier in classifiers.items():
        if cavs is None or not shared:
            cavs = concept_cavs(classifier, pool, random_pool, set_size, n_random, mark, layer, batch_size, seed, progress)
        grads = layer_gradients(classifier, inputs(classifier, pox), msld.POSITIVE, layer, batch_size, progress)
        target = classifier.categories.index(msld.POSITIVE)
        out[label] = {}
        for concept, (concept_side, random_side) in cavs.items():
            out[label].update(tcav_tests(grads, {concept: concept_side}, random_side, alpha, len(CONCEPTS), layer, target))
    return out


def summary_table(results: Mapping[str, Mapping[str, ConceptTest]]):
    """A pandas table, one row per (model, concept) of :func:`concept_tests`: the mean TCAV score
    of the concept and of the random-vs-random CAVs, the mean held-out accuracy of the concept's
    CAVs, the p-value, the level it is compared with, the decision and whether the concept raises
    or lowers the class score (:attr:`xai_lab.tcav.ConceptTest.raises`)."""
    import pandas as pd

    rows = {(label, concept): {"TCAV score": t.mean, "random TCAV score": t.random_mean,
                               "CAV accuracy": float(t.accuracies.nanmean()), "p-value": t.p_value,
                               "alpha": t.alpha, "significant": t.significant,
                               "direction": "raises" if t.raises else "lowers"}
            for label, tests in results.items() for concept, t in tests.items()}
    return pd.DataFrame.from_dict(rows, orient="index")


__all__ = ["CONCEPTS", "CROP", "DEFAULT_MARK", "LAYER", "LESION_BOXES", "TEST_FRACTION", "concept_cavs", "concept_tests",
           "crops", "lesion_sets", "magenta_square_sets", "summary_table"]
