"""ONNX -> fastlayers graph Model.

Nodes are visited in the file's (topological) order. Initializers and Constant nodes are constants;
a node whose inputs are all constants is evaluated here with NumPy when it is one of the shape ops
exporters use to compute a Reshape target or Pad widths (Shape, Gather, Unsqueeze, Squeeze, Concat,
Cast, Identity, Reshape, Transpose, Slice, ConstantOfShape and the arithmetic ones). Shape(x) of a model tensor gives 0 for the
batch dimension, which a Reshape reads as ONNX's "copy this dimension": that is what
`x.view(x.size(0), -1)` exports to. Every other node becomes a fastlayers layer named after the node.
"""

from __future__ import annotations

import math

import numpy as np

import fastlayers as fl
from .. import nn as fnn
from ._common import require_onnx


class UnsupportedOnnxError(ValueError):
    """An ONNX node (named in the message with its operator) that fastlayers cannot run."""


class _Ctx:
    def __init__(self, opset):
        self.opset = opset
        self.consts: dict = {}
        self.tensors: dict = {}
        self.names: set = set()


def _attrs(node):
    onnx = require_onnx()
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _err(node, msg):
    return UnsupportedOnnxError(f"ONNX node {node.name or '(unnamed)'!r} (op {node.op_type}): {msg}")


def _const(ctx, node, i, what):
    name = node.input[i] if i < len(node.input) else ""
    if not name:
        return None
    if name not in ctx.consts:
        raise _err(node, f"{what} (input {i}, {name!r}) must be a constant (an initializer), not computed")
    return ctx.consts[name]


def _tensor(ctx, node, i):
    name = node.input[i]
    if name in ctx.tensors:
        return ctx.tensors[name]
    if name in ctx.consts:
        raise _err(node, f"input {i} ({name!r}) is a constant where fastlayers needs a model tensor")
    raise _err(node, f"input {i} ({name!r}) is not produced by any earlier node")


def _name(ctx, node, idx):
    base = node.name or f"{node.op_type.lower()}_{idx}"
    name, k = base, 1
    while name in ctx.names:
        name, k = f"{base}_{k}", k + 1
    ctx.names.add(name)
    return name


