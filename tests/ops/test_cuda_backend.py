"""Device plumbing of the CUDA backend.

Without a CUDA build every test here skips with a reason; without a GPU (or CuPy) only the tests
that need no device run: the CUDA module mirrors the CPU module's kernels (same names, one more
argument: the stream), errors become RuntimeError naming the op. With a GPU: mixing NumPy and CuPy
is a TypeError naming the arguments, outputs are CuPy arrays on the current device, work runs on
CuPy's current stream, and every SGEMM kernel path matches NumPy for all transposes and odd sizes.
"""

import re

import numpy as np
import pytest

import fastlayers as fl
from fastlayers import _backend

from ..helpers import CUDA_SKIP_REASON, assert_close, reduction_tol

needs_build = pytest.mark.skipif(not fl.cuda.is_built(),
                                 reason="fastlayers was built without CUDA (FASTLAYERS_CUDA=OFF or no nvcc)")
needs_gpu = pytest.mark.skipif(not fl.cuda.is_available(), reason=CUDA_SKIP_REASON)

# sgemm_path codes (csrc/cuda/gemm_plan.h: Path).
SGEMM_PATHS = {"auto": 0, "tile128": 1, "tile64": 2, "tile32": 3, "reference": 4, "tile16x64": 5, "tile16x8": 6,
               "narrow": 7}


def _kernels(module):
    return {n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))}


def _arity(fn) -> int:
    """Number of arguments of a pybind11 function, read from its signature line."""
    first = fn.__doc__.strip().splitlines()[0]
    args = re.match(r"\w+\((.*)\)", first).group(1)
    return 0 if not args.strip() else args.count(",") + 1


# Kernels that are deliberately CPU-only or whose CUDA twin belongs to another issue.
CPU_ONLY = {
    "set_num_threads", "get_num_threads", "detected_isa", "active_isa", "set_max_isa",
    "philox4x32_10",  # the bare generator, for known-answer tests on the host
    "InferencePlan",  # the eval-mode plan executor (nn/plan.py) is CPU-only; CuPy models run layer by layer
    # NumPy's block cache (fastlayers.memory): host memory only; CuPy arrays use CuPy's own pool
    "arena_handler", "arena_set_handler", "arena_stats", "arena_release_free", "arena_set_limit",
    # the CPU SGEMM's B packed once (the CPU plan's dense weights), bound for its tests only
    "sgemm_pack_b", "sgemm_packed_b_cols", "sgemm_packed_b_floats", "sgemm_prepacked_b",
}
OTHER_ISSUE = re.compile(r"conv|pool|im2col|col2im")  # CUDA backend 2
# CUDA kernels that also take a caller-owned workspace (ws, ws_floats) before the stream, sized by
# a *_workspace_floats query (Backend.workspace takes it from CuPy's pool): kernel -> its query
# (matmul's sgemm_batched runs sgemm per batch entry, one workspace for all of them).
WORKSPACE = {"sgemm": "sgemm_workspace_floats", "bias_grad_rows": "bias_grad_rows_workspace_floats",
             "sgemm_batched": "sgemm_workspace_floats"}


@needs_build
def test_cuda_module_mirrors_cpu_kernels():
    """Every CPU kernel in this issue's families has a CUDA twin with the stream appended."""
    cpu, cuda = _backend._cpu, _backend._cuda
    missing, wrong = [], []
    for name in sorted(_kernels(cpu) - CPU_ONLY):
        if OTHER_ISSUE.search(name) or name.startswith("probe"):
            continue
        if not hasattr(cuda, name):
            missing.append(name)
        elif _arity(getattr(cuda, name)) != _arity(getattr(cpu, name)) + 1 + 2 * (name in WORKSPACE):
            wrong.append(f"{name}: cpu {_arity(getattr(cpu, name))} args, cuda {_arity(getattr(cuda, name))}")
    assert not missing, f"CPU kernels without a CUDA twin: {missing}"
    assert not wrong, f"CUDA twins whose arguments are not the CPU's plus the stream: {wrong}"
    for name, query in WORKSPACE.items():
        assert hasattr(cuda, query), (name, query)


@needs_build
def test_sgemm_too_many_tiles_is_runtime_error_before_any_launch():
    # 2^23 x 2^23 in 128x128 tiles is 2^32 blocks: refused before any pointer is touched.
    with pytest.raises(RuntimeError, match="sgemm"):
        _backend._cuda.sgemm_path(SGEMM_PATHS["tile128"], 1, False, False, 2**23, 2**23, 1, 1.0,
                                  0, 1, 0, 2**23, 0.0, 0, 2**23, 0, 0, 0)


