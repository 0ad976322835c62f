"""benchmarks/comparison.py on two ImageNet images with two cheap methods: the settings cover every
method, a run on a local Ray equals the serial run record for record, shards merged and a resumed
run equal one run, clear errors for bad arguments."""
import json
from pathlib import Path

import pytest

import xai_lab
from xai_lab.registry import method_spec

from .scripts import BENCHMARKS, benchmark_module

SMALL = ["--n", "2", "--datasets", "imagenet", "--methods", "random,gradcam", "--sanity-images", "1",
         "--sanity-steps", "1", "--resamples", "200", "--threads", "1"]


@pytest.fixture(scope="module")
def bench():
    """The script imported by its module name, as Ray's workers import it."""
    return benchmark_module("comparison")


def _records(path):
    lines = [json.loads(line) for line in Path(path).read_text().splitlines()]
    return {(r["kind"], r["image"], r["method"]): {k: v for k, v in r.items() if k not in ("seconds", "eval_seconds",
                                                                                            "sanity_seconds",
                                                                                            "cpu_seconds")}
            for r in lines[1:]}


@pytest.fixture(scope="module")
def single(bench, tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    return out, bench.main(SMALL + ["--out", str(out)])


def test_settings_cover_every_method_and_layers(bench):
    bench.check_settings()
    assert set(bench.SETTINGS) == set(xai_lab.methods())
    assert bench.SETTINGS["rise"][0]["n_masks"] >= 2000 and bench.SETTINGS["lime"][0]["num_samples"] >= 1000
    names = bench.variants()
    layered = [m for m in xai_lab.methods() if method_spec(m).needs_layer and m not in bench.LAST_MAP_ONLY]
    assert {f"{m}@{bench.INTERMEDIATE}" for m in layered} <= set(names) and "cam@" + bench.INTERMEDIATE not in names
    assert bench.split_variant("gradcam@features.blocks.10") == ("gradcam", "features.blocks.10")


def test_a_run_writes_tables_coverage_and_provenance(single):
    out, summary = single
    cell = summary["table"]["imagenet"]["gradcam@features.blocks.10"]["insertion_auc"]
    assert cell["n"] == 2 and cell["low"] <= cell["value"] <= cell["high"] and cell["better"] == "higher"
    assert summary["coverage"]["imagenet"]["images_started"] == 2
    assert summary["coverage"]["imagenet"]["images_with_every_method"] == 0   # two methods of all
    assert "sanity_spearman@1" in summary["table"]["imagenet"]["gradcam"]
    assert summary["rankings"]["imagenet"]["insertion_auc"]["images"] == 2
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["runs"][0]["jobs_run"] == 9 and provenance["packages"]["torch"] and provenance["machine"]
    assert (out / "summary.csv").read_text().startswith("dataset,method,score,value,low,high,n,better")


def test_ray_gives_the_serial_records(bench, single, tmp_path):
    ray = pytest.importorskip("ray")
    out, _ = single
    ray.init(num_cpus=1, include_dashboard=False,
             runtime_env={"env_vars": {"PYTHONPATH": f"{BENCHMARKS.parent}:{BENCHMARKS}"}})
    try:
        bench.main(SMALL + ["--out", str(tmp_path), "--ray"])
    finally:
        ray.shutdown()
    assert _records(tmp_path / "records.jsonl") == _records(out / "records.jsonl")


def test_shards_merged_and_a_resumed_run_equal_one_run(bench, single, tmp_path, capsys):
    out, summary = single
    bench.main(SMALL + ["--out", str(tmp_path), "--shard", "1/2"])
    bench.main(SMALL + ["--out", str(tmp_path), "--shard", "2/2", "--limit", "1"])
    with open(tmp_path / "records-shard-2-of-2.jsonl", "a") as fh:
        fh.write('{"kind": "eval", "image": "imagenet/05')   # a write cut short by a kill
    bench.main(SMALL + ["--out", str(tmp_path), "--shard", "2/2"])
    merged = bench.main(["--merge", str(tmp_path), "--resamples", "200"])
    records = {**_records(tmp_path / "records-shard-1-of-2.jsonl"), **_records(tmp_path / "records-shard-2-of-2.jsonl")}
    assert records == _records(out / "records.jsonl")
    assert all(merged["rankings"]["imagenet"][s]["order"] == summary["rankings"]["imagenet"][s]["order"]
               for s in summary["rankings"]["imagenet"] if s != "seconds")
    bench.main(SMALL + ["--out", str(tmp_path), "--shard", "2/2"])
    assert "running 0" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--shard", "3/2"], "shard K/N needs 1 <= K <= N"),
    (["--methods", "gradcamm"], "Did you mean gradcam"),
    (["--datasets", "cifar"], "choose from imagenet, msld, shortcut"),
    (["--n", "1001"], "between 1 and 1000"),
    (["--merge", "nowhere.jsonl", "--ray"], "takes no --shard, --limit or --ray"),
])
def test_argument_errors_are_clear(bench, capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        bench.main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_changed_settings_are_refused_on_resume(bench, single):
    out, _ = single
    with pytest.raises(SystemExit, match="other settings"):
        bench.main(SMALL[:-4] + ["--sanity-steps", "2", "--out", str(out)])


def test_rankings_use_the_largest_block_of_variants_and_images(bench):
    have = {"a": {1, 2, 3, 4}, "b": {1, 2, 3}, "c": {1, 2, 3}, "d": {1}}
    assert bench.ranked_block(have) == (["a", "b", "c"], {1, 2, 3})


def test_an_interrupted_run_keeps_its_records_and_writes_its_run_log(bench, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = bench.run_job

    def stopped_at_the_third_job(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # as Ctrl-C, or a SIGTERM turned into one by the run
        return real(*args, **kwargs)

    monkeypatch.setattr(bench, "run_job", stopped_at_the_third_job)
    with pytest.raises(SystemExit) as stop:
        bench.main(SMALL + ["--out", str(tmp_path)])
    assert stop.value.code == 130
    provenance = json.loads((tmp_path / "provenance.json").read_text())
    log = provenance["runs"][-1]
    assert log["jobs_run"] == 2 and log["interrupted"].startswith("interrupted") and log["wall_seconds"] >= 0
    assert len((tmp_path / "records.jsonl").read_text().splitlines()) == 1 + 2
    assert (tmp_path / "summary.json").is_file()
