"""benchmarks/_common.py: results files (resumable, a line cut by a kill dropped), merging
shards, shard arithmetic, the shared command-line options, and the serial job runner (a deadline,
Ctrl-C and SIGTERM stop it with the finished records kept; its Ray half is checked against it in
test_comparison_cli.py and test_metric_trust_cli.py)."""
import argparse
import json
import os
import signal
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from xai_lab.stats import Interval

from .scripts import benchmark_module

common = benchmark_module("_common")
ResultsFile, merge_results, parse_shard = common.ResultsFile, common.merge_results, common.parse_shard
read_results, shard_slice = common.read_results, common.shard_slice


def _record(image, method, value, kind="eval", **extra):
    return {"kind": kind, "image": image, "method": method, "options": {}, "scores": {"lerf_mean_afoc@0.1": value},
            "seconds": 0.1, "forward_passes": 1, "backward_passes": 0, **extra}


@pytest.mark.parametrize("text, message", [("3/2", "1 <= K <= N"), ("0/2", "1 <= K <= N"), ("1/0", "N >= 1"),
                                           ("2", "K/N"), ("a/b", "K/N"), ("-1/2", "K/N")])
def test_parse_shard_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_shard(text)


def test_shards_partition_the_items_in_order():
    items = list(range(11))
    for n in (1, 2, 3, 4, 11, 12):
        slices = [shard_slice(items, k, n) for k in range(1, n + 1)]
        assert sum(slices, []) == items
        assert max(map(len, slices)) - min(map(len, slices)) <= 1
    assert parse_shard("2/3") == (2, 3) and shard_slice(items, 2, 3) == [3, 4, 5, 6]


def test_results_file_resumes_and_cuts_a_line_a_kill_left_unfinished(tmp_path):
    path = tmp_path / "records.jsonl"
    f = ResultsFile(path, {"a": 1})
    f.append(_record(0, "x", 0.5))
    f.append(_record(1, "x", 0.25))
    with pytest.raises(ValueError, match="already"):
        f.append(_record(1, "x", 0.3))
    with open(path, "a") as fh:
        fh.write('{"kind": "eval", "image": 2, "meth')       # killed in the middle of a write
    assert len(read_results(path)[1]) == 2
    g = ResultsFile(path, {"a": 1})
    assert set(g.done) == {("eval", 0, "x"), ("eval", 1, "x")}
    g.append(_record(2, "x", 0.125))
    config, records = read_results(path)
    assert config == {"a": 1} and [r["image"] for r in records] == [0, 1, 2]
    with pytest.raises(ValueError, match="other settings"):
        ResultsFile(path, {"a": 2})


def test_read_results_rejects_a_corrupt_line_in_the_middle(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"kind": "header", "config": {}}) + "\nnot json\n" + json.dumps(_record(0, "x", 1.0)) + "\n")
    with pytest.raises(ValueError, match="line 2"):
        read_results(path)


def test_merge_checks_configs_and_options_and_drops_duplicates(tmp_path):
    a, b = ResultsFile(tmp_path / "a.jsonl", {"n": 2, "shard": "1/2"}), ResultsFile(tmp_path / "b.jsonl", {"n": 2, "shard": "2/2"})
    a.append(_record(1, "x", 0.5))
    b.append(_record(0, "x", 0.25))
    b.append(_record(1, "x", 0.5))
    config, records, info = merge_results([a.path, b.path])
    assert config == {"n": 2} and [r["image"] for r in records] == [0, 1] and info["duplicates_dropped"] == 1
    c = ResultsFile(tmp_path / "c.jsonl", {"n": 3, "shard": "1/2"})
    with pytest.raises(ValueError, match="n differ"):
        merge_results([a.path, c.path])
    d = ResultsFile(tmp_path / "d.jsonl", {"n": 2, "shard": "2/2"})
    d.append({**_record(0, "x", 0.25), "options": {"steps": 3}})
    with pytest.raises(ValueError, match="options"):
        merge_results([a.path, d.path])
    with pytest.raises(ValueError, match="no results"):
        merge_results([])


def test_common_options_parse_and_refuse_bad_values():
    p = common.add_common(argparse.ArgumentParser(), n=(5, "images"), out=(Path("x"), "folder"), shards=True)
    args = p.parse_args(["--n", "3", "--shard", "2/4", "--threads", "2", "--seed", "7"])
    assert (args.n, args.shard, args.threads, args.seed, args.device, args.out) == (3, (2, 4), 2, 7, "cpu", Path("x"))
    for bad in (["--n", "0"], ["--shard", "5/4"], ["--threads", "x"]):
        with pytest.raises(SystemExit):
            p.parse_args(bad)
    bare = common.add_common(argparse.ArgumentParser(), device=None, seed_help=None).parse_args([])
    assert vars(bare) == {"threads": None}
    assert common.count("0") == 0 and common.fraction("0.5") == 0.5
    with pytest.raises(argparse.ArgumentTypeError, match="at least 1"):
        common.positive_int("0")
    with pytest.raises(argparse.ArgumentTypeError, match="must lie in"):
        common.fraction("1.5")


