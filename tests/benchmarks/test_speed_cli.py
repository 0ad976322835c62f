"""benchmarks/speed.py: every registered method has a floor and a peers entry, a --quick run on
three cheap methods at batch 1 and 2 writes every field (JSON and CSV) with its provenance, the
memory measurement sees an allocation of known size, the floors leave the model as they found
it, and bad arguments get clear errors. No time is asserted."""
import csv
import time

import pytest
import torch

import xai_lab

from .scripts import benchmark_module

QUICK = ["--quick", "--methods", "gradcam,saliency,random", "--batch-sizes", "1,2", "--repeats", "1",
         "--warmup", "0", "--threads", "1"]
ROW_FIELDS = {"method", "batch", "ours_seconds", "floor_seconds", "ours_over_floor", "peers", "fastest_peer",
              "ours_over_fastest_peer", "peak_memory_mb", "best_memory_peer", "ours_memory_over_best_peer",
              "settings", "floor", "why_not"}


@pytest.fixture(scope="module")
def speed():
    return benchmark_module("speed")


@pytest.fixture(scope="module")
def quick_run(speed, tmp_path_factory):
    out = tmp_path_factory.mktemp("speed")
    return out, speed.main(QUICK + ["--out", str(out)])


def test_every_registered_method_has_a_floor_and_a_peers_entry(speed):
    registered = set(xai_lab.methods())
    assert set(speed.FLOORS) == registered, "add the new method's floor to FLOORS in benchmarks/speed.py"
    assert set(speed.PEERS) == registered, "add the new method's peers (or {}) to PEERS in benchmarks/speed.py"
    assert set(speed.WHY_NOT) <= registered
    assert all(floor.text for floor in speed.FLOORS.values())


def test_full_settings_send_ours_cpu_batches_and_ours_gpu_defaults(speed):
    """On a CPU every forward-batched method is measured at what ours sends there by default; on a
    GPU at ours' GPU default, which FULL holds."""
    from xai_lab.ops import CPU_FORWARD_BATCH

    for method, option in speed.FORWARD_BATCH_OPTIONS.items():
        assert speed.full_settings(method, "cpu")[option] == CPU_FORWARD_BATCH
        assert speed.full_settings(method, "cuda")[option] == speed.FULL[method][option]
        assert xai_lab.registry.method_spec(method).defaults()[option] is None  # ours picks by device
    assert speed.full_settings("gradcam", "cpu") == {}


def test_quick_run_writes_every_field_with_provenance(quick_run):
    out, report = quick_run
    rows = {(r["method"], r["batch"]): r for r in report["rows"]}
    assert set(rows) == {(m, n) for m in ("gradcam", "saliency", "random") for n in (1, 2)}, report["errors"]
    for row in rows.values():
        assert ROW_FIELDS <= set(row)
        assert row["ours_seconds"] > 0 and row["floor_seconds"] > 0
        assert set(row["peak_memory_mb"]) >= {"ours", "floor", *row["peers"]}
    assert set(rows["gradcam", 2]["peers"]) == {"captum.LayerGradCam", "pytorch_grad_cam.GradCAM", "torchcam.GradCAM"}
    for entry in rows["gradcam", 2]["peers"].values():
        assert {"seconds", "ours_over_peer", "peak_memory_mb"} <= set(entry)
    assert rows["random", 1]["peers"] == {} and rows["random", 1]["why_not"]
    assert rows["gradcam", 1]["why_not"] is None
    assert report["commit"] and report["packages"]["captum"] and report["machine"]["cpu_count"]
    assert len(report["load_average_1_5_15"]["start"]) == 3 and len(report["load_average_1_5_15"]["end"]) == 3
    assert report["command"].startswith("python benchmarks/speed.py --quick")
    with open(out / "speed.csv") as fh:
        lines = list(csv.DictReader(fh))
    assert {(r["method"], r["candidate"]) for r in lines} >= {("gradcam", "floor"), ("gradcam", "torchcam.GradCAM")}
    assert len(lines) == sum(2 + len(r["peers"]) for r in report["rows"])
    assert (out / "speed.json").exists()


def test_append_adds_rows_and_keeps_every_run(speed, tmp_path, capsys):
    """--append merges a second run into the first's speed.json (a row of the same method and batch size
    replaced, every run's command kept) and refuses a run measured otherwise."""
    base = ["--quick", "--repeats", "1", "--warmup", "0", "--threads", "1", "--out", str(tmp_path)]
    speed.main(base + ["--methods", "random,sobel", "--batch-sizes", "1"])
    report = speed.main(base + ["--methods", "sobel", "--batch-sizes", "1,2", "--append"])
    assert [(r["method"], r["batch"]) for r in report["rows"]] == [("random", 1), ("sobel", 1), ("sobel", 2)]
    assert report["batch_sizes"] == [1, 2] and report["finished"] and all(r["finished"] for r in report["runs"])
    assert [r["methods"] for r in report["runs"]] == [["random", "sobel"], ["sobel"]]
    assert report["command"].count("python benchmarks/speed.py") == 2
    on_disk = (tmp_path / "speed.csv").read_text()
    assert on_disk.count("\nrandom,1,ours") == 1 and on_disk.count("\nsobel,2,ours") == 1
    with pytest.raises(SystemExit):
        speed.main(base[:2] + ["2"] + base[3:] + ["--methods", "sobel", "--batch-sizes", "1", "--append"])
    assert "measured otherwise: repeats 1 there, 2 here" in capsys.readouterr().err


