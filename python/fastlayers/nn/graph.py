"""Functional-API graph models (nn.Input, nn.Model) and the graph executor they run on.

    inp = nn.Input((1, 28, 28))                  # per-sample shape, batch omitted
    x = nn.Conv2d(1, 8, 3, padding=1)(inp)       # calling a layer on a symbolic tensor records a node
    y = nn.Conv2d(8, 8, 3, padding=1)(nn.ReLU()(x))
    x = nn.ReLU()(nn.Add()([x, y]))              # a residual connection
    out = nn.Linear(8, 10)(nn.GlobalAvgPool2d()(x))
    model = nn.Model(inp, out, loss="cross_entropy")

This module is the one graph structure of the package: the nn layers build it here, and the ONNX
importer and a C++ inference plan are meant to produce or walk the same thing (DESIGN.md: one
module, not two).

The plan (`Graph`)
------------------
- Slots: tensors are the integers 0 .. n_slots-1. The model inputs take the first slots, in the
  order Model(inputs=...) lists them, then every node's outputs in node order. `slot_shapes[s]` is
  the per-sample shape (batch omitted), `slot_names[s]` a readable name: the input's name, the
  layer's name for its output ("conv2d"; "conv2d[1]" for the second call of a layer in the graph;
  "name:0", "name:1" for a node with several outputs).
- Nodes: `nodes`, a list of `Node` in topological order (the order of the calls, stable; a graph
  given in another order is sorted, a cycle is a ValueError naming its layers). Node(layer,
  inputs, outputs, multi_input, multi_output) is one call of one layer object: it reads the slots
  `inputs` and writes the slots `outputs`. multi_input: the layer takes a list (merge layers,
  multi-input models); multi_output: it returns a list. A layer object called twice is two nodes
  (shared weights). `node_names[i]` names node i.
- `inputs`, `outputs`: the model's input and output slots (an output may repeat, or be an input).
- `frees[i]`: the slots whose last reader is node i and that are not outputs.
- `shared[i]`: node i's layer, or a layer inside it, also runs at another node.
Graph(nodes, n_slots, inputs, outputs, slot_shapes, ...) takes such a list directly (what an importer
would write); Graph.from_tensors builds it from the symbolic tensors of the functional API.

Execution
---------
forward: values[slot], all None; the inputs are filled in; each node reads its input slots, calls
layer.forward and writes its output slots, then the executor drops `frees[i]`. So the executor
holds only tensors a later node still reads; what backward needs each layer caches itself (its
`_x` ...). In an inference pass (predict, evaluate: training.inference()) the executor also calls
layer.release_cache() after each node, so that only the live frontier of activations stays alive.

backward: grads[slot] from the output gradients; for each node in reverse it takes (and drops) its
output gradients, calls layer.backward and adds the results into its input slots' gradients with
fl.add (a new array): a tensor that feeds several layers gets the sum of their gradients. Then it
releases that layer's cache, as PyTorch frees a graph's saved tensors during backward: the large
activations of the first layers are gone before their large gradients are made. So one forward
allows one backward. With need_input_grad=False (fit) nodes that read only model inputs skip their
input gradient (a first convolution skips its backward-data pass) and None is returned.

Shared layers: a layer caches one call's state on itself, so a layer run at two nodes would see
its second call's cache in the first call's backward. For nodes marked shared the executor
snapshots the private attributes (names starting with "_") of the layer and the layers inside it
after the node's forward and puts them back before that node's backward, and sums each parameter's
gradient over the nodes (a layer's backward overwrites .grad). Layers therefore keep per-call
state in private attributes and persistent state in public ones, `_params` or `_buffers`.
"""

from __future__ import annotations

import heapq
import inspect
import itertools

import numpy as np

from .. import _backend
from ..memory import arena as _arena
from . import layers as _layers
from . import losses as _losses
from . import plan as _plan
from ._ops import F
from .layers import Layer, to_device
from .training import (TrainableModel, _Arrays, _inference_pass, _MultiOutputLoss, _shape_text, _to_numpy,
                       in_inference, inference)

__all__ = ["Input", "Model", "SymbolicTensor", "Graph", "Node"]

_uids = itertools.count()


# --- the symbolic side (the functional API) -------------------------------------------------------

class SymbolicTensor:
    """A placeholder in a functional graph: what nn.Input returns, and what a layer called on
    symbolic tensors returns. `shape` is the per-sample shape (batch omitted), as nn.Input takes it."""

    __slots__ = ("shape", "name", "_node", "_index")

    def __init__(self, shape, name: str | None = None, node=None, index: int = 0):
        self.shape = tuple(int(s) for s in shape)
        self.name = name  # set for inputs; a layer output is named by the graph that holds it
        self._node = node
        self._index = index

    def _apply_layer(self, layer, x):  # Layer.__call__ sends symbolic calls here
        return _call_layer(layer, x)

    def __repr__(self):
        if self._node is None:
            src = f"input {self.name!r}"
        else:
            src = f"output of layer {self._node.layer.name!r}"
            if len(self._node.outputs) > 1:
                src += f" [{self._index}]"
        return f"SymbolicTensor(shape={_shape_text(self.shape)}, {src})"