@needs_build
def test_sgemm_path_rejects_unknown_path_and_splits():
    with pytest.raises(ValueError, match="path"):
        _backend._cuda.sgemm_path(9, 0, False, False, 1, 1, 1, 1.0, 0, 1, 0, 1, 0.0, 0, 1, 0, 0, 0)
    with pytest.raises(ValueError, match="splits"):
        _backend._cuda.sgemm_path(1, 33, False, False, 1, 1, 1, 1.0, 0, 1, 0, 1, 0.0, 0, 1, 0, 0, 0)


@needs_build
def test_cuda_module_refuses_numpy_arrays_as_device_pointers():
    """A NumPy array's host pointer must never reach a kernel as a device pointer (the CPU module
    accepts arrays; the CUDA module only addresses)."""
    x = np.zeros(4, np.float32)
    with pytest.raises(TypeError, match="NumPy.*device pointer"):
        _backend._cuda.relu_forward(x, 0, 4, 0)
    with pytest.raises(TypeError, match="NumPy.*device pointer"):
        _backend._cuda.sgemm(False, False, 2, 2, 2, 1.0, 0, 2, x, 2, 0.0, 0, 2, 0, 0, 0)
    _backend._cpu.relu_forward(x, x, 4)  # the CPU module still takes arrays


@needs_build
def test_plans_without_a_device():
    """The host-side planners the launchers use (and benchmarks/cuda_plan.py prints) answer
    without a GPU: every forced path has a plan, the auto plan keeps its tiles >= 85% busy on the
    dense shapes, and split-K asks for splits * M * N floats of workspace."""
    cu = _backend._cuda
    for name, path in SGEMM_PATHS.items():
        p = cu.sgemm_plan(100, 200, 1024, 132, path, 0)
        assert p["path"] == name or path == 0, (name, p)
    for m, n, k in [(256, 256, 784), (256, 784, 256), (256, 10, 256), (10, 256, 256), (100, 200, 1024), (100, 10, 200)]:
        p = cu.sgemm_plan(m, n, k)
        assert p["efficiency"] >= 0.85, (m, n, k, p)
        assert p["workspace_floats"] == (p["splits"] * m * n if p["splits"] > 1 else 0) or p["transposed"]
    forced = cu.sgemm_plan(256, 256, 784, 132, SGEMM_PATHS["tile64"], 4)
    assert forced["splits"] == 4 and forced["workspace_floats"] == 4 * 256 * 256
    conv = cu.conv2d_plan((8, 3, 224, 224, 64, 11, 11, 55, 55, 4, 4, 2, 2, 1, 1, 1), 1)
    assert conv["z_count"] == 16 and conv["efficiency"] >= 0.85  # 4 x 4 stride phases


@needs_build
@pytest.mark.skipif(fl.cuda.device_count() > 0, reason="needs a machine WITHOUT a GPU: the launch must fail")
def test_launch_failure_is_runtime_error_naming_the_op():
    # No device: the launch fails and the check turns it into RuntimeError("fastlayers.relu: ...").
    with pytest.raises(RuntimeError, match=r"fastlayers\.relu: CUDA error"):
        _backend._cuda.relu_forward(0, 0, 1, 0)
    with pytest.raises(RuntimeError, match=r"fastlayers\.sgemm: CUDA error"):
        _backend._cuda.sgemm(False, False, 4, 4, 0, 1.0, 0, 4, 0, 4, 0.0, 0, 4, 0, 0, 0)


@needs_build
def test_empty_problems_launch_nothing():
    # n == 0 / M == 0 return before any CUDA call, so they succeed even without a GPU.
    _backend._cuda.relu_forward(0, 0, 0, 0)
    _backend._cuda.sgemm(False, False, 0, 5, 3, 1.0, 0, 3, 0, 5, 0.0, 0, 5, 0, 0, 0)
    _backend._cuda.softmax_forward(0, 0, 0, 4, 1, 0)


# ----------------------------------------------------------------------------- GPU only


@needs_gpu
def test_mixing_numpy_and_cupy_is_type_error_naming_arguments():
    import cupy as cp

    x = np.ones(4, np.float32)
    with pytest.raises(TypeError, match=r"grad_out.*GPU.*x.*CPU"):
        fl.relu_backward(cp.asarray(x), x)
    with pytest.raises(TypeError, match=r"x.*GPU.*grad_out.*CPU"):
        fl.relu_backward(x, cp.asarray(x))


@needs_gpu
def test_outputs_are_cupy_on_the_current_device():
    import cupy as cp

    for dev in range(cp.cuda.runtime.getDeviceCount()):
        with cp.cuda.Device(dev):
            y = fl.relu(cp.asarray(np.array([-1.0, 2.0], np.float32)))
            assert isinstance(y, cp.ndarray) and y.device.id == dev and y.dtype == np.float32
            np.testing.assert_array_equal(y.get(), [0.0, 2.0])


