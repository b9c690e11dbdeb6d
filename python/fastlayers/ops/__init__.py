"""The public op API: plain functions over arrays, forward and `<name>_backward`.

NumPy arrays run on the CPU kernels, CuPy arrays on the CUDA kernels. Argument conventions follow
torch.nn.functional. Inputs are converted to contiguous float32 (a copy only when needed) and are
never modified, except by the in-place optimizer updates, which say so.
"""

from .activation import *  # noqa: F401,F403
from .concat import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .conv3d import *  # noqa: F401,F403
from .conv_transpose import *  # noqa: F401,F403
from .dropout import *  # noqa: F401,F403
from .elementwise import *  # noqa: F401,F403
from .gemm import *  # noqa: F401,F403
from .interpolate import *  # noqa: F401,F403
from .linear import *  # noqa: F401,F403
from .loss import *  # noqa: F401,F403
from .optim import *  # noqa: F401,F403
from .pad import *  # noqa: F401,F403
from .pool import *  # noqa: F401,F403
from .pool3d import *  # noqa: F401,F403
import sys as _sys

# Looked up in sys.modules: `from . import dropout` would give the function dropout (and
# `linear` the function linear), which the star imports above bind over the submodule names.
_FAMILIES = ("activation", "concat", "conv", "conv3d", "conv_transpose", "dropout", "elementwise", "gemm",
             "interpolate", "linear", "loss", "optim", "pad", "pool", "pool3d")
__all__ = [name for fam in _FAMILIES for name in _sys.modules[f"{__name__}.{fam}"].__all__]
