"""Layers, losses, initialisers, the Sequential model and the course's ready-made models.

    import fastlayers as fl
    from fastlayers import nn
    model = nn.models.mnist_cnn(seed=0)
    model.compile(fl.optim.SGD(model.parameters(), lr=0.05, momentum=0.9))
    history = model.fit(x, y, epochs=5, batch_size=64, validation_split=0.1)

Layers call the public ops (fastlayers.<op>), so the same model runs on NumPy (CPU kernels) or,
after model.to("cuda"), on CuPy arrays (CUDA kernels).
"""

from . import init, models  # noqa: F401
from ._ops import use_ops  # noqa: F401
from .callbacks import (Callback, CSVLogger, EarlyStopping, History, LearningRateScheduler,  # noqa: F401
                        ModelCheckpoint, ReduceLROnPlateau)
from .layers import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .sequential import FORMAT_VERSION, Sequential, load_model  # noqa: F401
