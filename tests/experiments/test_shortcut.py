"""The planted shortcut: mark positions, the transforms, training and evaluation plumbing, and
localization scores on a toy classifier whose output depends only on the mark's pixels."""
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import xai_lab
from xai_lab import Classifier
from xai_lab.data import ImageRecord
from xai_lab.experiments import shortcut
from xai_lab.experiments.shortcut import Mark
from xai_lab.models import msld
from xai_lab.models.cache import CacheWarning
from xai_lab.stats import Interval, bootstrap

SIZE = 64  # toy images: 64 x 64; the mark 8 x 8 (area fraction 1/64)
MARK = Mark(size=8, color=(1.0, 0.0, 1.0), seed=3)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """Six gray-ish noise images (no magenta anywhere), three patients per class, 64 x 64 PNGs."""
    folder = tmp_path_factory.mktemp("toy_msld")
    rng = np.random.default_rng(0)
    out = []
    for patient, label, n in (("M1", "Monkeypox", 2), ("M2", "Monkeypox", 1), ("O1", "Others", 1),
                              ("O2", "Others", 1), ("O3", "Others", 1)):
        for k in range(n):
            path = folder / f"{patient}_{k:02d}.png"
            Image.fromarray(rng.integers(80, 176, (SIZE, SIZE, 3), dtype=np.uint8)).save(path)
            out.append(ImageRecord(path=path, label=label, patient_id=patient, image_id=path.stem))
    return out


