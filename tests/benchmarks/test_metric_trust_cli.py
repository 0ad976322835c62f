"""benchmarks/metric_trust.py on three toy 224-pixel images with a classifier that sees only the
mark: the files it writes, a run continued after a limit equal to one run, methods added later,
a run on a local Ray equal to the serial run record for record, clear errors for bad arguments."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xai_lab import Classifier
from xai_lab.data import ImageRecord
from xai_lab.models import msld

from ..experiments.test_metric_trust import MagentaDetector
from .scripts import BENCHMARKS, benchmark_module

SMALL = ["--quick", "--metrics", "sparseness,deletion", "--resamples", "100", "--threads", "1"]


@pytest.fixture(scope="module")
def bench():
    return benchmark_module("metric_trust")


TOY_IMAGES = (("P1", "Monkeypox"), ("P2", "Monkeypox"), ("P3", "Others"))


def toy_inputs(folder: str):
    """The benchmark's source (``metric_trust.SHORTCUT_SOURCE``) for the tests: a mark detector and
    the three images that :func:`toy` wrote into ``folder``. A module-level function, so that a Ray
    worker imports it by name and loads the toy itself."""
    records = [ImageRecord(path=Path(folder) / f"{patient}_{k}.png", label=label, patient_id=patient,
                           image_id=f"{patient}_{k}") for k, (patient, label) in enumerate(TOY_IMAGES)]
    return Classifier("magenta", MagentaDetector(), list(msld.CATEGORIES), "act", (0.5,) * 3, (0.5,) * 3), records


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """Three gray noise images (two Monkeypox patients, one Others) and the source that loads them
    with the mark detector (:func:`toy_inputs`)."""
    folder = tmp_path_factory.mktemp("toy_trust_cli")
    rng = np.random.default_rng(1)
    for k, (patient, _) in enumerate(TOY_IMAGES):
        Image.fromarray(rng.integers(80, 176, (224, 224, 3), dtype=np.uint8)).save(folder / f"{patient}_{k}.png")
    return (f"{__name__}:toy_inputs", str(folder))


def _records(path):
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return {(r["image"], r["method"]): {k: v for k, v in r.items() if k not in ("seconds", "cpu_seconds")}
            for r in lines[1:]}


def test_a_quick_run_writes_records_summary_and_provenance(bench, toy, tmp_path, capsys):
    summary = bench.main(SMALL + ["--out", str(tmp_path)], source=toy)
    printed = capsys.readouterr().out
    assert summary["coverage"] == {"images_planned": 2, "images_started": 2, "images_with_every_method": 2,
                                   "records": 6}
    assert list(summary["config"]["settings"]) == ["gradcam", "saliency", "random"]
    assert summary["config"]["metric_settings"]["faithfulness_runs"] == 10          # the quick settings
    assert set(summary["trust"]) == {"sparseness", "deletion"}
    deletion = summary["trust"]["deletion"]
    assert deletion["better"] == "lower" and -1 <= deletion["spearman"]["low"] <= deletion["spearman"]["high"] <= 1
    assert deletion["truth_order"][-1] == "random"     # the maps of a mark detector lie on the mark, random's not
    assert summary["truth"]["saliency"]["value"] == pytest.approx(1.0) == summary["truth"]["gradcam"]["value"]
    assert "deletion AUC" in printed and "2 of 2 images with every method" in printed
    provenance = json.loads((tmp_path / "provenance.json").read_text())
    assert provenance["runs"][0]["jobs_run"] == 6 and provenance["runs"][0]["command"].startswith(
        "python benchmarks/metric_trust.py --quick") and provenance["machine"] and provenance["commit"]
    assert json.loads((tmp_path / "summary.json").read_text()) == summary


def test_a_continued_run_equals_one_run_and_methods_can_be_added(bench, toy, tmp_path):
    one = tmp_path / "one"
    bench.main(SMALL + ["--out", str(one)], source=toy)
    parts = tmp_path / "parts"
    bench.main(SMALL + ["--out", str(parts), "--limit", "4"], source=toy)
    assert len(_records(parts / "records.jsonl")) == 4
    bench.main(SMALL + ["--out", str(parts)], source=toy)
    assert _records(parts / "records.jsonl") == _records(one / "records.jsonl")
    more = bench.main(SMALL + ["--out", str(parts), "--methods", "gradcam,saliency,random,sobel"], source=toy)
    assert more["coverage"]["records"] == 8 and "sobel" in more["truth"]
    provenance = json.loads((parts / "provenance.json").read_text())
    assert [r["jobs_run"] for r in provenance["runs"]] == [4, 2, 2]
    with pytest.raises(SystemExit, match=r"other settings \(metrics differ\)"):
        bench.main(["--quick", "--metrics", "sparseness", "--methods", "gradcam,saliency,random,sobel", "--out",
                    str(parts)], source=toy)


def test_ray_gives_the_serial_records(bench, toy, tmp_path):
    """Each (image, method) a Ray task whose worker loads the toy by name: the records equal the
    serial run's (timings aside), and the run log says where it ran."""
    ray = pytest.importorskip("ray")
    bench.main(SMALL + ["--out", str(tmp_path / "serial")], source=toy)
    ray.init(num_cpus=2, include_dashboard=False,
             runtime_env={"env_vars": {"PYTHONPATH": f"{BENCHMARKS.parent}:{BENCHMARKS}"}})
    try:
        bench.main(SMALL + ["--out", str(tmp_path / "ray"), "--ray"], source=toy)
    finally:
        ray.shutdown()
    on_ray = _records(tmp_path / "ray" / "records.jsonl")
    assert len(on_ray) == 6 and on_ray == _records(tmp_path / "serial" / "records.jsonl")
    runs = [json.loads((tmp_path / d / "provenance.json").read_text())["runs"] for d in ("serial", "ray")]
    assert runs[0][0]["ray"] is None and runs[1][0]["ray"] == "" and runs[1][0]["jobs_run"] == 6


@pytest.mark.parametrize("argv, message", [
    (["--metrics", "sparsity"], "Unknown metric 'sparsity'"),
    (["--metrics", "sparseness,sparseness"], "names a metric twice"),
    (["--methods", "gradcam"], "at least two different names"),
    (["--methods", "gradcamm,random"], "Did you mean gradcam"),
    (["--classes", "Measles"], "--classes: MSLD classes"),
    (["--n", "0"], "must be at least 1"),
])
def test_argument_errors_are_clear(bench, capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        bench.main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_jobs_go_patients_first(bench, tmp_path):
    """The first image of every patient, then the second ones: a run stopped early holds many patients."""
    records = [ImageRecord(path=tmp_path / f"{p}_{k}.png", label="Monkeypox", patient_id=p, image_id=f"{p}_{k}")
               for p, k in (("A", 1), ("A", 2), ("A", 3), ("B", 1), ("C", 1), ("C", 2))]
    assert bench.patients_first(records) == [0, 3, 4, 1, 5, 2]
    assert bench.patients_first([]) == []