@needs_gpu
def test_work_runs_on_the_current_stream():
    import cupy as cp

    rng = np.random.default_rng(5)
    x = rng.standard_normal(1 << 20).astype(np.float32)
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        xd = cp.asarray(x)
        y = fl.relu(xd)
        done = cp.cuda.Event()
        done.record(stream)
    stream.synchronize()
    assert done.done
    np.testing.assert_array_equal(y.get(), np.maximum(x, 0))


def _sgemm_case(rng, ta, tb, m, n, k, pad, offset):
    """op(A) (m x k), op(B) (k x n) as stored with leading-dimension padding, and a base offset
    of `offset` floats (offset 1 breaks 16-byte alignment, forcing the scalar-load variant)."""
    a_rows, a_cols = (k, m) if ta else (m, k)
    b_rows, b_cols = (n, k) if tb else (k, n)
    A = rng.standard_normal((a_rows, a_cols + pad)).astype(np.float32)
    B = rng.standard_normal((b_rows, b_cols + pad)).astype(np.float32)
    return A, B, a_cols + pad, b_cols + pad


@needs_gpu
@pytest.mark.parametrize("path", list(SGEMM_PATHS))
@pytest.mark.parametrize("splits", [0, 3])
@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, False), (True, True)])
@pytest.mark.parametrize("m,n,k,pad,offset", [
    (1, 1, 1, 0, 0), (7, 5, 3, 0, 0), (64, 64, 16, 0, 0), (130, 129, 21, 0, 0),
    (257, 131, 67, 3, 1), (300, 260, 40, 4, 0), (3, 517, 33, 0, 1), (129, 2, 200, 1, 0),
])
def test_sgemm_paths_match_numpy(path, splits, ta, tb, m, n, k, pad, offset):
    import cupy as cp

    ws = cp.empty(max(3 * m * n, 1), cp.float32)  # room for 3 K splits
    rng = np.random.default_rng(m * 1000 + n + k)
    A, B, lda, ldb = _sgemm_case(rng, ta, tb, m, n, k, pad, offset)
    opA = A[:, : (m if ta else k)].T if ta else A[:, :k]
    opB = B[:, :k].T if tb else B[:, :n]
    for alpha, beta in [(1.0, 0.0), (-0.5, 0.75)]:
        C0 = rng.standard_normal((m, n + pad)).astype(np.float32)
        if beta == 0:
            C0[:] = np.nan  # beta == 0 must ignore C's old contents
        # Offset views: the kernels see base pointers that are not 16-byte aligned.
        Ad = cp.asarray(np.concatenate([np.zeros(offset, np.float32), A.ravel()]))[offset:]
        Bd = cp.asarray(np.concatenate([np.zeros(offset, np.float32), B.ravel()]))[offset:]
        Cd = cp.asarray(np.concatenate([np.zeros(offset, np.float32), C0.ravel()]))[offset:]
        _backend._cuda.sgemm_path(SGEMM_PATHS[path], splits, ta, tb, m, n, k, alpha, Ad.data.ptr, lda,
                                  Bd.data.ptr, ldb, beta, Cd.data.ptr, n + pad, ws.data.ptr, ws.size,
                                  cp.cuda.get_current_stream().ptr)
        got = Cd.get().reshape(m, n + pad)
        want = alpha * (opA.astype(np.float64) @ opB.astype(np.float64))
        if beta != 0:
            want += beta * C0[:, :n]
        assert_close(got[:, :n], want, reduction_tol(k) * (abs(alpha) + abs(beta) + 1),
                     f"sgemm {path} ta={ta} tb={tb} {m}x{n}x{k}")
        # Padding columns of C are never written.
        np.testing.assert_array_equal(got[:, n:], C0[:, n:])


@needs_gpu
def test_sgemm_k0_scales_c():
    import cupy as cp

    c = cp.full((3, 5), 2.0, dtype=cp.float32)
    _backend.cuda_backend().run("sgemm", False, False, 3, 5, 0, 1.0, c, 0, c, 5, 0.5, c, 5, 0, 0)
    np.testing.assert_array_equal(c.get(), np.full((3, 5), 1.0, np.float32))


