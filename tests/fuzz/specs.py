"""Hypothesis strategies for the fuzz test: plain-data call specs (picklable dicts) for every public
op and layer. Most draws are coherent calls (shapes that fit together, geometry that gives an
output), so that the kernels run and are compared with the reference; the rest replace one
argument with a hostile value (None, a string, a float where an int belongs, 2**63, NaN, an array
of the wrong shape or dtype, a view aliasing another argument). Sizes and geometry run from 0 to
2**64 with the int64 and 2**48 boundaries drawn on purpose; arrays stay small so every call is cheap.
"""

from __future__ import annotations

import inspect

from hypothesis import strategies as st

BOUNDARY = [-1, -(2**63), 2**31 - 1, 2**31, 2**32 + 1, 2**47, 2**48, 2**48 + 1, 2**62, 2**63 - 1, 2**63, 2**64]
# Paddings past 40 are huge on purpose: a padding in between (2**12 .. 2**28) gives outputs of
# gigabytes, slow to compute twice and no more interesting than these.
PADDINGS = st.one_of(st.integers(0, 4), st.integers(0, 4), st.integers(5, 40),
                     st.sampled_from([2**30, 2**31, 2**47, 2**48, 2**62, 2**63 - 1, 2**63, 2**64, -1, -(2**63)]))
STRIDES = st.one_of(st.integers(1, 4), st.integers(1, 4), st.integers(0, 40), st.sampled_from(BOUNDARY),
                    st.integers(-(2**64), 2**64))
DILATIONS = st.one_of(st.integers(1, 3), st.integers(1, 3), st.integers(0, 40), st.sampled_from(BOUNDARY))

HOSTILE = st.one_of(
    st.sampled_from([None, "1", "same", 1.5, -0.5, float("nan"), float("inf"), -1, 0, 1, True, 2**63, 2**64,
                     -(2**63) - 1, [], (), (1, 2, 3), (1.5, 2), {"kind": "object"},
                     {"kind": "scalar-array", "dtype": "float32", "value": 1.0},
                     {"kind": "scalar-array", "dtype": "uint64", "value": 2**64 - 1}]),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
)

FLOAT_DTYPES = ["float32"] * 8 + ["float64", "float16", "int32", "int64", "uint8", "uint64", "bool", "complex64",
                                  "object", ">f4"]
LAYOUTS = ["contiguous"] * 6 + ["fortran", "reversed", "strided", "misaligned", "readonly", "bigendian"]


@st.composite
def array(draw, shape, dtypes=FLOAT_DTYPES, values=None, layouts=LAYOUTS):
    spec = {"kind": "array", "shape": list(shape), "dtype": draw(st.sampled_from(dtypes)),
            "layout": draw(st.sampled_from(layouts)), "seed": draw(st.integers(0, 2**32 - 1)),
            "special": draw(st.sampled_from([False] * 7 + [True]))}
    if values is not None:
        spec["values"] = values
    return spec


def dims(max_ndim=4, max_size=7):
    size = st.one_of(st.integers(0, max_size), st.integers(1, max_size), st.integers(1, 3))
    return st.lists(size, min_size=0, max_size=max_ndim)


@st.composite
def hostile_array(draw):
    return draw(array(draw(dims(5, 9))))


@st.composite
def maybe_hostile(draw, args: dict, keep=()):
    """args, or (about one draw in four) args with one entry replaced by a hostile value or array.
    Records which arguments are arrays (for the reference, which wants arrays where the op takes
    array-likes) under "__arrays__"; op() moves it into the spec."""
    arrays = [k for k, v in args.items() if isinstance(v, dict) and v.get("kind") == "array"]
    out = dict(args)
    names = [k for k in args if k not in keep]
    if names and draw(st.sampled_from([False, False, False, True])):
        name = draw(st.sampled_from(names))
        out[name] = draw(st.one_of(HOSTILE, hostile_array()))
    out["__arrays__"] = arrays
    return out


