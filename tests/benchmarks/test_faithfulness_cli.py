"""benchmarks/faithfulness.py on 2 images with cheap settings: shards merged = one run, a
resumed run = one run, clear errors for bad arguments."""
import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "faithfulness.py"
SMALL = ["--n", "2", "--methods", "random,fullgrad", "--fractions", "0.1", "--step", "50176",
         "--sanity-images", "1", "--sanity-steps", "1", "--resamples", "200"]
TIMING = ("seconds", "eval_seconds", "sanity_seconds")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("faithfulness_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def single(bench, lite0, tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    return out, bench.main(SMALL + ["--out", str(out)], classifier=lite0)


def _records(path):
    lines = [json.loads(line) for line in Path(path).read_text().splitlines()]
    return {(r["kind"], r["image"], r["method"]): {k: v for k, v in r.items() if k not in TIMING} for r in lines[1:]}


def _without_timing(table):
    return {m: {s: v for s, v in scores.items() if s != "seconds"} for m, scores in table.items()}


def test_a_single_run_writes_tables_and_the_finding(single):
    out, summary = single
    assert summary["complete"] and summary["images_evaluated"] == 2 and summary["sanity"]["images"] == [0]
    assert summary["config"]["images"] == [0, 500]
    cell = summary["table"]["fullgrad"]["lerf_mean_afoc@0.1"]
    assert cell["n"] == 2 and cell["low"] <= cell["value"] <= cell["high"] and cell["better"] == "lower"
    assert "sanity_spearman@1" in summary["table"]["fullgrad"] and summary["table"]["random"]["forward_passes"]["value"] == 1
    finding = summary["finding"]
    assert finding["available"] and finding["score"] == "lerf_mean_afoc@0.1"
    assert finding["holds"] == (finding["intervals"]["fullgrad"]["value"] < finding["intervals"]["random"]["value"])
    assert (out / "summary.csv").read_text().startswith("method,score,value,low,high,n,better")
    assert len((out / "per_image.csv").read_text().splitlines()) == 1 + 4 + 2   # header, 4 evals, 2 sanity


@pytest.fixture(scope="module")
def shards(bench, lite0, tmp_path_factory):
    """Shard 1/2 in one go; shard 2/2 stopped after one evaluation, its file then cut in the
    middle of a line (as a kill would leave it), and run again."""
    out, log = tmp_path_factory.mktemp("shards"), {}
    bench.main(SMALL + ["--out", str(out), "--shard", "1/2"], classifier=lite0)
    log["stopped"] = bench.main(SMALL + ["--out", str(out), "--shard", "2/2", "--limit", "1"], classifier=lite0)
    with open(out / "records-shard-2-of-2.jsonl", "a") as fh:
        fh.write('{"kind": "eval", "image": 500, "method": "ful')
    log["resumed"] = bench.main(SMALL + ["--out", str(out), "--shard", "2/2"], classifier=lite0)
    return out, log


def test_two_shards_merged_equal_one_run(bench, single, shards):
    (out, summary), (shard_out, _) = single, shards
    merged = bench.main(["--merge", str(shard_out), "--resamples", "200"])
    records = {**_records(shard_out / "records-shard-1-of-2.jsonl"), **_records(shard_out / "records-shard-2-of-2.jsonl")}
    assert records == _records(out / "records.jsonl")
    assert _without_timing(merged["table"]) == _without_timing(summary["table"])
    assert merged["finding"] == summary["finding"] and merged["config"] == summary["config"] and merged["complete"]
    assert merged["merged_from"] == [str(shard_out / f"records-shard-{k}-of-2.jsonl") for k in (1, 2)]
    assert (shard_out / "summary.json").exists() and (shard_out / "summary-shard-1-of-2.csv").exists()


def test_a_stopped_run_resumes_without_duplicates(bench, lite0, single, shards, capsys):
    out, log = shards
    assert not log["stopped"]["complete"] and log["stopped"]["images_evaluated"] == 1
    assert log["resumed"]["complete"] and log["resumed"]["shard"] == "2/2"
    lines = (out / "records-shard-2-of-2.jsonl").read_text().splitlines()
    keys = [(r["kind"], r["image"], r["method"]) for r in map(json.loads, lines[1:])]
    assert len(keys) == len(set(keys)) == 2 and all(key[1] == 500 for key in keys)
    bench.main(SMALL + ["--out", str(out), "--shard", "2/2"], classifier=lite0)
    assert "0 evaluations to run, 2 already in" in capsys.readouterr().err
    assert len((out / "records-shard-2-of-2.jsonl").read_text().splitlines()) == 3


@pytest.mark.parametrize("argv, message", [
    (["--shard", "3/2"], "argument --shard: shard K/N needs 1 <= K <= N, got '3/2'"),
    (["--shard", "two"], "shard must look like K/N"),
    (["--shard", "2/3", "--n", "2"], "more shards than images"),
    (["--methods", "gradcamm"], "Did you mean gradcam"),
    (["--n", "0"], "must be at least 1"),
    (["--n", "1001"], "between 1 and 1000"),
    (["--fractions", "0.1,2"], "--fractions must lie in (0, 1]"),
    (["--merge", "nowhere.jsonl", "--shard", "1/2"], "takes no --shard"),
    (["--jobs", "2", "--shard", "1/2"], "drop --shard and --limit"),
    (["--jobs", "3", "--n", "2"], "more jobs than images"),
    (["--job", "2"], "unrecognized arguments: --job"),
])
def test_argument_errors_are_clear(bench, capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        bench.main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_merge_errors(bench, tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        bench.main(["--merge", str(tmp_path / "missing.jsonl")])
    with pytest.raises(SystemExit, match="no records"):
        bench.main(["--merge", str(tmp_path)])
    (tmp_path / "records-a.jsonl").write_text(json.dumps({"kind": "header", "config": {"images": [0]}}) + "\n")
    (tmp_path / "records-b.jsonl").write_text(json.dumps({"kind": "header", "config": {"images": [5]}}) + "\n")
    with pytest.raises(SystemExit, match="images differ"):
        bench.main(["--merge", str(tmp_path)])


def test_changed_settings_are_refused_on_resume(bench, lite0, single):
    out, _ = single
    with pytest.raises(SystemExit) as e:
        bench.main(SMALL[:-2] + ["--resamples", "200", "--out", str(out), "--fractions", "0.2"], classifier=lite0)
    assert "other settings (protocol differ)" in str(e.value) and "use another output folder" in str(e.value)


def test_jobs_start_one_shard_each_with_one_thread(bench, tmp_path):
    argv = ["--n", "20", "--jobs=2", "--threads", "2", "--out", "x", "--methods", "random"]
    assert bench.shard_argv(argv, 2, 2, tmp_path) == ["--n", "20", "--methods", "random", "--shard", "2/2",
                                                     "--threads", "1", "--out", str(tmp_path)]
    args = bench.parser().parse_args(bench.shard_argv(["--jobs", "3"], 3, 3, tmp_path))
    assert args.shard == (3, 3) and args.threads == 1 and args.jobs == 1 and args.out == tmp_path