class _SymNode:
    """One recorded call: layer, its input tensors and its output tensors (uid: creation order)."""

    __slots__ = ("layer", "inputs", "multi_input", "outputs", "multi_output", "uid")

    def __init__(self, layer, inputs, multi_input):
        self.layer, self.inputs, self.multi_input = layer, tuple(inputs), bool(multi_input)
        self.outputs, self.multi_output = (), False
        self.uid = next(_uids)


def Input(shape, name: str | None = None) -> SymbolicTensor:
    """A model input of per-sample `shape` (batch omitted): Input((3, 32, 32)) for NCHW images,
    Input(784) or Input((784,)) for vectors. `name` defaults to "input", "input_1", ..."""
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise TypeError(f"shape must be an int or a tuple of ints (per sample, batch omitted), got {shape!r}") from None
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"shape must be one or more sizes >= 1 (per sample, batch omitted), got {shape}")
    name = _layers.unique_name("input") if name is None else _layers._check_name(name)
    return SymbolicTensor(shape, name=name)


def _probe_device_xp(layer):
    for p in layer.parameters():
        return _backend.array_module(p.data)
    return np


def _probe(layer, shapes, multi_input, batch):
    xp = _probe_device_xp(layer)
    xs = [xp.zeros((batch,) + s, dtype=np.float32) for s in shapes]
    try:
        with inference():
            y = layer.forward(xs if multi_input else xs[0], training=False)
    except ValueError:
        if batch == 1:  # a layer that needs two samples (batch statistics without running ones)
            try:
                return _probe(layer, shapes, multi_input, 2)
            except (ValueError, TypeError):
                pass
        raise
    finally:
        layer.release_cache()
    return [tuple(o.shape[1:]) for o in y] if isinstance(y, (list, tuple)) else tuple(y.shape[1:])


def _infer_shapes(layer, shapes, multi_input):
    """Per-sample output shapes of `layer` for inputs of per-sample `shapes`, and whether it returns
    a list. A layer (or model) with compute_output_shape answers directly; any other runs forward
    once on zeros of batch 1 in eval mode (which also checks that it accepts the input)."""
    fn = getattr(layer, "compute_output_shape", None)
    try:
        if fn is not None:
            out = fn(list(shapes) if multi_input else shapes[0])
        else:
            out = _probe(layer, shapes, multi_input, 1)
    except (ValueError, TypeError) as e:
        got = ", ".join(_shape_text(s) for s in shapes)
        raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) cannot take input{'s' if multi_input else ''} "
                         f"of shape {got}: {e}") from e
    multi_output = isinstance(out, list)
    return [tuple(int(d) for d in s) for s in (out if multi_output else [out])], multi_output


def _call_layer(layer, x):
    multi = isinstance(x, (list, tuple))
    ins = list(x) if multi else [x]
    for i, t in enumerate(ins):
        if not isinstance(t, SymbolicTensor):
            raise TypeError(f"layer {layer.name!r}: input {i} is a {type(t).__name__}; a layer called on symbolic "
                            f"tensors takes only symbolic tensors (nn.Input or other layers' outputs)")
    shapes, multi_output = _infer_shapes(layer, [t.shape for t in ins], multi)
    node = _SymNode(layer, ins, multi)
    node.outputs = tuple(SymbolicTensor(s, node=node, index=i) for i, s in enumerate(shapes))
    node.multi_output = multi_output
    layer.__dict__.setdefault("_inbound_nodes", []).append(node)
    return list(node.outputs) if multi_output else node.outputs[0]


# --- the plan -------------------------------------------------------------------------------------

class Node:
    """One call of one layer in a Graph: reads the slots `inputs`, writes the slots `outputs`."""

    __slots__ = ("layer", "inputs", "outputs", "multi_input", "multi_output")

    def __init__(self, layer: Layer, inputs, outputs, multi_input: bool = False, multi_output: bool = False):
        self.layer = layer
        self.inputs, self.outputs = tuple(int(s) for s in inputs), tuple(int(s) for s in outputs)
        self.multi_input, self.multi_output = bool(multi_input), bool(multi_output)
        if not self.outputs or (len(self.outputs) > 1 and not self.multi_output):
            raise ValueError(f"node of layer {layer.name!r}: {len(self.outputs)} output slots need multi_output=True")
        if not self.inputs or (len(self.inputs) > 1 and not self.multi_input):
            raise ValueError(f"node of layer {layer.name!r}: {len(self.inputs)} input slots need multi_input=True")

    def __repr__(self):
        return f"Node({self.layer.name!r}, inputs={self.inputs}, outputs={self.outputs})"


