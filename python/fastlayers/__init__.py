"""fastlayers: hand-written OpenMP/SIMD and CUDA kernels for deep-learning layers.

    import fastlayers as fl
    y = fl.conv2d(x, w, b, stride=1, padding=1)   # NumPy -> CPU kernels, CuPy -> CUDA kernels

See fastlayers.ops for the op list, fastlayers.reference for the NumPy oracle.
"""

from . import cuda, memory, ops, reference  # noqa: F401
from ._threads import get_num_threads, set_num_threads  # noqa: F401
from .ops import *  # noqa: F401,F403
from .ops.gemm import PackedGemmB, pack_gemm_b  # noqa: F401  (a constant B packed once for fl.gemm)
from . import data, nn, optim  # noqa: F401,E402  (fl.nn.Sequential, fl.optim.SGD; after the ops they call)
from . import distributed  # noqa: F401,E402  (loads no MPI until fl.distributed.init())

__version__ = "0.1.0"


def __getattr__(name):
    # fastlayers.torch and fastlayers.onnx need optional packages: imported on first use only
    if name in ("torch", "onnx"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
