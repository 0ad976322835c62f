"""xai_lab.models.msld.evaluation: the patient-bootstrap figures (by hand and against
scikit-learn), and the benchmark's --data-dir."""
import csv
import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from xai_lab import data, stats
from xai_lab.models import msld

ROOT = Path(__file__).resolve().parents[3]


def test_threshold_decides_the_answer():
    """A score equal to the threshold is a Monkeypox answer; one just below it is not."""
    positive = torch.tensor([True, False])
    result = msld.scores(positive, torch.tensor([msld.THRESHOLD, msld.THRESHOLD - 1e-6], dtype=torch.float64), ["a", "b"],
                         n_boot=10)
    assert result.accuracy.value == 1 and result.confusion == [[1, 0], [0, 1]]


def test_describe_training_reports_early_stopping():
    settings = {"copies": 8, "crop_scale": (0.5, 1.0), "jitter": 0.2, "weight_decay": 0.3, "lr": 0.01, "max_steps": 1000}
    info = {"seconds": 12.5, "train_images": 100, "val_images": 37, "step": 84, "val_loss": 0.51234, "train_loss": 0.2,
            "settings": settings}
    text = msld.describe_training(info)
    assert "training: 100 images x 8 views, validation: 37 images" in text
    assert "early stopping at step 84 of at most 1000: validation cross-entropy 0.512, training cross-entropy 0.200" in text
    assert "'jitter': 0.2" in text and "max_steps" not in text


def test_scores_by_hand():
    positive = torch.tensor([True, True, False, False])
    score = torch.tensor([0.9, 0.4, 0.6, 0.2])
    res = msld.scores(positive, score, ["a", "a", "b", "c"], n_boot=500, seed=0)
    # pairs (pos, neg): 0.9>0.6, 0.9>0.2, 0.4<0.6, 0.4>0.2 -> 3/4; predictions 1,0,1,0
    assert res.roc_auc.value == pytest.approx(0.75)
    assert res.accuracy.value == pytest.approx(0.5)
    assert res.balanced_accuracy.value == pytest.approx(0.5)
    assert res.confusion == [[1, 1], [1, 1]]
    assert res.n_images == 4 and res.n_patients == 3
    for name in msld.METRICS:
        i = res.metric(name)
        assert i.low <= i.value <= i.high and i.low < i.high and i.n == 4
    # a draw without patient "a" has no positive: no AUC; P(no "a" in 3 draws) = 8/27
    assert 0.2 * 500 < res.undefined_draws < 0.4 * 500
    # the draws are those of xai_lab.stats (patients a, b, c in sorted order); the ones without
    # "a" (no positive) or with "a" alone (no negative) are left out of every metric, accuracy too
    counts = stats.resample_counts(3, 500, seed=0)
    kept = (counts[:, 0] > 0) & (counts[:, 1:].sum(1) > 0)
    assert res.undefined_draws == int((~kept).sum())
    weights = counts[kept][:, [0, 0, 1, 2]]
    accuracy = (weights * np.array([1, 0, 0, 1])).sum(1) / weights.sum(1)
    assert (res.accuracy.low, res.accuracy.high) == pytest.approx(tuple(np.quantile(accuracy, [0.025, 0.975])))
    assert msld.scores(positive, score, ["a", "a", "b", "c"], n_boot=500, seed=0) == res


def test_perfect_predictions_and_ties():
    positive = torch.tensor([True, True, True, False, False])
    res = msld.scores(positive, torch.tensor([0.9, 0.8, 0.7, 0.1, 0.3]), list("abcde"), n_boot=200)
    for name in msld.METRICS:
        assert (res.metric(name).value, res.metric(name).low, res.metric(name).high) == (1, 1, 1)
    tied = msld.scores(positive, torch.full((5,), 0.5), list("abcde"), n_boot=10)
    assert tied.roc_auc.value == 0.5 and tied.confusion == [[3, 0], [2, 0]]
    with pytest.raises(ValueError, match="both classes"):
        msld.scores(positive[:3], torch.ones(3), list("abc"))


