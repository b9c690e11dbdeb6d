"""The benchmark cases: one per (op, shape), for every op family in docs/ops.md.

A Case knows how to make its inputs on NumPy or CuPy (`setup(xp)`), how to call the op through an
ops namespace (`ours(o, state)`: o is `fastlayers` for the cpu/cuda backends and
`fastlayers.reference` for the NumPy reference, both with the same names), and how to call the
established libraries that anchor it (`xp_anchor(xp, state)` for numpy / cupy, `torch_anchor(torch,
state)` for torch-cpu / torch-cuda, where state holds torch tensors). Each builder returns a
zero-argument callable that is then timed; setup work (optimizers, saved indices) happens in the
builder, outside the timed call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

GEMM_SHAPES = [(256, 256, 256), (1024, 1024, 1024), (2048, 2048, 2048), (4096, 4096, 4096),
               (100, 784, 200), (784, 100, 200), (100, 200, 10), (100, 1024, 200)]
FULL_ONLY_GEMM = 4096**3  # a 4096^3 product takes ~0.6 s a call on 2 cores: the full run only

# The six layers of /work/shared/ANCHORS.md: (name, N, C, H, W, K, R, S, stride, padding).
CONV_LAYERS = [
    ("a", 100, 1, 28, 28, 32, 5, 5, 1, 0),
    ("b", 100, 32, 12, 12, 64, 5, 5, 1, 0),
    ("c", 32, 64, 56, 56, 64, 3, 3, 1, 1),
    ("d", 16, 128, 28, 28, 128, 3, 3, 1, 1),
    ("e", 8, 3, 224, 224, 64, 11, 11, 4, 2),
    ("f", 32, 256, 28, 28, 64, 1, 1, 1, 0),
]
HEAVY_CONV = {"c", "d", "e"}  # the NumPy reference takes seconds here: skipped in --quick

POOL_SHAPE = (32, 64, 56, 56)  # pooling 2x2/2 and the elementwise ops
SOFTMAX_SHAPE = (4096, 1000)
OPTIM_SIZE = 1 << 22  # 4M parameters


@dataclass
class Case:
    op: str
    case: str
    params: dict
    setup: Callable  # setup(xp) -> dict of arrays and values
    ours: Callable | None = None  # ours(o, state) -> fn
    needs: tuple = ()  # fastlayers names the op needs (checked on fastlayers and fastlayers.reference)
    xp_anchor: Callable | None = None  # (xp, state) -> fn, for numpy / cupy
    torch_anchor: Callable | None = None  # (torch, state) -> fn, for torch-cpu / torch-cuda
    flops: float | None = None
    nbytes: float | None = None
    heavy: bool = False  # the reference is slow: skipped in --quick
    full_only: bool = False  # every backend is slow: the whole case is skipped in --quick
    anchor_order: dict = field(default_factory=dict)  # backend -> anchor preference

    @property
    def family(self) -> str:
        return self.params.get("family", self.op)


def _rng():
    return np.random.default_rng(0)


def _rand(shape, scale=1.0):
    return (_rng().standard_normal(shape) * scale).astype(np.float32)


def _on(xp, arrays: dict) -> dict:
    """NumPy arrays moved to xp (a copy only for CuPy)."""
    if xp is np:
        return arrays
    return {k: xp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in arrays.items()}


def _f32(*shapes) -> float:
    return 4.0 * sum(int(np.prod(s)) for s in shapes)


# ----------------------------------------------------------------------------------------- gemm
def gemm_cases() -> list[Case]:
    cases = []
    for m, k, n in GEMM_SHAPES:
        params = {"family": "gemm", "M": m, "K": k, "N": n}
        cases.append(Case(
            "gemm", f"{m}x{k}x{n}", params,
            setup=lambda xp, m=m, k=k, n=n: _on(xp, {"a": _rand((m, k)), "b": _rand((k, n))}),
            ours=lambda o, s: lambda: o.gemm(s["a"], s["b"]),
            needs=("gemm",),
            xp_anchor=lambda xp, s: lambda: xp.matmul(s["a"], s["b"]),
            torch_anchor=lambda torch, s: lambda: torch.mm(s["a"], s["b"]),
            flops=2.0 * m * k * n, nbytes=_f32((m, k), (k, n), (m, n)),
            heavy=m * k * n >= 2048**3, full_only=m * k * n >= FULL_ONLY_GEMM, anchor_order={"cpu": ("numpy", "torch-cpu"), "cuda": ("cupy", "torch-cuda")}))
    m = k = n = 1024
    cases.append(Case(
        "gemm_backward", f"{m}x{k}x{n}", {"family": "gemm", "M": m, "K": k, "N": n},
        setup=lambda xp: _on(xp, {"a": _rand((m, k)), "b": _rand((k, n)), "g": _rand((m, n))}),
        ours=lambda o, s: lambda: o.gemm_backward(s["g"], s["a"], s["b"]),
        needs=("gemm_backward",),
        xp_anchor=lambda xp, s: lambda: (xp.matmul(s["g"], s["b"].T), xp.matmul(s["a"].T, s["g"])),
        torch_anchor=lambda torch, s: lambda: (torch.mm(s["g"], s["b"].T), torch.mm(s["a"].T, s["g"])),
        flops=4.0 * m * k * n, nbytes=_f32((m, k), (k, n), (m, n), (m, k), (k, n)),
        anchor_order={"cpu": ("numpy", "torch-cpu"), "cuda": ("cupy", "torch-cuda")}))
    return cases


def linear_cases() -> list[Case]:
    n, i, o_ = 100, 784, 200
    params = {"family": "linear", "batch": n, "in": i, "out": o_}
    label = f"{n}x{i}->{o_}"

    def setup(xp):
        return _on(xp, {"x": _rand((n, i)), "w": _rand((o_, i), 0.05), "b": _rand((o_,)), "g": _rand((n, o_))})

    def torch_bwd(torch, s):
        return lambda: (torch.mm(s["g"], s["w"]), torch.mm(s["g"].T, s["x"]), s["g"].sum(0))

    return [
        Case("linear", label, params, setup, ours=lambda o, s: lambda: o.linear(s["x"], s["w"], s["b"]),
             needs=("linear",), xp_anchor=lambda xp, s: lambda: xp.matmul(s["x"], s["w"].T) + s["b"],
             torch_anchor=lambda torch, s: lambda: torch.nn.functional.linear(s["x"], s["w"], s["b"]),
             flops=2.0 * n * i * o_, nbytes=_f32((n, i), (o_, i), (o_,), (n, o_))),
        Case("linear_backward", label, params, setup,
             ours=lambda o, s: lambda: o.linear_backward(s["g"], s["x"], s["w"]),
             needs=("linear_backward",),
             xp_anchor=lambda xp, s: lambda: (xp.matmul(s["g"], s["w"]), xp.matmul(s["g"].T, s["x"]), s["g"].sum(0)),
             torch_anchor=torch_bwd, flops=4.0 * n * i * o_,
             nbytes=_f32((n, o_), (n, i), (o_, i), (n, i), (o_, i), (o_,))),
    ]


# ----------------------------------------------------------------------------------------- conv
def conv_out(size, k, stride, pad, dil=1):
    return (size + 2 * pad - dil * (k - 1) - 1) // stride + 1


def conv_flops(n, c, k, r, s, p, q, groups=1):
    return 2.0 * n * k * (c // groups) * r * s * p * q


def conv_cases() -> list[Case]:
    cases = []
    for name, n, c, h, w, k, r, s_, stride, pad in CONV_LAYERS:
        p, q = conv_out(h, r, stride, pad), conv_out(w, s_, stride, pad)
        params = {"family": "conv", "layer": name, "N": n, "C": c, "H": h, "W": w, "K": k, "R": r,
                  "S": s_, "stride": stride, "padding": pad}
        label = (f"{name}: N={n} {c}->{k} {h}x{w} {r}x{s_}" + (f" s{stride}" if stride != 1 else "")
                 + (f" p{pad}" if pad else ""))
        fl_ = conv_flops(n, c, k, r, s_, p, q)
        xs, ws, ys = (n, c, h, w), (k, c, r, s_), (n, k, p, q)

        def setup(xp, xs=xs, ws=ws, ys=ys, k=k):
            return _on(xp, {"x": _rand(xs), "w": _rand(ws, 0.1), "b": _rand((k,)), "g": _rand(ys)})

        def t_bwd(mask, stride=stride, pad=pad, k=k):
            def build(torch, s):
                return lambda: torch.ops.aten.convolution_backward(
                    s["g"], s["x"], s["w"], [k], [stride, stride], [pad, pad], [1, 1], False, [0, 0], 1, mask)
            return build

        heavy = name in HEAVY_CONV
        cases.append(Case(
            "conv2d", label, params, setup,
            ours=lambda o, s, stride=stride, pad=pad: lambda: o.conv2d(s["x"], s["w"], s["b"], stride=stride, padding=pad),
            needs=("conv2d",),
            torch_anchor=lambda torch, s, stride=stride, pad=pad: lambda: torch.nn.functional.conv2d(
                s["x"], s["w"], s["b"], stride=stride, padding=pad),
            flops=fl_, nbytes=_f32(xs, ws, ys), heavy=heavy))
        cases.append(Case(
            "conv2d_backward", label, {**params, "returns": "grad_x, grad_w, grad_b"}, setup,
            ours=lambda o, s, stride=stride, pad=pad: lambda: o.conv2d_backward(
                s["g"], s["x"], s["w"], stride=stride, padding=pad),
            needs=("conv2d_backward",), torch_anchor=t_bwd([True, True, True]),
            flops=2 * fl_, nbytes=_f32(ys, xs, ws, xs, ws), heavy=heavy))
        # PyTorch's split, for reading the anchor table (no fastlayers counterpart: ours is fused).
        cases.append(Case("conv2d_backward_data", label, params, setup, torch_anchor=t_bwd([True, False, False]),
                          flops=fl_, nbytes=_f32(ys, ws, xs)))
        cases.append(Case("conv2d_backward_weight", label, params, setup, torch_anchor=t_bwd([False, True, True]),
                          flops=fl_, nbytes=_f32(ys, xs, ws)))
    # conv1d: a thin layer over conv2d with H = 1.
    n, c, length, k, s_ = 32, 64, 1024, 64, 5
    lo = conv_out(length, s_, 1, 2)
    params = {"family": "conv", "N": n, "C": c, "L": length, "K": k, "S": s_, "padding": 2}
    label = f"N={n} {c}->{k} L={length} k{s_} p2"

    def setup1(xp):
        return _on(xp, {"x": _rand((n, c, length)), "w": _rand((k, c, s_), 0.1), "b": _rand((k,)),
                        "g": _rand((n, k, lo))})

    cases.append(Case("conv1d", label, params, setup1,
                      ours=lambda o, s: lambda: o.conv1d(s["x"], s["w"], s["b"], padding=2), needs=("conv1d",),
                      torch_anchor=lambda torch, s: lambda: torch.nn.functional.conv1d(s["x"], s["w"], s["b"], padding=2),
                      flops=2.0 * n * k * c * s_ * lo, nbytes=_f32((n, c, length), (k, c, s_), (n, k, lo))))
    cases.append(Case("conv1d_backward", label, params, setup1,
                      ours=lambda o, s: lambda: o.conv1d_backward(s["g"], s["x"], s["w"], padding=2),
                      needs=("conv1d_backward",),
                      torch_anchor=lambda torch, s: lambda: torch.ops.aten.convolution_backward(
                          s["g"], s["x"], s["w"], [k], [1], [2], [1], False, [0], 1, [True, True, True]),
                      flops=4.0 * n * k * c * s_ * lo,
                      nbytes=_f32((n, k, lo), (n, c, length), (k, c, s_), (n, c, length), (k, c, s_))))
    return cases


# ------------------------------------------------------------------ conv3d, conv_transpose2d (#13)
# issue #13's conv3d targets: (name, N, C, D, K, T, padding), cubic volumes and kernels.
CONV3D_LAYERS = [("A", 8, 32, 16, 64, 3, 1), ("B", 4, 1, 32, 32, 5, 0)]
# conv_transpose2d: U-Net's 2x upsampling (k4 s2 p1) and a stride-1 3x3 (Winograd) layer:
# (name, N, C_in, H, C_out, k, stride, padding).
CONVT_LAYERS = [("up2", 32, 64, 28, 64, 4, 2, 1), ("3x3", 16, 128, 28, 64, 3, 1, 1)]


def conv3d_cases() -> list[Case]:
    cases = []
    for name, n, c, d, k, t, pad in CONV3D_LAYERS:
        o = conv_out(d, t, 1, pad)
        xs, ws, ys = (n, c, d, d, d), (k, c, t, t, t), (n, k, o, o, o)
        params = {"family": "conv", "layer": name, "N": n, "C": c, "D": d, "H": d, "W": d, "K": k, "T": t, "R": t,
                  "S": t, "padding": pad}
        label = f"{name}: N={n} {c}->{k} {d}^3 {t}x{t}x{t}" + (f" p{pad}" if pad else "")
        fl_ = 2.0 * n * k * c * t**3 * o**3

        def setup(xp, xs=xs, ws=ws, ys=ys, k=k):
            return _on(xp, {"x": _rand(xs), "w": _rand(ws, 0.1), "b": _rand((k,)), "g": _rand(ys)})

        def t_bwd(torch, s, k=k, pad=pad):
            return lambda: torch.ops.aten.convolution_backward(
                s["g"], s["x"], s["w"], [k], [1] * 3, [pad] * 3, [1] * 3, False, [0] * 3, 1, [True, True, True])

        cases.append(Case(
            "conv3d", label, params, setup,
            ours=lambda o_, s, pad=pad: lambda: o_.conv3d(s["x"], s["w"], s["b"], padding=pad), needs=("conv3d",),
            torch_anchor=lambda torch, s, pad=pad: lambda: torch.nn.functional.conv3d(s["x"], s["w"], s["b"],
                                                                                       padding=pad),
            flops=fl_, nbytes=_f32(xs, ws, ys), heavy=True))
        cases.append(Case(
            "conv3d_backward", label, {**params, "returns": "grad_x, grad_w, grad_b"}, setup,
            ours=lambda o_, s, pad=pad: lambda: o_.conv3d_backward(s["g"], s["x"], s["w"], padding=pad),
            needs=("conv3d_backward",), torch_anchor=t_bwd, flops=2 * fl_, nbytes=_f32(ys, xs, ws, xs, ws),
            heavy=True))
    for name, n, ci, h, co, k, st, pad in CONVT_LAYERS:
        ho = (h - 1) * st - 2 * pad + k
        xs, ws, ys = (n, ci, h, h), (ci, co, k, k), (n, co, ho, ho)
        params = {"family": "conv", "layer": name, "N": n, "C_in": ci, "H": h, "W": h, "C_out": co, "R": k, "S": k,
                  "stride": st, "padding": pad}
        label = f"{name}: N={n} {ci}->{co} {h}x{h}->{ho}x{ho} k{k} s{st} p{pad}"
        fl_ = 2.0 * n * ci * co * k * k * h * h

        def setup_t(xp, xs=xs, ws=ws, ys=ys, co=co):
            return _on(xp, {"x": _rand(xs), "w": _rand(ws, 0.1), "b": _rand((co,)), "g": _rand(ys)})

        cases.append(Case(
            "conv_transpose2d", label, params, setup_t,
            ours=lambda o_, s, st=st, pad=pad: lambda: o_.conv_transpose2d(s["x"], s["w"], s["b"], stride=st,
                                                                           padding=pad),
            needs=("conv_transpose2d",),
            torch_anchor=lambda torch, s, st=st, pad=pad: lambda: torch.nn.functional.conv_transpose2d(
                s["x"], s["w"], s["b"], stride=st, padding=pad),
            flops=fl_, nbytes=_f32(xs, ws, ys), heavy=True))
        cases.append(Case(
            "conv_transpose2d_backward", label, {**params, "returns": "grad_x, grad_w, grad_b"}, setup_t,
            ours=lambda o_, s, st=st, pad=pad: lambda: o_.conv_transpose2d_backward(s["g"], s["x"], s["w"], stride=st,
                                                                                    padding=pad),
            needs=("conv_transpose2d_backward",),
            torch_anchor=lambda torch, s, st=st, pad=pad, co=co: lambda: torch.ops.aten.convolution_backward(
                s["g"], s["x"], s["w"], [co], [st, st], [pad, pad], [1, 1], True, [0, 0], 1, [True, True, True]),
            flops=2 * fl_, nbytes=_f32(ys, xs, ws, xs, ws), heavy=True))
    return cases


POOL3D_SHAPE = (8, 32, 32, 32, 32)  # N, C, D, H, W


def pool3d_cases() -> list[Case]:
    n, c, d, h, w = POOL3D_SHAPE
    xs, ys = POOL3D_SHAPE, (n, c, d // 2, h // 2, w // 2)
    label = f"N={n} C={c} {d}^3 2x2x2/2"
    params = {"family": "pool", "N": n, "C": c, "D": d, "H": h, "W": w, "kernel": 2, "stride": 2}

    def setup(xp):
        return _on(xp, {"x": _rand(xs), "g": _rand(ys)})

    def t_max_bwd(torch, s):
        _, idx = torch.nn.functional.max_pool3d(s["x"], 2, return_indices=True)
        return lambda: torch.ops.aten.max_pool3d_with_indices_backward(s["g"], s["x"], [2] * 3, [2] * 3, [0] * 3,
                                                                       [1] * 3, False, idx)

    fwd_bytes, bwd_bytes = _f32(xs, ys), _f32(ys, xs, xs)
    return [
        Case("max_pool3d", label, params, setup, ours=lambda o, s: lambda: o.max_pool3d(s["x"], 2),
             needs=("max_pool3d",), torch_anchor=lambda torch, s: lambda: torch.nn.functional.max_pool3d(s["x"], 2),
             nbytes=fwd_bytes, heavy=True),
        Case("max_pool3d_backward", label, params, setup,
             ours=lambda o, s: lambda: o.max_pool3d_backward(s["g"], s["x"], 2), needs=("max_pool3d_backward",),
             torch_anchor=t_max_bwd, nbytes=bwd_bytes, heavy=True),
        Case("avg_pool3d", label, params, setup, ours=lambda o, s: lambda: o.avg_pool3d(s["x"], 2),
             needs=("avg_pool3d",), torch_anchor=lambda torch, s: lambda: torch.nn.functional.avg_pool3d(s["x"], 2),
             nbytes=fwd_bytes, heavy=True),
        Case("avg_pool3d_backward", label, params, setup,
             ours=lambda o, s: lambda: o.avg_pool3d_backward(s["g"], s["x"], 2), needs=("avg_pool3d_backward",),
             torch_anchor=lambda torch, s: lambda: torch.ops.aten.avg_pool3d_backward(
                 s["g"], s["x"], [2] * 3, [2] * 3, [0] * 3, False, True, None),
             nbytes=_f32(ys, xs), heavy=True),
    ]


# -------------------------------------------------------------------------------------- pooling
def window_pool_cases(kernel: int = 2, stride: int = 2, padding: int = 0) -> list[Case]:
    """Max and average pooling, forward and backward, with a kernel x kernel window on POOL_SHAPE
    (count_include_pad=True, PyTorch's default, on both sides)."""
    n, c, h, w = POOL_SHAPE
    k, st, pad = kernel, stride, padding
    xs, ys = POOL_SHAPE, (n, c, conv_out(h, k, st, pad), conv_out(w, k, st, pad))
    label = f"N={n} C={c} {h}x{w} {k}x{k}/{st}" + (f" p{pad}" if pad else "")
    params = {"family": "pool", "N": n, "C": c, "H": h, "W": w, "kernel": k, "stride": st}
    if pad:
        params["padding"] = pad

    def setup(xp):
        return _on(xp, {"x": _rand(xs), "g": _rand(ys), "gg": _rand((n, c))})

    def t_max_bwd(torch, s):
        _, idx = torch.nn.functional.max_pool2d(s["x"], k, st, pad, return_indices=True)
        return lambda: torch.ops.aten.max_pool2d_with_indices_backward(
            s["g"], s["x"], [k, k], [st, st], [pad, pad], [1, 1], False, idx)

    fwd_bytes, bwd_bytes = _f32(xs, ys), _f32(ys, xs, xs)
    return [
        Case("max_pool2d", label, params, setup, ours=lambda o, s: lambda: o.max_pool2d(s["x"], k, st, pad),
             needs=("max_pool2d",),
             torch_anchor=lambda torch, s: lambda: torch.nn.functional.max_pool2d(s["x"], k, st, pad),
             nbytes=fwd_bytes),
        Case("max_pool2d_backward", label, params, setup,
             ours=lambda o, s: lambda: o.max_pool2d_backward(s["g"], s["x"], k, st, pad),
             needs=("max_pool2d_backward",), torch_anchor=t_max_bwd, nbytes=bwd_bytes),
        Case("avg_pool2d", label, params, setup, ours=lambda o, s: lambda: o.avg_pool2d(s["x"], k, st, pad),
             needs=("avg_pool2d",),
             torch_anchor=lambda torch, s: lambda: torch.nn.functional.avg_pool2d(s["x"], k, st, pad),
             nbytes=fwd_bytes),
        Case("avg_pool2d_backward", label, params, setup,
             ours=lambda o, s: lambda: o.avg_pool2d_backward(s["g"], s["x"], k, st, pad),
             needs=("avg_pool2d_backward",),
             torch_anchor=lambda torch, s: lambda: torch.ops.aten.avg_pool2d_backward(
                 s["g"], s["x"], [k, k], [st, st], [pad, pad], False, True, None),
             nbytes=_f32(ys, xs)),
    ]


def pool_cases() -> list[Case]:
    n, c, h, w = POOL_SHAPE
    xs, ys = POOL_SHAPE, (n, c, h // 2, w // 2)
    label = f"N={n} C={c} {h}x{w} 2x2/2"
    params = {"family": "pool", "N": n, "C": c, "H": h, "W": w, "kernel": 2, "stride": 2}

    def setup(xp):
        return _on(xp, {"x": _rand(xs), "g": _rand(ys), "gg": _rand((n, c))})

    fwd_bytes, bwd_bytes = _f32(xs, ys), _f32(ys, xs, xs)
    return window_pool_cases(2, 2, 0) + pool_option_cases() + [
        Case("lp_pool2d", label + " p=2", {**params, "p": 2}, setup,
             ours=lambda o, s: lambda: o.lp_pool2d(s["x"], 2, 2), needs=("lp_pool2d",),
             torch_anchor=lambda torch, s: lambda: torch.nn.functional.lp_pool2d(s["x"], 2, 2), nbytes=fwd_bytes),
        Case("lp_pool2d_backward", label + " p=2", {**params, "p": 2}, setup,
             ours=lambda o, s: lambda: o.lp_pool2d_backward(s["g"], s["x"], 2, 2), needs=("lp_pool2d_backward",),
             nbytes=bwd_bytes),
        Case("global_avg_pool2d", f"N={n} C={c} {h}x{w}", params, setup,
             ours=lambda o, s: lambda: o.global_avg_pool2d(s["x"]), needs=("global_avg_pool2d",),
             xp_anchor=lambda xp, s: lambda: s["x"].mean(axis=(2, 3)),
             torch_anchor=lambda torch, s: lambda: s["x"].mean((2, 3)), nbytes=_f32(xs, (n, c))),
        Case("global_avg_pool2d_backward", f"N={n} C={c} {h}x{w}", params, setup,
             ours=lambda o, s: lambda: o.global_avg_pool2d_backward(s["gg"], s["x"]),
             needs=("global_avg_pool2d_backward",),
             torch_anchor=lambda torch, s: lambda: (s["gg"][:, :, None, None] / (h * w)).expand(xs).contiguous(),
             nbytes=_f32((n, c), xs)),
    ]


def pool_option_cases() -> list[Case]:
    """The pooling options of issue #12 against PyTorch: ceil_mode on an odd input (55x55, GoogLeNet's
    3x3/2 ceil pool), dilation, return_indices and the backward from saved indices, avg_pool2d's
    divisor options, adaptive pools (AlexNet's 13x13 -> 6x6) and max_unpool2d. The reference is slow on
    these shapes: heavy (skipped in --quick)."""
    n, c = POOL_SHAPE[:2]
    odd = (n, c, 55, 55)
    i8 = 8.0  # bytes of an int64 index

    def out(h, k, s, p, d=1, ceil=False):
        span = h + 2 * p - d * (k - 1) - 1
        o = -(-span // s) + 1 if ceil else span // s + 1
        return o - 1 if ceil and (o - 1) * s >= h + p else o

    def setup_for(shape, yshape):
        def setup(xp):
            return _on(xp, {"x": _rand(shape), "g": _rand(yshape)})
        return setup

    cases = []
    # max_pool2d: (label, x shape, kernel, stride, padding, dilation, ceil_mode)
    for tag, xs, k, st, pad, dil, ceil in [("3x3/2 ceil", odd, 3, 2, 0, 1, True),
                                           ("2x2/2 ceil", odd, 2, 2, 0, 1, True),
                                           ("3x3/1 p1 dilation 2", POOL_SHAPE, 3, 1, 1, 2, False)]:
        o = out(xs[2], k, st, pad, dil, ceil)
        ys = (n, c, o, o)
        label = f"N={n} C={c} {xs[2]}x{xs[3]} {tag}"
        params = {"family": "pool", "N": n, "C": c, "H": xs[2], "W": xs[3], "kernel": k, "stride": st,
                  "padding": pad, "dilation": dil, "ceil_mode": ceil}
        setup = setup_for(xs, ys)

        def t_bwd(torch, s, k=k, st=st, pad=pad, dil=dil, ceil=ceil):
            _, idx = torch.nn.functional.max_pool2d(s["x"], k, st, pad, dil, ceil, True)
            return lambda: torch.ops.aten.max_pool2d_with_indices_backward(
                s["g"], s["x"], [k, k], [st, st], [pad, pad], [dil, dil], ceil, idx)

        cases += [
            Case("max_pool2d", label, params, setup, heavy=True, needs=("max_pool2d",),
                 ours=lambda o_, s, k=k, st=st, pad=pad, dil=dil, ceil=ceil: lambda: o_.max_pool2d(
                     s["x"], k, st, pad, dil, ceil),
                 torch_anchor=lambda torch, s, k=k, st=st, pad=pad, dil=dil, ceil=ceil: lambda: (
                     torch.nn.functional.max_pool2d(s["x"], k, st, pad, dil, ceil)),
                 nbytes=_f32(xs, ys)),
            Case("max_pool2d_backward", label, params, setup, heavy=True, needs=("max_pool2d_backward",),
                 ours=lambda o_, s, k=k, st=st, pad=pad, dil=dil, ceil=ceil: lambda: o_.max_pool2d_backward(
                     s["g"], s["x"], k, st, pad, dil, ceil),
                 torch_anchor=t_bwd, nbytes=_f32(ys, xs, xs)),
        ]

    # return_indices and the backward from them, 3x3/2 pad 1 (the ResNet stem's pool)
    o = out(POOL_SHAPE[2], 3, 2, 1)
    ys = (n, c, o, o)
    label = f"N={n} C={c} 56x56 3x3/2 p1 indices"
    params = {"family": "pool", "N": n, "C": c, "H": 56, "W": 56, "kernel": 3, "stride": 2, "padding": 1,
              "return_indices": True}
    setup = setup_for(POOL_SHAPE, ys)

    def ours_bwd_idx(o_, s):
        _, idx = o_.max_pool2d(s["x"], 3, 2, 1, return_indices=True)
        return lambda: o_.max_pool2d_backward(s["g"], s["x"], 3, 2, 1, indices=idx)

    def torch_bwd_idx(torch, s):
        _, idx = torch.nn.functional.max_pool2d(s["x"], 3, 2, 1, return_indices=True)
        return lambda: torch.ops.aten.max_pool2d_with_indices_backward(s["g"], s["x"], [3, 3], [2, 2], [1, 1],
                                                                       [1, 1], False, idx)

    cases += [
        Case("max_pool2d", label, params, setup, heavy=True, needs=("max_pool2d",),
             ours=lambda o_, s: lambda: o_.max_pool2d(s["x"], 3, 2, 1, return_indices=True),
             torch_anchor=lambda torch, s: lambda: torch.nn.functional.max_pool2d(s["x"], 3, 2, 1, return_indices=True),
             nbytes=_f32(POOL_SHAPE, ys) + i8 * np.prod(ys)),
        Case("max_pool2d_backward", label, params, setup, heavy=True, needs=("max_pool2d_backward",),
             ours=ours_bwd_idx, torch_anchor=torch_bwd_idx, nbytes=_f32(ys, POOL_SHAPE) + i8 * np.prod(ys)),
    ]

    # avg_pool2d: ceil_mode, count_include_pad=False, divisor_override, on the odd input
    o = out(55, 3, 2, 1, 1, True)
    ys = (n, c, o, o)
    for tag, include, div in [("ceil exclude-pad", False, None), ("ceil divisor 7", True, 7)]:
        label = f"N={n} C={c} 55x55 3x3/2 p1 {tag}"
        params = {"family": "pool", "N": n, "C": c, "H": 55, "W": 55, "kernel": 3, "stride": 2, "padding": 1,
                  "ceil_mode": True, "count_include_pad": include, "divisor_override": div}
        setup = setup_for(odd, ys)
        cases += [
            Case("avg_pool2d", label, params, setup, heavy=True, needs=("avg_pool2d",),
                 ours=lambda o_, s, inc=include, dv=div: lambda: o_.avg_pool2d(s["x"], 3, 2, 1, True, inc, dv),
                 torch_anchor=lambda torch, s, inc=include, dv=div: lambda: torch.nn.functional.avg_pool2d(
                     s["x"], 3, 2, 1, True, inc, dv),
                 nbytes=_f32(odd, ys)),
            Case("avg_pool2d_backward", label, params, setup, heavy=True, needs=("avg_pool2d_backward",),
                 ours=lambda o_, s, inc=include, dv=div: lambda: o_.avg_pool2d_backward(s["g"], s["x"], 3, 2, 1, True,
                                                                                        inc, dv),
                 torch_anchor=lambda torch, s, inc=include, dv=div: lambda: torch.ops.aten.avg_pool2d_backward(
                     s["g"], s["x"], [3, 3], [2, 2], [1, 1], True, inc, dv),
                 nbytes=_f32(ys, odd)),
        ]

    # adaptive pools: AlexNet's 256x13x13 -> 6x6 (overlapping windows) at batch 128
    xs, ys = (128, 256, 13, 13), (128, 256, 6, 6)
    label = "N=128 C=256 13x13 -> 6x6"
    params = {"family": "pool", "N": 128, "C": 256, "H": 13, "W": 13, "output_size": 6}
    setup = setup_for(xs, ys)

    def ours_amax_bwd(o_, s):
        _, idx = o_.adaptive_max_pool2d(s["x"], 6, return_indices=True)
        return lambda: o_.adaptive_max_pool2d_backward(s["g"], s["x"], 6, indices=idx)

    def torch_amax_bwd(torch, s):
        _, idx = torch.nn.functional.adaptive_max_pool2d(s["x"], 6, return_indices=True)
        return lambda: torch.ops.aten.adaptive_max_pool2d_backward(s["g"], s["x"], idx)

    cases += [
        Case("adaptive_avg_pool2d", label, params, setup, heavy=True, needs=("adaptive_avg_pool2d",),
             ours=lambda o_, s: lambda: o_.adaptive_avg_pool2d(s["x"], 6),
             torch_anchor=lambda torch, s: lambda: torch.nn.functional.adaptive_avg_pool2d(s["x"], 6),
             nbytes=_f32(xs, ys)),
        Case("adaptive_avg_pool2d_backward", label, params, setup, heavy=True,
             needs=("adaptive_avg_pool2d_backward",),
             ours=lambda o_, s: lambda: o_.adaptive_avg_pool2d_backward(s["g"], s["x"], 6),
             torch_anchor=lambda torch, s: lambda: torch.ops.aten._adaptive_avg_pool2d_backward(s["g"], s["x"]),
             nbytes=_f32(ys, xs)),
        Case("adaptive_max_pool2d", label, params, setup, heavy=True, needs=("adaptive_max_pool2d",),
             ours=lambda o_, s: lambda: o_.adaptive_max_pool2d(s["x"], 6),
             torch_anchor=lambda torch, s: lambda: torch.nn.functional.adaptive_max_pool2d(s["x"], 6),
             nbytes=_f32(xs, ys)),
        Case("adaptive_max_pool2d_backward", label + " indices", params, setup, heavy=True,
             needs=("adaptive_max_pool2d_backward",), ours=ours_amax_bwd, torch_anchor=torch_amax_bwd,
             nbytes=_f32(ys, xs) + i8 * np.prod(ys)),
    ]

    # max_unpool2d of a 2x2/2 pool's output back to 56x56
    ys = (n, c, 28, 28)
    label = f"N={n} C={c} 28x28 -> 56x56 2x2/2"
    params = {"family": "pool", "N": n, "C": c, "H": 28, "W": 28, "kernel": 2, "stride": 2}
    setup = setup_for(POOL_SHAPE, POOL_SHAPE)

    def ours_unpool(o_, s):
        y, idx = o_.max_pool2d(s["x"], 2, return_indices=True)
        return lambda: o_.max_unpool2d(y, idx, 2)

    def torch_unpool(torch, s):
        y, idx = torch.nn.functional.max_pool2d(s["x"], 2, return_indices=True)
        return lambda: torch.nn.functional.max_unpool2d(y, idx, 2)

    def ours_unpool_bwd(o_, s):
        y, idx = o_.max_pool2d(s["x"], 2, return_indices=True)
        return lambda: o_.max_unpool2d_backward(s["g"], y, idx, 2)

    cases += [
        Case("max_unpool2d", label, params, setup, heavy=True, needs=("max_unpool2d",), ours=ours_unpool,
             torch_anchor=torch_unpool, nbytes=_f32(ys, POOL_SHAPE) + i8 * np.prod(ys)),
        Case("max_unpool2d_backward", label, params, setup, heavy=True, needs=("max_unpool2d_backward",),
             ours=ours_unpool_bwd, nbytes=_f32(ys, ys) + i8 * np.prod(ys)),
    ]
    return cases


# ---------------------------------------------------------------------------------- activations
def activation_cases() -> list[Case]:
    shape = POOL_SHAPE
    label = "x".join(map(str, shape))
    p = {"family": "activation", "shape": list(shape)}

    def setup(xp):
        x = _rand(shape)
        return _on(xp, {"x": x, "g": _rand(shape), "y": (1 / (1 + np.exp(-x))).astype(np.float32)})

    sm_shape = SOFTMAX_SHAPE
    sm_label = f"{sm_shape[0]}x{sm_shape[1]} axis=-1"
    sp = {"family": "activation", "shape": list(sm_shape), "axis": -1}

    def sm_setup(xp):
        x = _rand(sm_shape)
        return _on(xp, {"x": x, "g": _rand(sm_shape), "y": _softmax(x)})

    def log_setup(xp):  # log_softmax_backward takes y = log_softmax(x)
        return {**sm_setup(xp), "y": _on(xp, {"y": np.log(_softmax(_rand(sm_shape)))})["y"]}

    one, two = _f32(shape, shape), _f32(shape, shape, shape)
    cases = [
        Case("relu", label, p, setup, ours=lambda o, s: lambda: o.relu(s["x"]), needs=("relu",),
             xp_anchor=lambda xp, s: lambda: xp.maximum(s["x"], 0), torch_anchor=lambda t, s: lambda: t.relu(s["x"]),
             nbytes=one),
        Case("relu_backward", label, p, setup, ours=lambda o, s: lambda: o.relu_backward(s["g"], s["x"]),
             needs=("relu_backward",),
             torch_anchor=lambda t, s: lambda: t.ops.aten.threshold_backward(s["g"], s["x"], 0), nbytes=two),
        Case("leaky_relu", label, p, setup, ours=lambda o, s: lambda: o.leaky_relu(s["x"], 0.01),
             needs=("leaky_relu",), torch_anchor=lambda t, s: lambda: t.nn.functional.leaky_relu(s["x"], 0.01),
             nbytes=one),
        Case("leaky_relu_backward", label, p, setup,
             ours=lambda o, s: lambda: o.leaky_relu_backward(s["g"], s["x"], 0.01), needs=("leaky_relu_backward",),
             torch_anchor=lambda t, s: lambda: t.ops.aten.leaky_relu_backward(s["g"], s["x"], 0.01, False),
             nbytes=two),
        Case("sigmoid", label, p, setup, ours=lambda o, s: lambda: o.sigmoid(s["x"]), needs=("sigmoid",),
             torch_anchor=lambda t, s: lambda: t.sigmoid(s["x"]), nbytes=one),
        Case("sigmoid_backward", label, p, setup, ours=lambda o, s: lambda: o.sigmoid_backward(s["g"], s["y"]),
             needs=("sigmoid_backward",),
             torch_anchor=lambda t, s: lambda: t.ops.aten.sigmoid_backward(s["g"], s["y"]), nbytes=two),
        Case("tanh", label, p, setup, ours=lambda o, s: lambda: o.tanh(s["x"]), needs=("tanh",),
             torch_anchor=lambda t, s: lambda: t.tanh(s["x"]), nbytes=one),
        Case("tanh_backward", label, p, setup, ours=lambda o, s: lambda: o.tanh_backward(s["g"], s["y"]),
             needs=("tanh_backward",), torch_anchor=lambda t, s: lambda: t.ops.aten.tanh_backward(s["g"], s["y"]),
             nbytes=two),
    ]
    sm1, sm2 = _f32(sm_shape, sm_shape), _f32(sm_shape, sm_shape, sm_shape)
    cases += [
        Case("softmax", sm_label, sp, sm_setup, ours=lambda o, s: lambda: o.softmax(s["x"], axis=-1),
             needs=("softmax",), torch_anchor=lambda t, s: lambda: t.softmax(s["x"], -1), nbytes=sm1),
        Case("softmax_backward", sm_label, sp, sm_setup,
             ours=lambda o, s: lambda: o.softmax_backward(s["g"], s["y"], axis=-1), needs=("softmax_backward",),
             torch_anchor=lambda t, s: lambda: t.ops.aten._softmax_backward_data(s["g"], s["y"], -1, t.float32),
             nbytes=sm2),
        Case("log_softmax", sm_label, sp, sm_setup, ours=lambda o, s: lambda: o.log_softmax(s["x"], axis=-1),
             needs=("log_softmax",), torch_anchor=lambda t, s: lambda: t.log_softmax(s["x"], -1), nbytes=sm1),
        Case("log_softmax_backward", sm_label, sp, log_setup,
             ours=lambda o, s: lambda: o.log_softmax_backward(s["g"], s["y"], axis=-1),
             needs=("log_softmax_backward",),
             torch_anchor=lambda t, s: lambda: t.ops.aten._log_softmax_backward_data(s["g"], s["y"], -1, t.float32),
             nbytes=sm2),
    ]
    return cases


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def elementwise_cases() -> list[Case]:
    shape = POOL_SHAPE
    label = "x".join(map(str, shape))
    p = {"family": "elementwise", "shape": list(shape)}

    def setup(xp):
        return _on(xp, {"a": _rand(shape), "b": _rand(shape), "g": _rand(shape)})

    return [
        Case("add", label, p, setup, ours=lambda o, s: lambda: o.add(s["a"], s["b"]), needs=("add",),
             xp_anchor=lambda xp, s: lambda: xp.add(s["a"], s["b"]), torch_anchor=lambda t, s: lambda: t.add(s["a"], s["b"]),
             nbytes=_f32(shape, shape, shape)),
        Case("add_backward", label, p, setup, ours=lambda o, s: lambda: o.add_backward(s["g"]),
             needs=("add_backward",), nbytes=_f32(shape, shape, shape)),
    ]


# --------------------------------------------------------------------------------------- losses
def loss_cases() -> list[Case]:
    n, c = SOFTMAX_SHAPE
    label = f"N={n} C={c} int labels"
    p = {"family": "loss", "N": n, "C": c, "reduction": "mean"}

    def setup(xp):
        return _on(xp, {"x": _rand((n, c)), "y": _rng().integers(0, c, n).astype(np.int64)})

    def t_ce_bwd(t, s):
        rows = t.arange(n, device=s["x"].device)

        def run():
            g = t.softmax(s["x"], 1)
            g[rows, s["y"]] -= 1.0
            return g.div_(n)
        return run

    shape = POOL_SHAPE
    el_label = "x".join(map(str, shape))
    ep = {"family": "loss", "shape": list(shape), "reduction": "mean"}
    numel = int(np.prod(shape))

    def el_setup(xp):
        return _on(xp, {"p": _rand(shape), "t": (_rng().random(shape) > 0.5).astype(np.float32)})

    two, three = _f32(shape, shape), _f32(shape, shape, shape)
    return [
        Case("softmax_cross_entropy", label, p, setup,
             ours=lambda o, s: lambda: o.softmax_cross_entropy(s["x"], s["y"]), needs=("softmax_cross_entropy",),
             torch_anchor=lambda t, s: lambda: t.nn.functional.cross_entropy(s["x"], s["y"]),
             nbytes=_f32((n, c))),
        Case("softmax_cross_entropy_backward", label, p, setup,
             ours=lambda o, s: lambda: o.softmax_cross_entropy_backward(s["x"], s["y"]),
             needs=("softmax_cross_entropy_backward",), torch_anchor=t_ce_bwd, nbytes=_f32((n, c), (n, c))),
        Case("mse_loss", el_label, ep, el_setup, ours=lambda o, s: lambda: o.mse_loss(s["p"], s["t"]),
             needs=("mse_loss",), torch_anchor=lambda t, s: lambda: t.nn.functional.mse_loss(s["p"], s["t"]),
             nbytes=two),
        Case("mse_loss_backward", el_label, ep, el_setup,
             ours=lambda o, s: lambda: o.mse_loss_backward(s["p"], s["t"]), needs=("mse_loss_backward",),
             torch_anchor=lambda t, s: lambda: (s["p"] - s["t"]).mul_(2.0 / numel), nbytes=three),
        Case("binary_cross_entropy_with_logits", el_label, ep, el_setup,
             ours=lambda o, s: lambda: o.binary_cross_entropy_with_logits(s["p"], s["t"]),
             needs=("binary_cross_entropy_with_logits",),
             torch_anchor=lambda t, s: lambda: t.nn.functional.binary_cross_entropy_with_logits(s["p"], s["t"]),
             nbytes=two),
        Case("binary_cross_entropy_with_logits_backward", el_label, ep, el_setup,
             ours=lambda o, s: lambda: o.binary_cross_entropy_with_logits_backward(s["p"], s["t"]),
             needs=("binary_cross_entropy_with_logits_backward",),
             torch_anchor=lambda t, s: lambda: (t.sigmoid(s["p"]) - s["t"]).div_(numel), nbytes=three),
    ]


# ------------------------------------------------------------------------- loss options (issue #12)
def loss_option_cases() -> list[Case]:
    """The torch options of the losses, each against PyTorch in the same run. The backward anchors
    time torch's forward + autograd backward (torch has no separate backward function for these
    options), so their ratio flatters PyTorch's side by the forward's time."""
    n, c = SOFTMAX_SHAPE
    w_np = (_rng().random(c) + 0.5).astype(np.float32)

    def ce_setup(xp):
        y = _rng().integers(0, c, n).astype(np.int64)
        y[::17] = 3  # some targets ignored below
        return _on(xp, {"x": _rand((n, c)), "y": y, "w": w_np})

    opts = {"ignore_index": 3, "label_smoothing": 0.1}
    label = f"N={n} C={c} weight ignore_index label_smoothing"
    p = {"family": "loss", "N": n, "C": c, "options": "weight, ignore_index=3, label_smoothing=0.1"}

    def t_ce(t, s, red="mean"):
        return lambda: t.nn.functional.cross_entropy(s["x"], s["y"], weight=s["w"], reduction=red, **opts)

    def t_ce_bwd(t, s):
        x = s["x"].clone().requires_grad_()
        return lambda: t.autograd.grad(t.nn.functional.cross_entropy(x, s["y"], weight=s["w"], **opts), x)

    # per-pixel classification (segmentation): (N, C, H, W) logits, labels with an ignored border
    sn, sc, sh = 8, 21, 64

    def seg_setup(xp):
        y = _rng().integers(0, sc, (sn, sh, sh)).astype(np.int64)
        y[:, 0, :] = 255
        return _on(xp, {"x": _rand((sn, sc, sh, sh)), "y": y})

    seg_label = f"N={sn} C={sc} {sh}x{sh} ignore_index=255"
    sp = {"family": "loss", "N": sn, "C": sc, "H": sh, "W": sh, "options": "ignore_index=255"}

    def t_seg_bwd(t, s):
        x = s["x"].clone().requires_grad_()
        return lambda: t.autograd.grad(t.nn.functional.cross_entropy(x, s["y"], ignore_index=255), x)

    shape = POOL_SHAPE
    el_label = "x".join(map(str, shape))
    ep = {"family": "loss", "shape": list(shape)}

    def bce_setup(xp):
        return _on(xp, {"p": _rand(shape), "t": (_rng().random(shape) > 0.5).astype(np.float32),
                        "pw": (_rng().random((shape[-1],)) * 3).astype(np.float32)})

    def t_bce_bwd(t, s):
        x = s["p"].clone().requires_grad_()
        return lambda: t.autograd.grad(t.nn.functional.binary_cross_entropy_with_logits(x, s["t"], pos_weight=s["pw"]), x)

    def reg_setup(xp):
        return _on(xp, {"p": _rand(shape), "t": _rand(shape)})

    two = _f32(shape, shape)
    return [
        Case("cross_entropy", label, p, ce_setup,
             ours=lambda o, s: lambda: o.cross_entropy(s["x"], s["y"], s["w"], **opts), needs=("cross_entropy",),
             torch_anchor=t_ce, nbytes=_f32((n, c)) + 8 * n),
        Case("cross_entropy", label + " reduction=none", {**p, "reduction": "none"}, ce_setup,
             ours=lambda o, s: lambda: o.cross_entropy(s["x"], s["y"], s["w"], reduction="none", **opts),
             needs=("cross_entropy",), torch_anchor=lambda t, s: t_ce(t, s, "none"), nbytes=_f32((n, c), (n,)) + 8 * n),
        Case("cross_entropy_backward", label, p, ce_setup,
             ours=lambda o, s: lambda: o.cross_entropy_backward(s["x"], s["y"], s["w"], **opts),
             needs=("cross_entropy_backward",), torch_anchor=t_ce_bwd, nbytes=_f32((n, c), (n, c)) + 8 * n),
        Case("cross_entropy", seg_label, sp, seg_setup,
             ours=lambda o, s: lambda: o.cross_entropy(s["x"], s["y"], ignore_index=255), needs=("cross_entropy",),
             torch_anchor=lambda t, s: lambda: t.nn.functional.cross_entropy(s["x"], s["y"], ignore_index=255),
             nbytes=_f32((sn, sc, sh, sh)) + 8 * sn * sh * sh),
        Case("cross_entropy_backward", seg_label, sp, seg_setup,
             ours=lambda o, s: lambda: o.cross_entropy_backward(s["x"], s["y"], ignore_index=255),
             needs=("cross_entropy_backward",), torch_anchor=t_seg_bwd,
             nbytes=_f32((sn, sc, sh, sh), (sn, sc, sh, sh)) + 8 * sn * sh * sh),
        Case("nll_loss", label, p, ce_setup,
             ours=lambda o, s: lambda: o.nll_loss(s["x"], s["y"], s["w"], ignore_index=3), needs=("nll_loss",),
             torch_anchor=lambda t, s: lambda: t.nn.functional.nll_loss(s["x"], s["y"], s["w"], ignore_index=3),
             nbytes=16.0 * n),
        Case("binary_cross_entropy_with_logits", el_label + " pos_weight", {**ep, "options": "pos_weight"}, bce_setup,
             ours=lambda o, s: lambda: o.binary_cross_entropy_with_logits(s["p"], s["t"], pos_weight=s["pw"]),
             needs=("binary_cross_entropy_with_logits",),
             torch_anchor=lambda t, s: lambda: t.nn.functional.binary_cross_entropy_with_logits(s["p"], s["t"], pos_weight=s["pw"]),
             nbytes=two),
        Case("binary_cross_entropy_with_logits_backward", el_label + " pos_weight", {**ep, "options": "pos_weight"},
             bce_setup, ours=lambda o, s: lambda: o.binary_cross_entropy_with_logits_backward(s["p"], s["t"], pos_weight=s["pw"]),
             needs=("binary_cross_entropy_with_logits_backward",), torch_anchor=t_bce_bwd, nbytes=_f32(shape, shape, shape)),
        Case("smooth_l1_loss", el_label, ep, reg_setup, ours=lambda o, s: lambda: o.smooth_l1_loss(s["p"], s["t"], beta=0.5),
             needs=("smooth_l1_loss",),
             torch_anchor=lambda t, s: lambda: t.nn.functional.smooth_l1_loss(s["p"], s["t"], beta=0.5), nbytes=two),
        Case("huber_loss", el_label, ep, reg_setup, ours=lambda o, s: lambda: o.huber_loss(s["p"], s["t"], delta=0.5),
             needs=("huber_loss",),
             torch_anchor=lambda t, s: lambda: t.nn.functional.huber_loss(s["p"], s["t"], delta=0.5), nbytes=two),
        Case("l1_loss", el_label + " reduction=none", {**ep, "reduction": "none"}, reg_setup,
             ours=lambda o, s: lambda: o.l1_loss(s["p"], s["t"], reduction="none"), needs=("l1_loss",),
             torch_anchor=lambda t, s: lambda: t.nn.functional.l1_loss(s["p"], s["t"], reduction="none"),
             nbytes=_f32(shape, shape, shape)),
    ]


def broadcast_cases() -> list[Case]:
    """add / mul with broadcasting (a per-channel bias over NCHW, a row bias) and their backward
    (the sum over the broadcast axes), against torch."""
    n, c, h, w = POOL_SHAPE
    label = f"{n}x{c}x{h}x{w} + (C,1,1)"
    p = {"family": "elementwise", "shape": [n, c, h, w], "other": [c, 1, 1]}

    def setup(xp):
        return _on(xp, {"a": _rand(POOL_SHAPE), "b": _rand((c, 1, 1)), "g": _rand(POOL_SHAPE)})

    rows, cols = 4096, 1024
    rp = {"family": "elementwise", "shape": [rows, cols], "other": [cols]}

    def row_setup(xp):
        return _on(xp, {"a": _rand((rows, cols)), "b": _rand((cols,)), "g": _rand((rows, cols))})

    full = _f32(POOL_SHAPE, POOL_SHAPE)
    return [
        Case("add", label + " alpha=2", p, setup, ours=lambda o, s: lambda: o.add(s["a"], s["b"], alpha=2), needs=("add",),
             torch_anchor=lambda t, s: lambda: t.add(s["a"], s["b"], alpha=2), nbytes=full),
        Case("mul", label, p, setup, ours=lambda o, s: lambda: o.mul(s["a"], s["b"]), needs=("mul",),
             xp_anchor=lambda xp, s: lambda: s["a"] * s["b"], torch_anchor=lambda t, s: lambda: t.mul(s["a"], s["b"]),
             nbytes=full),
        Case("add_backward", label, p, setup, ours=lambda o, s: lambda: o.add_backward(s["g"], s["a"], s["b"]),
             needs=("add_backward",),
             torch_anchor=lambda t, s: lambda: (s["g"].clone(), s["g"].sum((0, 2, 3), keepdim=True)[0]),
             nbytes=_f32(POOL_SHAPE, POOL_SHAPE)),
        Case("mul_backward", label, p, setup, ours=lambda o, s: lambda: o.mul_backward(s["g"], s["a"], s["b"]),
             needs=("mul_backward",),
             torch_anchor=lambda t, s: lambda: (s["g"] * s["b"], (s["g"] * s["a"]).sum((0, 2, 3), keepdim=True)[0]),
             nbytes=_f32(POOL_SHAPE, POOL_SHAPE, POOL_SHAPE)),
        Case("add", f"{rows}x{cols} + ({cols},)", rp, row_setup, ours=lambda o, s: lambda: o.add(s["a"], s["b"]),
             needs=("add",), xp_anchor=lambda xp, s: lambda: s["a"] + s["b"],
             torch_anchor=lambda t, s: lambda: t.add(s["a"], s["b"]), nbytes=_f32((rows, cols), (rows, cols))),
        Case("add_backward", f"{rows}x{cols} + ({cols},)", rp, row_setup,
             ours=lambda o, s: lambda: o.add_backward(s["g"], s["a"], s["b"]), needs=("add_backward",),
             torch_anchor=lambda t, s: lambda: (s["g"].clone(), s["g"].sum(0)), nbytes=_f32((rows, cols), (rows, cols))),
    ]


def matmul_cases() -> list[Case]:
    """Batched matmul (torch.matmul) against torch and NumPy: a batch of products, a broadcast
    (folded) operand, and the backward."""
    bt, m, k, n = 32, 128, 256, 128
    p = {"family": "gemm", "batch": bt, "M": m, "K": k, "N": n}

    def setup(xp):
        return _on(xp, {"a": _rand((bt, m, k)), "b": _rand((bt, k, n)), "w": _rand((k, n)), "g": _rand((bt, m, n)),
                        "a4": _rand((4, 8, m, k)), "b4": _rand((8, k, n))})

    fl_ = 2.0 * bt * m * k * n
    order = {"cpu": ("numpy", "torch-cpu"), "cuda": ("cupy", "torch-cuda")}
    return [
        Case("matmul", f"({bt},{m},{k}) @ ({bt},{k},{n})", p, setup, ours=lambda o, s: lambda: o.matmul(s["a"], s["b"]),
             needs=("matmul",), xp_anchor=lambda xp, s: lambda: xp.matmul(s["a"], s["b"]),
             torch_anchor=lambda t, s: lambda: t.matmul(s["a"], s["b"]), flops=fl_,
             nbytes=_f32((bt, m, k), (bt, k, n), (bt, m, n)), anchor_order=order),
        Case("matmul", f"({bt},{m},{k}) @ ({k},{n})", p, setup, ours=lambda o, s: lambda: o.matmul(s["a"], s["w"]),
             needs=("matmul",), xp_anchor=lambda xp, s: lambda: xp.matmul(s["a"], s["w"]),
             torch_anchor=lambda t, s: lambda: t.matmul(s["a"], s["w"]), flops=fl_,
             nbytes=_f32((bt, m, k), (k, n), (bt, m, n)), anchor_order=order),
        Case("matmul", f"(4,8,{m},{k}) @ (8,{k},{n})", p, setup, ours=lambda o, s: lambda: o.matmul(s["a4"], s["b4"]),
             needs=("matmul",), xp_anchor=lambda xp, s: lambda: xp.matmul(s["a4"], s["b4"]),
             torch_anchor=lambda t, s: lambda: t.matmul(s["a4"], s["b4"]), flops=fl_,
             nbytes=_f32((bt, m, k), (8, k, n), (bt, m, n)), anchor_order=order),
        Case("matmul_backward", f"({bt},{m},{k}) @ ({bt},{k},{n})", p, setup,
             ours=lambda o, s: lambda: o.matmul_backward(s["g"], s["a"], s["b"]), needs=("matmul_backward",),
             xp_anchor=lambda xp, s: lambda: (xp.matmul(s["g"], s["b"].transpose(0, 2, 1)),
                                              xp.matmul(s["a"].transpose(0, 2, 1), s["g"])),
             torch_anchor=lambda t, s: lambda: (t.matmul(s["g"], s["b"].transpose(1, 2)), t.matmul(s["a"].transpose(1, 2), s["g"])),
             flops=2 * fl_, nbytes=_f32((bt, m, n), (bt, m, k), (bt, k, n), (bt, m, k), (bt, k, n)), anchor_order=order),
    ]


# -------------------------------------------------------------------------------------- dropout
def dropout_cases() -> list[Case]:
    shape = POOL_SHAPE
    label = "x".join(map(str, shape)) + " p=0.5"
    p = {"family": "dropout", "shape": list(shape), "p": 0.5}

    def setup(xp):
        return _on(xp, {"x": _rand(shape), "g": _rand(shape)})

    def t_bwd(t, s):
        _, mask = t.ops.aten.native_dropout(s["x"], 0.5, True)
        return lambda: t.ops.aten.native_dropout_backward(s["g"], mask, 2.0)

    return [
        Case("dropout", label, p, setup, ours=lambda o, s: lambda: o.dropout(s["x"], 0.5, seed=1),
             needs=("dropout",), torch_anchor=lambda t, s: lambda: t.nn.functional.dropout(s["x"], 0.5, True),
             nbytes=_f32(shape, shape)),
        Case("dropout_backward", label, p, setup, ours=lambda o, s: lambda: o.dropout_backward(s["g"], 0.5, seed=1),
             needs=("dropout_backward",), torch_anchor=t_bwd, nbytes=_f32(shape, shape)),
    ]


# ------------------------------------------------------------------------------------ optimizers
def optim_cases() -> list[Case]:
    n = OPTIM_SIZE
    p = {"family": "optim", "params": n}

    def setup(xp):
        return _on(xp, {"p": _rand((n,)), "g": _rand((n,), 0.01), "v": np.zeros(n, np.float32),
                        "m": np.zeros(n, np.float32), "v2": np.zeros(n, np.float32)})

    def t_sgd(t, s):
        param = s["p"].clone().requires_grad_()
        param.grad = s["g"].clone()
        opt = t.optim.SGD([param], lr=0.01, momentum=0.9)
        return opt.step

    def t_adam(t, s):
        param = s["p"].clone().requires_grad_()
        param.grad = s["g"].clone()
        opt = t.optim.Adam([param], lr=1e-3)
        return opt.step

    return [
        Case("sgd_update", f"{n} params momentum=0.9", {**p, "momentum": 0.9}, setup,
             ours=lambda o, s: lambda: o.sgd_update(s["p"], s["g"], s["v"], lr=0.01, momentum=0.9),
             needs=("sgd_update",), torch_anchor=t_sgd, nbytes=5 * 4.0 * n),
        Case("adam_update", f"{n} params", p, setup,
             ours=lambda o, s: lambda: o.adam_update(s["p"], s["g"], s["m"], s["v2"], step=10, lr=1e-3),
             needs=("adam_update",), torch_anchor=t_adam, nbytes=7 * 4.0 * n),
    ]


# ---------------------------------------------------------------------------------- train steps
CNN_NEEDS = ("conv2d", "conv2d_backward", "max_pool2d", "max_pool2d_backward", "relu", "relu_backward",
             "linear", "linear_backward", "softmax_cross_entropy", "softmax_cross_entropy_backward", "sgd_update")


def _cnn_setup(xp, n=100):
    arrays = {"x": _rand((n, 1, 28, 28)), "y": _rng().integers(0, 10, n).astype(np.int64),
              "w1": _rand((32, 1, 5, 5), 0.2), "b1": np.zeros(32, np.float32),
              "w2": _rand((64, 32, 5, 5), 0.035), "b2": np.zeros(64, np.float32),
              "w3": _rand((200, 1024), 0.03), "b3": np.zeros(200, np.float32),
              "w4": _rand((10, 200), 0.07), "b4": np.zeros(10, np.float32)}
    for k in ("w1", "b1", "w2", "b2", "w3", "b3", "w4", "b4"):
        arrays["v_" + k] = np.zeros_like(arrays[k])
    return _on(xp, arrays)


def cnn_train_step(o, s):
    """One SGD-momentum step of the course CNN, written with the fastlayers op API (o = fastlayers or
    fastlayers.reference): conv 32@5x5 -> max-pool 2 -> ReLU -> conv 64@5x5 -> max-pool 2 -> ReLU ->
    flatten 1024 -> dense 200 -> ReLU -> dense 10 -> softmax cross-entropy."""
    x, y = s["x"], s["y"]
    n = x.shape[0]
    names = ("w1", "b1", "w2", "b2", "w3", "b3", "w4", "b4")

    def step():
        z1 = o.conv2d(x, s["w1"], s["b1"])
        p1 = o.max_pool2d(z1, 2)
        a1 = o.relu(p1)
        z2 = o.conv2d(a1, s["w2"], s["b2"])
        p2 = o.max_pool2d(z2, 2)
        a2 = o.relu(p2)
        f = a2.reshape(n, -1)
        h = o.linear(f, s["w3"], s["b3"])
        ha = o.relu(h)
        logits = o.linear(ha, s["w4"], s["b4"])
        loss = o.softmax_cross_entropy(logits, y)
        g = o.softmax_cross_entropy_backward(logits, y)
        gha, gw4, gb4 = o.linear_backward(g, ha, s["w4"])
        gh = o.relu_backward(gha, h)
        gf, gw3, gb3 = o.linear_backward(gh, f, s["w3"])
        gp2 = o.relu_backward(gf.reshape(p2.shape), p2)
        ga1, gw2, gb2 = o.conv2d_backward(o.max_pool2d_backward(gp2, z2, 2), a1, s["w2"])
        gp1 = o.relu_backward(ga1, p1)
        # The input needs no gradient (PyTorch's x does not require one either): skip backward-data.
        _, gw1, gb1 = o.conv2d_backward(o.max_pool2d_backward(gp1, z1, 2), x, s["w1"], need_grad_x=False)
        for name, grad in zip(names, (gw1, gb1, gw2, gb2, gw3, gb3, gw4, gb4)):
            o.sgd_update(s[name], grad, s["v_" + name], lr=0.01, momentum=0.9)
        return loss
    return step


def _torch_cnn(t, s):
    nn = t.nn
    model = nn.Sequential(nn.Conv2d(1, 32, 5), nn.MaxPool2d(2), nn.ReLU(), nn.Conv2d(32, 64, 5), nn.MaxPool2d(2),
                          nn.ReLU(), nn.Flatten(), nn.Linear(1024, 200), nn.ReLU(), nn.Linear(200, 10))
    model.to(s["x"].device)
    opt = t.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = s["x"], s["y"]

    def step():
        opt.zero_grad(set_to_none=False)
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step


RES_NEEDS = ("conv2d", "conv2d_backward", "relu", "relu_backward", "add", "add_backward", "mse_loss",
             "mse_loss_backward", "sgd_update")
RES_SHAPE = (16, 64, 28, 28)


def _res_setup(xp):
    n, c, h, w = RES_SHAPE
    arrays = {"x": _rand(RES_SHAPE), "t": _rand(RES_SHAPE), "w1": _rand((c, c, 3, 3), 0.04),
              "b1": np.zeros(c, np.float32), "w2": _rand((c, c, 3, 3), 0.04), "b2": np.zeros(c, np.float32)}
    for k in ("w1", "b1", "w2", "b2"):
        arrays["v_" + k] = np.zeros_like(arrays[k])
    return _on(xp, arrays)


def resblock_train_step(o, s):
    """A basic residual block y = relu(conv(relu(conv(x))) + x) (3x3, padding 1, no batch norm) with an
    MSE loss against a target, backward (input gradient included) and SGD-momentum updates."""
    x, t = s["x"], s["t"]

    def step():
        c1 = o.conv2d(x, s["w1"], s["b1"], padding=1)
        r1 = o.relu(c1)
        c2 = o.conv2d(r1, s["w2"], s["b2"], padding=1)
        z = o.add(c2, x)
        y = o.relu(z)
        loss = o.mse_loss(y, t)
        gz = o.relu_backward(o.mse_loss_backward(y, t), z)
        gc2, gskip = o.add_backward(gz)
        gr1, gw2, gb2 = o.conv2d_backward(gc2, r1, s["w2"], padding=1)
        gx, gw1, gb1 = o.conv2d_backward(o.relu_backward(gr1, c1), x, s["w1"], padding=1)
        o.add(gx, gskip)  # the block's input gradient, as a network would pass it on
        for name, grad in zip(("w1", "b1", "w2", "b2"), (gw1, gb1, gw2, gb2)):
            o.sgd_update(s[name], grad, s["v_" + name], lr=0.01, momentum=0.9)
        return loss
    return step


def _torch_res(t, s):
    nn = t.nn
    c = RES_SHAPE[1]
    conv1, conv2 = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)
    conv1.to(s["x"].device)
    conv2.to(s["x"].device)
    opt = t.optim.SGD(list(conv1.parameters()) + list(conv2.parameters()), lr=0.01, momentum=0.9)
    x = s["x"].clone().requires_grad_()

    def step():
        opt.zero_grad(set_to_none=False)
        x.grad = None
        y = t.relu(conv2(t.relu(conv1(x))) + x)
        loss = nn.functional.mse_loss(y, s["t"])
        loss.backward()
        opt.step()
        return loss
    return step


def cnn_train_case(batch: int = 100) -> Case:
    """The course-CNN training step (cnn_train_step, PyTorch's _torch_cnn as the anchor) at `batch`;
    flops count 3x the forward's conv and dense flops."""
    b = batch
    flops = 3 * (conv_flops(b, 1, 32, 5, 5, 24, 24) + conv_flops(b, 32, 64, 5, 5, 8, 8)
                 + 2.0 * b * 1024 * 200 + 2.0 * b * 200 * 10)
    return Case("train_step_cnn", f"course CNN, batch {b}, SGD momentum", {"family": "train", "batch": b,
                "model": "conv32@5-pool-relu-conv64@5-pool-relu-fc200-relu-fc10"},
                setup=lambda xp: _cnn_setup(xp, b), ours=cnn_train_step, needs=CNN_NEEDS,
                torch_anchor=_torch_cnn, flops=flops, heavy=True)


def train_cases() -> list[Case]:
    n, c, h, w = RES_SHAPE
    res_flops = 3 * 2 * conv_flops(n, c, c, 3, 3, h, w)
    return [
        cnn_train_case(100),
        Case("train_step_resblock", f"N={n} C={c} {h}x{w} 3x3 p1, SGD momentum",
             {"family": "train", "N": n, "C": c, "H": h, "W": w}, setup=_res_setup, ours=resblock_train_step,
             needs=RES_NEEDS, torch_anchor=_torch_res, flops=res_flops, heavy=True),
    ]


# ------------------------------------------------------------------ pad, interpolate, cat, conv options
def convpad_cases() -> list[Case]:
    """pad (every mode) and its backward, interpolate x2 (nearest, bilinear) and its backward, cat /
    cat_backward / split on POOL_SHAPE, and conv2d with padding_mode="reflect" (the pad op, then the
    kernel) on layer (c), each against PyTorch in the same run."""
    n, c, h, w = POOL_SHAPE
    xs = POOL_SHAPE
    pads = (1, 1, 1, 1)
    ps = (n, c, h + 2, w + 2)
    cases = []

    def pad_setup(xp):
        return _on(xp, {"x": _rand(xs), "g": _rand(ps)})

    torch_pad_bwd = {
        "constant": lambda t, s: lambda: t.ops.aten.constant_pad_nd(s["g"], [-1, -1, -1, -1], 0.0),
        "reflect": lambda t, s: lambda: t.ops.aten.reflection_pad2d_backward(s["g"], s["x"], [1, 1, 1, 1]),
        "replicate": lambda t, s: lambda: t.ops.aten.replication_pad2d_backward(s["g"], s["x"], [1, 1, 1, 1]),
    }
    for mode in ("constant", "reflect", "replicate", "circular"):
        label = f"N={n} C={c} {h}x{w} pad 1 {mode}"
        params = {"family": "pad", "shape": list(xs), "pad": list(pads), "mode": mode}
        cases.append(Case("pad", label, params, pad_setup,
                          ours=lambda o, s, m=mode: lambda: o.pad(s["x"], pads, m), needs=("pad",),
                          torch_anchor=lambda t, s, m=mode: lambda: t.nn.functional.pad(s["x"], pads, mode=m),
                          nbytes=_f32(xs, ps)))
        cases.append(Case("pad_backward", label, params, pad_setup,
                          ours=lambda o, s, m=mode: lambda: o.pad_backward(s["g"], s["x"], pads, m),
                          needs=("pad_backward",), torch_anchor=torch_pad_bwd.get(mode), nbytes=_f32(ps, xs)))

    ys = (n, c, 2 * h, 2 * w)

    def up_setup(xp):
        return _on(xp, {"x": _rand(xs), "g": _rand(ys)})

    for mode in ("nearest", "bilinear"):
        label = f"N={n} C={c} {h}x{w} x2 {mode}"
        params = {"family": "interpolate", "shape": list(xs), "scale_factor": 2, "mode": mode}
        if mode == "nearest":
            t_bwd = lambda t, s: lambda: t.ops.aten.upsample_nearest2d_backward(s["g"], [2 * h, 2 * w], list(xs), 2.0, 2.0)
        else:
            t_bwd = lambda t, s: lambda: t.ops.aten.upsample_bilinear2d_backward(
                s["g"], [2 * h, 2 * w], list(xs), False, 2.0, 2.0)
        cases.append(Case("interpolate", label, params, up_setup,
                          ours=lambda o, s, m=mode: lambda: o.interpolate(s["x"], scale_factor=2, mode=m),
                          needs=("interpolate",),
                          torch_anchor=lambda t, s, m=mode: lambda: t.nn.functional.interpolate(s["x"], scale_factor=2, mode=m),
                          nbytes=_f32(xs, ys), heavy=True))
        cases.append(Case("interpolate_backward", label, params, up_setup,
                          ours=lambda o, s, m=mode: lambda: o.interpolate_backward(s["g"], s["x"], scale_factor=2, mode=m),
                          needs=("interpolate_backward",), torch_anchor=t_bwd, nbytes=_f32(ys, xs), heavy=True))

    cs = (n, 2 * c, h, w)
    label = f"2 x N={n} C={c} {h}x{w} axis 1"
    params = {"family": "cat", "shapes": [list(xs), list(xs)], "axis": 1}

    def cat_setup(xp):
        return _on(xp, {"a": _rand(xs), "b": _rand(xs), "g": _rand(cs)})

    cases += [
        Case("cat", label, params, cat_setup, ours=lambda o, s: lambda: o.cat([s["a"], s["b"]], 1), needs=("cat",),
             xp_anchor=lambda xp, s: lambda: xp.concatenate([s["a"], s["b"]], 1),
             torch_anchor=lambda t, s: lambda: t.cat([s["a"], s["b"]], 1), nbytes=_f32(xs, xs, cs)),
        Case("cat_backward", label, params, cat_setup, ours=lambda o, s: lambda: o.cat_backward(s["g"], [c, c], 1),
             needs=("cat_backward",),
             torch_anchor=lambda t, s: lambda: [p.contiguous() for p in t.split(s["g"], c, 1)],
             nbytes=_f32(cs, xs, xs)),
        Case("split", f"N={n} C={2 * c} {h}x{w} into chunks of {c // 2} along axis 1",
             {"family": "cat", "shape": list(cs), "split_size": c // 2, "axis": 1}, cat_setup,
             ours=lambda o, s: lambda: o.split(s["g"], c // 2, 1), needs=("split",),
             torch_anchor=lambda t, s: lambda: [p.contiguous() for p in t.split(s["g"], c // 2, 1)],
             nbytes=_f32(cs, cs)),
    ]

    # conv2d with padding_mode="reflect" on layer (c): PyTorch's nn.Conv2d does F.pad then conv2d too.
    name, cn, cc, ch, cw, ck, r, s_, stride, pad = CONV_LAYERS[2]
    label = f"{name}: N={cn} {cc}->{ck} {ch}x{cw} {r}x{s_} p{pad} reflect"
    params = {"family": "conv", "layer": name, "N": cn, "C": cc, "H": ch, "W": cw, "K": ck, "R": r, "S": s_,
              "padding": pad, "padding_mode": "reflect"}
    cxs, cws, cys = (cn, cc, ch, cw), (ck, cc, r, s_), (cn, ck, ch, cw)

    def conv_setup(xp):
        return _on(xp, {"x": _rand(cxs), "w": _rand(cws, 0.1), "b": _rand((ck,)), "g": _rand(cys)})

    def t_conv_bwd(t, s):
        x = s["x"].detach().requires_grad_()
        wt = s["w"].detach().requires_grad_()
        bt = s["b"].detach().requires_grad_()

        def run():
            x.grad = wt.grad = bt.grad = None
            y = t.nn.functional.conv2d(t.nn.functional.pad(x, (pad,) * 4, mode="reflect"), wt, bt)
            y.backward(s["g"])
        return run

    fl_ = conv_flops(cn, cc, ck, r, s_, ch, cw)
    cases += [
        Case("conv2d", label, params, conv_setup,
             ours=lambda o, s: lambda: o.conv2d(s["x"], s["w"], s["b"], padding=pad, padding_mode="reflect"),
             needs=("conv2d", "pad"),
             torch_anchor=lambda t, s: lambda: t.nn.functional.conv2d(
                 t.nn.functional.pad(s["x"], (pad,) * 4, mode="reflect"), s["w"], s["b"]),
             flops=fl_, nbytes=_f32(cxs, cws, cys), heavy=True),
        Case("conv2d_backward", label, {**params, "returns": "grad_x, grad_w, grad_b"}, conv_setup,
             ours=lambda o, s: lambda: o.conv2d_backward(s["g"], s["x"], s["w"], padding=pad, padding_mode="reflect"),
             needs=("conv2d_backward", "pad", "pad_backward"), torch_anchor=t_conv_bwd,
             flops=2 * fl_, nbytes=_f32(cys, cxs, cws, cxs, cws), heavy=True),
    ]
    return cases


def all_cases() -> list[Case]:
    return (gemm_cases() + matmul_cases() + linear_cases() + conv_cases() + conv3d_cases() + pool_cases()
            + pool3d_cases() + activation_cases() + elementwise_cases() + broadcast_cases() + loss_cases()
            + loss_option_cases() + dropout_cases() + optim_cases() + train_cases() + convpad_cases())
