"""The NumPy oracle: one plain function per op, forward and backward, with the same names and
signatures as the public ops in fastlayers.ops. Written for clarity, not speed; runs in float32
and float64 (the backward passes are checked against finite differences in float64)."""

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
