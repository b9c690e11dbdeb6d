"""The inference plan: an eval-mode model compiled, per input shape, into one C++ call.

When a Sequential or a graph Model runs in eval mode on a NumPy float32 input (model(x) with
training off, predict, evaluate; a plain model.forward(x, training=False) still runs layer by layer
and keeps the layers' caches for a backward), `run(model, x)` looks up, or builds and caches, a plan for that
input shape, and the whole forward pass is one call into csrc/cpu/plan/ with the GIL released: no
Python between layers. Building a plan:

1. lower: the model's layers become a list of nodes over values (Sequential, Residual and nested
   models are flattened; Flatten and eval-mode Dropout are views of their input, not nodes).
2. fuse: a BatchNorm2d after a conv is folded into the conv's weights and bias; a conv's (or a dense
   layer's) following ReLU, a residual Add (the skip is added in the conv's epilogue) and a 2x2
   stride-2 max or average pool (computed from the conv's output in the same step) become the
   conv's epilogue; a ReLU after any other step is fused into that step.
3. plan memory: every value gets an offset in one arena; a value's floats are reused once its last
   reader has run (greedy placement, largest first). `plan.peak_bytes` is arena + workspace.
4. build: the C++ plan copies the weights (and packs the direct conv kernel's filters once) and
   sizes the kernels' workspace.
5. threads: for a batch of at most 4 samples, the plan is timed on one thread and on all, and
   keeps the faster (waking the thread team costs more than it saves on small layers).
6. chunks: a batch runs in chunks of images, the whole model over one chunk before the next, so
   that a chunk's activations stay in the caches; with several threads, each thread runs chunks of
   its own (`_chunking`). The C++ plan is built for one chunk, and its arena (one per thread) holds
   one chunk's values.

Anything the plan does not cover (another layer type, CuPy arrays, float64 input, the reference ops
via nn.use_ops, training mode) runs layer by layer as before; `explain(model, shape)` says why a
model has no plan. The layer-by-layer path stays the reference for checking: the tests compare the
two within float32 tolerance. The plan holds copies of the weights: training (a training-mode
forward, fit, load, .to()) drops the cached plans, and so does replacing a parameter's array; after
editing a weight array in place yourself, call `invalidate(model)`. `model.use_plan = False` turns
the plan off for one model, FASTLAYERS_PLAN=0 (environment, read when fastlayers.nn.plan is
imported) for the process.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field

import numpy as np

import fastlayers as _fastlayers

from . import _ops
from . import layers as _layers
from . import training as _training

__all__ = ["run", "build", "explain", "invalidate", "Plan", "Unsupported"]

_ACT = {"none": 0, "relu": 1}
_POOL = {"none": 0, "max": 1, "avg": 2}
MAX_CACHED_SHAPES = 8
_ALIGN = 16  # floats: 64-byte aligned values in the arena
# Chunks (_chunking): a chunk's activations (the arena) up to this many bytes per thread, about
# one core's L2. FASTLAYERS_PLAN_CHUNK (read at plan build): 0 runs every batch whole, a number
# runs chunks of at most that many images (for A/B runs and tests).
CHUNK_BYTES_PER_THREAD = 1 << 20
# No chunks for a model whose dense layers hold more than this many bytes of weights: a chunk reads
# them all again, where the batch in one piece reads them once (see _chunking).
CHUNK_DENSE_WEIGHT_LIMIT = 16 << 20


class Unsupported(Exception):
    """The model (or this input shape) has no plan; the message says why."""


# ------------------------------------------------------------------------------------ the IR
@dataclass
class _Value:
    shape: tuple
    storage: int  # values that alias (Flatten, Dropout) share a storage


@dataclass
class _Node:
    kind: str  # conv, linear, pool, gap, add, act, affine
    ins: list
    out: int
    attrs: dict = field(default_factory=dict)
    act: str = "none"
    residual: int | None = None
    pool: str = "none"
    act_first: bool = True


class _Lowering:
    def __init__(self):
        self.values: list[_Value] = []
        self.nodes: list[_Node] = []
        self.n_storage = 0

    def value(self, shape, alias_of: int | None = None) -> int:
        if alias_of is None:
            storage = self.n_storage
            self.n_storage += 1
        else:
            storage = self.values[alias_of].storage
        self.values.append(_Value(tuple(int(d) for d in shape), storage))
        return len(self.values) - 1

    def shape(self, v) -> tuple:
        return self.values[v].shape

    def node(self, kind, ins, out_shape, **attrs) -> int:
        out = self.value(out_shape)
        self.nodes.append(_Node(kind, list(ins), out, attrs))
        return out

    # --- layers -----------------------------------------------------------------------------
    def layer(self, layer, v) -> int:
        from .sequential import Sequential

        name = type(layer).__name__
        if isinstance(layer, Sequential):
            for child in layer.layers:
                v = self.layer(child, v)
            return v
        if _is_graph_model(layer):
            return self.graph(layer, v)
        if isinstance(layer, _layers.Residual):
            # The shortcut first: the body's last conv can then add it in its epilogue.
            skip = v if layer.projection is None else self.layer(layer.projection, v)
            body = self.layer(layer.body, v)
            if self.shape(body) != self.shape(skip):
                raise Unsupported(f"Residual: body output {self.shape(body)} and shortcut {self.shape(skip)} differ")
            return self.node("add", [body, skip], self.shape(body))
        method = getattr(self, "_" + name, None)
        if method is None or type(layer) not in _SUPPORTED:
            raise Unsupported(f"layer {layer.name!r} ({name}) has no plan step")
        return method(layer, v)

    def graph(self, model, v) -> int:
        g = model._graph
        if len(g.inputs) != 1 or len(g.outputs) != 1:
            raise Unsupported(f"model {model.name!r}: the plan takes one input and one output")
        want = tuple(g.slot_shapes[g.inputs[0]])
        if self.shape(v)[1:] != want:
            raise Unsupported(f"model {model.name!r}: input shape {self.shape(v)[1:]} is not {want}")
        slots = {g.inputs[0]: v}
        for node in g.nodes:
            if node.multi_output or len(node.outputs) != 1:
                raise Unsupported(f"layer {node.layer.name!r} has several outputs")
            if node.multi_input:
                if type(node.layer).__name__ != "Add" or len(node.inputs) != 2:
                    raise Unsupported(f"layer {node.layer.name!r} ({type(node.layer).__name__} of "
                                      f"{len(node.inputs)} inputs) has no plan step")
                a, b = slots[node.inputs[0]], slots[node.inputs[1]]
                if self.shape(a) != self.shape(b):
                    raise Unsupported(f"layer {node.layer.name!r}: Add of shapes {self.shape(a)} and {self.shape(b)}")
                slots[node.outputs[0]] = self.node("add", [a, b], self.shape(a))
            else:
                slots[node.outputs[0]] = self.layer(node.layer, slots[node.inputs[0]])
        return slots[g.outputs[0]]

    def _Conv2d(self, layer, v):
        s = self.shape(v)
        if len(s) != 4 or s[1] != layer.in_channels:
            raise Unsupported(f"Conv2d {layer.name!r}: input {s} is not (N, {layer.in_channels}, H, W)")
        cfg = layer.get_config()
        if cfg.get("padding_mode", "zeros") not in ("zeros", None):
            raise Unsupported(f"Conv2d {layer.name!r}: padding_mode={cfg['padding_mode']!r}")
        pad = layer.padding
        if not (isinstance(pad, tuple) and all(isinstance(p, (int, np.integer)) for p in pad)):
            raise Unsupported(f"Conv2d {layer.name!r}: padding={pad!r}")
        from ..ops.conv import _geometry

        w = layer.weight.data
        try:
            shape16 = _geometry(_Shape(s), w, layer.stride, pad, layer.dilation, layer.groups)
        except (ValueError, TypeError) as e:
            raise Unsupported(f"Conv2d {layer.name!r}: {e}") from None
        shape16 = tuple(int(d) for d in shape16)
        n, _, _, _, k, _, _, p, q = shape16[:9]
        b = layer._b()
        return self.node("conv", [v], (n, k, p, q), shape16=shape16, w=np.asarray(w, np.float32),
                         b=None if b is None else np.asarray(b, np.float32), layer=layer.name)

    def _Linear(self, layer, v):
        s = self.shape(v)
        if len(s) < 2 or s[-1] != layer.in_features:
            raise Unsupported(f"Linear {layer.name!r}: input {s} does not end in {layer.in_features}")
        m = int(np.prod(s[:-1]))
        b = layer._b()
        return self.node("linear", [v], s[:-1] + (layer.out_features,), M=m, N=layer.out_features,
                         K=layer.in_features, w=np.asarray(layer.weight.data, np.float32),
                         b=None if b is None else np.asarray(b, np.float32))

    def _ReLU(self, layer, v):
        return self.node("act", [v], self.shape(v), act="relu")

    def _pool(self, layer, v, kind, count_include_pad=True):
        s = self.shape(v)
        cfg = layer.get_config()
        extra = {k: val for k, val in cfg.items() if k not in ("kernel_size", "stride", "padding", "count_include_pad")}
        defaults = {"dilation": (1, 1), "ceil_mode": False, "return_indices": False, "divisor_override": None}
        for k, val in extra.items():
            if k not in defaults or (val != defaults[k] and not (k == "dilation" and val in (1, (1, 1)))):
                raise Unsupported(f"{type(layer).__name__} {layer.name!r}: {k}={val!r}")
        if len(s) != 4:
            raise Unsupported(f"{type(layer).__name__} {layer.name!r}: input {s} is not (N, C, H, W)")
        (kh, kw), (sh, sw), (ph, pw) = (tuple(layer.kernel_size), tuple(layer.stride), tuple(layer.padding))
        n, c, h, w = s
        if not (kh >= 1 and kw >= 1 and sh >= 1 and sw >= 1 and 0 <= 2 * ph <= kh and 0 <= 2 * pw <= kw
                and h + 2 * ph >= kh and w + 2 * pw >= kw):
            raise Unsupported(f"{type(layer).__name__} {layer.name!r}: geometry not planned")
        oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        return self.node("pool", [v], (n, c, oh, ow), pool_kind=kind, geom=(n * c, h, w, kh, kw, sh, sw, ph, pw),
                         count_include_pad=bool(count_include_pad))

    def _MaxPool2d(self, layer, v):
        return self._pool(layer, v, "max")

    def _AvgPool2d(self, layer, v):
        return self._pool(layer, v, "avg", layer.count_include_pad)

    def _GlobalAvgPool2d(self, layer, v):
        s = self.shape(v)
        if len(s) != 4:
            raise Unsupported(f"GlobalAvgPool2d {layer.name!r}: input {s} is not (N, C, H, W)")
        return self.node("gap", [v], s[:2], planes=s[0] * s[1], hw=s[2] * s[3])

    def _AdaptiveAvgPool2d(self, layer, v):
        # The sizes the zoo uses: (1, 1) is global average pooling (ResNet, DenseNet, MobileNet);
        # an output the size of the input (VGG's (7, 7) on 224x224 images) is the identity.
        s = self.shape(v)
        if len(s) != 4:
            raise Unsupported(f"AdaptiveAvgPool2d {layer.name!r}: input {s} is not (N, C, H, W)")
        size = layer.output_size
        oh, ow = (size, size) if not isinstance(size, tuple) else size
        oh, ow = s[2] if oh is None else oh, s[3] if ow is None else ow
        if (oh, ow) == (1, 1):
            return self.node("gap", [v], s[:2] + (1, 1), planes=s[0] * s[1], hw=s[2] * s[3])
        if (oh, ow) == tuple(s[2:]):
            return v
        raise Unsupported(f"AdaptiveAvgPool2d {layer.name!r}: output_size {(oh, ow)} from {s[2:]} "
                          f"(planned: (1, 1) or the input's size)")

    def _Flatten(self, layer, v):
        s = self.shape(v)
        return self.value((s[0], int(np.prod(s[1:]))), alias_of=v)

    def _Dropout(self, layer, v):
        return v  # eval mode: the identity

    def _BatchNorm2d(self, layer, v):
        s = self.shape(v)
        if len(s) != 4 or s[1] != layer.num_features:
            raise Unsupported(f"BatchNorm2d {layer.name!r}: input {s}")
        mean, var = layer._buffers.get("running_mean"), layer._buffers.get("running_var")
        if not layer.track_running_stats or mean is None or var is None:
            raise Unsupported(f"BatchNorm2d {layer.name!r}: no running statistics (eval uses batch statistics)")
        scale = 1.0 / np.sqrt(np.asarray(var, np.float64) + layer.eps)
        if layer.weight is not None:
            scale = scale * np.asarray(layer.weight.data, np.float64)
        shift = -np.asarray(mean, np.float64) * scale
        if layer.bias is not None:
            shift = shift + np.asarray(layer.bias.data, np.float64)
        return self.node("affine", [v], s, scale=scale, shift=shift, C=s[1], HW=s[2] * s[3])


class _Shape:
    """Stands in for an array in ops.conv._geometry, which reads only .shape and .ndim."""

    def __init__(self, shape):
        self.shape = tuple(shape)
        self.ndim = len(shape)


_SUPPORTED = {_layers.Conv2d, _layers.Linear, _layers.ReLU, _layers.MaxPool2d, _layers.AvgPool2d,
              _layers.GlobalAvgPool2d, _layers.AdaptiveAvgPool2d, _layers.Flatten, _layers.Dropout}
if hasattr(_layers, "BatchNorm2d"):
    _SUPPORTED.add(_layers.BatchNorm2d)


def _is_graph_model(layer) -> bool:
    return hasattr(layer, "_graph") and hasattr(layer._graph, "nodes")


# ------------------------------------------------------------------------------------ fusion
def _fuse(lw: _Lowering, final: int) -> None:
    """Merge each node into the node that produced its input where that input has no other reader
    (and is not the model's output): see the module docstring, step 2."""
    def uses():
        count = {}
        for nd in lw.nodes:
            for v in nd.ins + ([nd.residual] if nd.residual is not None else []):
                count[lw.values[v].storage] = count.get(lw.values[v].storage, 0) + 1
        return count

    producer = {}
    for i, nd in enumerate(lw.nodes):
        producer[lw.values[nd.out].storage] = i
    final_storage = lw.values[final].storage
    i = 0
    while i < len(lw.nodes):
        nd = lw.nodes[i]
        count = uses()

        def sole(v):  # the node producing v, if v is read by this node only and is not the output
            st = lw.values[v].storage
            j = producer.get(st)
            if j is None or count.get(st, 0) != 1 or st == final_storage or lw.values[v].shape != lw.values[lw.nodes[j].out].shape:
                return None
            return j

        merged = None
        if nd.kind == "affine":
            j = sole(nd.ins[0])
            p = lw.nodes[j] if j is not None else None
            if p is not None and p.kind == "conv" and p.act == "none" and p.residual is None and p.pool == "none":
                sc = nd.attrs["scale"]
                w = p.attrs["w"].astype(np.float64) * sc.reshape(-1, 1, 1, 1)
                b = np.zeros(len(sc)) if p.attrs["b"] is None else p.attrs["b"].astype(np.float64)
                p.attrs["w"] = w.astype(np.float32)
                p.attrs["b"] = (b * sc + nd.attrs["shift"]).astype(np.float32)
                merged = j
        elif nd.kind == "add":
            for a, other in ((nd.ins[0], nd.ins[1]), (nd.ins[1], nd.ins[0])):
                j = sole(a)
                if j is None or a == other:
                    continue
                p = lw.nodes[j]
                op = producer.get(lw.values[other].storage)
                ready = op is None or op < j  # the skip exists when the conv runs
                if p.kind == "conv" and p.act == "none" and p.residual is None and p.pool == "none" and ready:
                    p.residual = other
                    merged = j
                    break
        elif nd.kind == "act":
            j = sole(nd.ins[0])
            p = lw.nodes[j] if j is not None else None
            if p is not None and p.act == "none" and p.kind in ("conv", "linear", "pool", "gap", "add", "affine"):
                p.act = nd.attrs["act"]
                p.act_first = p.pool == "none"
                merged = j
        elif nd.kind == "pool":
            j = sole(nd.ins[0])
            p = lw.nodes[j] if j is not None else None
            g = nd.attrs["geom"]
            two = g[3:] == (2, 2, 2, 2, 0, 0)
            if p is not None and p.kind == "conv" and p.pool == "none" and two:
                _, _, _, _, _, _, _, pp, qq = p.attrs["shape16"][:9]
                if pp >= 2 and qq >= 2:
                    p.pool = nd.attrs["pool_kind"]
                    p.act_first = True  # an act already fused runs before the pool
                    merged = j
        if merged is not None:
            p = lw.nodes[merged]
            p.out = nd.out
            producer[lw.values[nd.out].storage] = merged
            del lw.nodes[i]
            producer = {lw.values[n.out].storage: k for k, n in enumerate(lw.nodes)}
            continue
        i += 1


# ------------------------------------------------------------------------------------ memory
def _plan_memory(lw: _Lowering, inp: int, final: int):
    """Offsets (floats) of every arena storage and the arena size. A storage lives from the step
    that writes it to the last step that reads it; two storages whose lives overlap never share
    floats (a step's output never overlaps its inputs)."""
    size, first, last = {}, {}, {}
    for v in lw.values:
        size[v.storage] = max(size.get(v.storage, 0), int(np.prod(v.shape)))
    tmp = {}
    for i, nd in enumerate(lw.nodes):
        st = lw.values[nd.out].storage
        first.setdefault(st, i)
        last[st] = max(last.get(st, i), i)
        for v in nd.ins + ([nd.residual] if nd.residual is not None else []):
            s2 = lw.values[v].storage
            last[s2] = max(last.get(s2, i), i)
        if nd.pool != "none":  # the full-size conv output before the fused pool
            n, _, _, _, k, _, _, p, q = nd.attrs["shape16"][:9]
            key = ("tmp", i)
            tmp[i] = key
            size[key], first[key], last[key] = n * k * p * q, i, i
    external = {lw.values[inp].storage, lw.values[final].storage}
    items = sorted((k for k in size if k not in external and k in first), key=lambda k: -size[k])
    placed = []  # (offset, end, first, last)
    offsets = {}
    for k in items:
        need = (size[k] + _ALIGN - 1) // _ALIGN * _ALIGN
        busy = sorted((o, e) for o, e, f, l_ in placed if not (l_ < first[k] or last[k] < f))
        off = 0
        for o, e in busy:
            if off + need <= o:
                break
            off = max(off, e)
        offsets[k] = off
        placed.append((off, off + need, first[k], last[k]))
    arena = max((e for _, e, _, _ in placed), default=0)
    return offsets, tmp, arena, size


# ------------------------------------------------------------------------------------ the plan
class Plan:
    """One compiled model for one input shape. Call it on a float32 array of that shape."""

    def __init__(self, cplan, in_shape, out_shape, steps, descr, threads_choice):
        self._c = cplan
        self.input_shape, self.output_shape = tuple(in_shape), tuple(out_shape)
        self.steps = steps
        self.description = descr
        self.threads = threads_choice  # 0: all (fl.set_num_threads), 1: one thread
        self.chunk = int(cplan.batch)  # images per chunk (the whole batch: no chunks)
        self.per_thread = bool(cplan.per_thread)  # each thread runs chunks of its own

    @property
    def arena_bytes(self) -> int:
        """The intermediate values of one chunk (the whole batch when it runs in one)."""
        return 4 * int(self._c.arena_floats)

    @property
    def workspace_bytes(self) -> int:
        return 4 * int(self._c.workspace_floats)

    @property
    def peak_bytes(self) -> int:
        """Activation memory of one run: the arena (all intermediate values, reused) plus the
        kernels' workspace; the caller's input and output arrays and the weights are not counted."""
        return self.arena_bytes + self.workspace_bytes

    @property
    def weight_bytes(self) -> int:
        return 4 * int(self._c.weight_floats)

    def __call__(self, x, out=None):
        return self.run(x, np.empty(self.output_shape, np.float32) if out is None else out)

    def run(self, x, y, threads=None):
        """The plan on x into y (float32, C-contiguous, of its sizes, not overlapping: the C++ call
        checks), on `threads` (0: all, 1: one; default: the plan's own choice). Returns y."""
        self._c.run(x, y, self.threads if threads is None else threads, self.input_shape[0])
        return y

    def run_profiled(self, x, y, threads=None):
        """As run, and the seconds of each step (summed over the chunks)."""
        return self._c.run_profiled(x, y, self.threads if threads is None else threads, self.input_shape[0])

    def __repr__(self):
        chunks = f", chunks of {self.chunk}" if self.chunk < self.input_shape[0] else ""
        chunks += " per thread" if self.per_thread else ""
        return (f"Plan({self.input_shape} -> {self.output_shape}, {len(self.steps)} steps, threads="
                f"{'all' if self.threads == 0 else self.threads}{chunks}, arena {self.arena_bytes / 1024:.0f} KiB, "
                f"workspace {self.workspace_bytes / 1024:.0f} KiB)")


def _describe(nd: _Node) -> str:
    if nd.kind == "act":
        return nd.attrs["act"]
    extra = []
    if nd.residual is not None:
        extra.append("residual")
    if nd.act != "none" and (nd.act_first or nd.pool == "none"):
        extra.append(nd.act)
    if nd.pool != "none":
        extra.append(f"{nd.pool}pool2x2")
    if nd.act != "none" and not nd.act_first and nd.pool != "none":
        extra.append(nd.act)
    return nd.kind + "".join("+" + e for e in extra)


def build(model, input_shape, threads: str | int = "auto") -> Plan:
    """Compile `model` (eval mode) for inputs of `input_shape` (batch included). Raises Unsupported
    when some layer has no plan step. threads: "auto" (measured for batches of at most 4), 0 (all),
    or 1."""
    from .. import _cpu

    input_shape = tuple(int(d) for d in input_shape)
    n_threads = _cpu.get_num_threads()
    lw, inp, final = _lower(model, input_shape)
    out_shape = lw.shape(final)
    offsets, tmp, arena, size = _plan_memory(lw, inp, final)
    dense_bytes = sum(nd.attrs["w"].nbytes for nd in lw.nodes if nd.kind == "linear")
    chunk, per_thread = _chunking(input_shape[0], 4 * arena / input_shape[0], n_threads, dense_bytes)
    if chunk < input_shape[0]:  # the same model lowered for one chunk
        lw, inp, final = _lower(model, (chunk,) + input_shape[1:])
        offsets, tmp, arena, size = _plan_memory(lw, inp, final)
    c = _cpu.InferencePlan()
    vid = {}
    in_st, out_st = lw.values[inp].storage, lw.values[final].storage
    if in_st == out_st:  # the model is a view of its input: copy it out
        raise Unsupported("the model computes nothing (its output is a view of its input)")

    def cid(storage_or_key):
        if storage_or_key not in vid:
            off = -1 if storage_or_key == in_st else -2 if storage_or_key == out_st else offsets[storage_or_key]
            vid[storage_or_key] = c.add_value(size[storage_or_key], off)
        return vid[storage_or_key]

    def v(value):
        return cid(lw.values[value].storage)

    steps = []
    for i, nd in enumerate(lw.nodes):
        a = nd.attrs
        act = _ACT[nd.act]
        if nd.kind == "conv":
            c.add_conv(v(nd.ins[0]), v(nd.out), cid(tmp[i]) if i in tmp else -1, a["shape16"], a["w"], a["b"], act,
                       -1 if nd.residual is None else v(nd.residual), _POOL[nd.pool], nd.act_first)
        elif nd.kind == "linear":
            c.add_linear(v(nd.ins[0]), v(nd.out), a["M"], a["N"], a["K"], a["w"], a["b"], act)
        elif nd.kind == "pool":
            c.add_pool(v(nd.ins[0]), v(nd.out), _POOL[a["pool_kind"]], a["geom"], a["count_include_pad"], act)
        elif nd.kind == "gap":
            c.add_global_avg_pool(v(nd.ins[0]), v(nd.out), a["planes"], a["hw"], act)
        elif nd.kind == "add":
            c.add_add(v(nd.ins[0]), v(nd.ins[1]), v(nd.out), int(np.prod(lw.shape(nd.out))), act)
        elif nd.kind == "act":  # an activation no step before it could take
            c.add_act(v(nd.ins[0]), v(nd.out), int(np.prod(lw.shape(nd.out))), _ACT[a["act"]])
        elif nd.kind == "affine":
            s = lw.shape(nd.ins[0])
            c.add_affine(v(nd.ins[0]), v(nd.out), s[0], a["C"], a["HW"], a["scale"].astype(np.float32),
                         a["shift"].astype(np.float32), act)
        else:  # pragma: no cover - the lowering makes no other kind
            raise Unsupported(f"node kind {nd.kind}")
        steps.append(_describe(nd))
    if not lw.nodes:
        raise Unsupported("the model has no layer with a plan step")
    c.finalize(arena, n_threads, chunk, per_thread)
    choice = 0
    if threads == "auto":
        if n_threads > 1 and input_shape[0] <= 4:
            choice = _measure_threads(c, input_shape, out_shape)
    else:
        choice = int(threads)
    return Plan(c, input_shape, out_shape, steps, " -> ".join(steps), choice)


def _lower(model, input_shape):
    """The model's fused nodes for inputs of input_shape: (lowering, input value, output value)."""
    lw = _Lowering()
    inp = lw.value(input_shape)
    final = lw.layer(model, inp)
    _fuse(lw, final)
    return lw, inp, final


def _chunking(images: int, arena_bytes_per_image: float, threads: int, dense_weight_bytes: int = 0) -> tuple[int, bool]:
    """(images per chunk, whether each thread runs chunks of its own): the chunk the plan is built
    for, the batch itself when it runs in one piece.

    Each step streams its input and output through the caches, so a chunk's activations (its
    arena), about CHUNK_BYTES_PER_THREAD per thread, stay near the core from one step to the next.
    With several threads and at least as many images, each thread runs whole chunks on its own (no
    barrier between steps; Plan::run_chunks), in a number of chunks that is a multiple of the
    threads. On one thread, chunks of at least two images.

    Measured (Zen 4, 2 vCPUs; paired medians of 30 interleaved runs, the whole batch in one piece /
    this): 2 threads, per-thread chunks - the course CNN batch 100 1.82 / 1.55 ms (chunks of 10),
    batch 512 9.45 / 7.86 (11); the small ResNet batch 64 3.92 / 3.52-3.59 (4-8), batch 16 1.44 /
    0.88-0.92, batch 8 0.67 / 0.45; LeNet-5 batch 64 0.47 / 0.34 (chunks of 16-32), batch 8 0.077 /
    0.060; ResNet-18 (zoo, 224 px) batch 4 52.4 / 48.0 (2) and 50.4 (1). The same chunks with the
    steps splitting each chunk over the threads gained at most 1.07x, and lost on the CNN (0.95x at
    chunks of 10-22: a parallel region per step and chunk). 1 thread - the CNN batch 100 3.04 / 2.96
    (10), batch 512 18.3 / 15.1 (11); the small ResNet batch 64 7.27-7.45 / 6.86-6.89 (4-8); LeNet-5
    unchanged; ResNet-18 batch 4 92.1 / 93.7 (1) and 91.9 (2).

    A chunk's dense layers read all their weights again (a conv kernel reads its filters per image
    either way), so models whose dense weights pass CHUNK_DENSE_WEIGHT_LIMIT run the batch in one
    piece: per thread, chunks of 1 and 2, AlexNet (234 MB of dense weights) at batch 4 took 48.1 and
    33.3 ms against 25.8, VGG-11 (495 MB) at batch 2 152 against 125 ms; ResNet-50 (8 MB, 103 MB of
    filters) gained, 166 -> 152 and 147 ms.

    FASTLAYERS_PLAN_CHUNK (read at plan build; for A/B runs and tests): 0 runs the batch in one
    piece, a number runs chunks of at most that many images; FASTLAYERS_PLAN_PER_THREAD=0 or 1
    forces the steps-split or the per-thread way."""
    threads = max(1, threads)
    env_chunk = os.environ.get("FASTLAYERS_PLAN_CHUNK", "")
    env_per_thread = os.environ.get("FASTLAYERS_PLAN_PER_THREAD", "")
    if env_chunk and not env_chunk.isdigit():
        raise ValueError(f"FASTLAYERS_PLAN_CHUNK must be a whole number of images (0: no chunks), got {env_chunk!r}")
    if env_per_thread not in ("", "0", "1"):
        raise ValueError(f"FASTLAYERS_PLAN_PER_THREAD must be 0 or 1, got {env_per_thread!r}")
    per_thread = threads > 1 and images >= threads if env_per_thread == "" else env_per_thread == "1"
    if env_chunk:
        want = int(env_chunk)
        return (images if want == 0 else min(images, want)), per_thread
    if dense_weight_bytes > CHUNK_DENSE_WEIGHT_LIMIT:
        return images, False
    fit = max(1, int(CHUNK_BYTES_PER_THREAD // max(arena_bytes_per_image, 1.0)))  # images in one thread's share
    if per_thread:
        chunk = min(fit, _ceil_div(images, threads))
        chunks = threads * _ceil_div(_ceil_div(images, chunk), threads)  # a multiple of the threads
        return _ceil_div(images, chunks), True
    chunk = fit // threads * threads  # the steps split a chunk over the team
    if chunk < 2 * threads or chunk >= images:
        return images, False
    units = _ceil_div(images, threads)  # as Plan::chunk_bounds: in units of `threads` images
    chunks = _ceil_div(units, chunk // threads)
    return min(chunk, threads * _ceil_div(units, chunks)), False


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _measure_threads(c, in_shape, out_shape) -> int:
    """1 (one thread) unless all threads ran the plan at least 25% faster: 5 rounds, each timing a
    block of 5 calls per setting, the settings alternating; medians of the blocks. Why the margin:
    a small batch runs a dozen short parallel regions per call, and each waits for the other
    threads to wake up. On the 2-vCPU VM these figures come from, the same CNN call at batch 1 ran
    in 55 us on 2 threads and 67 us on one in a quiet minute, and in a median of 840 us on 2 threads
    (max 7 ms) in a busy one, where one thread stayed near 80 us."""
    x = np.zeros(in_shape, np.float32)
    y = np.empty(out_shape, np.float32)
    times = {0: [], 1: []}
    for t in (0, 1, 0, 1):
        c.run(x, y, t, in_shape[0])  # warm-up: pages and caches
    for _ in range(5):
        for t in (0, 1):
            t0 = time.perf_counter()
            for _ in range(5):
                c.run(x, y, t, in_shape[0])
            times[t].append(time.perf_counter() - t0)
    return 0 if np.median(times[0]) * 1.25 < np.median(times[1]) else 1


# ------------------------------------------------------------------------------------ the cache
_local = _training._local  # per-thread counters: off (disabled() blocks), allowed (allowed() blocks)
# FASTLAYERS_PLAN=0 turns the plan off for the process: read once here (os.environ.get on every
# call was ~0.8 us of a 30 us LeNet-5 model(x)).
_ENV_OFF = os.environ.get("FASTLAYERS_PLAN", "1") == "0"


@contextlib.contextmanager
def disabled():
    """Within the block (in this thread), eval-mode passes run layer by layer."""
    _local.off += 1
    try:
        yield
    finally:
        _local.off -= 1


@contextlib.contextmanager
def allowed():
    """Within the block (in this thread), eval-mode model passes may run their plan: model(x)
    (TrainableModel.__call__) opens it; predict and evaluate run inside training.inference(), which
    allows it too. A plain model.forward(x, training=False) keeps running layer by layer, so that
    the layers keep what a backward() after it needs."""
    _local.allowed += 1
    try:
        yield
    finally:
        _local.allowed -= 1


def _wanted() -> bool:
    return _local.allowed > 0 or _training.in_inference()


def check_backward(model) -> None:
    """backward() after a forward that ran the plan: nothing was kept for it."""
    if model.__dict__.get("_planned"):
        raise _layers.BackwardBeforeForward(
            f"{type(model).__name__}.backward after an eval-mode forward that ran the inference plan, which keeps "
            f"nothing for backward: run forward with training=True, or set model.use_plan = False to keep "
            f"layer-by-layer eval passes (and their caches)")


def _enabled(model) -> bool:
    if _local.off or _ENV_OFF or not getattr(model, "use_plan", True):
        return False
    return _ops.F.target is _fastlayers and getattr(model, "device", "cpu") == "cpu"


def _token(cache) -> tuple:
    """What the cached plans were built from: the parameter and buffer arrays (by identity)."""
    return tuple([id(p.data) for p in cache["params"]] + [id(owner._buffers[name]) for owner, name in cache["buffers"]])


def invalidate(model) -> None:
    """Drop the model's cached plans: needed after editing a weight array in place, or after changing
    the model's layers (Sequential.add does it)."""
    model.__dict__.pop("_plans", None)


def _lookup(model, shape):
    cache = model.__dict__.get("_plans")
    if cache is None:
        # The parameters and buffers are listed once (walking the model costs tens of microseconds);
        # their arrays' identities are checked on every call.
        cache = {"params": model.parameters(), "buffers": [(o, n) for _, o, n in model.named_buffers()], "plans": {}}
        cache["token"] = _token(cache)
        model.__dict__["_plans"] = cache
    else:
        token = _token(cache)
        if token != cache["token"]:
            cache["token"], cache["plans"] = token, {}
    plans = cache["plans"]
    plan = plans.get(shape)
    if plan is not None:
        return plan
    if len(plans) >= MAX_CACHED_SHAPES:
        plans.pop(next(iter(plans)))
    try:
        plans[shape] = build(model, shape)
    except Unsupported as e:
        plans[shape] = e
    return plans[shape]


def run(model, x):
    """The model's eval-mode output for x through its plan, or None when there is none (the caller
    then runs layer by layer)."""
    if type(x) is not np.ndarray or x.dtype != np.float32 or x.ndim < 2 or x.shape[0] == 0 or not _wanted() \
            or not _enabled(model):
        return None
    plan = _lookup(model, x.shape)
    if isinstance(plan, Exception):
        return None
    if not x.flags.c_contiguous:
        x = np.ascontiguousarray(x)
    return plan(x)


def explain(model, input_shape) -> str:
    """The plan for this input shape as text, or why there is none."""
    if not _enabled(model):
        return "no plan: disabled (FASTLAYERS_PLAN=0, model.use_plan = False, other ops via nn.use_ops, or a GPU model)"
    plan = _lookup(model, tuple(int(d) for d in input_shape))
    if isinstance(plan, Exception):
        return f"no plan: {plan}"
    return f"{plan!r}: {plan.description}"


def get(model, input_shape) -> Plan | None:
    """The cached (or newly built) plan for this input shape, None if the model has none."""
    if not _enabled(model):
        return None
    plan = _lookup(model, tuple(int(d) for d in input_shape))
    return None if isinstance(plan, Exception) else plan