def test_intervals_are_written_as_json():
    text = json.dumps({"a": Interval(0.5, 0.25, 0.75, 4)}, default=common.json_default)
    assert json.loads(text) == {"a": {"value": 0.5, "low": 0.25, "high": 0.75, "n": 4, "level": 0.95}}


def test_a_config_that_only_adds_methods_continues_the_file(tmp_path):
    """A method registered after a run began: its settings join the header, the records stay; a
    changed setting of a method already there is still refused, in a file and in a merge."""
    path = tmp_path / "r.jsonl"
    f = ResultsFile(path, {"n": 2, "settings": {"a": {"k": 1}}})
    f.append(_record(0, "a", 1.0))
    g = ResultsFile(path, {"n": 2, "settings": {"a": {"k": 1}, "b": {}}})
    assert len(g.records) == 1 and read_results(path)[0]["settings"] == {"a": {"k": 1}, "b": {}}
    with pytest.raises(ValueError, match="settings"):
        ResultsFile(path, {"n": 2, "settings": {"a": {"k": 2}, "b": {}}})
    with pytest.raises(ValueError, match="n differ"):
        ResultsFile(path, {"n": 3, "settings": {"a": {"k": 1}, "b": {}}})
    other = ResultsFile(tmp_path / "s.jsonl", {"n": 2, "settings": {"a": {"k": 1}}})
    config, _, _ = merge_results([other.path, path])
    assert config["settings"] == {"a": {"k": 1}, "b": {}}
    assert merge_results([path, other.path])[0]["settings"] == {"a": {"k": 1}, "b": {}}


@pytest.mark.parametrize("old, new, adds", [
    ({"variants": ["a"], "settings": {"a": 1}}, {"variants": ["a", "b"], "settings": {"a": 1, "b": 2}}, True),
    ({"variants": ["a", "b"]}, {"variants": ["a"]}, False),
    ({"variants": ["a"], "n": 1}, {"variants": ["a", "b"], "n": 2}, False),
    ({"settings": {"a": 1}}, {"settings": [1]}, False),
])
def test_adds_methods_lets_the_method_lists_grow_and_nothing_else(old, new, adds):
    assert common.adds_methods(old, new) is adds


def square_job(item: int, scale: float) -> dict:
    """A job for :func:`run_jobs`: record ``item`` with value ``scale * item ** 2``; item 13 is a
    SIGTERM sent to this process, item 7 a Ctrl-C."""
    if item == 13:
        os.kill(os.getpid(), signal.SIGTERM)
    if item == 7:
        raise KeyboardInterrupt
    return _record(item, "square", scale * item ** 2)


def test_run_jobs_appends_each_record_with_a_progress_line(tmp_path, capsys):
    results = ResultsFile(tmp_path / "r.jsonl", {})
    done = common.run_jobs([3, 1, 2], square_job, (0.5,), results, describe=lambda item: f"item {item}")
    assert done == (3, None) and done.ran == 3
    assert [(r["image"], r["scores"]["lerf_mean_afoc@0.1"]) for r in read_results(results.path)[1]] == [
        (3, 4.5), (1, 0.5), (2, 2.0)]
    assert capsys.readouterr().err.splitlines() == ["[1/3] item 3", "[2/3] item 1", "[3/3] item 2"]
    assert common.run_jobs([4, 5], square_job, (1.0,), results, deadline=0.0) == (0, None)   # past the deadline
    assert len(results.records) == 3


@pytest.mark.parametrize("stop", [7, 13], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_run_keeps_the_finished_records(tmp_path, stop):
    results = ResultsFile(tmp_path / "r.jsonl", {})
    before = signal.getsignal(signal.SIGTERM)
    done = common.run_jobs([1, 2, stop, 4], square_job, (1.0,), results)
    assert done.ran == 2 and done.interrupted == common.INTERRUPTED
    assert [r["image"] for r in read_results(results.path)[1]] == [1, 2]
    assert signal.getsignal(signal.SIGTERM) is before          # the SIGTERM handler is put back


def test_a_ray_worker_imports_the_job_by_its_module_name(monkeypatch):
    assert common.importable_name(square_job) == (__name__, "square_job")

    def nested(item):
        return {}

    with pytest.raises(ValueError, match="not at the top level"):
        common.importable_name(nested)
    script = SimpleNamespace(__file__=str(Path("benchmarks") / "comparison.py"))   # run as a script
    monkeypatch.setitem(sys.modules, "__main__", script)
    monkeypatch.setattr(square_job, "__module__", "__main__")
    assert common.importable_name(square_job) == ("comparison", "square_job")
    assert common._job_by_name("_common", "count", "3", ()) == 3