def _spatial(node, attrs, nd, x_shape, kernel):
    """(strides, symmetric pads, dilations) from ONNX conv/pool attributes, auto_pad resolved."""
    strides = tuple(attrs.get("strides", [1] * nd))
    dil = tuple(attrs.get("dilations", [1] * nd))
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("NOTSET", ""):
        pads = list(attrs.get("pads", [0] * (2 * nd)))
    elif auto == "VALID":
        pads = [0] * (2 * nd)
    elif auto in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for i in range(nd):
            size = x_shape[1 + i]
            out = -(-size // strides[i])
            total = max(0, (out - 1) * strides[i] + dil[i] * (kernel[i] - 1) + 1 - size)
            small, big = total // 2, total - total // 2
            begin.append(small if auto == "SAME_UPPER" else big)
            end.append(big if auto == "SAME_UPPER" else small)
        pads = begin + end
    else:
        raise _err(node, f"auto_pad={auto!r} is not supported")
    if pads[:nd] != pads[nd:]:
        raise _err(node, f"asymmetric pads {pads} are not supported (fastlayers pads each side equally)")
    return strides, tuple(pads[:nd]), dil


def _layer(node, cls, *args, **kwargs):
    try:
        return cls(*args, **kwargs)
    except (TypeError, ValueError) as e:
        raise _err(node, f"fastlayers {cls.__name__} refused the attributes: {e}") from e


def _call(node, layer, x):
    try:
        return layer(x)
    except (TypeError, ValueError) as e:
        raise _err(node, str(e)) from e


def _set_params(layer, **arrays):
    for k, v in arrays.items():
        if v is not None:
            p = getattr(layer, k)
            p.data = np.ascontiguousarray(v, dtype=np.float32).reshape(p.shape)


# --- handlers: (ctx, node, attrs, name) -> output tensor ----------------------------------------------

def _conv(ctx, node, a, name):
    x = _tensor(ctx, node, 0)
    w, b = _const(ctx, node, 1, "the weight"), _const(ctx, node, 2, "the bias")
    nd = w.ndim - 2
    kernel = tuple(a.get("kernel_shape", w.shape[2:]))
    strides, pads, dil = _spatial(node, a, nd, x.shape, kernel)
    groups = int(a.get("group", 1))
    cls = {1: fnn.Conv1d, 2: fnn.Conv2d, 3: getattr(fnn, "Conv3d", None)}.get(nd)
    if cls is None:
        raise _err(node, f"{nd}-D convolution is not supported")
    c = x.shape[0]
    k = kernel if nd > 1 else kernel[0]
    sq = (lambda t: t) if nd > 1 else (lambda t: t[0])
    layer = _layer(node, cls, c, w.shape[0], k, stride=sq(strides), padding=sq(pads), dilation=sq(dil),
                   groups=groups, bias=b is not None, rng=0, name=name)
    _set_params(layer, weight=w, bias=b)
    return _call(node, layer, x)


def _conv_transpose(ctx, node, a, name):
    x = _tensor(ctx, node, 0)
    w, b = _const(ctx, node, 1, "the weight"), _const(ctx, node, 2, "the bias")
    if w.ndim != 4 or not hasattr(fnn, "ConvTranspose2d"):
        raise _err(node, f"only 2-D ConvTranspose is supported, got a {w.ndim - 2}-D one")
    if "output_shape" in a:
        raise _err(node, "the output_shape attribute is not supported (give pads and output_padding)")
    kernel = tuple(a.get("kernel_shape", w.shape[2:]))
    strides = tuple(a.get("strides", [1, 1]))
    pads = list(a.get("pads", [0, 0, 0, 0]))
    if pads[:2] != pads[2:] or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise _err(node, f"asymmetric pads {pads} / auto_pad are not supported")
    groups = int(a.get("group", 1))
    layer = _layer(node, fnn.ConvTranspose2d, x.shape[0], w.shape[1] * groups, kernel, stride=strides,
                   padding=tuple(pads[:2]), output_padding=tuple(a.get("output_padding", [0, 0])), groups=groups,
                   bias=b is not None, dilation=tuple(a.get("dilations", [1, 1])), rng=0, name=name)
    _set_params(layer, weight=w, bias=b)
    return _call(node, layer, x)


def _gemm(ctx, node, a, name):
    x = _tensor(ctx, node, 0)
    if a.get("transA", 0):
        raise _err(node, "transA=1 is not supported (the first input must be the (N, in) activations)")
    bmat = _const(ctx, node, 1, "B (the weight)")
    c = _const(ctx, node, 2, "C (the bias)")
    w = (bmat if a.get("transB", 0) else bmat.T) * float(a.get("alpha", 1.0))
    if len(x.shape) != 1:
        raise _err(node, f"Gemm needs (N, in) input, got per-sample shape {x.shape}")
    bias = None
    if c is not None:
        bias = np.broadcast_to(np.asarray(c, np.float32) * float(a.get("beta", 1.0)), (w.shape[0],))
    layer = _layer(node, fnn.Linear, w.shape[1], w.shape[0], bias=bias is not None, rng=0, name=name)
    _set_params(layer, weight=w, bias=bias)
    return _call(node, layer, x)


def _matmul(ctx, node, a, name):
    x = _tensor(ctx, node, 0)
    if node.input[1] not in ctx.consts:
        raise _err(node, "MatMul of two computed tensors is not supported (the second input must be a constant "
                         "weight)")
    bmat = ctx.consts[node.input[1]]
    if bmat.ndim != 2:
        raise _err(node, f"the constant operand must be 2-D, got shape {bmat.shape}")
    layer = _layer(node, fnn.Linear, bmat.shape[0], bmat.shape[1], bias=False, rng=0, name=name)
    _set_params(layer, weight=bmat.T)
    return _call(node, layer, x)


def _binary(ctx, node, a, name):
    op = node.op_type
    names = node.input[:2]
    const = [n in ctx.consts for n in names]
    if all(not c for c in const):
        xs = [_tensor(ctx, node, 0), _tensor(ctx, node, 1)]
        if xs[0].shape != xs[1].shape:
            raise _err(node, f"{op} of computed tensors needs one shape, got {xs[0].shape} and {xs[1].shape}")
        if op == "Add":
            return _call(node, fnn.Add(name=name), xs)
        if op == "Mul":
            return _call(node, fnn.Multiply(name=name), xs)
        raise _err(node, f"{op} of two computed tensors is not supported")
    if const[0]:
        if op in ("Sub", "Div"):
            raise _err(node, f"{op} with a constant first operand is not supported")
        names = names[::-1]
    x, c = ctx.tensors.get(names[0]), np.asarray(ctx.consts[names[1]], np.float32)
    if x is None:
        raise _err(node, f"input {names[0]!r} is not produced by any earlier node")
    kind, value = {"Add": ("add", c), "Sub": ("add", -c), "Mul": ("mul", c), "Div": ("mul", 1.0 / c)}[op]
    return _call(node, fnn.Constant(value, kind, name=name), x)


def _unary(cls, **fixed):
    def handler(ctx, node, a, name):
        kw = {k: (f(a) if callable(f) else f) for k, f in fixed.items()}
        return _call(node, _layer(node, cls, **kw, name=name), _tensor(ctx, node, 0))
    return handler


def _softmax(cls):
    def handler(ctx, node, a, name):
        x = _tensor(ctx, node, 0)
        rank = len(x.shape) + 1
        axis = int(a.get("axis", -1 if ctx.opset >= 13 else 1))
        axis = axis + rank if axis < 0 else axis
        if ctx.opset < 13 and any(s != 1 for s in x.shape[axis:]) and axis != rank - 1:
            raise _err(node, f"opset {ctx.opset} {node.op_type} over the flattened axes {axis}.. of per-sample shape "
                             f"{x.shape} is not supported (only the last axis)")
        return _call(node, cls(axis=axis if ctx.opset >= 13 or axis == rank - 1 else rank - 1, name=name), x)
    return handler


def _pool(kind):
    def handler(ctx, node, a, name):
        x = _tensor(ctx, node, 0)
        kernel = tuple(a["kernel_shape"])
        nd = len(kernel)
        strides, pads, dil = _spatial(node, a, nd, x.shape, kernel)
        if a.get("storage_order", 0):
            raise _err(node, "storage_order=1 is not supported")
        extra = {}
        if a.get("ceil_mode", 0):
            extra["ceil_mode"] = True
        if any(d != 1 for d in dil):
            extra["dilation"] = dil
        if kind == "avg":
            extra["count_include_pad"] = bool(a.get("count_include_pad", 0))
        if kind == "lp":
            cls = getattr(fnn, "LPPool2d", None) or fnn.LpPool2d
            p = float(a.get("p", 2))
            if any(pads):
                raise _err(node, "LpPool with pads is not supported")
            layer = _layer(node, cls, p, kernel, stride=strides, **extra, name=name)
            return _call(node, layer, x)
        cls = {("max", 2): fnn.MaxPool2d, ("avg", 2): fnn.AvgPool2d, ("max", 3): getattr(fnn, "MaxPool3d", None),
               ("avg", 3): getattr(fnn, "AvgPool3d", None)}.get((kind, nd))
        if cls is None:
            raise _err(node, f"{nd}-D pooling is not supported")
        if len(node.output) > 1 and node.output[1]:
            raise _err(node, "the Indices output is not supported")
        layer = _layer(node, cls, kernel, stride=strides, padding=pads, **extra, name=name)
        return _call(node, layer, x)
    return handler


def _global_pool(kind):
    def handler(ctx, node, a, name):
        x = _tensor(ctx, node, 0)
        if len(x.shape) != 3:
            raise _err(node, f"only 2-D global pooling (N, C, H, W) is supported, got per-sample shape {x.shape}")
        cls = getattr(fnn, "AdaptiveAvgPool2d" if kind == "avg" else "AdaptiveMaxPool2d", None)
        if cls is not None:
            return _call(node, cls(1, name=name), x)
        if kind != "avg":
            raise _err(node, "GlobalMaxPool needs fastlayers' AdaptiveMaxPool2d, which this build lacks")
        y = _call(node, fnn.GlobalAvgPool2d(name=name), x)
        return _call(node, fnn.Reshape((x.shape[0], 1, 1), name=_name(ctx, node, name + "_reshape")), y)
    return handler


def _reduce_mean(ctx, node, a, name):
    """ReduceMean over the spatial axes of (N, C, H, W): what torch's dynamo exporter writes for
    AdaptiveAvgPool2d(1) / x.mean((2, 3)). Other axes are not supported."""
    x = _tensor(ctx, node, 0)
    rank = len(x.shape) + 1
    if "axes" in a:
        axes = list(a["axes"])
    elif len(node.input) > 1 and node.input[1]:
        axes = [int(v) for v in np.atleast_1d(_const(ctx, node, 1, "axes"))]
    else:
        axes = list(range(rank))
    axes = sorted(v + rank if v < 0 else v for v in axes)
    if rank != 4 or axes != [2, 3]:
        raise _err(node, f"a mean over axes {axes} of per-sample shape {x.shape} is not supported (only over H, W "
                         f"of (N, C, H, W): global average pooling)")
    if not a.get("keepdims", 1):
        return _call(node, fnn.GlobalAvgPool2d(name=name), x)
    return _global_pool("avg")(ctx, node, a, name)


def _batchnorm(ctx, node, a, name):
    x = _tensor(ctx, node, 0)
    scale, bias, mean, var = (_const(ctx, node, i, w) for i, w in
                              enumerate(("scale", "B", "input_mean", "input_var"), start=1))
    if len(node.output) > 1 and any(node.output[1:]):
        raise _err(node, "training-mode outputs (running mean/var) are not supported")
    eps = float(a.get("epsilon", 1e-5))
    c = x.shape[0]
    cls = getattr(fnn, {1: "BatchNorm1d", 2: "BatchNorm1d", 3: "BatchNorm2d", 4: "BatchNorm3d"}[len(x.shape)], None)
    if cls is not None:
        layer = _layer(node, cls, c, eps=eps, name=name)
        _set_params(layer, weight=scale, bias=bias)
        layer._buffers["running_mean"] = np.ascontiguousarray(mean, np.float32)
        layer._buffers["running_var"] = np.ascontiguousarray(var, np.float32)
        layer.eval()
        return _call(node, layer, x)
    # no BatchNorm layers in this build: the eval-mode affine map x * s + t per channel
    s = (scale / np.sqrt(var + eps)).astype(np.float32)
    t = (bias - mean * s).astype(np.float32)
    shape = (c,) + (1,) * (len(x.shape) - 1)
    y = _call(node, fnn.Constant(s.reshape(shape), "mul", name=name), x)
    return _call(node, fnn.Constant(t.reshape(shape), "add", name=_name(ctx, node, name + "_shift")), y)


def _flatten(ctx, node, a, name):
    x = _tensor(ctx, node, 0)
    if int(a.get("axis", 1)) != 1:
        raise _err(node, f"axis={a.get('axis')} is not supported (only 1: keep the batch)")
    return _call(node, fnn.Flatten(name=name), x)


def _reshape(ctx, node, a, name):
    x = _tensor(ctx, node, 0)
    shape = [int(s) for s in _const(ctx, node, 1, "the target shape")]
    if a.get("allowzero", 0) and 0 in shape:
        raise _err(node, "allowzero=1 with a 0 in the shape is not supported")
    shape = [x.shape[i - 1] if s == 0 and 0 < i <= len(x.shape) else s for i, s in enumerate(shape)]
    if not shape or (shape[0] == -1 and -1 in shape[1:]):
        raise _err(node, f"target shape {shape} does not keep the batch dimension of per-sample shape {x.shape}")
    rest = shape[1:]  # shape[0]: 0 (copied), -1 or the batch size the file was exported with
    return _call(node, fnn.Reshape(rest, name=name), x)


def _concat(ctx, node, a, name):
    xs = [_tensor(ctx, node, i) for i in range(len(node.input))]
    axis = int(a["axis"])
    if axis == 0 or axis == -(len(xs[0].shape) + 1):
        raise _err(node, "concatenation along the batch axis is not supported")
    return _call(node, fnn.Concatenate(axis=axis, name=name), xs)


def _pad(ctx, node, a, name):
    x = _tensor(ctx, node, 0)
    mode = a.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    pads = list(a["pads"]) if "pads" in a else [int(v) for v in _const(ctx, node, 1, "pads")]
    value = float(a.get("value", 0.0))
    if len(node.input) > 2 and node.input[2]:
        value = float(np.asarray(_const(ctx, node, 2, "constant_value")).reshape(()))
    if len(node.input) > 3 and node.input[3]:
        raise _err(node, "the axes input is not supported")
    rank = len(x.shape) + 1
    begin, end = pads[:rank], pads[rank:]
    if begin[0] or end[0]:
        raise _err(node, "padding the batch dimension is not supported")
    torch_mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}.get(mode)
    if torch_mode is None:
        raise _err(node, f"mode={mode!r} is not supported")
    if not hasattr(fl, "pad"):
        raise _err(node, "this build of fastlayers has no pad op")
    first = next((i for i in range(1, rank) if begin[i] or end[i]), rank)
    flat = []
    for i in range(rank - 1, first - 1, -1):
        flat += [begin[i], end[i]]
    layer = fnn.Pad(flat, torch_mode, value if torch_mode == "constant" else None, name=name)
    return _call(node, layer, x)


