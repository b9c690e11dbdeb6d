"""Whole models between torch and fastlayers, weights matched by state_dict key.

- `to_fastlayers(module, input_shape=None)`: a torch nn.Sequential (nested ones too) becomes a
  fastlayers nn.Sequential; any other module is traced with torch.fx into a fastlayers graph Model
  (input_shape, per sample, is then required); a single supported layer becomes a Sequential of
  one. Layers are named after their torch module paths, so the fastlayers parameter names are the
  torch state_dict keys.
- `to_torch(model)`: a fastlayers Sequential / Residual / graph Model (nested freely) becomes
  torch.nn modules (the native ones) with the same state_dict keys and values.

Both copy the weights by key and are strict: a key on one side only, or a shape that differs, is a
ValueError listing them. A layer or option the other side lacks is a ValueError naming the layer
(its path) and what is unsupported.
"""

from __future__ import annotations

import inspect
import operator

import numpy as np
import torch
from torch import nn as tnn

from .. import nn as fnn
from ._interop import to_array

__all__ = ["to_fastlayers", "to_torch", "copy_weights"]


class UnsupportedModuleError(ValueError):
    """A torch module (or fastlayers layer) that has no counterpart on the other side."""


# Per class: our name for a torch constructor argument (or None: no counterpart, must be default).
_RENAME = {"Softmax": {"dim": "axis"}, "LogSoftmax": {"dim": "axis"}, "LPPool2d": {"norm_type": "p"}}
_FL_CLASS = {"LPPool2d": "LpPool2d"}
_IGNORED = {"device", "dtype", "inplace"}  # constructor arguments that are not options of the layer


def _torch_value(module, arg):
    if arg == "bias" and not isinstance(getattr(module, "bias", None), bool):
        return getattr(module, "bias", None) is not None
    if arg == "dim" and isinstance(module, (tnn.Softmax, tnn.LogSoftmax)) and module.dim is None:
        return -1
    return getattr(module, arg)


def _layer_from_torch(module, path):
    """The fastlayers layer for one torch leaf module, named `path`."""
    tname = type(module).__name__
    where = f"{path} ({tname})" if path else tname
    if type(module) is tnn.Flatten:
        if module.start_dim != 1 or module.end_dim != -1:
            raise UnsupportedModuleError(f"{where}: only Flatten(start_dim=1, end_dim=-1) converts, got "
                                         f"start_dim={module.start_dim}, end_dim={module.end_dim}")
        return fnn.Flatten(name=path or None)
    if type(module) is tnn.Identity:
        return fnn.Identity(name=path or None)
    cls = getattr(fnn, _FL_CLASS.get(tname, tname), None)
    if cls is None or not isinstance(cls, type) or getattr(tnn, tname, None) is not type(module):
        raise UnsupportedModuleError(f"{where}: no fastlayers layer for this module; supported: "
                                     f"{', '.join(sorted(_supported_torch()))}")
    ours = inspect.signature(cls.__init__).parameters
    theirs = inspect.signature(type(module).__init__).parameters
    rename = _RENAME.get(tname, {})
    kw = {}
    for arg, p in theirs.items():
        if arg in ("self",) or arg in _IGNORED or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if not hasattr(module, arg) and arg != "bias":
            continue
        value = _torch_value(module, arg)
        target = rename.get(arg, arg)
        if target in ours:
            kw[target] = value
        elif not _is_default(value, p.default):
            raise UnsupportedModuleError(f"{where}: option {arg}={value!r} has no fastlayers counterpart "
                                         f"(only the default {p.default!r} converts)")
    if "rng" in ours:
        kw["rng"] = 0  # the weights are overwritten by the module's
    try:
        return cls(**kw, name=path or None)
    except (TypeError, ValueError) as e:
        raise UnsupportedModuleError(f"{where}: fastlayers {cls.__name__} refused its options: {e}") from e


def _is_default(value, default):
    if default is inspect.Parameter.empty:
        return False
    if isinstance(value, tuple) and not isinstance(default, tuple):
        return all(v == default for v in value)
    return value == default