class MagentaDetector(nn.Module):
    """logit(Monkeypox) = 4 * mean_pixels ReLU(R + B - 2G - 1.5) (pixels in [0, 1]), logit(Others)
    = 0.01: positive only on magenta-ish pixels, so the output depends on the mark's pixels alone."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1)
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(1, 2)
        with torch.no_grad():  # model input x = (p - 0.5) / 0.5, so R + B - 2G - 1.5 = 0.5 (xR + xB - 2 xG) - 1.5
            self.conv.weight.copy_(torch.tensor([0.5, -1.0, 0.5]).view(1, 3, 1, 1))
            self.conv.bias.fill_(-1.5)
            self.fc.weight.copy_(torch.tensor([[4.0], [0.0]]))
            self.fc.bias.copy_(torch.tensor([0.0, 0.01]))

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.act(self.conv(x)))))


@pytest.fixture(scope="module")
def detector():
    return Classifier("magenta", MagentaDetector(), list(msld.CATEGORIES), "act", (0.5,) * 3, (0.5,) * 3)


def pixels_of(record):
    from torchvision.transforms.functional import to_tensor

    return to_tensor(record.load())


# ----------------------------------------------------------------------------- the mark

def test_box_is_inside_deterministic_and_differs_between_images():
    ids = [f"M{i:02d}_01" for i in range(200)]
    boxes = [shortcut.mark_box(i, MARK, 40, 50) for i in ids]
    for top, left, h, w in boxes:
        assert (h, w) == (8, 8) and 0 <= top <= 40 - 8 and 0 <= left <= 50 - 8
    assert boxes == [shortcut.mark_box(i, MARK, 40, 50) for i in ids]            # same id, same box
    assert len(set(boxes)) >= 190                                                # different ids, different boxes
    tops, lefts = {b[0] for b in boxes}, {b[1] for b in boxes}
    assert tops == set(range(33)) and min(lefts) == 0 and max(lefts) == 42        # every valid row; both edges
    other_seed = [shortcut.mark_box(i, Mark(size=8, seed=4), 40, 50) for i in ids]
    assert sum(a != b for a, b in zip(boxes, other_seed)) >= 190                 # the seed moves them


def test_box_of_a_record_is_that_of_its_id(records):
    r = records[0]
    assert shortcut.image_id(r) == r.image_id
    assert shortcut.mark_box(r, MARK) == shortcut.mark_box(r.image_id, MARK)
    unnamed = ImageRecord(path=r.path, label=r.label)
    assert shortcut.image_id(unnamed) == r.path.stem


def test_mask_is_the_box():
    mask = shortcut.mark_mask("M01_01", MARK, 20, 30)
    top, left, h, w = shortcut.mark_box("M01_01", MARK, 20, 30)
    assert mask.shape == (20, 30) and mask.dtype == torch.bool and int(mask.sum()) == 64
    assert mask[top:top + h, left:left + w].all()
    assert shortcut.mark_mask("M01_01", Mark(size=30), 30, 30).all()            # a mark as large as the image


def test_bad_marks_and_classes():
    with pytest.raises(ValueError, match="does not fit"):
        shortcut.mark_box("a", Mark(size=9), 8, 20)
    with pytest.raises(ValueError, match="positive"):
        Mark(size=0)
    with pytest.raises(ValueError, match="color"):
        Mark(color=(1.0, 0.0, 2.0))
    with pytest.raises(ValueError, match="Unknown class"):
        shortcut.marked(MARK, on=("Monkeypox", "Cowpox"))
    with pytest.raises(TypeError, match="sequence of class names"):
        shortcut.marked(MARK, on="Monkeypox")
    with pytest.raises(ValueError, match=r"\[3, H, W\]"):
        shortcut.plant(torch.zeros(1, 3, 8, 8), "a", Mark(size=2))


# ----------------------------------------------------------------------------- the transforms

def test_marked_changes_exactly_the_box_and_only_on_chosen_classes(records):
    transform = shortcut.marked(MARK, on=("Monkeypox",))
    for r in records:
        x = pixels_of(r)
        y = transform(x, r)
        if r.label == "Monkeypox":
            changed = (y != x).any(0)
            assert torch.equal(changed, shortcut.mark_mask(r, MARK, SIZE, SIZE))
            assert torch.equal(y[:, changed], torch.tensor([[1.0], [0.0], [1.0]]).expand(3, 64))
        else:
            assert torch.equal(y, x)
        assert torch.equal(x, pixels_of(r))                                     # the input is not edited
    both, none = shortcut.marked(MARK, msld.CATEGORIES), shortcut.marked(MARK, ())
    for r in records:
        assert not torch.equal(both(pixels_of(r), r), pixels_of(r))
        assert torch.equal(none(pixels_of(r), r), pixels_of(r))


def test_masked_fills_the_box_with_the_mean_outside_and_removes_the_mark(records):
    mask_out = shortcut.masked(MARK)                                            # every class
    plant = shortcut.marked(MARK, msld.CATEGORIES)
    for r in records:
        x = pixels_of(r)
        inside = shortcut.mark_mask(r, MARK, SIZE, SIZE)
        y = mask_out(x, r)
        assert torch.equal(y[:, ~inside], x[:, ~inside])
        expected = x[:, ~inside].mean(1, keepdim=True).expand(3, 64)
        assert torch.allclose(y[:, inside], expected)
        assert torch.equal(mask_out(plant(x, r), r), y)                         # no trace of the mark is left
    only_others = shortcut.masked(MARK, on=("Others",))
    pox = next(r for r in records if r.label == "Monkeypox")
    assert torch.equal(only_others(pixels_of(pox), pox), pixels_of(pox))


def test_inputs_apply_the_transform_and_the_scaling(records, detector):
    x = shortcut.inputs(detector, records[:2], shortcut.marked(MARK))
    assert x.shape == (2, 3, SIZE, SIZE)
    expected = detector.from_pixels(shortcut.plant(pixels_of(records[0]), records[0], MARK))
    assert torch.equal(x[0], expected)


# ----------------------------------------------------------------------------- training and evaluation

@pytest.fixture
def fake_training(monkeypatch):
    """msld.train replaced by a recorder that returns a random-weight network (no data read)."""
    calls = []

    def fake_train(settings, records=None, progress=None, transform=None):
        calls.append({"settings": settings, "records": records, "transform": transform})
        torch.manual_seed(len(calls))
        return msld.efficientnet_lite0(num_classes=2), {"step": len(calls)}

    monkeypatch.setattr(msld, "train", fake_train)
    monkeypatch.setattr(msld, "cache_key", lambda settings, records=None: f"key-{settings.seed}-{settings.copies}")
    return calls


def test_train_marked_trains_on_transformed_images_with_few_copies(fake_training, tmp_path):
    transform = shortcut.marked(MARK)
    classifier, info = shortcut.train_marked(transform, copies=3, seed=5, records=["r"], cache_dir=tmp_path)
    (call,) = fake_training
    assert call["transform"] is transform and call["records"] == ["r"]
    assert call["settings"] == msld.TrainSettings(seed=5, copies=3)
    assert isinstance(classifier, Classifier) and classifier.categories == msld.CATEGORIES
    assert info["step"] == 1 and info["cached"] is False and info["transform"] == transform.description


def test_a_damaged_marked_model_is_reported_and_retrained(fake_training, tmp_path):
    _, info = shortcut.train_marked(shortcut.marked(MARK), cache_dir=tmp_path)
    path = tmp_path / info["path"].rsplit("/", 1)[1]
    path.write_bytes(path.read_bytes()[:1000])                                          # truncated
    with pytest.warns(CacheWarning, match=str(path)):
        _, info = shortcut.train_marked(shortcut.marked(MARK), cache_dir=tmp_path)
    assert len(fake_training) == 2 and not info["cached"]
    _, info = shortcut.train_marked(shortcut.marked(MARK), cache_dir=tmp_path)
    assert len(fake_training) == 2 and info["cached"]


def test_train_marked_caches_by_transform_and_settings(fake_training, tmp_path):
    first, _ = shortcut.train_marked(shortcut.marked(MARK), cache_dir=tmp_path)
    again, info = shortcut.train_marked(shortcut.marked(MARK), cache_dir=tmp_path)   # a new, equal transform
    assert len(fake_training) == 1 and info["cached"] is True
    for (name, a), (_, b) in zip(first.model.state_dict().items(), again.model.state_dict().items()):
        assert torch.equal(a, b), name
    shortcut.train_marked(shortcut.marked(Mark(size=8, seed=4)), cache_dir=tmp_path)   # other mark
    shortcut.train_marked(shortcut.marked(MARK, msld.CATEGORIES), cache_dir=tmp_path)   # other classes
    shortcut.train_marked(shortcut.masked(MARK), cache_dir=tmp_path)                     # masked, not marked
    shortcut.train_marked(shortcut.marked(MARK), copies=4, cache_dir=tmp_path)           # other settings
    shortcut.train_marked(None, cache_dir=tmp_path)                                      # clean images
    assert len(fake_training) == 6 and len(list(tmp_path.glob("shortcut_*.pt"))) == 6
    shortcut.train_marked(lambda pixels, record: pixels, cache_dir=tmp_path)            # undescribed: never cached
    shortcut.train_marked(shortcut.marked(MARK), cache=False, cache_dir=tmp_path)
    assert len(fake_training) == 8 and len(list(tmp_path.glob("shortcut_*.pt"))) == 6


@pytest.fixture(scope="module")
def big(records):
    """224 x 224 copies of the toy images: msld.predict resizes other sizes before the transform."""
    out = []
    for r in records:
        path = r.path.with_name(r.path.stem + "_224.png")
        r.load().resize((224, 224)).save(path)
        out.append(ImageRecord(path=path, label=r.label, patient_id=r.patient_id, image_id=r.image_id))
    return out


def test_evaluate_conditions_on_a_mark_detector(big, detector):
    mark = Mark(size=24, seed=1)
    res = shortcut.evaluate_conditions(detector, big, mark, n_boot=50)
    assert list(res) == ["clean", "marked Monkeypox", "marked Others"]
    # clean: everything "Others" (3 of 6 right); mark on Monkeypox: all right; on Others: all wrong
    assert [res[c].accuracy.value for c in res] == [0.5, 1.0, 0.0]
    assert res["marked Others"].confusion == [[0, 3], [3, 0]]
    assert shortcut.mark_effect(res) == 1.0


def twin(fc_weight, fc_bias, conv_bias=-1.5):
    """A MagentaDetector with its own head (and, with another conv_bias, its own backbone)."""
    model = MagentaDetector()
    with torch.no_grad():
        model.fc.weight.copy_(torch.tensor(fc_weight).view(2, 1))
        model.fc.bias.copy_(torch.tensor(fc_bias))
        model.conv.bias.fill_(conv_bias)
    return Classifier("magenta", model, list(msld.CATEGORIES), "act", (0.5,) * 3, (0.5,) * 3, head="fc")


def test_models_that_share_a_backbone_are_evaluated_with_one_pass(big):
    """Twins that differ in their head: one backbone pass per image and test set, and for each
    twin the same results as its own evaluate_conditions; another backbone is evaluated alone."""
    mark = Mark(size=24, seed=1)
    twins = {"detector": twin([4.0, 0.0], [0.0, 0.01]), "inverted": twin([0.0, 4.0], [0.01, 0.0]),
             "biased": twin([4.0, 0.0], [0.0, -0.01])}
    assert shortcut.shared_backbone(list(twins.values()))
    passes = []
    hook = twins["detector"].model.conv.register_forward_hook(lambda module, args, output: passes.append(len(output)))
    try:
        together = shortcut.evaluate_models(twins, big, mark, n_boot=50)
    finally:
        hook.remove()
    assert sum(passes) == 3 * len(big)                              # three test sets, each image once
    for label, c in twins.items():
        assert together[label] == shortcut.evaluate_conditions(c, big, mark, n_boot=50), label
    assert [together["inverted"][c].accuracy.value for c in together["inverted"]] == [0.5, 0.0, 1.0]
    assert together["biased"]["clean"].accuracy.value == 0.5 and together["biased"]["clean"].confusion[1][0] == 3

    other = {**twins, "other backbone": twin([4.0, 0.0], [0.0, 0.01], conv_bias=-0.5)}
    assert not shortcut.shared_backbone(list(other.values()))
    alone = shortcut.evaluate_models(other, big, mark, n_boot=50)
    assert alone["other backbone"] == shortcut.evaluate_conditions(other["other backbone"], big, mark, n_boot=50)
    assert alone["detector"] == together["detector"]
    with pytest.raises(ValueError, match="no classifiers"):
        shortcut.evaluate_models({}, big, mark)


def test_patient_interval_averages_patients_then_bootstraps_them():
    out = shortcut.patient_interval([1.0, 0.0, 0.0, 1.0, 1.0], ["a", "a", "b", "c", "c"], resamples=500, seed=2)
    assert out.value == pytest.approx(0.5) and out.n == 3
    assert out == bootstrap([0.5, 0.0, 1.0], resamples=500, seed=2)         # patient means, each patient once
    with pytest.raises(ValueError, match="3 values but 2 patients"):
        shortcut.patient_interval([1, 2, 3], ["a", "b"])


# ----------------------------------------------------------------------------- localization

METHODS = {"saliency": {}, "gradcam": {}, "occlusion": {"window": 8, "stride": 4}, "random": {}}


@pytest.fixture(scope="module")
def scores(records, detector):
    return shortcut.localization_scores(detector, records, METHODS, MARK, batch_size=4, keep_maps=2, resamples=200)


def test_a_good_method_finds_the_mark_and_random_does_not(scores):
    s = scores["summary"]
    area = 8 * 8 / SIZE ** 2
    assert scores["area_fraction"] == area
    for name in ("saliency", "gradcam"):                    # gradients live on magenta pixels only
        assert s[name]["relevance_mass"].value == pytest.approx(1.0)
        assert s[name]["pointing_game"].value == 1.0
    assert s["saliency"]["box_iou"].value == 1.0          # the thresholded map is the mark itself
    assert s["random"]["box_iou"].value < 0.2
    assert s["occlusion"]["relevance_mass"].value > 0.4  # windows that overlap the mark spill over its edge
    assert s["occlusion"]["pointing_game"].value == 1.0
    assert abs(s["random"]["relevance_mass"].value - area) < 0.01
    assert s["random"]["pointing_game"].value < 0.5
    assert shortcut.ranking(scores)[-1] == "random"
    for name in METHODS:
        for score in shortcut.SCORES:
            summary = s[name][score]
            assert summary.low <= summary.value <= summary.high and summary.n == 5
            assert scores["per_image"][name][score].shape == (6,)


def test_scores_keep_maps_inputs_and_costs(scores, records, detector):
    assert scores["maps"]["saliency"].shape == (2, SIZE, SIZE) and scores["inputs"].shape == (2, 3, SIZE, SIZE)
    assert torch.equal(scores["inputs"], shortcut.inputs(detector, records[:2], shortcut.marked(MARK, msld.CATEGORIES)))
    assert scores["costs"]["occlusion"]["forward_passes"] == 15 * 15 + 1
    assert scores["image_ids"] == [r.image_id for r in records] and scores["target"] == "Monkeypox"
    table = shortcut.score_table({"toy": scores})
    assert list(table.index)[-1] == "random"
    assert list(table.columns) == ["relevance mass", "pointing game", "box IoU"]


def test_without_the_mark_maps_are_constant_and_point_nowhere(records, detector):
    out = shortcut.localization_scores(detector, records, ["saliency"], MARK, transform=shortcut.marked(MARK, ()),
                                       resamples=50)
    assert out["per_image"]["saliency"]["relevance_mass"].tolist() == [0.0] * 6
    # all-zero maps: no maximum to point with
    assert out["per_image"]["saliency"]["pointing_game"].tolist() == [0.0] * 6
    assert out["per_image"]["saliency"]["box_iou"].tolist() == [0.0] * 6  # no positive value: no box


def test_predicted_target_and_errors(records, detector):
    out = shortcut.localization_scores(detector, records[:2], ["saliency"], MARK, target=None, resamples=50)
    assert out["target"] is None and out["summary"]["saliency"]["relevance_mass"].value == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no records"):
        shortcut.localization_scores(detector, [], ["saliency"], MARK)
    with pytest.raises(ValueError, match="no methods"):
        shortcut.localization_scores(detector, records, [], MARK)
    with pytest.raises(ValueError, match="by must be one of"):
        shortcut.ranking({"summary": {}}, by="iou")


def test_a_method_can_have_its_own_layer(records, detector):
    out = shortcut.localization_scores(detector, records[:3], {"gradcam": {"layer": "conv"}, "layercam": {}}, MARK,
                                       keep_maps=3, resamples=50)
    x = shortcut.inputs(detector, records[:3], shortcut.marked(MARK, msld.CATEGORIES))
    direct = xai_lab.explain(detector, x, method="gradcam", layer="conv", target=0, seed=0, progress=False)
    assert torch.equal(out["maps"]["gradcam"], direct.saliency)
    default = xai_lab.explain(detector, x, method="layercam", target=0, seed=0, progress=False)
    assert torch.equal(out["maps"]["layercam"], default.saliency)


def test_book_method_settings_are_valid():
    fast, every = set(shortcut.CHAPTER_FAST_METHODS), set(shortcut.CHAPTER_METHODS)
    assert fast < every and {"random", "sobel"} <= fast
    assert every <= set(xai_lab.methods())


def test_book_method_settings_send_small_batches(records, detector):
    """Every forward pass of the chapters' settings holds at most CPU_BATCH images when
    localization_scores explains eight images at a time (here six; Score-CAM at the toy's layer)."""
    sizes = []
    hook = detector.model.register_forward_pre_hook(lambda module, inputs: sizes.append(len(inputs[0])))
    methods = {name: {**options, "layer": "act"} if name == "scorecam" else options
               for name, options in shortcut.CHAPTER_METHODS.items()}
    try:
        out = shortcut.localization_scores(detector, records, methods, MARK, batch_size=8, resamples=20)
    finally:
        hook.remove()
    assert len(records) == 6 and max(sizes) <= shortcut.CPU_BATCH, max(sizes)
    assert out["costs"]["rise"]["forward_passes"] == shortcut.CHAPTER_METHODS["rise"]["n_masks"]


def test_a_costly_method_can_run_on_the_first_images_only(records, detector):
    methods = {"saliency": {}, "occlusion": {"window": 8, "stride": 8, "images": 3}}
    out = shortcut.localization_scores(detector, records, methods, MARK, batch_size=2, resamples=50)
    assert out["per_image"]["saliency"]["relevance_mass"].shape == (6,)
    assert out["per_image"]["occlusion"]["relevance_mass"].shape == (3,)
    assert out["summary"]["occlusion"]["pointing_game"].n == 2                   # M1 (two images) and M2
    assert out["costs"]["occlusion"]["forward_passes"] == 8 * 8 + 1
    with pytest.raises(ValueError, match="at least 1"):
        shortcut.localization_scores(detector, records, {"saliency": {"images": 0}}, MARK)


def test_tables_and_figures_show_the_computed_values(scores):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = shortcut.plot_scores({"a": scores, "b": scores}, "relevance_mass")
    order = shortcut.ranking(scores)
    heights = [p.get_height() for p in ax.patches]
    means = [scores["summary"][m]["relevance_mass"].value for m in order]
    assert heights == pytest.approx(means + means)                                # one bar per model and method
    plt.close(ax.figure)
    def evaluation(v):
        i = Interval(v, v - 0.1, v + 0.05, 10)
        return msld.Evaluation(i, i, i, [[5, 0], [0, 5]], 10, 10, 100, 0)

    result = {c: evaluation(v) for c, v in (("clean", 0.5), ("marked", 0.75))}
    table = shortcut.accuracy_table({"m": result})
    assert table.loc["m", "marked"] == "0.75 [0.65, 0.80]"
    ax = shortcut.plot_accuracy({"m": result})
    assert [p.get_height() for p in ax.patches] == [0.5, 0.75]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["clean", "marked"] and ax.get_xlabel() == "test set"
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="score must be one of"):
        shortcut.plot_scores({"a": scores}, "iou")


