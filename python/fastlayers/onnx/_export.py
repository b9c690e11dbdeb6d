"""fastlayers model -> ONNX (opset 17, dynamic batch). Sequential, Residual and graph Models (nested
freely) are walked layer by layer; each layer becomes one or a few ONNX nodes, its weights
initializers. Shapes (needed by Linear on >2-D input, adaptive pools and 'same' padding) come from
the model's per-sample input shape, propagated with the layers' own shape inference."""

from __future__ import annotations

import numpy as np

from .. import nn as fnn
from ..nn.graph import _infer_shapes
from ._common import OPSET, require_onnx


class _Builder:
    def __init__(self):
        self.nodes, self.inits, self.used = [], [], set()

    def fresh(self, base):
        base = base.replace("/", "_") or "t"
        name, k = base, 1
        while name in self.used:
            name, k = f"{base}_{k}", k + 1
        self.used.add(name)
        return name

    def const(self, base, value, dtype=np.float32):
        onnx = require_onnx()
        name = self.fresh(base)
        self.inits.append(onnx.numpy_helper.from_array(np.ascontiguousarray(np.asarray(value, dtype)), name))
        return name

    def node(self, op, inputs, base, **attrs):
        onnx = require_onnx()
        out = self.fresh(base)
        self.nodes.append(onnx.helper.make_node(op, list(inputs), [out], name=self.fresh("node_" + base),
                                                **{k: v for k, v in attrs.items() if v is not None}))
        return out


def _np(a):
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)


def _t(v, n):
    return list(v) if isinstance(v, (tuple, list)) else [int(v)] * n


def _unsupported(layer, what):
    return ValueError(f"cannot export layer {layer.name!r} ({type(layer).__name__}) to ONNX: {what}")