@needs_gpu
def test_loss_reduction_is_deterministic():
    import cupy as cp

    be = _backend.cuda_backend()
    rng = np.random.default_rng(9)
    p = cp.asarray(rng.standard_normal(1_000_003).astype(np.float32))
    t = cp.asarray(rng.standard_normal(1_000_003).astype(np.float32))
    outs = []
    for _ in range(3):
        loss = cp.empty((), cp.float32)
        ws = cp.empty(be._module.loss_workspace_doubles, cp.float64)  # reduction 2 = "mean"
        be.run("mse_loss_forward", p, t, loss, p.size, 0.0, 2, ws, 0)
        outs.append(float(loss))
    assert outs[0] == outs[1] == outs[2]
    want = float(np.mean((p.get().astype(np.float64) - t.get()) ** 2))
    assert abs(outs[0] - want) <= 1e-6 * want


def _training_ops(fl_, xs):
    """A conv -> relu -> pool -> dense -> softmax step, forward and backward, on arrays xs (dict)."""
    y = fl_.conv2d(xs["x"], xs["w"], xs["b"], 1, 1)
    a = fl_.relu(y)
    p = fl_.max_pool2d(a, 2, 2)
    f = p.reshape(p.shape[0], -1)
    z = fl_.linear(f, xs["wd"], xs["bd"])
    s = fl_.log_softmax(z)
    gz = fl_.log_softmax_backward(xs["gs"], s)
    gf, gwd, gbd = fl_.linear_backward(gz, f, xs["wd"])
    gx, gw, gb = fl_.conv2d_backward(xs["gy"], xs["x"], xs["w"], 1, 1)
    d = fl_.dropout(z, 0.25, seed=3)
    return {"y": y, "z": z, "s": s, "gz": gz, "gf": gf, "gwd": gwd, "gbd": gbd, "gx": gx, "gw": gw, "gb": gb, "d": d}


def _training_inputs(rng):
    # N*P*Q = 8*16*16 = 2048 > 1024: the weight gradient splits its reduction (workspace from the pool).
    return {"x": rng.standard_normal((8, 3, 16, 16)).astype(np.float32),
            "w": rng.standard_normal((5, 3, 3, 3)).astype(np.float32),
            "b": rng.standard_normal(5).astype(np.float32),
            "wd": rng.standard_normal((10, 5 * 8 * 8)).astype(np.float32),
            "bd": rng.standard_normal(10).astype(np.float32),
            "gs": rng.standard_normal((8, 10)).astype(np.float32),
            "gy": rng.standard_normal((8, 5, 16, 16)).astype(np.float32)}


@needs_gpu
def test_kernels_run_on_the_current_stream_captured_in_a_cuda_graph():
    """Every kernel of a training step goes to CuPy's current stream: captured on a non-blocking
    stream into a CUDA graph, then replayed on new inputs, the graph must reproduce the CPU results
    for those inputs. A kernel launched on the legacy default stream (or any other) would run once,
    eagerly, during the capture instead of being recorded (or break the capture), and the replay
    would leave its output stale."""
    import cupy as cp

    rng = np.random.default_rng(11)
    first, second = _training_inputs(rng), _training_inputs(rng)
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        dev = {k: cp.asarray(v) for k, v in first.items()}
        _training_ops(fl, dev)  # warm-up on this stream: the pool has blocks for the capture
        stream.synchronize()
        stream.begin_capture(cp.cuda.runtime.streamCaptureModeGlobal)
        out = _training_ops(fl, dev)
        graph = stream.end_capture()
        for inputs in (second, first):
            for k, v in inputs.items():
                dev[k].set(v, stream=stream)  # in place: the graph reads these buffers
            graph.launch(stream=stream)
            stream.synchronize()
            want = _training_ops(fl, inputs)
            for k, v in want.items():
                k_red = 27 if k in ("y", "gx") else 320 if k in ("z", "gf") else 2048
                assert_close(out[k].get(), v, reduction_tol(k_red) * 4, f"graph replay: {k}")


@needs_gpu
@pytest.mark.skipif(not fl.cuda.is_available() or fl.cuda.device_count() < 2, reason="needs two GPUs")
def test_arrays_on_another_device_are_refused_and_each_device_gets_its_own_workspace():
    import cupy as cp

    rng = np.random.default_rng(12)
    inputs = _training_inputs(rng)
    with cp.cuda.Device(1):
        dev1 = {k: cp.asarray(v) for k, v in inputs.items()}
    with cp.cuda.Device(0):
        with pytest.raises(ValueError, match=r"x is on GPU 1 but the current device is GPU 0"):
            fl.conv2d(dev1["x"], dev1["w"])
    with cp.cuda.Device(1):
        out = _training_ops(fl, dev1)  # conv weight-gradient and GEMM workspaces come from device 1's pool
        want = _training_ops(fl, inputs)
        for k in ("gw", "gwd", "z"):
            assert out[k].device.id == 1
            assert_close(out[k].get(), want[k], reduction_tol(2048) * 4, k)
