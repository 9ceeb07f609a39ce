"""The benchmark suite's pieces and the performance settings of the Recognizer.

Fast checks only: the suite itself (`make bench`) takes minutes and is not part of the tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # benchmarks/ is not an installed package

from benchmarks import report  # noqa: E402
from benchmarks.latency import percentiles  # noqa: E402
from benchmarks.machine import machine_info, short_machine  # noqa: E402
from benchmarks.speedups import plain_greedy  # noqa: E402
from benchmarks.testset import bucket_of  # noqa: E402
from model.config import ModelConfig  # noqa: E402
from model.decoding import greedy_decode  # noqa: E402
from model.inference import Recognizer, default_threads, physical_cores  # noqa: E402
from model.network import Im2LatexModel  # noqa: E402
from model.vocab import EOS  # noqa: E402


def test_core_and_thread_counts_are_sane():
    assert 1 <= physical_cores() <= (os.cpu_count() or 1)
    assert 1 <= default_threads() <= 4
    assert default_threads() == max(1, min(physical_cores() // 2, 4))


def test_machine_info_names_the_conditions():
    info = machine_info()
    assert info["cpu"] and info["physical_cores"] >= 1 and len(info["load_average"]) == 3
    assert info["torch"] == torch.__version__ and info["torch_threads"] == torch.get_num_threads()
    line = short_machine(info)
    assert "cores" in line and "torch" in line and "OMP_WAIT_POLICY" in line


def test_length_buckets_follow_the_issue():
    assert [bucket_of(n) for n in (0, 1, 9, 10, 40, 41, 150, 151)] == [
        None, "short", "short", "medium", "medium", "long", "long", None]


def test_percentiles_are_in_milliseconds():
    stats = percentiles([0.1, 0.2, 0.3, 0.4, 1.0])
    assert stats["n"] == 5 and stats["p50_ms"] == 300.0 and 400.0 < stats["p95_ms"] <= 1000.0


def test_the_no_early_stop_reference_decodes_what_greedy_decodes():
    """The batch early-stop comparison is only fair if both variants produce the same tokens."""
    torch.manual_seed(1)
    model = Im2LatexModel(ModelConfig(vocab_size=40, d_model=32, nhead=4, decoder_layers=1, dim_feedforward=64,
                                      encoder_stages=1, max_len=24)).eval()
    images = torch.rand(3, 1, 32, 64)
    sizes = torch.tensor([[32, 64], [32, 48], [16, 64]])
    with torch.inference_mode():
        rows = plain_greedy(model, images, sizes, 0, 24)
        reference = greedy_decode(model, images, sizes, 24)
    for row, decoded in zip(rows, reference):
        ids = row[: row.index(EOS)] if EOS in row else row
        assert ids == decoded.ids


def test_a_thread_count_the_caller_set_is_kept(tiny_model_dir):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        Recognizer(model_path=tiny_model_dir.bundle, device="cpu").load()
        assert torch.get_num_threads() == 1
        Recognizer(model_path=tiny_model_dir.bundle, device="cpu", threads=2).load()
        assert torch.get_num_threads() == 2
        from model import inference

        torch.set_num_threads(inference._TORCH_DEFAULT_THREADS)  # as nobody had touched it
        Recognizer(model_path=tiny_model_dir.bundle, device="cpu").load()
        assert torch.get_num_threads() == default_threads()
    finally:
        torch.set_num_threads(before)


def test_int8_recognizer_quantizes_the_linear_layers_and_still_reads(tiny_model_dir):
    r = Recognizer(model_path=tiny_model_dir.bundle, device="cpu", int8=True)
    model = r.load().model
    assert r.int8
    kinds = [type(m) for m in model.modules()]
    assert torch.nn.Linear not in kinds
    assert any(k.__module__.startswith("torch.ao.nn.quantized.dynamic") for k in kinds)
    results = r.recognize_batch(tiny_model_dir.images)
    correct = sum(res.latex == ref for res, ref in zip(results, tiny_model_dir.formulas))
    assert correct >= len(tiny_model_dir.formulas) - 1  # int8 may cost the tiny model one formula at most
    assert not Recognizer(model_path=tiny_model_dir.bundle, device="cpu", int8=False).int8


def _results() -> dict:
    machine = {"cpu": "Test CPU", "physical_cores": 2, "load_average": [0.5, 0.4, 0.3], "torch": "2.x",
               "omp_wait_policy": "PASSIVE"}
    return {
        "generated": "2026-01-01 00:00", "machine": machine, "machine_after": machine, "model": "m",
        "model_source": "--model",
        "latency": {"app_threads": 2, "app_readings": 2, "per_bucket": 3, "machine_before": machine, "rows": [
            {"device": "cpu", "threads": 2, "beam": 1, "bucket": "medium", "n": 3, "p50_ms": 60.0, "p95_ms": 70.0,
             "mean_ms": 65.0, "ref_tokens_mean": 20.0, "out_tokens_mean": 21.0, "readings": 1},
            {"device": "cpu", "threads": 2, "beam": 1, "bucket": "medium", "n": 3, "p50_ms": 100.0, "p95_ms": 260.0,
             "mean_ms": 120.0, "ref_tokens_mean": 20.0, "out_tokens_mean": 21.0, "readings": 2},
            {"device": "cpu", "threads": 1, "beam": 1, "bucket": "medium", "n": 3, "p50_ms": 90.0, "p95_ms": 100.0,
             "mean_ms": 95.0, "ref_tokens_mean": 20.0, "out_tokens_mean": 21.0, "readings": 2}]},
        "startup": {"skipped": "no model"},
    }


def test_targets_are_read_at_the_apps_thread_count_and_readings():
    by_name = {t["what"]: t for t in report.targets(_results())}
    assert by_name["medium formula, greedy, p50"]["measured"] == 100.0
    assert by_name["medium formula, greedy, p50"]["met"] is True
    assert by_name["medium formula, greedy, p95"]["met"] is False
    assert by_name["launch to main window"]["met"] is None


def test_results_markdown_and_readme_block(tmp_path):
    text = report.results_markdown(_results())
    assert "## Targets" in text and "## Snip latency" in text and "| cpu | 2 | greedy | 2 | medium | 3 | 100 | 260 |" in text
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n## Performance\n\n{report.README_START}\nold\n{report.README_END}\n\nmore\n")
    assert report.update_readme(_results(), readme)
    updated = readme.read_text()
    assert "old" not in updated and "benchmarks/RESULTS.md" in updated and updated.endswith("more\n")
    plain = tmp_path / "plain.md"
    plain.write_text("# no markers\n")
    assert not report.update_readme(_results(), plain)


@pytest.mark.slow
def test_the_app_shows_its_window_before_torch_loads_and_loads_it_off_the_ui_thread(tiny_model_dir, tmp_path):
    image = tiny_model_dir.images[0]
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", IM2LATEX_DATA_DIR=str(tmp_path / "d"),
               IM2LATEX_CONFIG_DIR=str(tmp_path / "c"), IM2LATEX_RUNTIME_DIR=str(tmp_path / "r"))
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "app_probe.py"), "--model",
                           str(tiny_model_dir.bundle), "--image", str(image), "--idle-seconds", "0.2"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    line = next(line for line in proc.stdout.splitlines() if line.startswith("PROBE "))
    import json

    events = json.loads(line[len("PROBE "):])
    assert "error" not in events, events
    assert events["torch_loaded_at_show"] is False
    assert events["torch_import_on_main_thread"] is False
    assert events["probe_start"] < events["window_shown"] < events["model_ready"] < events["result"]
    assert events["latex"] == tiny_model_dir.formulas[0]
    assert events["memory_idle_kb"]["VmRSS"] > 0


def test_run_all_refuses_unknown_parts():
    from benchmarks import run_all

    with pytest.raises(SystemExit):
        run_all.main(["--parts", "latency,warp-drive", "--no-readme"])


def test_timing_helpers_read_json_lines_and_save_without_the_machine(tmp_path, capsys):
    from benchmarks.timing import json_rows, save_result

    text = 'starting\n{"step": 4, "samples_per_s": 12.5}\n\n{"latex": "x"}\nWARNING: slow\n'
    assert json_rows(text) == [{"step": 4, "samples_per_s": 12.5}, {"latex": "x"}]
    out = tmp_path / "result.json"
    save_result({"machine_before": {"cpu": "?"}, "rate": 3.0, "machine_after": {}}, out)
    assert out.read_text().endswith("}\n") and '"machine_before"' in out.read_text()
    assert capsys.readouterr().out == '{\n "rate": 3.0\n}\n'


def test_throughput_times_a_real_predict_run(tiny_model_dir):
    from benchmarks.throughput import predict_command

    files = tiny_model_dir.images[:2]
    row = predict_command(tiny_model_dir.bundle, files, threads=1)
    assert row["exit_code"] == 0 and (row["images"], row["recognized"], row["failed"]) == (2, 2, 0)
    assert set(row) == {"images", "recognized", "failed", "exit_code", "threads", "process_s", "images_per_s",
                        "recognition_s", "steady_images_per_s", "start_up_s"}
    assert 0 < row["recognition_s"] <= row["process_s"] and row["start_up_s"] >= 0


def test_run_all_can_keep_the_parts_it_does_not_run(tmp_path):
    import json

    from benchmarks import run_all

    previous = {"generated": "2026-12-01 11:29", "seconds": {"speedups": 219.5, "train_speed": 68.8},
                "speedups": {"rows": [1]}, "train_speed": {"rate": 7.0}, "latency": {"old": True}}
    (tmp_path / "results.json").write_text(json.dumps(previous))
    results = {"latency": {"new": True}, "seconds": {"latency": 1.0}, "notes": []}
    run_all._keep_other_parts(results, ["latency"], tmp_path / "results.json")
    assert results["latency"] == {"new": True}  # what ran now wins
    assert results["speedups"] == {"rows": [1]} and results["train_speed"] == {"rate": 7.0}
    assert "2026-12-01 11:29" in results["notes"][0] and "speedups, train" in results["notes"][0]


def test_reading_policy_replays_the_apps_rule():
    """A sure first reading is kept (one reading); an unsure or cut one takes the most confident
    of all scales (every scale read)."""
    from benchmarks.reading_policy import replay
    from model.decoding import Decoded

    sure = [Decoded([1], 0.9, weakest=0.85), Decoded([2], 0.95, weakest=0.9)]
    unsure = [Decoded([3], 0.7, weakest=0.4), Decoded([4], 0.8, weakest=0.6)]
    cut = [Decoded([5], 0.5, stopped="time", weakest=0.9), Decoded([6], 0.6, weakest=0.5)]
    chosen, per_snip = replay([sure, unsure, cut], 0.8)
    assert [d.ids for d in chosen] == [[1], [4], [6]] and per_snip == pytest.approx(5 / 3)
    chosen, per_snip = replay([sure, unsure, cut], None)
    assert [d.ids for d in chosen] == [[2], [4], [6]] and per_snip == 2.0


def test_reading_policy_subsets_and_their_cost():
    """A subset replays only its own scales (the first read first); pixels count every scale
    read, relative to one reading at scale 1; a subset scale that was never read is refused."""
    from benchmarks.reading_policy import apply, policies
    from model.decoding import Decoded

    scales = (1.0, 1.5, 2.0)
    readings = [[Decoded([1], 0.9, weakest=0.95), Decoded([2], 0.99, weakest=0.9), Decoded([3], 0.5, weakest=0.2)],
                [Decoded([4], 0.6, weakest=0.3), Decoded([5], 0.7, weakest=0.6), Decoded([6], 0.95, weakest=0.9)]]
    named = {p.name: p for p in policies(scales, [(1.0, 2.0)], thresholds=(0.8,))}
    assert list(named) == ["one reading (scale 1)", "reread_below 0.8", "every scale of (1, 2)",
                           "(1, 1.5), the rest when they disagree", "every scale (1, 1.5, 2)"]
    chosen, per_snip, pixels = apply(named["every scale of (1, 2)"], readings, scales)
    assert [d.ids for d in chosen] == [[1], [6]] and per_snip == 2.0 and pixels == pytest.approx(5.0)
    chosen, per_snip, pixels = apply(named["reread_below 0.8"], readings, scales)
    assert [d.ids for d in chosen] == [[1], [6]] and per_snip == 2.0 and pixels == pytest.approx((1 + 7.25) / 2)
    chosen, per_snip, pixels = apply(named["one reading (scale 1)"], readings, scales)
    assert [d.ids for d in chosen] == [[1], [4]] and pixels == 1.0
    with pytest.raises(SystemExit, match="1.3"):
        policies(scales, [(1.0, 1.3)])


def test_reading_policy_reads_the_rest_only_on_disagreement():
    from benchmarks.reading_policy import apply, policies
    from model.decoding import Decoded

    scales = (1.0, 1.5, 2.0)
    agree = [Decoded([1], 0.8), Decoded([1], 0.7), Decoded([2], 0.99)]
    differ = [Decoded([1], 0.8), Decoded([3], 0.7), Decoded([2], 0.99)]
    cut = [Decoded([1], 0.8, stopped="length"), Decoded([1], 0.7), Decoded([2], 0.99)]
    policy = next(p for p in policies(scales, thresholds=()) if p.first == 2)
    chosen, per_snip, pixels = apply(policy, [agree, differ, cut], scales)
    assert [d.ids for d in chosen] == [[1], [2], [2]]
    assert per_snip == pytest.approx(8 / 3) and pixels == pytest.approx((3.25 + 7.25 + 7.25) / 3)