@st.composite
def aliased(draw, args: dict, arrays: list):
    """With some probability, make one array argument a view of another's memory ('same' object,
    or shifted by a few elements so they overlap)."""
    present = [a for a in arrays if isinstance(args.get(a), dict) and args[a].get("kind") == "array"]
    if len(present) < 2 or not draw(st.sampled_from([False, False, False, True])):
        return args
    first = draw(st.sampled_from(present))
    second = draw(st.sampled_from([a for a in present if a != first]))
    out = dict(args)
    out[second] = dict(out[second], alias=[first, draw(st.sampled_from(["same", "shift"])),
                                           draw(st.integers(0, 4))])
    return out


def op(name, args, inplace=()):
    args = dict(args)
    arrays = args.pop("__arrays__", [])
    return {"op": name, "args": args, "positional": [], "inplace": list(inplace), "inplace_order": list(inplace),
            "arrays": arrays}


# ---- families ------------------------------------------------------------------------------------

UNARY = ["relu", "sigmoid", "tanh", "sign"]
UNARY_BACKWARD = {"relu_backward": "x", "sigmoid_backward": "y", "tanh_backward": "y"}


@st.composite
def unary_calls(draw):
    shape = draw(dims())
    name = draw(st.sampled_from(UNARY + ["leaky_relu", "heaviside"] + list(UNARY_BACKWARD) + ["leaky_relu_backward"]))
    x = draw(array(shape))
    if name in UNARY:
        args = {"x": x}
    elif name == "leaky_relu":
        args = {"x": x, "negative_slope": draw(st.floats(-2, 2))}
    elif name == "heaviside":
        args = {"x": x, "value_at_zero": draw(st.floats(-2, 2))}
    elif name == "leaky_relu_backward":
        args = {"grad_out": draw(array(shape)), "x": x, "negative_slope": draw(st.floats(-2, 2))}
    else:
        args = {"grad_out": draw(array(shape)), UNARY_BACKWARD[name]: x}
    args = draw(aliased(args, ["x", "y", "grad_out"]))
    return op(name, draw(maybe_hostile(args)))


@st.composite
def softmax_calls(draw):
    shape = draw(dims())
    nd = len(shape)
    axis = draw(st.one_of(st.integers(-nd - 1, nd), st.sampled_from([2**63, 2**70, -(2**70)])))
    name = draw(st.sampled_from(["softmax", "log_softmax", "softmax_backward", "log_softmax_backward"]))
    if name.endswith("backward"):
        # y is the forward's output: log_softmax's is a log-probability (<= 0; a y past 88 would
        # overflow exp(y) in float32, a value log_softmax never returns).
        y = draw(array(shape, values=["nonpos"])) if name == "log_softmax_backward" else draw(array(shape))
        args = {"grad_out": draw(array(shape)), "y": y, "axis": axis}
    else:
        args = {"x": draw(array(shape)), "axis": axis}
    return op(name, draw(maybe_hostile(draw(aliased(args, ["grad_out", "y"])))))


def _pair_or_int(strategy):
    return st.one_of(strategy, st.tuples(strategy, strategy), st.lists(strategy, min_size=2, max_size=2))


def _out_size(n, pad, dil, k, stride):
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (n, pad, dil, k, stride)):
        return None
    if stride < 1 or dil < 1 or pad < 0:
        return None
    p = (n + 2 * pad - dil * (k - 1) - 1)
    return p // stride + 1 if p >= 0 else None


