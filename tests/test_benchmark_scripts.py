"""The benchmark scripts run (tiny shapes) and their arithmetic is right: the figures they
print are what issues close on."""

import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_longest_fitting_length_from_a_straight_line():
    bench = load("layers")
    # 10 MiB fixed + 2 MiB per step: 4096 MiB holds (4096 - 10) / 2 = 2043 steps.
    assert bench.longest_fitting([(100, 210), (200, 410), (400, 810)], 4096) == (2043, True)
    assert bench.longest_fitting([(100, 210), (4000, 8010)], 4096) == (2043, False)
    assert bench.longest_fitting([(100, 50), (200, 50)], 4096) is None
    assert bench.checkpoint_interval(400) == 20 and bench.checkpoint_interval(401) == 21
    assert bench.checkpoint_interval(400, 7) == 7


def test_layers_benchmark_times_every_variant_on_tiny_shapes(capsys):
    bench = load("layers")
    results, memory = bench.main(["--cells", "gru", "--steps", "3", "7", "--batch", "2", "--dim", "3",
                                  "--units", "4", "--repeats", "1", "--no-memory"])
    assert [r["steps"] for r in results] == [3, 7] and memory == []
    for row in results:
        assert set(row["ms"]) == {"ours", "ckpt", "keras", "floor"}
        assert all(v > 0 for v in row["ms"].values())
    out = capsys.readouterr().out
    assert "ours/keras" in out and "ckpt/floor" in out


def test_translation_benchmark_refuses_an_unknown_vocabulary(tmp_path):
    bench = load("translation")
    with pytest.raises(SystemExit, match="unknown bogus"):
        bench.main(["--vocabs", "subword,bogus", "--out", str(tmp_path / "out")])