def _resize(ctx, node, a, name):
    x = _tensor(ctx, node, 0)
    mode = a.get("mode", b"nearest")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    ctm = a.get("coordinate_transformation_mode", b"half_pixel")
    ctm = ctm.decode() if isinstance(ctm, bytes) else ctm
    nearest = a.get("nearest_mode", b"round_prefer_floor")
    nearest = nearest.decode() if isinstance(nearest, bytes) else nearest
    if node.op_type == "Upsample":
        scales, sizes = (a.get("scales") or _const(ctx, node, 1, "scales")), None
    else:
        scales = _const(ctx, node, 2, "scales") if len(node.input) > 2 and node.input[2] else None
        sizes = _const(ctx, node, 3, "sizes") if len(node.input) > 3 and node.input[3] else None
        if scales is not None and np.size(scales) == 0:
            scales = None
        if node.op_type == "Resize" and ctx.opset < 11:  # opset 10: (X, scales)
            scales, sizes = _const(ctx, node, 1, "scales"), None
    if a.get("antialias", 0) or "axes" in a:
        raise _err(node, "antialias / axes are not supported")
    if mode == "nearest" and (ctm == "asymmetric" and nearest == "floor" or node.op_type == "Upsample"):
        kw = dict(mode="nearest")
    elif mode == "linear" and ctm in ("half_pixel", "pytorch_half_pixel", "align_corners"):
        kw = dict(mode="bilinear" if len(x.shape) == 3 else "linear", align_corners=ctm == "align_corners")
    else:
        raise _err(node, f"mode={mode!r} with coordinate_transformation_mode={ctm!r}"
                         f"{' nearest_mode=' + repr(nearest) if mode == 'nearest' else ''} is not supported "
                         f"(supported: nearest/asymmetric/floor and linear/half_pixel|align_corners)")
    if sizes is not None:
        kw["size"] = tuple(int(s) for s in np.asarray(sizes)[2:])
    elif scales is not None:
        sc = [float(s) for s in np.asarray(scales)]
        if sc[0] != 1 or sc[1] != 1:
            raise _err(node, f"scales {sc} resize the batch or channel axis")
        kw["scale_factor"] = tuple(sc[2:])
    else:
        raise _err(node, "neither scales nor sizes is given")
    if not hasattr(fl, "interpolate") or not hasattr(fnn, "Upsample"):
        raise _err(node, "this build of fastlayers has no interpolate op")
    return _call(node, _layer(node, fnn.Upsample, **kw, name=name), x)


