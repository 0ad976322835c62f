"""benchmarks/explorer.py on one ImageNet image with two cheap methods: one record per cell with the
map stored small and 8-bit (and equal to a fresh explanation within one step), the curves, the
two targets; provenance; a resumed run adds nothing; other settings in the same folder, bad
arguments and a path outside the data folder are refused."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import xai_lab
from xai_lab.registry import method_spec

from .scripts import benchmark_module

SMALL = ["--imagenet", "0", "--msld-per-class", "0", "--methods", "random,gradcam", "--map-size", "8",
         "--curve-step", str(224 * 112), "--threads", "1"]


@pytest.fixture(scope="module")
def bench():
    return benchmark_module("explorer")


@pytest.fixture(scope="module")
def run(bench, tmp_path_factory):
    out = tmp_path_factory.mktemp("explorer")
    provenance = bench.main(SMALL + ["--out", str(out)])
    lines = (out / "records.jsonl").read_text().splitlines()
    return out, json.loads(lines[0])["config"], [json.loads(line) for line in lines[1:]], provenance


def test_settings_are_options_of_their_methods_and_cheaper_only_where_said(bench):
    assert set(bench.SETTINGS) == set(xai_lab.methods())
    for name, (options, why) in bench.SETTINGS.items():
        assert set(options) <= set(method_spec(name).options) and why
    assert bench.SETTINGS["rise"][0]["n_masks"] < bench.comparison.SETTINGS["rise"][0]["n_masks"]
    changed = {n for n in bench.SETTINGS if bench.SETTINGS[n] != bench.comparison.SETTINGS[n]}
    assert changed == set(bench.CHEAPER)


def test_quantize_round_trip_within_half_a_step(bench):
    m = torch.randn(224, 224, generator=torch.Generator().manual_seed(0))
    stored = bench.quantize(m, 56)
    pooled = F.adaptive_avg_pool2d(m[None, None], 56)[0, 0].double().numpy()
    assert stored["size"] == [56, 56] and stored["min"] == pytest.approx(pooled.min())
    step = (stored["max"] - stored["min"]) / 255
    assert np.abs(bench.dequantize(stored) - pooled).max() <= step / 2 + 1e-6
    flat = bench.quantize(torch.full((224, 224), 3.0), 8)
    assert (bench.dequantize(flat) == 3.0).all()


def test_one_record_per_cell_with_its_map_curves_and_cost(run):
    _, config, records, _ = run
    assert config["images"] == [{"image": "imagenet/0000", "dataset": "imagenet", "index": 0,
                                 "file": "imagenet-samples/n01440764_tench.JPEG", "model": "efficientnet_lite0"}]
    assert config["variants"] == ["random", "gradcam", "gradcam@features.blocks.10"]
    assert {(r["kind"], r["method"]) for r in records} == {(k, v) for k in ("predicted", "runner_up")
                                                            for v in config["variants"]}
    by = {(r["kind"], r["method"]): r for r in records}
    assert by["predicted", "gradcam"]["target_label"] == "tench"
    assert by["runner_up", "gradcam"]["target"] != by["predicted", "gradcam"]["target"]
    assert by["runner_up", "gradcam"]["target_probability"] < by["predicted", "gradcam"]["target_probability"]
    assert by["predicted", "gradcam@features.blocks.10"]["layer"] == "features.blocks.10"
    assert by["predicted", "gradcam"]["layer"] == "features" and by["predicted", "random"]["layer"] is None
    for r in records:
        assert r["map"]["size"] == [8, 8] and len(r["fractions"]) == 3 and r["fractions"][-1] == 1.0
        assert len(r["deletion"]["curve"]) == len(r["insertion"]["curve"]) == 3
        assert 0 <= r["deletion"]["auc"] <= 1 and r["cpu_seconds"] >= r["explain_cpu_seconds"] >= 0
    assert by["predicted", "gradcam"]["forward_passes"] == 1 and by["predicted", "gradcam"]["backward_passes"] == 1
    assert not by["predicted", "gradcam"]["signed"]


def test_a_stored_map_is_the_explanation_within_one_step(bench, run, lite0):
    _, config, records, _ = run
    r = next(r for r in records if r["method"] == "gradcam@features.blocks.10" and r["kind"] == "runner_up")
    x = lite0.preprocess(xai_lab.data.imagenet_samples(1)[0].path)[None]
    e = xai_lab.explain(lite0, x, method="gradcam", target=r["target"], layer="features.blocks.10")
    live = F.adaptive_avg_pool2d(e.saliency[None], 8)[0, 0].double().numpy()
    step = (r["map"]["max"] - r["map"]["min"]) / 255
    assert np.abs(bench.dequantize(r["map"]) - live).max() <= step


def test_provenance_and_a_resumed_run_that_adds_nothing(bench, run):
    out, _, records, provenance = run
    first = provenance["runs"][0]
    assert first["command"].startswith("python benchmarks/explorer.py --imagenet 0")
    assert first["records_added"] == len(records) == provenance["records"] == provenance["cells_planned"] == 6
    assert provenance["packages"]["torch"] and provenance["machine"]["cpu_count"] and first["threads"] == 1
    again = bench.main(SMALL + ["--out", str(out)])
    assert again["runs"][-1]["records_added"] == 0 and len(again["runs"]) == 2
    assert len((out / "records.jsonl").read_text().splitlines()) == 1 + len(records)


def test_other_settings_in_the_same_folder_are_refused(bench, run):
    out, *_ = run
    with pytest.raises(SystemExit, match="other settings"):
        bench.main([{"8": "4"}.get(a, a) for a in SMALL] + ["--out", str(out)])  # --map-size 4


@pytest.mark.parametrize("argv", [["--imagenet", "1000"], ["--imagenet", "3,3"], ["--map-size", "5"],
                                  ["--imagenet", "none", "--msld-per-class", "0"], ["--methods", "gradcma"]])
def test_bad_arguments_exit_2(bench, argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(argv + ["--out", str(tmp_path)])
    assert e.value.code == 2 and "error" in capsys.readouterr().err


def test_a_path_outside_the_data_folder_is_refused(bench, tmp_path):
    with pytest.raises(ValueError, match="outside the data folder"):
        bench.relative_file(tmp_path / "photo.jpg")