def _conv_pads(layer, shape, nd):
    pad = layer.padding
    if isinstance(pad, str):
        if pad == "valid":
            return [0] * (2 * nd)
        k, d = _t(layer.kernel_size, nd), _t(layer.dilation, nd)
        begin = [d[i] * (k[i] - 1) // 2 for i in range(nd)]
        return begin + [d[i] * (k[i] - 1) - begin[i] for i in range(nd)]
    return _t(pad, nd) * 2


def _emit(b, layer, ins, shapes):
    """ONNX nodes computing `layer` on tensors `ins` (names) of per-sample `shapes`; returns the
    output name(s)."""
    name = layer.name
    cfg = layer.get_config()
    x = ins[0]
    shape = shapes[0]
    if isinstance(layer, fnn.Sequential):
        for child in layer.layers:
            out_shapes, _ = _infer_shapes(child, [shape], False)
            x = _emit(b, child, [x], [shape])
            shape = out_shapes[0]
        return x
    if isinstance(layer, fnn.Model):
        g = layer.graph
        vals = {s: v for s, v in zip(g.inputs, ins)}
        for node in g.nodes:
            args = [vals[s] for s in node.inputs]
            outs = _emit(b, node.layer, args, [g.slot_shapes[s] for s in node.inputs])
            for s, v in zip(node.outputs, outs if node.multi_output else [outs]):
                vals[s] = v
        outs = [vals[s] for s in g.outputs]
        return outs if len(outs) > 1 else outs[0]
    if isinstance(layer, fnn.Residual):
        body = _emit(b, layer.body, [x], [shape])
        skip = x if layer.projection is None else _emit(b, layer.projection, [x], [shape])
        return b.node("Add", [body, skip], name)
    if isinstance(layer, (fnn.Add, fnn.Multiply)):
        op = "Add" if isinstance(layer, fnn.Add) else "Mul"
        y = ins[0]
        for other in ins[1:]:
            y = b.node(op, [y, other], name)
        return y
    if isinstance(layer, fnn.Concatenate):
        return b.node("Concat", ins, name, axis=int(layer.axis))
    if isinstance(layer, fnn.Linear):
        w, bias = _np(layer.weight.data), None if layer.bias is None else _np(layer.bias.data)
        wn = b.const(f"{name}.weight", w)
        if len(shape) == 1:
            args = [x, wn] + ([b.const(f"{name}.bias", bias)] if bias is not None else [])
            return b.node("Gemm", args, name, transB=1)
        y = b.node("MatMul", [x, b.const(f"{name}.weight_t", w.T)], name)
        return y if bias is None else b.node("Add", [y, b.const(f"{name}.bias", bias)], name + "_bias")
    conv_types = tuple(c for c in (fnn.Conv1d, fnn.Conv2d, getattr(fnn, "Conv3d", None)) if c is not None)
    if isinstance(layer, conv_types):
        w = _np(layer.weight.data)
        nd = w.ndim - 2
        mode = cfg.get("padding_mode", "zeros")
        pads = _conv_pads(layer, shape, nd)
        if mode != "zeros":
            onnx_mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}.get(mode)
            if onnx_mode is None:
                raise _unsupported(layer, f"padding_mode={mode!r}")
            full = [0, 0] + pads[:nd] + [0, 0] + pads[nd:]
            x = b.node("Pad", [x, b.const(f"{name}.pads", full, np.int64)], name + "_pad", mode=onnx_mode)
            pads = [0] * (2 * nd)
        args = [x, b.const(f"{name}.weight", w)]
        if layer.bias is not None:
            args.append(b.const(f"{name}.bias", _np(layer.bias.data)))
        return b.node("Conv", args, name, kernel_shape=list(w.shape[2:]), strides=_t(layer.stride, nd), pads=pads,
                      dilations=_t(layer.dilation, nd), group=int(layer.groups))
    if type(layer).__name__ == "ConvTranspose2d":
        w = _np(layer.weight.data)
        args = [x, b.const(f"{name}.weight", w)]
        if layer.bias is not None:
            args.append(b.const(f"{name}.bias", _np(layer.bias.data)))
        return b.node("ConvTranspose", args, name, kernel_shape=list(w.shape[2:]), strides=_t(cfg["stride"], 2),
                      pads=_t(cfg["padding"], 2) * 2, output_padding=_t(cfg.get("output_padding", 0), 2),
                      dilations=_t(cfg.get("dilation", 1), 2), group=int(cfg.get("groups", 1)))
    tname = type(layer).__name__
    if tname in ("MaxPool2d", "AvgPool2d", "MaxPool3d", "AvgPool3d", "LpPool2d", "LPPool2d"):
        nd = 3 if tname.endswith("3d") else 2
        k = _t(cfg["kernel_size"], nd)
        s = _t(cfg.get("stride") or cfg["kernel_size"], nd)
        attrs = dict(kernel_shape=k, strides=s)
        if tname.startswith("Lp") or tname.startswith("LP"):
            p = float(cfg.get("p", cfg.get("norm_type", 2)))
            if p != int(p) or any(_t(cfg.get("padding", 0), nd)) or cfg.get("ceil_mode"):
                raise _unsupported(layer, "ONNX LpPool takes an integer p, no padding and no ceil_mode")
            return b.node("LpPool", [x], name, p=int(p), **attrs)
        attrs["pads"] = _t(cfg.get("padding", 0), nd) * 2
        attrs["ceil_mode"] = int(bool(cfg.get("ceil_mode", False)))
        if tname.startswith("Max"):
            d = _t(cfg.get("dilation", 1), nd)
            if any(v != 1 for v in d):
                attrs["dilations"] = d
            return b.node("MaxPool", [x], name, **attrs)
        if cfg.get("divisor_override") is not None:
            raise _unsupported(layer, "divisor_override has no ONNX counterpart")
        return b.node("AveragePool", [x], name, count_include_pad=int(cfg.get("count_include_pad", True)), **attrs)
    if isinstance(layer, fnn.GlobalAvgPool2d):
        y = b.node("GlobalAveragePool", [x], name)
        return b.node("Flatten", [y], name + "_flatten", axis=1)
    if tname in ("AdaptiveAvgPool2d", "AdaptiveMaxPool2d"):
        c, h, w_ = shape
        out = cfg["output_size"]
        oh, ow = (out, out) if isinstance(out, int) else (out[0] or h, out[1] or w_)
        avg = tname.startswith("AdaptiveAvg")
        if (oh, ow) == (1, 1):
            return b.node("GlobalAveragePool" if avg else "GlobalMaxPool", [x], name)
        if h % oh or w_ % ow:
            raise _unsupported(layer, f"output_size {(oh, ow)} does not divide the input {h}x{w_} "
                                      f"(ONNX has no adaptive pooling)")
        k = [h // oh, w_ // ow]
        return b.node("AveragePool" if avg else "MaxPool", [x], name, kernel_shape=k, strides=k)
    if type(layer) is fnn.Flatten:
        return b.node("Flatten", [x], name, axis=1)
    if tname == "ReLU":
        return b.node("Relu", [x], name)
    if tname == "Sigmoid":
        return b.node("Sigmoid", [x], name)
    if tname == "Tanh":
        return b.node("Tanh", [x], name)
    if tname == "LeakyReLU":
        return b.node("LeakyRelu", [x], name, alpha=float(layer.negative_slope))
    if tname in ("Softmax", "LogSoftmax"):
        return b.node(tname, [x], name, axis=int(cfg.get("axis", -1)))
    if tname in ("Dropout", "Identity"):
        return b.node("Identity", [x], name)
    if tname.startswith("BatchNorm"):
        c = shape[0]
        w = _np(layer.weight.data) if getattr(layer, "weight", None) is not None else np.ones(c, np.float32)
        bias = _np(layer.bias.data) if getattr(layer, "bias", None) is not None else np.zeros(c, np.float32)
        rm, rv = layer._buffers.get("running_mean"), layer._buffers.get("running_var")
        if rm is None or rv is None:
            raise _unsupported(layer, "a batch norm without running statistics normalises with batch statistics, "
                                      "which ONNX inference does not")
        args = [x] + [b.const(f"{name}.{k}", v) for k, v in
                      (("weight", w), ("bias", bias), ("running_mean", _np(rm)), ("running_var", _np(rv)))]
        return b.node("BatchNormalization", args, name, epsilon=float(cfg.get("eps", 1e-5)))
    if isinstance(layer, fnn.Reshape):
        return b.node("Reshape", [x, b.const(f"{name}.shape", [0] + list(layer.shape), np.int64)], name)
    if isinstance(layer, fnn.Constant):
        return b.node("Add" if layer.op == "add" else "Mul", [x, b.const(f"{name}.value", _np(layer._buffers["value"]))],
                      name)
    if isinstance(layer, fnn.Pad):
        rank = len(shape) + 1
        begin, end = [0] * rank, [0] * rank
        for i in range(len(layer.pad) // 2):
            begin[rank - 1 - i], end[rank - 1 - i] = layer.pad[2 * i], layer.pad[2 * i + 1]
        mode = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}[layer.mode]
        args = [x, b.const(f"{name}.pads", begin + end, np.int64)]
        if mode == "constant":
            args.append(b.const(f"{name}.value", layer.value or 0.0))
        return b.node("Pad", args, name, mode=mode)
    if tname == "Upsample":
        mode = cfg.get("mode", "nearest")
        if cfg.get("size") is not None:
            size = _t(cfg["size"], len(shape) - 1)
            scales = None
            # sizes is the whole output shape: (N, C) from the input's shape, then the spatial size
            nc = b.node("Slice", [b.node("Shape", [x], name + "_shape"), b.const(f"{name}.start", [0], np.int64),
                                  b.const(f"{name}.end", [2], np.int64)], name + "_nc")
            sizes = b.node("Concat", [nc, b.const(f"{name}.size", size, np.int64)], name + "_sizes", axis=0)
        else:
            sf = cfg["scale_factor"]
            sf = list(sf) if isinstance(sf, (tuple, list)) else [sf] * (len(shape) - 1)
            scales = b.const(f"{name}.scales", [1.0, 1.0] + [float(v) for v in sf])
            sizes = None
        if mode == "nearest":
            attrs = dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
        elif mode in ("linear", "bilinear"):
            attrs = dict(mode="linear", coordinate_transformation_mode="align_corners" if cfg.get("align_corners")
                         else "pytorch_half_pixel")
        else:
            raise _unsupported(layer, f"mode={mode!r}")
        return b.node("Resize", [x, "", "", sizes] if sizes else [x, "", scales], name, **attrs)
    raise _unsupported(layer, "no ONNX mapping for this layer type")


def export(model, path=None, input_shape=None, *, input_names=None, output_names=None, opset: int = OPSET):
    """Write `model` (a fastlayers Sequential, graph Model or single layer) as ONNX to `path` (a file
    name) and return the ModelProto. input_shape (per sample, batch omitted) defaults to the model's;
    the batch dimension is symbolic ("N"). Layers are exported in eval mode (Dropout is the identity,
    batch norm uses its running statistics)."""
    onnx = require_onnx()
    if not isinstance(model, fnn.Layer):
        raise TypeError(f"model must be a fastlayers nn model or layer, got {type(model).__name__}")
    if isinstance(model, fnn.Model):
        shapes = [model.graph.slot_shapes[s] for s in model.graph.inputs]
    else:
        shape = input_shape if input_shape is not None else getattr(model, "input_shape", None)
        if shape is None:
            raise ValueError("input_shape (per sample, batch omitted) is needed: this model does not know its "
                             "input shape (pass input_shape=, or fit/predict once)")
        shapes = [tuple(shape)]
    n_in = len(shapes)
    input_names = list(input_names) if input_names else (["input"] if n_in == 1 else [f"input_{i}" for i in range(n_in)])
    was_training = model.training
    model.eval()
    try:
        b = _Builder()
        for n in input_names:
            b.used.add(n)
        outs = _emit(b, model, input_names, shapes)
        outs = outs if isinstance(outs, list) else [outs]
        out_shapes, _ = _infer_shapes(model, shapes, n_in > 1)
    finally:
        model.train(was_training)
    output_names = list(output_names) if output_names else (["output"] if len(outs) == 1 else
                                                            [f"output_{i}" for i in range(len(outs))])
    for o, n in zip(outs, output_names):  # name the outputs as asked
        b.nodes.append(onnx.helper.make_node("Identity", [o], [n], name=f"node_{n}"))
    graph = onnx.helper.make_graph(
        b.nodes, getattr(model, "name", "fastlayers"),
        [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, ["N", *s]) for n, s in zip(input_names, shapes)],
        [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, ["N", *s]) for n, s in zip(output_names, out_shapes)],
        b.inits)
    proto = onnx.helper.make_model(graph, producer_name="fastlayers",
                                   opset_imports=[onnx.helper.make_opsetid("", int(opset))])
    proto.ir_version = min(proto.ir_version, 8)
    onnx.checker.check_model(proto)
    if path is not None:
        onnx.save(proto, path)
    return proto