def _identity(ctx, node, a, name):
    return _tensor(ctx, node, 0)


_HANDLERS = {
    "Conv": _conv, "ConvTranspose": _conv_transpose, "Gemm": _gemm, "MatMul": _matmul,
    "Add": _binary, "Sub": _binary, "Mul": _binary, "Div": _binary,
    "Relu": _unary(fnn.ReLU), "Sigmoid": _unary(fnn.Sigmoid), "Tanh": _unary(fnn.Tanh),
    "LeakyRelu": _unary(fnn.LeakyReLU, negative_slope=lambda a: float(a.get("alpha", 0.01))),
    "Softmax": _softmax(fnn.Softmax), "LogSoftmax": _softmax(getattr(fnn, "LogSoftmax", None)),
    "MaxPool": _pool("max"), "AveragePool": _pool("avg"), "LpPool": _pool("lp"),
    "GlobalAveragePool": _global_pool("avg"), "GlobalMaxPool": _global_pool("max"), "ReduceMean": _reduce_mean,
    "BatchNormalization": _batchnorm, "Flatten": _flatten, "Reshape": _reshape, "Concat": _concat,
    "Dropout": _identity, "Identity": _identity, "Pad": _pad, "Resize": _resize, "Upsample": _resize,
}
if getattr(fnn, "LogSoftmax", None) is None:
    del _HANDLERS["LogSoftmax"]