def _supported_torch():
    names = {"Flatten", "Identity", "Sequential"}
    for name in dir(fnn):
        cls = getattr(fnn, name)
        tn = {v: k for k, v in _FL_CLASS.items()}.get(name, name)
        if isinstance(cls, type) and issubclass(cls, fnn.Layer) and isinstance(getattr(tnn, tn, None), type):
            names.add(tn)
    return names


def _sequential_from_torch(seq, path):
    layers = []
    for name, child in seq.named_children():
        sub = f"{path}.{name}" if path else name
        if type(child) is not tnn.Sequential and any(True for _ in child.children()):
            raise UnsupportedModuleError(f"{sub} ({type(child).__name__}): a block with its own forward; pass "
                                         f"input_shape= so that the model is traced with torch.fx into a graph Model")
        layers.append(_sequential_from_torch(child, sub) if type(child) is tnn.Sequential
                      else _layer_from_torch(child, sub))
    return fnn.Sequential(layers)


def _pure_sequential(seq) -> bool:
    """Only nested Sequentials and leaf modules (no custom blocks, which need torch.fx)."""
    return all(_pure_sequential(c) if type(c) is tnn.Sequential else not any(True for _ in c.children())
               for c in seq.children())


def _param_state(model):
    """fastlayers model -> {key: (owner, kind, name)} for parameters and buffers."""
    state = {}
    for key, p in model.named_parameters():
        state[key] = ("param", p)
    for key, owner, name in model.named_buffers():
        state[key] = ("buffer", owner, name)
    return state


def _same_shape(a, b) -> bool:
    """Equal shapes, or two one-element shapes (torch's 0-d num_batches_tracked, our (1,))."""
    a, b = tuple(a), tuple(b)
    return a == b or (int(np.prod(a)) == 1 and int(np.prod(b)) == 1)


