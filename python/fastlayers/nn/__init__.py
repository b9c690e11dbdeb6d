"""Layers, losses, initialisers, the Sequential and graph (functional-API) models and the course's
ready-made models.

    import fastlayers as fl
    from fastlayers import nn
    model = nn.models.mnist_cnn(seed=0)
    model.compile(fl.optim.SGD(model.parameters(), lr=0.05, momentum=0.9))
    history = model.fit(x, y, epochs=5, batch_size=64, validation_split=0.1)

    inp = nn.Input((1, 28, 28))                       # the functional API (see nn.graph)
    x = nn.ReLU()(nn.Conv2d(1, 8, 3, padding=1)(inp))
    x = nn.Add()([x, nn.Conv2d(8, 8, 3, padding=1)(x)])
    out = nn.Linear(8, 10)(nn.GlobalAvgPool2d()(x))
    model = nn.Model(inp, out, loss="cross_entropy")

Layers call the public ops (fastlayers.<op>), so the same model runs on NumPy (CPU kernels) or,
after model.to("cuda"), on CuPy arrays (CUDA kernels).
"""

from . import init, models  # noqa: F401
from ._ops import use_ops  # noqa: F401
from .callbacks import (Callback, CSVLogger, EarlyStopping, History, LearningRateScheduler,  # noqa: F401
                        ModelCheckpoint, ReduceLROnPlateau)
from .layers import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .sequential import Sequential  # noqa: F401
from .training import FORMAT_VERSION, TrainableModel, load_model  # noqa: F401
from .merge import Add, Concatenate, Multiply  # noqa: F401
from .graph import Input, Model, SymbolicTensor  # noqa: F401
from .shape import Constant, Identity, Pad, Reshape  # noqa: F401
from . import graph  # noqa: F401
from .torch_import import from_torch  # noqa: F401
from . import zoo  # noqa: F401