SUPPORTED_OPS = tuple(sorted(_HANDLERS))


# --- constant folding ---------------------------------------------------------------------------------

def _fold(ctx, node, a):
    """Evaluate a node over constants (shape arithmetic); None if it is not one we fold."""
    op = node.op_type
    onnx = require_onnx()
    vals = [ctx.consts.get(n) if n else None for n in node.input]
    if op == "Constant":
        if "value" in a:
            return [onnx.numpy_helper.to_array(a["value"])]
        for k in ("value_float", "value_int"):
            if k in a:
                return [np.array(a[k])]
        for k in ("value_floats", "value_ints"):
            if k in a:
                return [np.array(a[k])]
        return None
    if op == "Shape" and node.input[0] in ctx.tensors:  # 0 marks the batch: Reshape copies it
        shape = np.array((0,) + ctx.tensors[node.input[0]].shape, np.int64)
        return [shape[a.get("start", 0):a.get("end", None)]]
    if any(v is None for v, n in zip(vals, node.input) if n) or not node.input:
        return None
    if op in ("Identity", "Cast"):
        v = vals[0]
        if op == "Cast":
            v = v.astype(onnx.helper.tensor_dtype_to_np_dtype(a["to"]))
        return [v]
    if op == "Gather":
        return [np.take(vals[0], vals[1], axis=a.get("axis", 0))]
    if op == "Unsqueeze":
        axes = a.get("axes") if "axes" in a else list(vals[1])
        v = vals[0]
        for ax in sorted(int(x) if x >= 0 else int(x) + v.ndim + len(axes) for x in axes):
            v = np.expand_dims(v, ax)
        return [v]
    if op == "Squeeze":
        axes = a.get("axes") if "axes" in a else (list(vals[1]) if len(vals) > 1 else None)
        return [np.squeeze(vals[0], axis=tuple(int(x) for x in axes) if axes is not None else None)]
    if op == "Concat":
        return [np.concatenate([np.atleast_1d(v) for v in vals], axis=a["axis"])]
    if op == "Reshape":
        return [vals[0].reshape([int(s) if s != 0 else vals[0].shape[i] for i, s in enumerate(vals[1])])]
    if op == "ConstantOfShape":
        fill = onnx.numpy_helper.to_array(a["value"]) if "value" in a else np.zeros(1, np.float32)
        return [np.full([int(v) for v in vals[0]], fill.reshape(-1)[0], dtype=fill.dtype)]
    if op == "Slice":
        data, starts, ends = vals[0], vals[1], vals[2]
        axes = vals[3] if len(vals) > 3 and vals[3] is not None else range(len(starts))
        steps = vals[4] if len(vals) > 4 and vals[4] is not None else [1] * len(starts)
        index = [slice(None)] * data.ndim
        for ax, st, en, sp in zip(axes, starts, ends, steps):
            index[int(ax)] = slice(int(st), int(en), int(sp))
        return [data[tuple(index)]]
    if op == "Transpose":
        return [np.transpose(vals[0], a.get("perm"))]
    if op in ("Add", "Sub", "Mul", "Div"):
        f = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op]
        out = f(vals[0], vals[1])
        if op == "Div" and vals[0].dtype.kind in "iu":
            out = np.floor_divide(vals[0], vals[1])
        return [out.astype(vals[0].dtype)]
    return None