def test_evaluate_probabilities_by_hand():
    """Images as the unit, then each patient's mean probability: patient P has one image called
    right (0.9) and one wrong (0.2), mean 0.55, so the patient is called right."""
    from types import SimpleNamespace as Record

    records = [Record(label="Monkeypox", patient_id="P"), Record(label="Monkeypox", patient_id="P"),
               Record(label="Others", patient_id="Q"), Record(label="Others", patient_id="R")]
    result = msld.evaluate_probabilities(torch.tensor([0.9, 0.2, 0.1, 0.3]), records, n_boot=20)
    assert result.accuracy.value == 0.75 and result.confusion == [[1, 1], [0, 2]] and result.n_patients == 3
    assert result.patient_level.accuracy.value == 1.0 and result.patient_level.n_images == 3
    with pytest.raises(ValueError, match="one value per record"):
        msld.evaluate_probabilities(torch.tensor([0.9, 0.2]), records)


def test_weighted_metrics_are_those_of_the_resampled_set():
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score

    g = torch.Generator().manual_seed(3)
    positive = torch.rand(12, generator=g) < 0.5
    positive[:2] = torch.tensor([True, False])
    score = (torch.rand(12, generator=g) * 4).round() / 4  # ties included
    predicted = score >= 0.5
    weights = torch.randint(0, 3, (5, 12), generator=g)
    weights[:, :2] = 1
    got = msld.weighted_metrics(weights, positive, score, predicted)
    for b in range(5):
        idx = torch.arange(12).repeat_interleave(weights[b])
        y, s, p = positive[idx].numpy(), score[idx].numpy(), predicted[idx].numpy()
        assert float(got["roc_auc"][b]) == pytest.approx(roc_auc_score(y, s))
        assert float(got["accuracy"][b]) == pytest.approx(accuracy_score(y, p))
        assert float(got["balanced_accuracy"][b]) == pytest.approx(balanced_accuracy_score(y, p))


def _benchmark():
    spec = importlib.util.spec_from_file_location("msld_classifier", ROOT / "benchmarks" / "msld_classifier.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_data_dir_reads_the_whole_folder(msld_one_image_patients, spied_training, tmp_path):
    by_label = {label: [r for r in msld_one_image_patients if r.label == label] for label in ("Monkeypox", "Others")}
    chosen = by_label["Monkeypox"][:2] + by_label["Others"][:2]
    with open(tmp_path / "metadata.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image_id", "label", "patient_id", "sha256"])
        for r in chosen:
            (tmp_path / "images" / r.label).mkdir(parents=True, exist_ok=True)
            shutil.copy(r.path, tmp_path / "images" / r.label / f"{r.image_id}.jpg")
            writer.writerow([r.image_id, r.label, r.patient_id, data.sha256_file(r.path)])
    bench = _benchmark()
    args = bench.parse_args(["--data-dir", str(tmp_path), "--n-boot", "50"])
    found, description = bench.evaluation_records(args)
    assert [(r.image_id, r.label, r.patient_id) for r in found] == [(r.image_id, r.label, r.patient_id) for r in chosen]
    assert str(tmp_path) in description

    model, _, _ = spied_training
    res = msld.evaluate(msld.as_classifier(model), found, n_boot=50, progress=False)
    assert res.n_images == 4 and sum(map(sum, res.confusion)) == 4
    assert res.patient_level.n_patients == 4
    assert res.as_dict()["patient_level"]["accuracy"]["value"] == res.patient_level.accuracy.value
    assert "per images: accuracy " in msld.describe(res)

    (tmp_path / "images" / chosen[0].label / f"{chosen[0].image_id}.jpg").write_bytes(b"not the image")
    with pytest.raises(data.DataError, match="sha256"):
        msld.folder_records(tmp_path)
