"""Drop-in torch modules that run on fastlayers' kernels, and `convert`, which swaps them in.

Each class subclasses the torch.nn module of the same name: same constructor arguments, parameter
and buffer names, state_dict, repr and training/eval behaviour; only forward differs (it calls
fastlayers.torch.functional, so backward runs fastlayers' backward kernels).

    model.conv1 = fastlayers.torch.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
    fastlayers.torch.convert(model)   # every supported layer swapped in place, weights kept
"""

from __future__ import annotations

import warnings

import torch
from torch import nn as tnn

from . import functional as FF

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose2d", "Linear", "MaxPool2d", "AvgPool2d", "LPPool2d",
           "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "MaxPool3d", "AvgPool3d", "BatchNorm1d", "BatchNorm2d",
           "BatchNorm3d", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "Dropout", "Upsample",
           "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "NLLLoss",
           "SoftMarginLoss", "HingeEmbeddingLoss", "convert", "SUPPORTED"]


class Conv1d(tnn.Conv1d):
    def forward(self, input):
        return FF.conv1d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups,
                         padding_mode=self.padding_mode)


class Conv2d(tnn.Conv2d):
    def forward(self, input):
        return FF.conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups,
                         padding_mode=self.padding_mode)


class Conv3d(tnn.Conv3d):
    def forward(self, input):
        return FF.conv3d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ConvTranspose2d(tnn.ConvTranspose2d):
    def forward(self, input, output_size=None):
        output_padding = self.output_padding
        if output_size is not None:
            output_padding = self._output_padding(input, output_size, self.stride, self.padding, self.kernel_size,
                                                  2, self.dilation)
        return FF.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding, output_padding,
                                   self.groups, self.dilation)


class Linear(tnn.Linear):
    def forward(self, input):
        return FF.linear(input, self.weight, self.bias)


class MaxPool2d(tnn.MaxPool2d):
    def forward(self, input):
        return FF.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                             self.return_indices)


class AvgPool2d(tnn.AvgPool2d):
    def forward(self, input):
        return FF.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                             self.count_include_pad, self.divisor_override)


class LPPool2d(tnn.LPPool2d):
    def forward(self, input):
        return FF.lp_pool2d(input, self.norm_type, self.kernel_size, self.stride, self.ceil_mode)


class AdaptiveAvgPool2d(tnn.AdaptiveAvgPool2d):
    def forward(self, input):
        return FF.adaptive_avg_pool2d(input, self.output_size)


class AdaptiveMaxPool2d(tnn.AdaptiveMaxPool2d):
    def forward(self, input):
        return FF.adaptive_max_pool2d(input, self.output_size, self.return_indices)


class MaxPool3d(tnn.MaxPool3d):
    def forward(self, input):
        return FF.max_pool3d(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                             self.return_indices)


class AvgPool3d(tnn.AvgPool3d):
    def forward(self, input):
        return FF.avg_pool3d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                             self.count_include_pad, self.divisor_override)


class _BatchNormMixin:
    def forward(self, input):  # torch.nn.modules.batchnorm._BatchNorm.forward, with our batch_norm
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        bn_training = self.training or (self.running_mean is None and self.running_var is None)
        use_running = not self.training or self.track_running_stats
        return FF.batch_norm(input, self.running_mean if use_running else None,
                             self.running_var if use_running else None, self.weight, self.bias, bn_training,
                             factor, self.eps)


class BatchNorm1d(_BatchNormMixin, tnn.BatchNorm1d):
    pass


class BatchNorm2d(_BatchNormMixin, tnn.BatchNorm2d):
    pass


class BatchNorm3d(_BatchNormMixin, tnn.BatchNorm3d):
    pass


class ReLU(tnn.ReLU):
    def forward(self, input):
        return FF.relu(input)


class LeakyReLU(tnn.LeakyReLU):
    def forward(self, input):
        return FF.leaky_relu(input, self.negative_slope)


class Sigmoid(tnn.Sigmoid):
    def forward(self, input):
        return FF.sigmoid(input)


class Tanh(tnn.Tanh):
    def forward(self, input):
        return FF.tanh(input)


class Softmax(tnn.Softmax):
    def forward(self, input):
        return FF.softmax(input, self.dim)


class LogSoftmax(tnn.LogSoftmax):
    def forward(self, input):
        return FF.log_softmax(input, self.dim)


class Dropout(tnn.Dropout):
    def forward(self, input):
        return FF.dropout(input, self.p, self.training)


class Upsample(tnn.Upsample):
    def forward(self, input):
        return FF.interpolate(input, self.size, self.scale_factor, self.mode, self.align_corners,
                              recompute_scale_factor=self.recompute_scale_factor)


class MSELoss(tnn.MSELoss):
    def forward(self, input, target):
        return FF.mse_loss(input, target, reduction=self.reduction)


class L1Loss(tnn.L1Loss):
    def forward(self, input, target):
        return FF.l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(tnn.SmoothL1Loss):
    def forward(self, input, target):
        return FF.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(tnn.HuberLoss):
    def forward(self, input, target):
        return FF.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class SoftMarginLoss(tnn.SoftMarginLoss):
    def forward(self, input, target):
        return FF.soft_margin_loss(input, target, reduction=self.reduction)