def _as2(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


@st.composite
def conv_calls(draw):
    one_d = draw(st.booleans())
    g = draw(st.sampled_from([1, 1, 1, 2, 3]))
    cg, kg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    n = draw(st.integers(0, 3))
    h = 1 if one_d else draw(st.integers(1, 9))
    w = draw(st.integers(1, 12))
    r = 1 if one_d else draw(st.integers(1, 4))
    s = draw(st.integers(1, 4))
    if one_d:
        stride, padding, dilation = (draw(st.one_of(STRIDES, st.tuples(STRIDES))), draw(PADDINGS), draw(DILATIONS))
    else:
        stride, padding, dilation = (draw(_pair_or_int(STRIDES)), draw(_pair_or_int(PADDINGS)),
                                     draw(_pair_or_int(DILATIONS)))
    xs = [n, cg * g, w] if one_d else [n, cg * g, h, w]
    ws = [kg * g, cg, s] if one_d else [kg * g, cg, r, s]
    backward = draw(st.booleans())
    prefix = "conv1d" if one_d else "conv2d"
    geo = {"stride": stride, "padding": padding, "dilation": dilation, "groups": g}
    if not backward:
        args = {"x": draw(array(xs)), "w": draw(array(ws)),
                "b": draw(st.one_of(st.none(), array([kg * g]))), **geo}
        args = draw(aliased(args, ["x", "w", "b"]))
        return op(prefix, draw(maybe_hostile(args)))
    st1 = _as2(stride[0] if one_d and isinstance(stride, tuple) else stride)
    p2, d2 = _as2(padding), _as2(dilation)
    if one_d:
        q = _out_size(w, p2[0], d2[0], s, st1[0])
        go_shape = [n, kg * g, q] if q is not None else None
    else:
        p_, q = _out_size(h, p2[0], d2[0], r, st1[0]), _out_size(w, p2[1], d2[1], s, st1[1])
        go_shape = [n, kg * g, p_, q] if p_ is not None and q is not None else None
    if go_shape is None or any(v > 64 for v in go_shape[2:]) or n * kg * g * max(1, go_shape[-1]) > 1 << 16:
        go_shape = [n, kg * g] + [draw(st.integers(0, 4))] * (1 if one_d else 2)
    args = {"grad_out": draw(array(go_shape)), "x": draw(array(xs)), "w": draw(array(ws)), **geo,
            "need_grad_x": draw(st.sampled_from([True, True, False]))}
    args = draw(aliased(args, ["grad_out", "x", "w"]))
    return op(prefix + "_backward", draw(maybe_hostile(args)))


SEEDS = st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([0, 2**64 - 1, 2**32, -1, 2**64]))
PROBS = st.one_of(st.floats(0, 0.999), st.sampled_from([0.0, 0.5, 1.0, -0.1, 2.0, float("nan")]))


@st.composite
def dropout_calls(draw):
    name = draw(st.sampled_from(["dropout", "dropout_backward", "dropout_mask"]))
    shape = draw(dims())
    if name == "dropout":
        args = {"x": draw(array(shape)), "p": draw(PROBS), "seed": draw(SEEDS),
                "training": draw(st.sampled_from([True, True, False]))}
    elif name == "dropout_backward":
        args = {"grad_out": draw(array(shape)), "p": draw(PROBS), "seed": draw(SEEDS)}
    else:
        args = {"shape": draw(st.one_of(st.tuples(*[st.integers(0, 6)] * len(shape)), st.integers(0, 40))),
                "p": draw(PROBS), "seed": draw(SEEDS)}
    return op(name, draw(maybe_hostile(args)))


@st.composite
def add_calls(draw):
    shape = draw(dims())
    if draw(st.booleans()):
        args = draw(aliased({"a": draw(array(shape)), "b": draw(array(shape))}, ["a", "b"]))
        return op("add", draw(maybe_hostile(args)))
    return op("add_backward", draw(maybe_hostile({"grad_out": draw(array(shape))})))


@st.composite
def gemm_calls(draw):
    big = draw(st.sampled_from([False, False, False, True]))  # sizes that reach the blocked kernels
    size = st.integers(0, 70) if big else st.integers(0, 6)
    m, k, n = draw(size), draw(size), draw(size)
    ta, tb = draw(st.booleans()), draw(st.booleans())
    a = draw(array([k, m] if ta else [m, k]))
    b = draw(array([n, k] if tb else [k, n]))
    alpha = draw(st.one_of(st.just(1.0), st.floats(-3, 3)))
    beta = draw(st.one_of(st.just(0.0), st.floats(-3, 3)))
    if draw(st.booleans()):
        args = {"a": a, "b": b, "trans_a": ta, "trans_b": tb, "alpha": alpha, "beta": beta,
                "c": draw(st.one_of(st.none(), array([m, n])))}
        return op("gemm", draw(maybe_hostile(draw(aliased(args, ["a", "b", "c"])))))
    args = {"grad_out": draw(array([m, n])), "a": a, "b": b, "trans_a": ta, "trans_b": tb, "alpha": alpha,
            "beta": beta}
    return op("gemm_backward", draw(maybe_hostile(draw(aliased(args, ["grad_out", "a", "b"])))))


