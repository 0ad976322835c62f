"""benchmarks/roar.py on 16 MSLD images (one per patient) with one method and one k: the JSON it
prints and writes, the maps file reused by a second run, clear errors for bad arguments."""
import json

import pytest

from xai_lab.models import msld

from .scripts import benchmark_module


@pytest.fixture(scope="module")
def bench():
    return benchmark_module("roar")


@pytest.fixture(scope="module")
def records(msld_one_image_patients):
    return msld_one_image_patients


@pytest.fixture(scope="module")
def classifier(records):
    model, _ = msld.train(msld.TrainSettings(copies=1, max_steps=20, patience=5), records, progress=False)
    return msld.as_classifier(model)


def test_a_small_run_prints_and_writes_the_rows_and_reuses_its_maps(bench, classifier, records, tmp_path, capsys):
    argv = ["--methods", "random,gradcam", "--ks", "50", "--n-boot", "50", "--out", str(tmp_path / "roar.json"),
            "--maps", str(tmp_path / "maps.pt")]
    out = bench.main(argv, classifier=classifier, records=records)
    printed = capsys.readouterr()
    assert json.loads(printed.out.strip().splitlines()[-1]) == json.loads((tmp_path / "roar.json").read_text()) == out
    assert "maps: computed random, gradcam; reused none" in printed.err
    assert out["config"]["ks"] == [0, 50] and out["config"]["images"] == {"train": 8, "val": 4, "test": 4}
    assert [(r["method"], r["k"]) for r in out["rows"]] == [("random", 0), ("random", 50), ("gradcam", 0), ("gradcam", 50)]
    assert out["finding"]["ks"] == [50] and out["timing"]["retrainings"] == 3
    assert (tmp_path / "maps.pt").is_file()
    again = bench.main(argv[:-4] + ["--out", str(tmp_path / "again.json"), "--maps", str(tmp_path / "maps.pt"),
                                    "--methods", "gradcam"], classifier=classifier, records=records)
    assert "maps: computed none; reused gradcam" in capsys.readouterr().err
    timing = ("train_seconds", "seconds")
    assert ([{k: v for k, v in r.items() if k not in timing} for r in again["rows"]]
            == [{k: v for k, v in r.items() if k not in timing} for r in out["rows"][2:]])


def test_black_fill_edits_the_images_otherwise(bench, classifier, records, tmp_path):
    argv = ["--methods", "gradcam", "--ks", "50", "--n-boot", "50", "--maps", str(tmp_path / "maps.pt")]
    mean = bench.main(argv + ["--out", str(tmp_path / "mean.json")], classifier=classifier, records=records)
    black = bench.main(argv + ["--out", str(tmp_path / "black.json"), "--fill", "black"], classifier=classifier,
                       records=records)
    assert mean["config"]["fill"] == "image channel means" and black["config"]["fill"] == "black (0 in pixel units)"
    edited = [[r["not_retrained_probability"] for r in out["rows"] if r["k"] == 50] for out in (mean, black)]
    assert edited[0] != edited[1]  # the same pixels removed, filled otherwise: other outputs
    unedited = [[r["not_retrained_probability"] for r in out["rows"] if r["k"] == 0] for out in (mean, black)]
    assert unedited[0] == unedited[1]


@pytest.mark.parametrize("argv, message", [
    (["--ks", "0,50"], "--ks must lie in (0, 100]"),
    (["--ks", "10,10"], "--ks repeats a value"),
    (["--ks", "ten"], "--ks must be percentages"),
    (["--methods", "gradcamm"], "Did you mean gradcam"),
    (["--methods", "random,random"], "twice"),
    (["--copies", "0"], "must be at least 1"),
    (["--train-fraction", "0"], "must lie in (0, 1]"),
    (["--rise-mask", "10"], "unrecognized arguments: --rise-mask"),
    (["--fill", "blue"], "invalid choice: 'blue'"),
])
def test_argument_errors_are_clear(bench, capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        bench.main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err