def _unique_layers(layer):
    """The layer and every layer inside it, each once."""
    seen, out, stack = set(), [], [layer]
    while stack:
        la = stack.pop()
        if id(la) not in seen:
            seen.add(id(la))
            out.append(la)
            stack.extend(reversed(la.children()))
    return out


def _unique_params(layers):
    seen, out = set(), []
    for la in layers:
        for p in la._params.values():
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


_takes_flag: dict[type, bool] = {}


def _takes_need_input_grad(layer) -> bool:
    cls = type(layer)
    if cls not in _takes_flag:
        try:
            _takes_flag[cls] = "need_input_grad" in inspect.signature(cls.backward).parameters
        except (TypeError, ValueError):
            _takes_flag[cls] = False
    return _takes_flag[cls]


# Private attributes that are persistent state, not per-call caches: never snapshotted.
_PERSISTENT = frozenset({"_params", "_buffers", "_config", "_trainable", "_inbound_nodes", "_graph", "_layers"})


def _snapshot(layers):
    return [(la, {k: v for k, v in la.__dict__.items() if k.startswith("_") and k not in _PERSISTENT})
            for la in layers]


def _restore(snapshot):
    for la, saved in snapshot:
        la.__dict__.update(saved)


class _RunState:
    """What one forward leaves for its backward: the shared nodes' snapshots and the shapes of
    multi-output nodes' outputs (a missing gradient there is zeros)."""

    __slots__ = ("snapshots", "meta", "inference", "used")

    def __init__(self, snapshots, meta, inference):
        self.snapshots, self.meta, self.inference = snapshots, meta, inference
        self.used = False