@st.composite
def linear_calls(draw):
    lead = draw(dims(3, 5))
    fin, fout = draw(st.integers(0, 9)), draw(st.integers(0, 9))
    x, w = draw(array(lead + [fin])), draw(array([fout, fin]))
    if draw(st.booleans()):
        args = {"x": x, "w": w, "b": draw(st.one_of(st.none(), array([fout])))}
        return op("linear", draw(maybe_hostile(draw(aliased(args, ["x", "w", "b"])))))
    args = {"grad_out": draw(array(lead + [fout])), "x": x, "w": w, "with_bias": draw(st.booleans())}
    return op("linear_backward", draw(maybe_hostile(draw(aliased(args, ["grad_out", "x", "w"])))))


REDUCTIONS = st.sampled_from(["mean", "mean", "sum", "none", None, "MEAN"])


@st.composite
def loss_calls(draw):
    kind = draw(st.sampled_from(["mse_loss", "binary_cross_entropy_with_logits", "softmax_cross_entropy",
                                 "logistic_loss", "hinge_loss"]))
    name = kind + draw(st.sampled_from(["", "_backward"]))
    if kind == "softmax_cross_entropy":
        nb, c = draw(st.integers(0, 6)), draw(st.integers(0, 6))
        if draw(st.booleans()):
            labels = draw(array([nb], dtypes=["int64", "int64", "int32", "uint8", "uint64"],
                                values=["range", 0, max(c, 1) + draw(st.sampled_from([0, 0, 0, 1]))]))
        else:
            labels = draw(array([nb, c], values=["probs"]))
        args = {"logits": draw(array([nb, c])), "labels": labels, "reduction": draw(REDUCTIONS)}
    else:
        shape = draw(dims())
        first, second = {"mse_loss": ("pred", "target"), "binary_cross_entropy_with_logits": ("logits", "target"),
                         "logistic_loss": ("scores", "labels"), "hinge_loss": ("scores", "labels")}[kind]
        values = ["pm1"] if kind in ("logistic_loss", "hinge_loss") else None
        args = {first: draw(array(shape)), second: draw(array(shape, values=values)),
                "reduction": draw(REDUCTIONS)}
        if kind == "hinge_loss":
            args["margin"] = draw(st.one_of(st.floats(0, 3), st.sampled_from([-1.0, float("nan"), float("inf")])))
    return op(name, draw(maybe_hostile(args)))


@st.composite
def optim_calls(draw):
    shape = draw(dims(3, 6))
    inplace_layouts = ["contiguous"] * 10 + ["misaligned", "readonly", "fortran", "strided"]
    state = lambda values=None: array(shape, dtypes=["float32"] * 10 + ["float64"], layouts=inplace_layouts,  # noqa
                                      values=values)
    if draw(st.booleans()):
        momentum = draw(st.one_of(st.just(0.0), st.floats(0, 0.99), st.sampled_from([1.0, -0.1])))
        args = {"param": draw(state()), "grad": draw(array(shape)),
                "velocity": draw(st.one_of(st.none(), state())), "lr": draw(st.floats(0, 2)),
                "momentum": momentum, "weight_decay": draw(st.sampled_from([0.0, 0.01, -1.0])),
                "l1": draw(st.sampled_from([0.0, 0.001])), "nesterov": draw(st.booleans())}
        args = draw(maybe_hostile(draw(aliased(args, ["param", "grad", "velocity"]))))
        return op("sgd_update", args, inplace=["param", "velocity"])
    args = {"param": draw(state()), "grad": draw(array(shape)), "m": draw(state()), "v": draw(state(["abs"])),
            "step": draw(st.one_of(st.integers(1, 10), st.sampled_from([0, 2**62, 2**63 - 1, 2**63]))),
            "lr": draw(st.floats(0, 1)), "beta1": draw(st.floats(0, 0.99)), "beta2": draw(st.floats(0, 0.999)),
            "eps": draw(st.sampled_from([1e-8, 1e-3, 0.0])), "weight_decay": draw(st.sampled_from([0.0, 0.1]))}
    args = draw(maybe_hostile(draw(aliased(args, ["param", "grad", "m", "v"]))))
    return op("adam_update", args, inplace=["param", "m", "v"])