class HingeEmbeddingLoss(tnn.HingeEmbeddingLoss):
    def forward(self, input, target):
        return FF.hinge_embedding_loss(input, target, margin=self.margin, reduction=self.reduction)


class BCEWithLogitsLoss(tnn.BCEWithLogitsLoss):
    def forward(self, input, target):
        return FF.binary_cross_entropy_with_logits(input, target, self.weight, reduction=self.reduction,
                                                   pos_weight=self.pos_weight)


class CrossEntropyLoss(tnn.CrossEntropyLoss):
    def forward(self, input, target):
        return FF.cross_entropy(input, target, self.weight, ignore_index=self.ignore_index,
                                reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(tnn.NLLLoss):
    def forward(self, input, target):
        return FF.nll_loss(input, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction)


# torch class -> (our class, the op it needs). convert() swaps exactly these types (not subclasses,
# whose forward may do more).
SUPPORTED = {getattr(tnn, c.__name__): c for c in (
    Conv1d, Conv2d, Conv3d, ConvTranspose2d, Linear, MaxPool2d, AvgPool2d, LPPool2d, AdaptiveAvgPool2d,
    AdaptiveMaxPool2d, MaxPool3d, AvgPool3d, BatchNorm1d, BatchNorm2d, BatchNorm3d, ReLU, LeakyReLU, Sigmoid,
    Tanh, Softmax, LogSoftmax, Dropout, Upsample, MSELoss, L1Loss, SmoothL1Loss, HuberLoss, BCEWithLogitsLoss,
    CrossEntropyLoss, NLLLoss, SoftMarginLoss, HingeEmbeddingLoss)}

_NEEDS = {"Conv3d": "conv3d", "ConvTranspose2d": "conv_transpose2d", "AdaptiveAvgPool2d": "adaptive_avg_pool2d",
          "AdaptiveMaxPool2d": "adaptive_max_pool2d", "MaxPool3d": "max_pool3d", "AvgPool3d": "avg_pool3d",
          "BatchNorm1d": "batch_norm", "BatchNorm2d": "batch_norm", "BatchNorm3d": "batch_norm",
          "Upsample": "interpolate", "L1Loss": "l1_loss", "SmoothL1Loss": "smooth_l1_loss",
          "HuberLoss": "huber_loss", "NLLLoss": "nll_loss", "SoftMarginLoss": "soft_margin_loss",
          "HingeEmbeddingLoss": "hinge_embedding_loss"}


def why_not(module) -> str | None:
    """None if convert() would swap this module, else the reason it stays native."""
    import fastlayers as fl

    cls = SUPPORTED.get(type(module))
    if cls is None:
        return f"{type(module).__name__} has no fastlayers version"
    if isinstance(module, (tnn.Conv1d, tnn.Conv2d)) and module.padding_mode != "zeros" and not hasattr(fl, "pad"):
        return f"padding_mode={module.padding_mode!r} needs fastlayers.pad"
    if isinstance(module, (tnn.Conv1d, tnn.Conv2d, tnn.Conv3d)) and isinstance(module.padding, str) \
            and not hasattr(fl, "pad"):
        return f"padding={module.padding!r} needs a newer fastlayers"
    if isinstance(module, tnn.MaxPool3d) and module.return_indices:
        return "MaxPool3d(return_indices=True) is not supported"
    if isinstance(module, tnn.Upsample) and module.mode not in ("nearest", "linear", "bilinear"):
        return f"Upsample(mode={module.mode!r}) is not supported"
    if any(p.dtype not in (torch.float32, torch.float64) for p in module.parameters(recurse=False)):
        return "fastlayers computes in float32 (or float64 through its reference)"
    need = _NEEDS.get(cls.__name__)
    if need and not hasattr(fl, need):
        return f"this fastlayers has no {need} op"
    return None


def convert(model: tnn.Module, *, inplace: bool = True, warn: bool = True) -> tnn.Module:
    """Swap every supported layer of `model` (itself included) for its fastlayers version, keeping
    its parameters and buffers (the same tensor objects: an optimizer made before keeps working).
    Returns the model (a new object only when `model` itself is swapped, or inplace=False, which
    converts a deep copy). Layers that stay native are listed in one warning (warn=True)."""
    import copy

    if not isinstance(model, tnn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not inplace:
        model = copy.deepcopy(model)
    skipped = []

    def swap(m, path):
        if type(m) in SUPPORTED:
            reason = why_not(m)
            if reason is None:
                new = SUPPORTED[type(m)].__new__(SUPPORTED[type(m)])
                new.__dict__.update(m.__dict__)
                return new
            skipped.append(f"{path or type(m).__name__}: {reason}")
            return m
        for name, child in list(m._modules.items()):
            if child is not None:
                new = swap(child, f"{path}.{name}" if path else name)
                if new is not child:
                    m._modules[name] = new
        return m

    model = swap(model, "")
    if skipped and warn:
        warnings.warn("fastlayers.torch.convert kept these layers native: " + "; ".join(skipped), stacklevel=2)
    return model
