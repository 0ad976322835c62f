"""benchmarks/forward_batch.py: one row per batch size with per-call and per-image seconds and the
ratio to the fastest, provenance, clear errors. No time is asserted."""
import json

import pytest

from .scripts import benchmark_module


@pytest.fixture(scope="module")
def bench():
    return benchmark_module("forward_batch")


def test_one_row_per_batch_size_with_provenance(bench, tmp_path, capsys):
    out = tmp_path / "f.json"
    report = bench.main(["--batch-sizes", "1,2", "--repeats", "1", "--budget", "0", "--threads", "1",
                         "--out", str(out)])
    assert [r["batch"] for r in report["rows"]] == [1, 2] and json.loads(out.read_text()) == report
    for r in report["rows"]:
        assert r["seconds_per_call"] > 0 and r["rounds"] == 1
        assert r["seconds_per_image"] == pytest.approx(r["seconds_per_call"] / r["batch"], rel=1e-2, abs=1e-6)
    assert min(r["per_image_over_fastest"] for r in report["rows"]) == 1.0
    assert report["commit"] and report["threads"] == 1 and json.loads(capsys.readouterr().out) == report


def test_backward_pass_rows(bench, capsys):
    report = bench.main(["--batch-sizes", "1", "--repeats", "1", "--budget", "0", "--threads", "1", "--backward"])
    assert report["pass"] == "forward + backward to the input" and report["rows"][0]["seconds_per_call"] > 0


@pytest.mark.parametrize("argv, message", [(["--batch-sizes", "1,0"], "must be at least 1"),
                                           (["--batch-sizes", ","], "at least one value"),
                                           (["--budget", "-1"], "--budget: must be at least 0")])
def test_bad_arguments_are_refused(bench, argv, message, capsys):
    with pytest.raises(SystemExit):
        bench.main(argv)
    assert message in capsys.readouterr().err