@st.composite
def pool_calls(draw):
    name = draw(st.sampled_from(["max_pool2d", "avg_pool2d", "lp_pool2d", "global_avg_pool2d"]))
    backward = draw(st.booleans())
    xs = [draw(st.integers(0, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 9))]
    if draw(st.sampled_from([False] * 5 + [True])):
        xs = draw(dims(5, 4))  # any shape, usually wrong
    x = draw(array(xs))
    if name == "global_avg_pool2d":
        args = {"grad_out": draw(array(xs[:2])), "x": x} if backward else {"x": x}
    else:
        kh = draw(st.one_of(st.integers(1, 5), st.integers(1, 5), st.sampled_from(BOUNDARY)))
        kw = draw(st.one_of(st.just(kh), st.integers(1, 5), st.sampled_from(BOUNDARY)))
        pad = lambda k: st.one_of(st.integers(0, max(0, k // 2)) if isinstance(k, int) and 0 < k < 2**70  # noqa
                                  else st.just(0), st.sampled_from(BOUNDARY + [k // 2 if isinstance(k, int) else 0]))
        k = draw(st.sampled_from([(kh, kw), [kh, kw], kh]))
        padding = draw(st.one_of(st.tuples(pad(kh), pad(kw)), pad(kh)))
        args = {"x": x, "kernel_size": k, "stride": draw(st.one_of(st.none(), _pair_or_int(STRIDES))),
                "padding": padding}
        if name == "avg_pool2d":
            args["count_include_pad"] = draw(st.booleans())
        if name == "lp_pool2d":
            args["p"] = draw(st.one_of(st.floats(0.5, 4), st.sampled_from([0.0, -1.0, float("nan"), float("inf")])))
        if backward:
            args["grad_out"] = draw(array(xs[:2] + [draw(st.integers(0, 5)), draw(st.integers(0, 5))]))
    return op(name + ("_backward" if backward else ""), draw(maybe_hostile(args)))


# ---- ops nobody wrote a family for: driven from their signature ----------------------------------

ARRAY_WORDS = ("x", "y", "a", "b", "w", "grad", "param", "target", "pred", "logits", "scores", "labels",
               "input", "weight", "bias", "mean", "var", "gamma", "beta", "indices", "m", "v", "c", "out")
GEOMETRY_WORDS = ("kernel_size", "stride", "padding", "dilation", "output_size", "groups", "size",
                  "output_padding", "dim", "axis", "chunks", "sections", "split_size")


@st.composite
def generic_calls(draw, name, fn):
    sig = inspect.signature(fn)
    shape = draw(dims())
    args = {}
    for pname, p in sig.parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        has_default = p.default is not inspect.Parameter.empty
        if has_default and draw(st.booleans()):
            continue  # keep the default
        d = p.default
        if pname in GEOMETRY_WORDS or any(pname.startswith(g) for g in GEOMETRY_WORDS):
            args[pname] = draw(_pair_or_int(st.one_of(st.integers(0, 4), st.sampled_from(BOUNDARY))))
        elif isinstance(d, bool):
            args[pname] = draw(st.booleans())
        elif isinstance(d, float):
            args[pname] = draw(st.one_of(st.floats(-2, 2), st.sampled_from([0.0, float("nan"), float("inf")])))
        elif isinstance(d, int):
            args[pname] = draw(st.one_of(st.integers(-1, 5), st.sampled_from(BOUNDARY)))
        elif isinstance(d, str):
            args[pname] = draw(st.sampled_from([d, d, "bogus", ""]))
        elif (pname in ARRAY_WORDS or pname.startswith("grad") or not has_default or d is None):
            if pname == "seed":
                args[pname] = draw(SEEDS)
            elif pname in ("p", "lr", "eps", "momentum"):
                args[pname] = draw(st.floats(0, 0.9))
            else:
                args[pname] = draw(st.one_of(st.none(), array(shape))) if d is None else draw(array(shape))
    args = draw(aliased(args, [k for k in args]))
    # What the op may update in place (the API says so): an optimizer update's state arrays, batch
    # norm's running statistics. Every other argument must come back unchanged.
    if name.endswith("_update"):
        inplace = [k for k, v in args.items() if not k.startswith("grad") and isinstance(v, dict)]
    else:
        inplace = [k for k in args if k.startswith("running_")]
    return op(name, draw(maybe_hostile(args)), inplace=[k for k in inplace if k in args])


# ---- layers --------------------------------------------------------------------------------------

SIZES = st.one_of(st.integers(1, 6), st.integers(1, 6),
                  st.sampled_from([0, -1, 2.5, 2.0, "3", None, True, 2**63, 2**70]))


@st.composite
def layer_calls(draw, pools=False):
    names = (["MaxPool2d", "AvgPool2d", "LpPool2d", "GlobalAvgPool2d"] if pools else
             ["Linear", "Conv2d", "Conv1d", "Flatten", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "Dropout"])
    name = draw(st.sampled_from(names))
    n = draw(st.integers(0, 3))
    if name == "Linear":
        fin, fout = draw(SIZES), draw(SIZES)
        ctor = {"in_features": fin, "out_features": fout, "bias": draw(st.booleans())}
        xs = draw(dims(2, 4)) + [fin if type(fin) is int and 0 <= fin < 64 else 3]
    elif name in ("Conv2d", "Conv1d"):
        cin, cout = draw(SIZES), draw(SIZES)
        two = name == "Conv2d"
        k = draw(_pair_or_int(SIZES) if two else SIZES)
        ctor = {"in_channels": cin, "out_channels": cout, "kernel_size": k,
                "stride": draw(_pair_or_int(STRIDES) if two else STRIDES),
                "padding": draw(_pair_or_int(PADDINGS) if two else PADDINGS),
                "dilation": draw(_pair_or_int(DILATIONS) if two else DILATIONS),
                "groups": draw(st.sampled_from([1, 1, 2, 0, 1.5])), "bias": draw(st.booleans())}
        c = cin if type(cin) is int and 0 < cin < 64 else 2
        xs = [n, c] + [draw(st.integers(1, 9)) for _ in range(2 if two else 1)]
    elif name in ("MaxPool2d", "AvgPool2d", "LpPool2d"):
        ctor = {"kernel_size": draw(_pair_or_int(SIZES)), "stride": draw(st.one_of(st.none(), _pair_or_int(STRIDES))),
                "padding": draw(_pair_or_int(st.integers(0, 2)))}
        if name == "LpPool2d":
            ctor["p"] = draw(st.sampled_from([1.0, 2.0, 3.0, 0.0, -1.0]))
        xs = [n, draw(st.integers(1, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 9))]
    elif name == "GlobalAvgPool2d":
        ctor, xs = {}, [n, draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 5))]
    elif name == "LeakyReLU":
        ctor, xs = {"negative_slope": draw(st.one_of(st.floats(-1, 1), HOSTILE))}, draw(dims())
    elif name == "Softmax":
        ctor, xs = {"axis": draw(st.one_of(st.integers(-3, 3), HOSTILE))}, draw(dims())
    elif name == "Dropout":
        ctor = {"p": draw(PROBS), "seed": draw(SEEDS)}
        xs = draw(dims())
    else:
        ctor, xs = {}, draw(dims())
    grad = draw(array(draw(dims())))
    if draw(st.sampled_from([True] * 5 + [False])):
        grad["shape"] = "like-output"  # the worker fills in the forward's output shape
    return {"layer": name, "ctor": ctor, "x": draw(array(xs)), "training": draw(st.booleans()),
            "backward": draw(st.booleans()), "grad": grad}