# --- the model ----------------------------------------------------------------------------------------

def _value_shape(vi):
    dims = []
    for d in vi.type.tensor_type.shape.dim:
        dims.append(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None)
    return dims


def load(source, input_shape=None, *, check: bool = True):
    """A fastlayers graph Model (in eval mode) from an ONNX file name, bytes or ModelProto.

    input_shape: the per-sample shape (batch omitted) of the input, or a list of them, needed only
    when the file leaves a non-batch dimension symbolic. check: run onnx.checker first."""
    onnx = require_onnx()
    if isinstance(source, (bytes, bytearray)):
        proto = onnx.load_from_string(bytes(source))
    elif hasattr(source, "graph"):
        proto = source
    else:
        proto = onnx.load(source)
    if check:
        onnx.checker.check_model(proto)
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None:
        raise UnsupportedOnnxError("the model imports no default-domain (ai.onnx) opset")
    ctx = _Ctx(opset)
    g = proto.graph
    for init in g.initializer:
        ctx.consts[init.name] = onnx.numpy_helper.to_array(init)
    graph_inputs = [vi for vi in g.input if vi.name not in ctx.consts]
    shapes = None
    if input_shape is not None:
        shapes = [tuple(input_shape)] if not isinstance(input_shape[0], (tuple, list)) else \
            [tuple(s) for s in input_shape]
        if len(shapes) != len(graph_inputs):
            raise ValueError(f"input_shape gives {len(shapes)} shapes for {len(graph_inputs)} model inputs")
    inputs = []
    for k, vi in enumerate(graph_inputs):
        if vi.type.tensor_type.elem_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE,
                                                 onnx.TensorProto.FLOAT16):
            raise UnsupportedOnnxError(f"input {vi.name!r}: only floating-point inputs are supported")
        dims = _value_shape(vi)
        shape = shapes[k] if shapes else tuple(dims[1:])
        if shapes is None and (not dims or any(d is None for d in dims[1:])):
            raise ValueError(f"input {vi.name!r} has shape {dims} (None: symbolic); give input_shape= "
                             f"(per sample, batch omitted)")
        t = fnn.Input(shape, name=vi.name)
        ctx.tensors[vi.name] = t
        ctx.names.add(vi.name)
        inputs.append(t)
    for idx, node in enumerate(g.node):
        if node.domain not in ("", "ai.onnx"):
            raise _err(node, f"operator domain {node.domain!r} is not supported")
        a = _attrs(node)
        folded = _fold(ctx, node, a)
        if folded is not None:
            for name, v in zip(node.output, folded):
                ctx.consts[name] = np.asarray(v)
            continue
        handler = _HANDLERS.get(node.op_type)
        if handler is None:
            raise _err(node, f"operator {node.op_type} is not supported; supported: {', '.join(SUPPORTED_OPS)}")
        out = handler(ctx, node, a, _name(ctx, node, idx))
        ctx.tensors[node.output[0]] = out
    outputs = []
    for vi in g.output:
        if vi.name not in ctx.tensors:
            raise UnsupportedOnnxError(f"output {vi.name!r} is a constant or is not computed by the graph")
        outputs.append(ctx.tensors[vi.name])
    model = fnn.Model(inputs if len(inputs) > 1 else inputs[0], outputs if len(outputs) > 1 else outputs[0])
    model.eval()
    return model