class Graph:
    """The executable plan: nodes in topological order over integer tensor slots (see the module
    docstring). Immutable once built; forward/backward keep their state in the returned _RunState."""

    def __init__(self, nodes, n_slots: int, inputs, outputs, slot_shapes, slot_names=None, node_names=None):
        self.n_slots = int(n_slots)
        self.inputs, self.outputs = tuple(int(s) for s in inputs), tuple(int(s) for s in outputs)
        self.slot_shapes = [None if s is None else tuple(s) for s in slot_shapes]
        if len(self.slot_shapes) != self.n_slots:
            raise ValueError(f"slot_shapes has {len(self.slot_shapes)} entries for {self.n_slots} slots")
        if len(set(self.inputs)) != len(self.inputs):
            raise ValueError(f"an input slot is listed twice in {self.inputs}")
        nodes = list(nodes)
        names = list(node_names) if node_names is not None else [n.layer.name for n in nodes]
        order = self._toposort(nodes)
        self.nodes = [nodes[i] for i in order]
        self.node_names = [names[i] for i in order]
        self.slot_names = (list(slot_names) if slot_names is not None
                           else [f"t{s}" for s in range(self.n_slots)])

        last = {}  # slot -> index of the last node that reads it (or produces it, if nobody reads it)
        for i, node in enumerate(self.nodes):
            for s in node.outputs:
                last[s] = i
            for s in node.inputs:
                last[s] = i
        keep = set(self.outputs)
        self.frees = [[] for _ in self.nodes]
        for s, i in last.items():
            if s not in keep:
                self.frees[i].append(s)

        self.trees = [_unique_layers(n.layer) for n in self.nodes]
        count = {}
        for tree in self.trees:
            for la in tree:
                count[id(la)] = count.get(id(la), 0) + 1
        self.shared = [any(count[id(la)] > 1 for la in tree) for tree in self.trees]
        self.tree_params = [_unique_params(tree) if sh else [] for tree, sh in zip(self.trees, self.shared)]

    def _toposort(self, nodes):
        """Kahn's algorithm over slot dependencies, ties in the given order; checks that every slot
        read is an input or written by exactly one node, and that there is no cycle."""
        writer = {}
        for i, node in enumerate(nodes):
            for s in node.outputs:
                if not 0 <= s < self.n_slots:
                    raise ValueError(f"layer {node.layer.name!r} writes slot {s}, outside 0..{self.n_slots - 1}")
                if s in writer or s in self.inputs:
                    raise ValueError(f"slot {s} is written twice (by layer {node.layer.name!r})")
                writer[s] = i
        deps = []
        for node in nodes:
            d = set()
            for s in node.inputs:
                if s in self.inputs:
                    continue
                if s not in writer:
                    raise ValueError(f"layer {node.layer.name!r} reads slot {s}, which is neither a model input "
                                     f"nor written by any node (a disconnected graph)")
                d.add(writer[s])
            deps.append(d)
        for s in self.outputs:
            if s not in writer and s not in self.inputs:
                raise ValueError(f"output slot {s} is neither a model input nor written by any node")
        users = [[] for _ in nodes]
        for i, d in enumerate(deps):
            for j in d:
                users[j].append(i)
        waiting = [len(d) for d in deps]
        ready = [i for i, w in enumerate(waiting) if w == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            i = heapq.heappop(ready)
            order.append(i)
            for u in users[i]:
                waiting[u] -= 1
                if waiting[u] == 0:
                    heapq.heappush(ready, u)
        if len(order) != len(nodes):
            stuck = sorted({nodes[i].layer.name for i in range(len(nodes)) if i not in set(order)})
            raise ValueError(f"the graph has a cycle through layer(s) {', '.join(map(repr, stuck))}")
        return order

    # --- from the functional API -----------------------------------------------------------------
    @classmethod
    def from_tensors(cls, inputs, outputs) -> Graph:
        """The plan that computes `outputs` from `inputs` (symbolic tensors): the nodes on the way,
        in call order. Any tensor may serve as an input (nn.Input, or an intermediate tensor to cut
        a graph there)."""
        input_ids = {id(t): k for k, t in enumerate(inputs)}
        if len(input_ids) != len(inputs):
            raise ValueError("the same tensor is listed twice among the model's inputs")
        names = ", ".join(repr(_tensor_label(t)) for t in inputs)
        nodes, seen, reads = [], set(), set()
        stack = [(t, None, o) for o, t in enumerate(outputs)]
        while stack:
            t, consumer, o = stack.pop()
            if id(t) in input_ids:
                reads.add(id(t))
                continue
            node = t._node
            if node is None:
                by = f" (read by layer {consumer.layer.name!r})" if consumer is not None else ""
                raise ValueError(f"output {o} of the model depends on input {t.name!r}{by}, which is not among the "
                                 f"model's inputs ({names}): pass it in inputs=, or build the graph from those inputs")
            if id(node) in seen:
                continue
            seen.add(id(node))
            nodes.append(node)
            stack.extend((u, node, o) for u in node.inputs)
        nodes.sort(key=lambda n: n.uid)

        slot = {id(t): k for k, t in enumerate(inputs)}
        slot_shapes = [t.shape for t in inputs]
        slot_names = [_tensor_label(t) for t in inputs]
        calls, plan, node_names = {}, [], []
        for node in nodes:
            k = calls.get(id(node.layer), 0)
            calls[id(node.layer)] = k + 1
            nname = node.layer.name if k == 0 else f"{node.layer.name}[{k}]"
            outs = []
            for j, t in enumerate(node.outputs):
                slot[id(t)] = len(slot_shapes)
                outs.append(len(slot_shapes))
                slot_shapes.append(t.shape)
                slot_names.append(f"{nname}:{j}" if node.multi_output else nname)
            ins = []
            for t in node.inputs:
                if id(t) not in slot:  # only a tampered structure gets here: a node reads a later one
                    raise ValueError(f"the graph has a cycle through layer {node.layer.name!r}")
                ins.append(slot[id(t)])
            plan.append(Node(node.layer, ins, outs, node.multi_input, node.multi_output))
            node_names.append(nname)
        unused = [t for t in inputs if id(t) not in reads]
        if unused:
            raise ValueError(f"model input {_tensor_label(unused[0])!r} is not connected to the outputs: no layer on "
                             f"the way to them reads it")
        return cls(plan, len(slot_shapes), range(len(inputs)), [slot[id(t)] for t in outputs], slot_shapes,
                   slot_names, node_names)

    # --- execution --------------------------------------------------------------------------------
    def forward(self, xs, training: bool):
        """Run the nodes on the input arrays `xs` (one per input slot): (output arrays, run state)."""
        values = [None] * self.n_slots
        for s, a in zip(self.inputs, xs):
            values[s] = a
        release = not training and in_inference()
        outputs = set(self.outputs)
        snapshots, meta = {}, {}
        for i, node in enumerate(self.nodes):
            args = [values[s] for s in node.inputs]
            y = node.layer.forward(args if node.multi_input else args[0], training)
            ys = y if node.multi_output else (y,)
            if len(ys) != len(node.outputs):
                raise ValueError(f"layer {self.node_names[i]!r} returned {len(ys)} outputs, the graph expects "
                                 f"{len(node.outputs)}")
            for s, v in zip(node.outputs, ys):
                values[s] = v
                if node.multi_output or s in outputs:
                    meta[s] = (tuple(v.shape), v.dtype, _backend.array_module(v))
            for s in self.frees[i]:
                values[s] = None
            if release:
                node.layer.release_cache()
            elif self.shared[i]:
                snapshots[i] = _snapshot(self.trees[i])
        return [values[s] for s in self.outputs], _RunState(snapshots, meta, release)

    def backward(self, out_grads, state: _RunState, need_input_grad: bool = True):
        """Gradients of the input slots (a list; None for an input that gets none) from the output
        gradients (None: zeros), after forward returned `state`. need_input_grad=False: None."""
        if state.inference:
            raise RuntimeError("backward after an inference pass (predict/evaluate release what backward needs); "
                               "run forward first")
        if state.used:
            raise RuntimeError("a second backward after one forward: backward releases what the forward kept "
                               "for it; run forward again")
        state.used = True
        grads = [None] * self.n_slots
        for s, g in zip(self.outputs, out_grads):
            if g is not None:
                grads[s] = g if grads[s] is None else F.add(grads[s], g)
        input_slots = set(self.inputs)
        acc = {}  # id(param) -> its gradient summed over the shared nodes done so far
        for i in range(len(self.nodes) - 1, -1, -1):
            node = self.nodes[i]
            gouts = [grads[s] for s in node.outputs]
            for s in node.outputs:
                grads[s] = None
            if all(g is None for g in gouts):  # nothing downstream depends on it: no gradient
                for p in (self.tree_params[i] or _unique_params(self.trees[i])):
                    if id(p) not in acc:
                        p.grad = None
                state.snapshots.pop(i, None)
                node.layer.release_cache()
                continue
            if any(g is None for g in gouts):
                gouts = [g if g is not None else state.meta[s][2].zeros(state.meta[s][0], state.meta[s][1])
                         for g, s in zip(gouts, node.outputs)]
            g = gouts if node.multi_output else gouts[0]
            skip_dx = not need_input_grad and all(s in input_slots for s in node.inputs)
            if self.shared[i]:
                _restore(state.snapshots.pop(i))
            if skip_dx and _takes_need_input_grad(node.layer):
                gin = node.layer.backward(g, need_input_grad=False)
            else:
                gin = node.layer.backward(g)
            if self.shared[i]:
                for p in self.tree_params[i]:
                    if p.grad is not None:
                        if id(p) in acc:
                            p.grad = F.add(acc[id(p)], p.grad)
                        acc[id(p)] = p.grad
            node.layer.release_cache()
            if skip_dx:
                continue
            gins = gin if node.multi_input else (gin,)
            for s, gi in zip(node.inputs, gins):
                if gi is None or (not need_input_grad and s in input_slots):
                    continue
                grads[s] = gi if grads[s] is None else F.add(grads[s], gi)
        if not need_input_grad:
            return None
        return [grads[s] for s in self.inputs]


def _tensor_label(t: SymbolicTensor) -> str:
    if t._node is None:
        return t.name
    return t._node.layer.name + (f":{t._index}" if t._node.multi_output else "")


# --- the model ------------------------------------------------------------------------------------

class Model(TrainableModel):
    """A model built with the functional API: `nn.Model(inputs, outputs)`, each a symbolic tensor or
    a list of them. Runs the layers between them in topological order (forward) and in reverse
    (backward), summing the gradients of a tensor that feeds several layers.

    Everything Sequential does works here (compile / fit / evaluate / predict, callbacks, summary,
    save / load_model, .to("cuda"), freeze, get_layer), and a Model is itself a layer: call it on
    symbolic tensors to use it inside another Model, or put it in a Sequential.

    - Inputs and outputs keep the structure they were given: with a list of outputs, forward and
      predict return a list and fit/evaluate take y as a list (one array per output); with a list
      of inputs, x is a list. A single tensor means a single array.
    - Several outputs: `loss` is one loss (used for every output) or a list with one per output; the
      training loss is their sum (History's "loss"); accuracy is None with several outputs.
    - Sub-models share layers: nn.Model(base.input, base.get_layer("conv2d_3").output) computes that
      layer's output with the base's own layer objects (and weights).
    - A layer used at several nodes shares its weights; its gradient is the sum over the uses.
    - Layer names must be unique among a model's layers (Keras's rule); get_layer(name) finds them.
    - model.input / model.output (a tensor, or a list when given as lists), model.inputs /
      model.outputs (always lists), model.graph (the plan, see this module's docstring).
    """

    _min_format_version = 3  # save() writes format 3 for any file that contains a graph Model

    def __init__(self, inputs, outputs, loss=None):
        super().__init__()
        self._inputs_as_list = isinstance(inputs, (list, tuple))
        self._outputs_as_list = isinstance(outputs, (list, tuple))
        ins = list(inputs) if self._inputs_as_list else [inputs]
        outs = list(outputs) if self._outputs_as_list else [outputs]
        for what, ts in (("inputs", ins), ("outputs", outs)):
            if not ts:
                raise ValueError(f"{what} is empty")
            for t in ts:
                if not isinstance(t, SymbolicTensor):
                    raise TypeError(f"{what} must be symbolic tensors (nn.Input(...) or a layer called on one), "
                                    f"got {type(t).__name__}")
        self._graph = Graph.from_tensors(ins, outs)
        self._input_tensors, self._output_tensors = tuple(ins), tuple(outs)
        layers, seen = [], set()
        for node in self._graph.nodes:
            if id(node.layer) not in seen:
                seen.add(id(node.layer))
                layers.append(node.layer)
        if any(la is self for la in layers):
            raise ValueError("a model cannot contain itself")
        by_name = {}
        for la in layers:
            if la.name in by_name:
                raise ValueError(f"two different layers are named {la.name!r} ({by_name[la.name]!r} and {la!r}); "
                                 f"layer names must be unique in a model: rename one (name=...)")
            by_name[la.name] = la
        self._layers = layers
        self._run = None
        if loss is not None:
            self.loss = self._get_loss(loss)

    # --- structure ------------------------------------------------------------------------------------
    @property
    def graph(self) -> Graph:
        return self._graph

    def children(self):
        return self._layers

    @property
    def layers(self) -> list[Layer]:
        """The model's layers (each once), in topological order."""
        return list(self._layers)

    @property
    def inputs(self) -> list[SymbolicTensor]:
        return list(self._input_tensors)

    @property
    def outputs(self) -> list[SymbolicTensor]:
        return list(self._output_tensors)

    @property
    def input(self):
        return list(self._input_tensors) if self._inputs_as_list else self._input_tensors[0]

    @property
    def output(self):
        return list(self._output_tensors) if self._outputs_as_list else self._output_tensors[0]

    @property
    def input_shape(self):
        """Per-sample input shape (a list of them for several inputs); fixed by the model's inputs."""
        shapes = [self._graph.slot_shapes[s] for s in self._graph.inputs]
        return shapes if len(shapes) > 1 else shapes[0]

    @input_shape.setter
    def input_shape(self, value):
        if value is None or "_graph" not in self.__dict__:
            return
        norm = [tuple(v) for v in value] if value and isinstance(value[0], (tuple, list)) else tuple(value)
        if norm != self.input_shape:
            raise ValueError(f"input_shape of this model is {self.input_shape} (set by its inputs), got {value}")

    @property
    def output_shape(self):
        shapes = [self._graph.slot_shapes[s] for s in self._graph.outputs]
        return shapes if self._outputs_as_list else shapes[0]

    def compute_output_shape(self, input_shape):
        """The per-sample output shape(s) for per-sample input shape(s): used when this model is called
        on symbolic tensors inside another model."""
        got = [tuple(s) for s in input_shape] if input_shape and isinstance(input_shape[0], (tuple, list)) \
            else [tuple(input_shape)]
        want = [self._graph.slot_shapes[s] for s in self._graph.inputs]
        if got != want:
            raise ValueError(f"model {self.name!r} takes input shape(s) {', '.join(map(_shape_text, want))}, got "
                             f"{', '.join(map(_shape_text, got))}")
        return self.output_shape

    def named_parameters(self, prefix: str = ""):
        """(name, Parameter) for each parameter once, named "<layer name>.<parameter>"."""
        seen = set()
        for la in self._layers:
            for name, p in la.named_parameters(f"{prefix}{la.name}."):
                if id(p) not in seen:
                    seen.add(id(p))
                    yield name, p

    def named_buffers(self, prefix: str = ""):
        seen = set()
        for la in self._layers:
            for qualified, owner, name in la.named_buffers(f"{prefix}{la.name}."):
                if (id(owner), name) not in seen:
                    seen.add((id(owner), name))
                    yield qualified, owner, name

    def describe(self, width: int = 44) -> str:
        return f"Model({len(self._layers)} layers)"[:width]

    def __repr__(self):
        g = self._graph
        lines = [f"  input {g.slot_names[s]}: {_shape_text(g.slot_shapes[s])}" for s in g.inputs]
        for i, node in enumerate(g.nodes):
            ins = ", ".join(g.slot_names[s] for s in node.inputs)
            lines.append(f"  ({i}) {g.node_names[i]}: {node.layer!r} <- {ins}")
        lines.append(f"  outputs: {', '.join(g.slot_names[s] for s in g.outputs)}")
        return f"Model({self.name!r},\n" + "\n".join(lines) + "\n)"

    # --- the pass -------------------------------------------------------------------------------
    def _input_list(self, x):
        n = len(self._graph.inputs)
        xs = list(x) if isinstance(x, (list, tuple)) else [x]
        if len(xs) != n:
            names = ", ".join(repr(self._graph.slot_names[s]) for s in self._graph.inputs)
            raise ValueError(f"model {self.name!r} takes {n} input{'s' if n > 1 else ''} ({names}), got {len(xs)}")
        for s, a in zip(self._graph.inputs, xs):
            want = self._graph.slot_shapes[s]
            if not hasattr(a, "shape") or tuple(a.shape[1:]) != want or a.ndim != len(want) + 1:
                got = tuple(a.shape) if hasattr(a, "shape") else type(a).__name__
                raise ValueError(f"model {self.name!r}: input {self._graph.slot_names[s]!r} must have shape "
                                 f"{_shape_text(want)}, got {got}")
        return xs

    def forward(self, x, training=None):
        training = self._is_training(training)
        if training:
            _plan.invalidate(self)  # the weights are about to change
        elif not isinstance(x, (list, tuple)):  # eval mode: the whole model in one C++ call (nn/plan.py)
            y = _plan.run(self, x)
            self._planned = y is not None
            if y is not None:
                self._run = None
                return [y] if self._outputs_as_list else y
        self._planned = False
        with _arena():  # activations from the block cache (fastlayers.memory)
            outs, self._run = self._graph.forward(self._input_list(x), training)
        return outs if self._outputs_as_list else outs[0]

    def backward(self, grad_out, need_input_grad: bool = True):
        """Input gradient(s) from the output gradient(s) (a list for a list of outputs; None entries
        count as zeros). need_input_grad=False (training): the input gradients are not computed and
        None is returned. Each layer's cache is released once its backward ran (as PyTorch frees
        saved tensors), so one forward allows one backward."""
        _plan.check_backward(self)
        if self._run is None:
            raise RuntimeError(f"model {self.name!r}: backward before forward")
        gs = list(grad_out) if self._outputs_as_list else [grad_out]
        if len(gs) != len(self._graph.outputs):
            raise ValueError(f"model {self.name!r} has {len(self._graph.outputs)} outputs, got {len(gs)} gradients")
        with _arena():
            gin = self._graph.backward(gs, self._run, need_input_grad)
        if gin is None:
            return None
        return gin if self._inputs_as_list else gin[0]

    # --- training hooks (several inputs / outputs) -------------------------------------------------
    def _get_loss(self, loss):
        if isinstance(loss, (list, tuple)):
            n = len(self._graph.outputs)
            if len(loss) != n:
                raise ValueError(f"loss: {len(loss)} losses for a model with {n} outputs")
            return [_losses.get_loss(lf) for lf in loss]
        return _losses.get_loss(loss)

    def _require_loss(self):
        loss = super()._require_loss()
        if not self._outputs_as_list:
            return loss[0] if isinstance(loss, list) else loss
        losses = loss if isinstance(loss, list) else [loss] * len(self._graph.outputs)
        fresh, seen = [], set()
        for lf in losses:  # one instance per output: a loss caches its arguments for backward
            if id(lf) in seen:
                lf = type(lf)(**lf.get_config())
            seen.add(id(lf))
            fresh.append(lf)
        return _MultiOutputLoss(fresh)

    def _as_input(self, x):
        n = len(self._graph.inputs)
        if isinstance(x, _Arrays):
            return x
        if n == 1:
            if isinstance(x, (list, tuple)) and len(x) == 1 and hasattr(x[0], "shape"):
                x = x[0]
            return super()._as_input(x)
        names = ", ".join(repr(self._graph.slot_names[s]) for s in self._graph.inputs)
        if not isinstance(x, (list, tuple)) or len(x) != n:
            raise ValueError(f"x must be a list of {n} arrays, one per input ({names}), got "
                             f"{type(x).__name__}" + (f" of {len(x)}" if isinstance(x, (list, tuple)) else ""))
        arrays = [super(Model, self)._as_input(a, f"x[{i}]") for i, a in enumerate(x)]
        for i, a in enumerate(arrays):
            if a.ndim < 2:
                raise ValueError(f"x[{i}] must have a batch dimension, got shape {a.shape}")
        if len({len(a) for a in arrays}) > 1:
            raise ValueError(f"the inputs must have the same number of samples, got {[len(a) for a in arrays]}")
        return _Arrays(arrays)

    def _set_input_shape(self, x):
        pass  # fixed by the model's inputs

    def _output_shape(self, x):
        return self._graph.slot_shapes[self._graph.outputs[0]]  # known: no probe (single output here)

    def _put(self, a):
        if isinstance(a, _Arrays):
            return [super(Model, self)._put(v) for v in a.arrays]
        return super()._put(a)

    def _put_target(self, t):
        if isinstance(t, _Arrays):
            return [super(Model, self)._put_target(v) for v in t.arrays]
        return super()._put_target(t)

    def _check_xy(self, x, y):
        if not self._outputs_as_list:
            return super()._check_xy(x, y)
        x = self._as_input(x)
        if len(x) == 0:
            raise ValueError("x is empty")
        if y is None:
            return x, None
        n = len(self._graph.outputs)
        names = ", ".join(repr(self._graph.slot_names[s]) for s in self._graph.outputs)
        if not isinstance(y, (list, tuple)) or len(y) != n:
            raise ValueError(f"y must be a list of {n} arrays, one per output ({names}), got {type(y).__name__}"
                             + (f" of {len(y)}" if isinstance(y, (list, tuple)) else ""))
        ys = [np.asarray(_to_numpy(v)) for v in y]
        for i, v in enumerate(ys):
            if len(v) != len(x):
                raise ValueError(f"x and y[{i}] must have the same number of samples, got {len(x)} and {len(v)}")
        shapes = [self._graph.slot_shapes[s] for s in self._graph.outputs]
        return x, _Arrays(self._require_loss().prepare_target(ys, shapes))

    @_inference_pass
    def predict(self, x, batch_size: int = 256):
        """The model's outputs in eval mode (a list for a list of outputs); NumPy in, NumPy out."""
        if not self._outputs_as_list and not isinstance(x, (list, tuple)):
            return super().predict(x, batch_size)
        xs = x if isinstance(x, (list, tuple)) else [x]
        on_gpu = any(_backend.is_cupy_array(a) for a in xs)
        x = self._as_input(x)
        shapes = [self._graph.slot_shapes[s] for s in self._graph.outputs]
        chunks = [[] for _ in shapes]
        for s in range(0, len(x), batch_size):
            ys = self.forward(self._put(x[s:s + batch_size]), training=False)
            for c, v in zip(chunks, ys if self._outputs_as_list else [ys]):
                c.append(_to_numpy(v))
        outs = [np.concatenate(c) if c else np.zeros((0,) + sh, np.float32) for c, sh in zip(chunks, shapes)]
        if on_gpu:
            outs = [to_device(o, "cuda") for o in outs]
        return outs if self._outputs_as_list else outs[0]

    # --- description ----------------------------------------------------------------------------
    def _summary_table(self, shape):
        if shape is not None:
            norm = [tuple(s) for s in shape] if shape and isinstance(shape[0], (tuple, list)) else tuple(shape)
            if norm != self.input_shape:
                raise ValueError(f"input_shape: this model's inputs have shape {self.input_shape}, got {shape}")
        g = self._graph
        head = f"{'#':>3}  {'name':<20} {'layer':<36} {'output shape':<20} {'params':>10}  connected to"
        rows = [f"{'':>3}  {g.slot_names[s]:<20} {'Input':<36} {_shape_text(g.slot_shapes[s]):<20} {0:>10}"
                for s in g.inputs]
        seen = set()
        for i, node in enumerate(g.nodes):
            layer = node.layer
            out = ", ".join(_shape_text(g.slot_shapes[s]) for s in node.outputs)
            params = "shared" if id(layer) in seen else f"{layer.num_parameters():,}"
            seen.add(id(layer))
            frozen = "" if layer.trainable else "  (frozen)"
            conn = ", ".join(g.slot_names[s] for s in node.inputs)
            rows.append(f"{i:>3}  {g.node_names[i]:<20} {layer.describe(36):<36} {out:<20} {params:>10}  {conn}{frozen}")
        rows.append(f"outputs: {', '.join(g.slot_names[s] for s in g.outputs)}")
        return head, rows

    # --- persistence ----------------------------------------------------------------------------
    def _children_to_config(self, to_config) -> dict:
        _check_savable_sharing(self)
        g = self._graph
        index = {id(la): i for i, la in enumerate(self._layers)}
        return {"layers": [to_config(la) for la in self._layers],
                "graph": {"n_slots": g.n_slots,
                          "inputs": [{"slot": s, "name": g.slot_names[s], "shape": list(g.slot_shapes[s])}
                                     for s in g.inputs],
                          "nodes": [{"layer": index[id(n.layer)], "inputs": list(n.inputs), "outputs": list(n.outputs),
                                     "multi_input": n.multi_input, "multi_output": n.multi_output} for n in g.nodes],
                          "outputs": list(g.outputs),
                          "inputs_as_list": self._inputs_as_list, "outputs_as_list": self._outputs_as_list}}

    @classmethod
    def _from_children_config(cls, d: dict, from_config):
        layers = [from_config(c) for c in d["layers"]]
        g = d["graph"]
        tensors = {}
        for spec in g["inputs"]:
            tensors[spec["slot"]] = Input(tuple(spec["shape"]), name=spec["name"])
        for nd in g["nodes"]:
            layer = layers[nd["layer"]]
            args = [tensors[s] for s in nd["inputs"]]
            out = layer(args if nd["multi_input"] else args[0])
            outs = out if nd["multi_output"] else [out]
            if len(outs) != len(nd["outputs"]):
                raise ValueError(f"saved graph: layer {layer.name!r} gives {len(outs)} outputs, the file lists "
                                 f"{len(nd['outputs'])}")
            for s, t in zip(nd["outputs"], outs):
                tensors[s] = t
        ins = [tensors[spec["slot"]] for spec in g["inputs"]]
        outs = [tensors[s] for s in g["outputs"]]
        return cls(ins if g["inputs_as_list"] else ins[0], outs if g["outputs_as_list"] else outs[0])


def _check_savable_sharing(model: Layer):
    """A layer with weights that sits in two containers of the tree (e.g. in a nested Sequential and
    directly in the model) cannot be written once and rebuilt shared: refuse rather than load two."""
    owner = {}

    def visit(container, path):
        for child in container.children():
            if id(child) in owner:
                if owner[id(child)] != path and (child._params or child._buffers or child.parameters()):
                    raise ValueError(f"cannot save: layer {child.name!r} is used in {owner[id(child)]!r} and in "
                                     f"{path!r}; a saved model keeps weight sharing only between calls of one "
                                     f"layer in one Model")
                continue
            owner[id(child)] = path
            visit(child, f"{path}/{child.name}")

    visit(model, model.name)
