"""Sequential: a stack of layers that is also a trainable model (compile / fit / evaluate / predict,
summary, save / load, PyTorch state_dict import: see training.TrainableModel)."""

from __future__ import annotations

import numpy as np

from ..memory import arena as _arena
from . import layers as _layers
from . import plan as _plan
from . import training as _training
from .layers import Layer
from .training import FORMAT_VERSION, TrainableModel, load_model

__all__ = ["Sequential", "load_model", "FORMAT_VERSION"]  # the last two live in training (kept here for imports)


# Layers whose backward can skip the input's gradient (backward(grad_out, need_input_grad=False)).
_SKIPS_INPUT_GRAD = (_layers.Conv2d, _layers.Conv1d, _layers.Conv3d, _layers.ConvTranspose2d)


class Sequential(TrainableModel):
    def __init__(self, layers=(), loss=None, input_shape=None):
        super().__init__(loss=loss, input_shape=input_shape)
        if isinstance(layers, Layer):
            layers = [layers]
        if not isinstance(layers, (list, tuple)):
            raise TypeError(f"layers must be a list of fastlayers.nn Layers, got {type(layers).__name__}")
        self.layers: list[Layer] = list(layers)
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{i}] must be a fastlayers.nn Layer, got {type(layer).__name__}")

    def add(self, layer: Layer):
        if not isinstance(layer, Layer):
            raise TypeError(f"layer must be a fastlayers.nn Layer, got {type(layer).__name__}")
        self.layers.append(layer)
        _plan.invalidate(self)
        return self

    def children(self):
        return self.layers

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def describe(self, width: int = 44) -> str:
        return f"Sequential({len(self.layers)} layers)"

    def __repr__(self):
        inner = "".join(f"\n  ({i}) {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)"

    # --- the pass -------------------------------------------------------------------------------
    def forward(self, x, training=None):
        training = self._is_training(training)
        self._planned = False
        if training:
            _plan.invalidate(self)  # the weights are about to change
        else:  # eval mode on a NumPy array: the whole model in one C++ call where it has a plan (nn/plan.py)
            y = _plan.run(self, x)
            self._planned = y is not None
            if y is not None:
                return y
        release = not training and _training.in_inference()  # predict/evaluate: no backward follows
        with _arena():  # activations from the block cache (fastlayers.memory)
            for layer in self.layers:
                x = layer.forward(x, training)
                if release:
                    layer.release_cache()
        return x

    def backward(self, grad_out, need_input_grad: bool = True):
        """Backpropagate grad_out through every layer; returns the input's gradient. With
        need_input_grad=False (training) a first convolution (Conv2d, Conv1d, Conv3d, ConvTranspose2d)
        skips its backward-data pass and None is returned."""
        _plan.check_backward(self)
        first = self.layers[0] if self.layers else None
        with _arena():
            for layer in reversed(self.layers):
                if layer is first and not need_input_grad and isinstance(layer, _SKIPS_INPUT_GRAD):
                    grad_out = layer.backward(grad_out, need_input_grad=False)
                else:
                    grad_out = layer.backward(grad_out)
        return grad_out

    # --- description ----------------------------------------------------------------------------
    def _summary_table(self, shape):
        rows = []
        if shape is not None:
            x = self._put(np.zeros((1,) + tuple(shape), np.float32))
            for i, layer in enumerate(self.layers):
                x = layer.forward(x, training=False)
                rows.append((i, layer, "(N, " + ", ".join(str(s) for s in x.shape[1:]) + ")"))
        else:
            rows = [(i, layer, "?") for i, layer in enumerate(self.layers)]
        head = f"{'#':>3}  {'layer':<44} {'output shape':<20} {'params':>10}"
        lines = []
        for i, layer, out in rows:
            desc = layer.describe()
            frozen = "" if layer.trainable else "  (frozen)"
            lines.append(f"{i:>3}  {desc:<44} {out:<20} {layer.num_parameters():>10,}{frozen}")
        return head, lines

    # --- persistence ----------------------------------------------------------------------------
    def _children_to_config(self, to_config) -> dict:
        return {"layers": [to_config(child) for child in self.layers]}

    @classmethod
    def _from_children_config(cls, d: dict, from_config):
        return cls([from_config(c) for c in d["layers"]])
