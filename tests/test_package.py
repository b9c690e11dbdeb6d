"""The package imports and answers its runtime questions on any machine, GPU or not."""

import subprocess
import sys

import pytest

import fastlayers as fl


def test_cuda_queries_never_raise():
    assert isinstance(fl.cuda.is_built(), bool)
    assert isinstance(fl.cuda.is_available(), bool)
    assert fl.cuda.device_count() >= 0
    if not fl.cuda.is_built():
        assert not fl.cuda.is_available()


def test_import_without_any_gpu_visible():
    # CUDA_VISIBLE_DEVICES="" hides every GPU: import and queries still work (static cudart).
    code = "import fastlayers as fl; print(fl.cuda.is_available(), fl.cuda.device_count())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"}, check=True)
    assert out.stdout.split() == ["False", "0"]


def test_threads_roundtrip():
    old = fl.get_num_threads()
    try:
        fl.set_num_threads(1)
        assert fl.get_num_threads() == 1
    finally:
        fl.set_num_threads(old)
    with pytest.raises(ValueError, match="n"):
        fl.set_num_threads(0)


def test_gpu_array_without_cuda_is_a_clear_error():
    cupy = pytest.importorskip("cupy", reason="CuPy not installed: cannot make a GPU array")
    if fl.cuda.is_built():
        pytest.skip("this build has CUDA; the error applies to CPU-only builds")
    with pytest.raises(TypeError, match="without CUDA"):
        fl.relu(cupy.ones(3, dtype=cupy.float32))


def test_every_public_op_has_a_reference():
    missing = [n for n in fl.ops.__all__ if not hasattr(fl.reference, n)]
    assert not missing, f"ops without a NumPy reference: {missing}"