def copy_weights(fl_model, state_dict, *, strict: bool = True):
    """Copy a torch state_dict into a fastlayers model by key (float32 copies). strict: the key sets
    must match (num_batches_tracked may be missing on our side) and every shape too."""
    ours = _param_state(fl_model)
    theirs = {k: v for k, v in state_dict.items()}
    if strict:
        missing = [k for k in ours if k not in theirs]
        unexpected = [k for k in theirs if k not in ours and not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise ValueError("state_dict keys differ from the fastlayers model's: "
                             + (f"missing {missing}" if missing else "")
                             + ("; " if missing and unexpected else "")
                             + (f"unexpected {unexpected}" if unexpected else ""))
    for key, entry in ours.items():
        if key not in theirs:
            continue
        value = theirs[key]
        arr = to_array(value) if isinstance(value, torch.Tensor) else np.asarray(value)
        if entry[0] == "param":
            p = entry[1]
            if tuple(arr.shape) != tuple(p.shape):
                raise ValueError(f"state_dict[{key!r}] has shape {tuple(arr.shape)}, the fastlayers parameter "
                                 f"has shape {tuple(p.shape)}")
            p.data = np.array(arr, dtype=np.float32, copy=True)
        else:
            _, owner, name = entry
            old = owner._buffers[name]
            if not _same_shape(np.shape(old), arr.shape):
                raise ValueError(f"state_dict[{key!r}] has shape {tuple(arr.shape)}, the fastlayers buffer "
                                 f"has shape {tuple(np.shape(old))}")
            owner._buffers[name] = np.array(arr, dtype=getattr(old, "dtype", np.float32)).reshape(np.shape(old))
    return fl_model


def to_fastlayers(module, input_shape=None, *, strict: bool = True):
    """A fastlayers model with `module`'s structure and weights (see the module docstring)."""
    if not isinstance(module, tnn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    if type(module) is tnn.Sequential and (_pure_sequential(module) or input_shape is None):
        model = _sequential_from_torch(module, "")
        if input_shape is not None:
            model.input_shape = tuple(input_shape)
    elif not any(True for _ in module.children()):
        model = fnn.Sequential([_layer_from_torch(module, "")])
        if input_shape is not None:
            model.input_shape = tuple(input_shape)
        state = {f"0.{k}": v for k, v in module.state_dict().items()}
        model.train(module.training)
        return copy_weights(model, state, strict=strict)
    else:
        if input_shape is None:
            raise ValueError(f"input_shape (per sample, batch omitted) is required to convert a "
                             f"{type(module).__name__}: it becomes a fastlayers graph Model")
        model = _graph_from_torch(module, input_shape)
    model.train(module.training)
    return copy_weights(model, module.state_dict(), strict=strict)


# --- torch.fx graphs -> fastlayers graph Model ----------------------------------------------------------

def _fx_function_layer(node, name):
    import torch.nn.functional as tF

    t, args, kwargs = node.target, node.args, node.kwargs
    if t in (operator.add, torch.add, operator.iadd) and len(args) == 2 and not kwargs:
        return fnn.Add(name=name), list(args)
    if t in (operator.mul, torch.mul, operator.imul) and len(args) == 2 and not kwargs:
        return fnn.Multiply(name=name), list(args)
    if t is torch.cat:
        tensors = args[0]
        dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
        return fnn.Concatenate(axis=dim, name=name), list(tensors)
    if t is torch.flatten and (args[1:] or [kwargs.get("start_dim", 0)])[0] == 1 and \
            (args[2:] or [kwargs.get("end_dim", -1)])[0] == -1:
        return fnn.Flatten(name=name), [args[0]]
    if t in (tF.relu, torch.relu) and not kwargs.get("inplace", False) or t is tF.relu:
        return fnn.ReLU(name=name), [args[0]]
    if t in (torch.sigmoid, tF.sigmoid):
        return fnn.Sigmoid(name=name), [args[0]]
    if t in (torch.tanh, tF.tanh):
        return fnn.Tanh(name=name), [args[0]]
    raise UnsupportedModuleError(f"fx node {node.name!r}: function {getattr(t, '__name__', t)} with arguments "
                                 f"{args} {kwargs or ''} has no fastlayers layer")


def _fx_method_layer(node, name):
    m, args = node.target, node.args
    if m == "relu" and len(args) == 1:
        return fnn.ReLU(name=name), [args[0]]
    if m == "sigmoid" and len(args) == 1:
        return fnn.Sigmoid(name=name), [args[0]]
    if m == "flatten" and tuple(args[1:]) in ((1,), (1, -1)):
        return fnn.Flatten(name=name), [args[0]]
    raise UnsupportedModuleError(f"fx node {node.name!r}: method .{m}() with arguments {args[1:]} has no fastlayers "
                                 f"layer (use nn.Flatten for view/reshape to (N, -1))")


def _graph_from_torch(module, input_shape):
    import torch.fx

    try:
        traced = torch.fx.symbolic_trace(module)
    except Exception as e:  # data-dependent control flow and the like
        raise UnsupportedModuleError(f"{type(module).__name__}: torch.fx cannot trace it ({e}); export it to ONNX "
                                     f"and use fastlayers.onnx.load instead") from e
    shapes = [tuple(input_shape)] if not input_shape or not isinstance(input_shape[0], (tuple, list)) \
        else [tuple(s) for s in input_shape]
    values, inputs, outputs = {}, [], None
    placeholders = [n for n in traced.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != len(shapes):
        raise ValueError(f"{type(module).__name__} takes {len(placeholders)} inputs, input_shape gives {len(shapes)}")
    mods = dict(traced.named_modules())
    for node in traced.graph.nodes:
        if node.op == "placeholder":
            t = fnn.Input(shapes[len(inputs)], name=node.name)
            inputs.append(t)
            values[node] = t
        elif node.op == "call_module":
            layer, args = _layer_from_torch(mods[node.target], node.target), [node.args[0]]
            if len(node.args) != 1 or node.kwargs:
                raise UnsupportedModuleError(f"fx node {node.name!r}: module {node.target} called with "
                                             f"{len(node.args)} arguments")
            values[node] = layer(_lookup(values, args[0], node))
        elif node.op in ("call_function", "call_method"):
            layer, args = (_fx_function_layer if node.op == "call_function" else _fx_method_layer)(node, node.name)
            ins = [_lookup(values, a, node) for a in args]
            values[node] = layer(ins if len(ins) > 1 or isinstance(layer, (fnn.Add, fnn.Multiply, fnn.Concatenate))
                                 else ins[0])
        elif node.op == "output":
            out = node.args[0]
            outputs = [_lookup(values, o, node) for o in out] if isinstance(out, (tuple, list)) \
                else _lookup(values, out, node)
        else:
            raise UnsupportedModuleError(f"fx node {node.name!r}: {node.op} {node.target} is not supported "
                                         f"(parameters used outside their module)")
    return fnn.Model(inputs if len(inputs) > 1 else inputs[0], outputs)


def _lookup(values, arg, node):
    if arg not in values:
        raise UnsupportedModuleError(f"fx node {node.name!r}: argument {arg!r} is not a tensor of the graph")
    return values[arg]


# --- fastlayers -> torch ------------------------------------------------------------------------------

class Residual(tnn.Module):
    """fastlayers nn.Residual in torch: body(x) + (projection(x) or x). Children are named "0" (body)
    and "1" (projection), the keys fastlayers uses."""

    def __init__(self, body, projection=None):
        super().__init__()
        self.add_module("0", body)
        if projection is not None:
            self.add_module("1", projection)

    def forward(self, x):
        skip = self._modules["1"](x) if "1" in self._modules else x
        return self._modules["0"](x) + skip


class GraphModule(tnn.Module):
    """A fastlayers graph Model in torch: its layers as submodules (dotted names nest, so the
    state_dict keys are the fastlayers parameter names) and its plan run in forward."""

    def __init__(self, model):
        super().__init__()
        g = model.graph
        self._plan = []
        for node, name in zip(g.nodes, g.node_names):
            key = node.layer.name
            if _get_path(self, key) is None:
                _set_path(self, key, _module_from_layer(node.layer, key))
            self._plan.append((key, node.inputs, node.outputs, node.multi_input, node.multi_output))
        self._inputs, self._outputs = list(g.inputs), list(g.outputs)
        self._n_slots = g.n_slots
        self._outputs_as_list = isinstance(model.output, list)

    def forward(self, *xs):
        values = [None] * self._n_slots
        for s, x in zip(self._inputs, xs):
            values[s] = x
        for key, ins, outs, multi_in, multi_out in self._plan:
            mod = _get_path(self, key)
            args = [values[s] for s in ins]
            y = mod(args) if multi_in else mod(args[0])
            for s, v in zip(outs, y if multi_out else (y,)):
                values[s] = v
        outs = [values[s] for s in self._outputs]
        return outs if self._outputs_as_list else outs[0]


class _Merge(tnn.Module):
    def __init__(self, kind, axis=1):
        super().__init__()
        self.kind, self.axis = kind, axis

    def forward(self, xs):
        y = xs[0]
        if self.kind == "cat":
            return torch.cat(list(xs), self.axis)
        for x in xs[1:]:
            y = y + x if self.kind == "add" else y * x
        return y

    def extra_repr(self):
        return self.kind + (f", axis={self.axis}" if self.kind == "cat" else "")


def _get_path(root, key):
    m = root
    for part in key.split("."):
        m = m._modules.get(part) if m is not None else None
    return m


def _set_path(root, key, module):
    parts = key.split(".")
    m = root
    for part in parts[:-1]:
        if part not in m._modules:
            m.add_module(part, tnn.Module())
        m = m._modules[part]
    if parts[-1] in m._modules:
        raise UnsupportedModuleError(f"layer {key!r}: its name clashes with another layer's path")
    m.add_module(parts[-1], module)


_TORCH_CLASS = {"LpPool2d": "LPPool2d"}
_TO_TORCH_RENAME = {"Softmax": {"axis": "dim"}, "LogSoftmax": {"axis": "dim"}, "LpPool2d": {"p": "norm_type"}}


def _module_from_layer(layer, path):
    """The native torch module for one fastlayers layer (containers recurse)."""
    name = type(layer).__name__
    where = f"{path} ({name})" if path else name
    if isinstance(layer, fnn.Sequential):
        return tnn.Sequential(*[_module_from_layer(c, f"{path}.{i}" if path else str(i))
                                for i, c in enumerate(layer.layers)])
    if isinstance(layer, fnn.Model):
        return GraphModule(layer)
    if isinstance(layer, fnn.Residual):
        return Residual(_module_from_layer(layer.body, f"{path}.0"),
                        None if layer.projection is None else _module_from_layer(layer.projection, f"{path}.1"))
    if isinstance(layer, fnn.Add):
        return _Merge("add")
    if isinstance(layer, fnn.Multiply):
        return _Merge("mul")
    if isinstance(layer, fnn.Concatenate):
        return _Merge("cat", layer.axis)
    if isinstance(layer, fnn.GlobalAvgPool2d):
        return tnn.Sequential(tnn.AdaptiveAvgPool2d(1), tnn.Flatten())
    if type(layer) is fnn.Flatten:
        return tnn.Flatten()
    if type(layer) is getattr(fnn, "Identity", None):
        return tnn.Identity()
    cls = getattr(tnn, _TORCH_CLASS.get(name, name), None)
    if not isinstance(cls, type) or not issubclass(cls, tnn.Module) or name.startswith("_"):
        raise UnsupportedModuleError(f"{where}: no torch.nn module for this fastlayers layer")
    theirs = inspect.signature(cls.__init__).parameters
    ours = inspect.signature(type(layer).__init__).parameters
    rename = _TO_TORCH_RENAME.get(name, {})
    config = layer.get_config()
    kw = {}
    for key, value in config.items():
        target = rename.get(key, key)
        if key == "seed":  # Dropout's mask stream: torch draws its own
            continue
        if target in theirs:
            kw[target] = value
        else:
            p = ours.get(key)
            if p is None or not _is_default(value, p.default):
                raise UnsupportedModuleError(f"{where}: option {key}={value!r} has no torch.nn.{cls.__name__} "
                                             f"counterpart")
    try:
        mod = cls(**kw)
    except (TypeError, ValueError) as e:
        raise UnsupportedModuleError(f"{where}: torch.nn.{cls.__name__} refused its options {kw}: {e}") from e
    mod.train(layer.training)
    return mod


def to_torch(model, *, strict: bool = True):
    """torch.nn modules with `model`'s structure and weights (float32 copies)."""
    if not isinstance(model, fnn.Layer):
        raise TypeError(f"model must be a fastlayers nn layer or model, got {type(model).__name__}")
    mod = _module_from_layer(model, "")
    state = mod.state_dict()
    ours = _param_state(model)
    new = {}
    for key, entry in ours.items():
        if entry[0] == "param":
            value = entry[1].data
        else:
            value = entry[1]._buffers[entry[2]]
        value = value.get() if hasattr(value, "get") else np.asarray(value)
        if key not in state:
            if strict:
                raise ValueError(f"fastlayers key {key!r} has no place in the torch module (its keys: "
                                 f"{list(state)})")
            continue
        if not _same_shape(state[key].shape, value.shape):
            raise ValueError(f"{key!r}: fastlayers shape {tuple(value.shape)}, torch shape {tuple(state[key].shape)}")
        new[key] = torch.tensor(np.ascontiguousarray(value), dtype=state[key].dtype).reshape(state[key].shape)
    missing = [k for k in state if k not in new and not k.endswith("num_batches_tracked")]
    if missing and strict:
        raise ValueError(f"torch keys {missing} have no fastlayers value")
    mod.load_state_dict(new, strict=False)
    mod.train(model.training)
    return mod