def test_peak_memory_sees_a_known_allocation(speed):
    def allocate():
        a = torch.ones(50_000_000)  # 200 MB
        return float(a[-1])

    measured = speed.peak_memory(allocate)
    assert measured["bytes"] >= 180e6, measured
    assert speed.peak_memory(lambda: None)["bytes"] < 20e6


def test_peak_memory_by_sampling_where_the_reset_is_refused(speed, monkeypatch):
    monkeypatch.setattr(speed, "_reset_high_water_mark", lambda: False)

    def allocate():
        a = torch.ones(50_000_000)
        time.sleep(0.05)
        return float(a[-1])

    measured = speed.peak_memory(allocate)
    assert measured["bytes"] >= 180e6 and measured["method"].startswith("VmRSS sampled")


def test_floors_leave_the_model_as_they_found_it(speed, lite0):
    x = speed.make_input(lite0, 2, 64, "cpu")
    flags = [p.requires_grad for p in lite0.model.parameters()]
    hooks = sum(len(m._forward_hooks) for m in lite0.model.modules())
    b = speed.Bench(lite0, x, [0, 1], {})
    for name in ("gradcam", "fullgrad", "guided_gradcam", "saliency", "cam"):
        candidate = speed.FLOORS[name].make(b)
        candidate.before and candidate.before()
        candidate.run()
        candidate.after and candidate.after()
        assert all(p.grad is None for p in lite0.model.parameters()), name
    assert [p.requires_grad for p in lite0.model.parameters()] == flags
    assert sum(len(m._forward_hooks) for m in lite0.model.modules()) == hooks


def test_floors_keep_the_input_layout(speed, lite0):
    x = speed.make_input(lite0, 2, 64, "cpu", channels_last=True)
    assert x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    b = speed.Bench(lite0, x, [0, 1], {})
    assert speed._copies(b, 3).is_contiguous(memory_format=torch.channels_last)
    assert speed._copies(b, 3).shape == (6, 3, 64, 64)
    plain = speed.Bench(lite0, speed.make_input(lite0, 2, 64, "cpu"), [0, 1], {})
    assert speed._copies(plain, 3).is_contiguous()


@pytest.mark.parametrize("argv, message", [
    (["--methods", "gradcan"], "unknown gradcan"),
    (["--batch-sizes", "1,0"], "must be at least 1"),
    (["--batch-sizes", "one"], "expected a whole number"),
    (["--methods", ","], "at least one value"),
    (["--warmup", "-1"], "must be at least 0"),
    (["--repeats", "0"], "must be at least 1"),
    (["--budget", "-1"], "--budget: must be at least 0"),
])
def test_argument_errors_are_clear(speed, argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit):
        speed.main(argv + ["--out", str(tmp_path)])
    assert message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_is_refused(speed, capsys, tmp_path):
    with pytest.raises(SystemExit):
        speed.main(["--device", "cuda", "--out", str(tmp_path)])
    assert "CUDA is not available" in capsys.readouterr().err


def test_candidates_are_interleaved_round_by_round(speed):
    from _timing import Candidate, time_interleaved

    calls = []
    fns = {name: Candidate(lambda name=name: calls.append(name), after=lambda: calls.append("after"))
           for name in "abc"}
    timings = time_interleaved(fns, repeats=3, warmup=1)
    runs = [c for c in calls if c != "after"]
    assert runs == list("abc") + list("abc") + list("bca") + list("cab")
    assert calls.count("after") == len(runs)
    assert all(len(t.times) == 3 and t.median >= 0 for t in timings.values())


def test_cheap_calls_get_as_many_rounds_as_fit_the_budget(speed):
    from _timing import Candidate, rounds_for, time_interleaved

    assert rounds_for(10.0, 0.2, 3) == 50 and rounds_for(10.0, 4.0, 3) == 3 and rounds_for(10.0, 1e-6, 3) == 200
    assert rounds_for(0.0, 0.2, 3) == 3 and rounds_for(10.0, 0.0, 3) == 3
    sleeps = {name: Candidate(lambda s=s: time.sleep(s)) for name, s in (("a", 0.002), ("b", 0.003))}
    timings = time_interleaved(sleeps, repeats=3, warmup=1, budget_seconds=0.1)
    assert 3 < len(timings["a"].times) == len(timings["b"].times) <= 20
    assert len(time_interleaved(sleeps, repeats=3, warmup=0, budget_seconds=0.1)["a"].times) == 3


def test_a_table_from_before_the_budget_counts_as_budget_zero(speed, tmp_path, capsys):
    import json

    base = ["--quick", "--repeats", "1", "--warmup", "0", "--threads", "1", "--out", str(tmp_path), "--batch-sizes", "1"]
    speed.main(base + ["--methods", "random", "--budget", "0"])
    path = tmp_path / "speed.json"
    old = json.loads(path.read_text())
    del old["budget_seconds"]
    path.write_text(json.dumps(old))
    assert [r["method"] for r in speed.main(base + ["--methods", "sobel", "--budget", "0", "--append"])["rows"]] == \
        ["random", "sobel"]
    with pytest.raises(SystemExit):
        speed.main(base + ["--methods", "sobel", "--append"])
    assert "budget_seconds 0.0 there, 10.0 here" in capsys.readouterr().err
