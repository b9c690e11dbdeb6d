"""The PyTorch bridge (torch is an optional dependency: `pip install fastlayers[torch]`).

    import torch, fastlayers.torch as flt
    a = flt.to_array(t)              # the tensor's memory as a NumPy (CPU) / CuPy (CUDA) array: no copy
    t2 = flt.to_tensor(fl.relu(a))   # and back: no copy
    y = flt.functional.conv2d(x, w, b, padding=1)     # fastlayers kernels inside torch autograd
    model.conv1 = flt.Conv2d(3, 64, 3, padding=1)     # drop-in modules (torch's arguments and names)
    flt.convert(model)                                # swap every supported layer in place
    fl_model = flt.to_fastlayers(torch_seq)           # whole models, weights by state_dict key
    torch_seq = flt.to_torch(fl_model)

See docs/interop.md.
"""

try:
    import torch as _torch  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("fastlayers.torch needs PyTorch: pip install 'fastlayers[torch]' (or torch)") from e

from . import functional  # noqa: F401,E402
from ._interop import cuda_stream_of, shares_memory, to_array, to_tensor  # noqa: F401,E402
from .convert import UnsupportedModuleError, copy_weights, to_fastlayers, to_torch  # noqa: F401,E402
from .functional import FastlayersFunction  # noqa: F401,E402
from .modules import *  # noqa: F401,F403,E402
from .modules import why_not  # noqa: F401,E402