def test_the_kept_maps_figure(scores, records, detector):
    """One row per kept image, the image then each map on its own scale with a color bar; a map
    with negative values centered on zero; the mark's box on every panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    signed = scores["maps"]["saliency"] - scores["maps"]["saliency"].mean()      # a map with both signs
    fig = shortcut.plot_maps({**scores, "maps": {**scores["maps"], "signed": signed}}, records, detector, MARK,
                             methods=["saliency", "signed"])
    panels = fig.axes[:6]
    assert len(fig.axes) == 6 + 4                                                   # 2 x (image + 2 maps), 4 bars
    assert [ax.get_title() for ax in panels[:3]] == [scores["image_ids"][0], "saliency", "signed"]
    for k, ax in enumerate(panels):
        (patch,) = ax.patches
        top, left, h, w = shortcut.mark_box(records[k // 3], MARK, SIZE, SIZE)
        assert (patch.get_x(), patch.get_y(), patch.get_width(), patch.get_height()) == (left - 0.5, top - 0.5, w, h)
    unsigned, centered = panels[4].images[-1], panels[5].images[-1]
    assert unsigned.get_clim()[0] == 0 and unsigned.get_cmap().name == "viridis"
    low, high = centered.get_clim()
    assert low == -high and high > 0 and centered.get_cmap().name == "RdBu_r"
    plt.close(fig)
    with pytest.raises(ValueError, match="kept no maps"):
        shortcut.plot_maps({**scores, "inputs": None}, records, detector, MARK)


def test_the_images_figure(records):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    transforms = [None, shortcut.marked(MARK, msld.CATEGORIES), shortcut.masked(MARK)]
    fig = shortcut.plot_images(records[:3], transforms, titles=["clean", "marked", "masked"])
    assert [ax.get_title() for ax in fig.axes] == ["clean", "marked", "masked"]
    for ax, r, t in zip(fig.axes, records, transforms):
        shown = ax.images[0].get_array()
        assert np.allclose(shown, msld.load_pixels(r, t).permute(1, 2, 0).numpy())
    plt.close(fig)
    with pytest.raises(ValueError, match="2 transforms for 3 records"):
        shortcut.plot_images(records[:3], transforms[:2])


def test_one_per_patient_and_the_box_outline(records):
    first = shortcut.one_per_patient(records)
    assert [r.patient_id for r in first] == sorted({r.patient_id for r in records if r.label == "Monkeypox"})
    assert all(r == next(q for q in records if q.patient_id == r.patient_id) for r in first)
    assert shortcut.one_per_patient(records, "Others", limit=2) == [r for r in records if r.label == "Others"][:2]
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    shortcut.outline_mark(ax, records[0], MARK)
    (patch,) = ax.patches
    top, left, h, w = shortcut.mark_box(records[0], MARK)
    assert (patch.get_x(), patch.get_y(), patch.get_width(), patch.get_height()) == (left - 0.5, top - 0.5, w, h)
    plt.close(fig)


def test_controls_and_changes_between_models(scores):
    assert "random" in shortcut.CONTROLS
    # saliency and gradcam beat random by far; occlusion too; nothing is no better than the control
    assert shortcut.no_better_than_controls(scores) == []
    worse = {**scores, "summary": {**scores["summary"], "gradcam": {
        "relevance_mass": Interval(0.02, 0.0, 0.05, 5), "pointing_game": Interval(0.0, 0.0, 0.0, 5)}}}
    assert shortcut.no_better_than_controls(worse) == ["gradcam"]
    changes = shortcut.score_changes(scores, worse)
    assert list(changes) == ["saliency", "gradcam", "occlusion"]
    assert changes["gradcam"].lower and changes["gradcam"].apart
    assert not changes["saliency"].lower and not changes["saliency"].apart
