"""fastlayers.memory: the block cache behind NumPy's allocations inside the models' passes
(csrc/cpu/arena.cpp as a NEP 49 handler, csrc/bindings/cpu_arena.cpp)."""

import gc
import os
import subprocess
import sys

import numpy as np
import pytest

from fastlayers import memory

try:
    from numpy._core.multiarray import get_handler_name
except ImportError:  # NumPy 1.x
    from numpy.core.multiarray import get_handler_name

pytestmark = pytest.mark.skipif(not memory.arena_enabled(), reason="FASTLAYERS_ARENA=0 in the environment")

MiB = 1 << 20


def test_handler_is_set_inside_and_restored_after():
    before = get_handler_name()
    with memory.arena():
        assert get_handler_name() == "fastlayers_arena"
        with memory.arena():  # nested
            assert get_handler_name() == "fastlayers_arena"
        assert get_handler_name() == "fastlayers_arena"
    assert get_handler_name() == before


def test_handler_restored_when_the_block_raises():
    before = get_handler_name()
    with pytest.raises(RuntimeError):
        with memory.arena():
            raise RuntimeError("boom")
    assert get_handler_name() == before


def test_large_arrays_come_from_the_cache_and_are_reused():
    gc.collect()  # cache-backed arrays of earlier tests in reference cycles: freed now, not mid-test
    memory.release_cached()
    s0 = memory.arena_stats()
    with memory.arena():
        a = np.empty(3 * MiB // 4, np.float32)  # 3 MiB
        assert get_handler_name(a) == "fastlayers_arena"
        a[:] = 7.0
        addr = a.ctypes.data
        assert addr % 64 == 0
        s1 = memory.arena_stats()
        assert s1["in_use_bytes"] >= s0["in_use_bytes"] + 3 * MiB
        del a
        gc.collect()
        assert memory.arena_stats()["cached_bytes"] >= 3 * MiB
        b = np.zeros(3 * MiB // 4, np.float32)  # calloc on the reused block: zeroed
        assert b.ctypes.data == addr
        assert not b.any()
    s2 = memory.arena_stats()
    assert s2["hits"] >= s0["hits"] + 1
    del b  # freed after the context: still back to the cache (the array kept its handler)
    gc.collect()
    assert memory.arena_stats()["in_use_bytes"] == s0["in_use_bytes"]
    assert memory.release_cached() >= 3 * MiB
    assert memory.arena_stats()["cached_bytes"] == 0


def test_small_arrays_use_malloc():
    s0 = memory.arena_stats()
    with memory.arena():
        a = np.ones(1000, np.float64)
    assert memory.arena_stats()["in_use_bytes"] == s0["in_use_bytes"]
    assert a.sum() == 1000


def test_resize_keeps_the_data_across_sizes():
    # ndarray.resize reallocates: within the cache, out of it (below 1 MiB) and back.
    with memory.arena():
        a = np.arange(2 * MiB // 8, dtype=np.float64)  # 2 MiB
        want = a.copy()
        a.resize(4 * MiB // 8, refcheck=False)  # grows: a new block, data copied
        np.testing.assert_array_equal(a[:want.size], want)
        assert not a[want.size:].any()
        a.resize(1000, refcheck=False)  # below the cache's sizes: back to malloc
        np.testing.assert_array_equal(a, want[:1000])
        a.resize(3 * MiB // 8, refcheck=False)  # a malloc'd array grows with realloc
        np.testing.assert_array_equal(a[:1000], want[:1000])
    del a
    gc.collect()


def test_limit_unmaps_free_blocks_past_it():
    memory.release_cached()
    old = memory.arena_stats()["limit_bytes"]
    try:
        memory.set_arena_limit(4 * MiB)
        with memory.arena():
            arrays = [np.empty(3 * MiB, np.uint8) for _ in range(3)]
        del arrays
        gc.collect()
        assert memory.arena_stats()["cached_bytes"] <= 4 * MiB
    finally:
        memory.set_arena_limit(old)
        memory.release_cached()
    for bad in (-1, True, 2.5, 2**63, 2**64, "1"):
        with pytest.raises(ValueError, match="nbytes"):
            memory.set_arena_limit(bad)
    assert memory.arena_stats()["limit_bytes"] == old


def test_impossible_sizes_raise_memory_error_and_leave_the_cache_as_it_was():
    s0 = memory.arena_stats()
    with memory.arena():
        for n in (2**62, 2**63 - 1):
            with pytest.raises(MemoryError):
                np.empty(n, np.uint8)
            with pytest.raises(MemoryError):
                np.zeros(n, np.uint8)
        a = np.ones(0, np.float32)  # empty and 0-d arrays: malloc's, as NumPy's own handler does
        z = np.array(3.0, np.float32)
    assert a.size == 0 and float(z) == 3.0
    s1 = memory.arena_stats()
    assert (s1["in_use_bytes"], s1["cached_bytes"]) == (s0["in_use_bytes"], s0["cached_bytes"])


def test_training_step_reuses_blocks_and_matches_without_the_cache(tmp_path):
    # Two identical models and steps, one with the cache switched off in a child process: the same
    # weights after three steps (the cache changes where arrays live, not what is computed).
    script = tmp_path / "step.py"
    script.write_text(
        "import numpy as np, fastlayers as fl, sys\n"
        "from fastlayers.nn import zoo\n"
        "m = zoo.resnet18(num_classes=10, input_size=64, seed=0)\n"
        "opt = fl.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)\n"
        "loss = fl.nn.losses.get_loss('cross_entropy')\n"
        "rng = np.random.default_rng(0)\n"
        "x = rng.standard_normal((8, 3, 64, 64)).astype(np.float32); y = rng.integers(0, 10, 8)\n"
        "for _ in range(3):\n"
        "    loss(m.forward(x, training=True), y)\n"
        "    m.backward(loss.backward(), need_input_grad=False)\n"
        "    opt.step()\n"
        "np.save(sys.argv[1], np.concatenate([p.data.ravel() for p in m.parameters()]))\n"
        "s = fl.memory.arena_stats(); print(s['hits'], s['misses'])\n")
    outs = {}
    for flag in ("1", "0"):
        env = dict(os.environ, FASTLAYERS_ARENA=flag, OMP_NUM_THREADS="1")
        r = subprocess.run([sys.executable, str(script), str(tmp_path / f"w{flag}.npy")], env=env,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        outs[flag] = [int(v) for v in r.stdout.split()]
    hits, misses = outs["1"]
    assert hits > misses > 0  # steps 2 and 3 reuse step 1's blocks
    assert outs["0"] == [0, 0]
    np.testing.assert_array_equal(np.load(tmp_path / "w1.npy"), np.load(tmp_path / "w0.npy"))


def test_large_op_outputs_come_from_the_cache_small_ones_do_not():
    # Outside arena(): the ops allocate their large NumPy outputs from the cache themselves, so a
    # loop of large calls reuses warm blocks (fastlayers.memory.cached_empty).
    import fastlayers as fl

    gc.collect()
    memory.release_cached()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 1, 28, 28)).astype(np.float32)
    w = rng.standard_normal((32, 1, 5, 5)).astype(np.float32)
    assert get_handler_name() != "fastlayers_arena"
    y = fl.conv2d(x, w)  # 16 x 32 x 24 x 24 floats: 1.2 MB
    assert get_handler_name(y) == "fastlayers_arena" and y.flags.owndata
    np.testing.assert_allclose(y, fl.reference.conv2d(x, w), rtol=1e-4, atol=1e-4)
    small = fl.relu(x[:1])
    assert get_handler_name(small) != "fastlayers_arena"
    addr = y.ctypes.data
    del y
    gc.collect()
    s0 = memory.arena_stats()
    y2 = fl.conv2d(x, w)
    assert y2.ctypes.data == addr  # the freed output's block, handed out again
    assert memory.arena_stats()["hits"] == s0["hits"] + 1
    assert get_handler_name() != "fastlayers_arena"  # the op restored NumPy's handler
    # The ops' fast paths too: the residual add and the plain and packed-B gemm (1.3 MB results).
    a, b = rng.standard_normal((640, 64)).astype(np.float32), rng.standard_normal((64, 512)).astype(np.float32)
    for out in (fl.add(y2, y2), fl.gemm(a, b), fl.gemm(a, fl.pack_gemm_b(b))):
        assert get_handler_name(out) == "fastlayers_arena"
    np.testing.assert_array_equal(fl.add(y2, y2), y2 + y2)
    assert get_handler_name(fl.gemm(a[:8], b)) != "fastlayers_arena"
    z = memory.cached_empty((3, MiB), np.uint8, zeroed=True)
    assert get_handler_name(z) == "fastlayers_arena" and not z.any()
    for bad_shape in ((-1, MiB), "x"):
        with pytest.raises((ValueError, TypeError)):
            memory.cached_empty(bad_shape)
    in_use = memory.arena_stats()["in_use_bytes"]
    for huge in ((2**62,), 2**63 - 1):  # NumPy's own MemoryError, the cache left as it was
        for zeroed in (False, True):
            with pytest.raises(MemoryError):
                memory.cached_empty(huge, np.uint8, zeroed=zeroed)
    with pytest.raises(ValueError, match="too big"):
        memory.cached_empty((2**31, 2**31, 4), np.uint8)
    assert memory.arena_stats()["in_use_bytes"] == in_use
    del y2, z
    gc.collect()


def test_ops_use_numpys_allocator_with_the_cache_off(tmp_path):
    code = ("import numpy as np, fastlayers as fl\n"
            "try:\n    from numpy._core.multiarray import get_handler_name\n"
            "except ImportError:\n    from numpy.core.multiarray import get_handler_name\n"
            "y = fl.conv2d(np.ones((16, 1, 28, 28), np.float32), np.ones((32, 1, 5, 5), np.float32))\n"
            "print(get_handler_name(y), fl.memory.arena_stats()['misses'])\n")
    env = dict(os.environ, FASTLAYERS_ARENA="0", OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["default_allocator", "0"]
