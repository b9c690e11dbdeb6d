"""fastlayers.bench.timing's interleaved A/B loop and paired ratios (the benchmarks/ scripts use them)."""

import pytest

from fastlayers.bench.timing import interleaved, paired_ratios


def test_interleaved_calls_each_fn_in_turn():
    order = []
    fns = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    times, reps = interleaved(fns, rounds=3, reps={"a": 2, "b": 1}, warmup=1)
    assert reps == {"a": 2, "b": 1}
    assert order == ["a", "b"] + ["a", "a", "b"] * 3  # warm-up, then rounds alternate
    assert [len(times[k]) for k in "ab"] == [3, 3]
    assert all(t >= 0 for v in times.values() for t in v)


def test_interleaved_picks_reps_from_a_target_time():
    calls = {"n": 0}

    def f():
        calls["n"] += 1

    times, reps = interleaved({"f": f}, rounds=2, target_s=1e-4, warmup=0)
    assert 1 <= reps["f"] <= 500
    assert calls["n"] == 1 + 2 * reps["f"]  # one call to size reps, then the rounds


def test_paired_ratios():
    assert paired_ratios([2.0, 3.0, 4.0], [1.0, 1.0, 2.0]) == (2.0, 2.0, 3.0)
    assert paired_ratios([1.0, 3.0], [1.0, 1.0]) == (2.0, 1.0, 3.0)
    with pytest.raises(ValueError, match="same number"):
        paired_ratios([1.0], [1.0, 2.0])
