"""fastlayers ops as torch functions that take part in autograd.

    import fastlayers.torch.functional as FF
    y = FF.conv2d(x, w, b, stride=1, padding=1)   # torch tensors in, torch tensors out
    y.sum().backward()                            # our conv2d_backward fills x.grad, w.grad, b.grad

Names, argument order and defaults are torch.nn.functional's. Each call is one
torch.autograd.Function (FastlayersFunction) whose forward calls fastlayers.<op> and whose
backward calls fastlayers.<op>_backward:
- float32 tensors run on the fastlayers kernels: CPU tensors as NumPy views, CUDA tensors as CuPy
  views (DLPack) on the tensor's current stream; nothing is copied (see _interop);
- float64 CPU tensors run on fastlayers.reference (the NumPy oracle), so torch.autograd.gradcheck
  checks our backward formulas against finite differences;
- any other dtype, or float32 mixed with float64, is a TypeError.
Gradients flow to the floating-point inputs that are trained (input, weight, bias); a loss's target
is treated as a constant (None gradient), as are labels and running statistics. Backward is not
itself differentiable (no double backward).
"""

from __future__ import annotations

import inspect

import torch
from torch.autograd.function import once_differentiable

import fastlayers as _fl
from fastlayers import reference as _ref

from ._interop import cuda_stream_of, to_array, to_tensor

__all__ = [
    "FastlayersFunction", "ops_for",
    "conv1d", "conv2d", "conv3d", "conv_transpose2d", "linear", "matmul",
    "max_pool2d", "avg_pool2d", "lp_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d",
    "max_pool3d", "avg_pool3d", "batch_norm",
    "relu", "leaky_relu", "sigmoid", "tanh", "softmax", "log_softmax", "dropout",
    "add", "mul", "cat", "pad", "interpolate",
    "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy_with_logits",
    "cross_entropy", "nll_loss", "soft_margin_loss", "hinge_embedding_loss",
]


def ops_for(*args):
    """fastlayers (float32, CPU or CUDA) or fastlayers.reference (float64, CPU) for these arguments,
    judged by their floating-point tensors."""
    dtypes = {a.dtype for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()}
    if dtypes == {torch.float32} or not dtypes:
        return _fl
    if dtypes == {torch.float64}:
        if any(isinstance(a, torch.Tensor) and a.device.type != "cpu" for a in args):
            raise TypeError("float64 runs on fastlayers.reference, which is CPU only; use float32 on the GPU")
        return _ref
    raise TypeError(f"fastlayers computes in float32 (float64 through its NumPy reference); got tensors of "
                    f"dtype {', '.join(sorted(str(d) for d in dtypes))}: convert them to one of those")


def _op(ops, name):
    fn = getattr(ops, name, None)
    if fn is None:
        where = "fastlayers.reference" if ops is _ref else "fastlayers"
        raise NotImplementedError(f"{where}.{name} does not exist in this build of fastlayers")
    return fn


_params_cache: dict = {}


def _accepts(fn, param: str) -> bool:
    key = (fn, param)
    if key not in _params_cache:
        try:
            _params_cache[key] = param in inspect.signature(fn).parameters
        except (TypeError, ValueError):
            _params_cache[key] = False
    return _params_cache[key]


def _nondefault(**kw):
    """The options that differ from their defaults (written as name=(value, default)), so that an op
    without that option still runs when the default is asked for."""
    return {k: v for k, (v, d) in kw.items() if not (v is d or (type(v) is type(d) and v == d))}


class FastlayersFunction(torch.autograd.Function):
    """One fastlayers op as an autograd node. apply(spec, kw, *args): spec.forward(ops, arrays, kw)
    returns (output array or tuple, saved state); spec.backward(ops, grads, saved, kw, needs) returns
    one gradient array (or None) per element of args."""

    @staticmethod
    def forward(ctx, spec, kw, *args):
        ops = ops_for(*args)
        first = next((a for a in args if isinstance(a, torch.Tensor)), None)
        arrays = [to_array(a) if isinstance(a, torch.Tensor) else
                  [to_array(t) for t in a] if isinstance(a, (list, tuple)) and a and isinstance(a[0], torch.Tensor)
                  else a for a in args]
        with cuda_stream_of(first):
            out, saved = spec.forward(ops, arrays, kw)
        ctx.spec, ctx.kw, ctx.ops, ctx.saved_state, ctx.first = spec, kw, ops, saved, first
        multi = isinstance(out, tuple)
        outs = tuple(to_tensor(o) for o in (out if multi else (out,)))
        ctx.save_for_backward(*[a for a in args if isinstance(a, torch.Tensor)], *outs)  # in-place edits are caught
        ctx.mark_non_differentiable(*[o for o in outs if not o.is_floating_point()])
        return outs if multi else outs[0]

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads):
        ctx.saved_tensors  # raises if an input or output was modified in place since forward
        gs = [None if g is None else to_array(g) for g in grads]
        with cuda_stream_of(ctx.first):
            gin = ctx.spec.backward(ctx.ops, gs, ctx.saved_state, ctx.kw, ctx.needs_input_grad[2:])
        return (None, None, *[to_tensor(g) if g is not None and need else None
                              for g, need in zip(gin, ctx.needs_input_grad[2:])])


class _Spec:
    __slots__ = ("forward", "backward", "name")

    def __init__(self, name, forward, backward):
        self.name, self.forward, self.backward = name, forward, backward

    def __repr__(self):
        return f"<fastlayers op {self.name}>"


def _apply(spec, kw, *args):
    return FastlayersFunction.apply(spec, kw, *args)


def _check_tensor(t, name):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    return t


# --- convolutions ---------------------------------------------------------------------------------

def _conv_spec(name):
    def fwd(ops, a, kw):
        x, w, b = a
        return _op(ops, name)(x, w, b, *kw["geom"], **kw["opt"]), (x, w, b is not None)

    def bwd(ops, g, saved, kw, needs):
        x, w, has_b = saved
        gx, gw, gb = _op(ops, name + "_backward")(g[0], x, w, *kw["geom"], need_grad_x=bool(needs[0]), **kw["opt"])
        return gx, gw, gb if has_b else None
    return _Spec(name, fwd, bwd)


_CONV1D, _CONV2D, _CONV3D, _CONVT2D = (_conv_spec(n) for n in ("conv1d", "conv2d", "conv3d", "conv_transpose2d"))


def _conv(spec, input, weight, bias, geom, padding_mode="zeros"):
    _check_tensor(input, "input")
    _check_tensor(weight, "weight")
    opt = {} if padding_mode == "zeros" else {"padding_mode": padding_mode}
    return _apply(spec, {"geom": geom, "opt": opt}, input, weight, bias)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, padding_mode="zeros"):
    return _conv(_CONV1D, input, weight, bias, (stride, padding, dilation, groups), padding_mode)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, padding_mode="zeros"):
    """torch.nn.functional.conv2d on fastlayers' kernels; padding_mode as torch.nn.Conv2d's (a
    fastlayers extension of the functional form)."""
    return _conv(_CONV2D, input, weight, bias, (stride, padding, dilation, groups), padding_mode)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv(_CONV3D, input, weight, bias, (stride, padding, dilation, groups))


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    return _conv(_CONVT2D, input, weight, bias, (stride, padding, output_padding, groups, dilation))


def _linear_fwd(ops, a, kw):
    x, w, b = a
    return _op(ops, "linear")(x, w, b), (x, w, b is not None)


def _linear_bwd(ops, g, saved, kw, needs):
    x, w, has_b = saved
    return _op(ops, "linear_backward")(g[0], x, w, with_bias=has_b)


_LINEAR = _Spec("linear", _linear_fwd, _linear_bwd)


def linear(input, weight, bias=None):
    _check_tensor(input, "input")
    _check_tensor(weight, "weight")
    return _apply(_LINEAR, {}, input, weight, bias)


def _binary_spec(name):
    def fwd(ops, a, kw):
        return _op(ops, name)(a[0], a[1]), (a[0], a[1])

    def bwd(ops, g, saved, kw, needs):
        fn = _op(ops, name + "_backward")
        if name == "add":
            if _accepts(fn, "a"):
                return fn(g[0], saved[0], saved[1])
            return fn(g[0])
        return fn(g[0], saved[0], saved[1])
    return _Spec(name, fwd, bwd)


_ADD, _MUL, _MATMUL = (_binary_spec(n) for n in ("add", "mul", "matmul"))


def add(input, other):
    """input + other (broadcasting as torch where fastlayers.add broadcasts)."""
    return _apply(_ADD, {}, _check_tensor(input, "input"), _check_tensor(other, "other"))


def mul(input, other):
    return _apply(_MUL, {}, _check_tensor(input, "input"), _check_tensor(other, "other"))


def matmul(input, other):
    return _apply(_MATMUL, {}, _check_tensor(input, "input"), _check_tensor(other, "other"))


# --- pooling --------------------------------------------------------------------------------------

def _pool_spec(name, returns_indices_kw=None):
    """Pools whose backward takes (grad_out, x, *args, **opts), recomputing what it needs from x."""
    def fwd(ops, a, kw):
        x = a[0]
        if kw.get("return_indices"):
            y, idx = _op(ops, name)(x, *kw["args"], **kw["opt"], return_indices=True)
            return (y, idx), (x, idx)
        return _op(ops, name)(x, *kw["args"], **kw["opt"]), (x, None)

    def bwd(ops, g, saved, kw, needs):
        x, idx = saved
        fn = _op(ops, name + "_backward")
        extra = {"indices": idx} if idx is not None and _accepts(fn, "indices") else {}
        return (fn(g[0], x, *kw["args"], **kw["opt"], **extra),)
    return _Spec(name, fwd, bwd)


_POOLS = {n: _pool_spec(n) for n in ("max_pool2d", "avg_pool2d", "lp_pool2d", "adaptive_avg_pool2d",
                                     "adaptive_max_pool2d", "max_pool3d", "avg_pool3d")}


def _pool(name, input, args, opt, return_indices=False):
    _check_tensor(input, "input")
    return _apply(_POOLS[name], {"args": args, "opt": opt, "return_indices": bool(return_indices)}, input)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    opt = _nondefault(dilation=(dilation, 1), ceil_mode=(ceil_mode, False))
    return _pool("max_pool2d", input, (kernel_size, stride, padding), opt, return_indices)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    opt = _nondefault(ceil_mode=(ceil_mode, False), count_include_pad=(count_include_pad, True),
                      divisor_override=(divisor_override, None))
    return _pool("avg_pool2d", input, (kernel_size, stride, padding), opt)


def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    return _pool("lp_pool2d", input, (float(norm_type), kernel_size, stride), _nondefault(ceil_mode=(ceil_mode, False)))


def adaptive_avg_pool2d(input, output_size):
    return _pool("adaptive_avg_pool2d", input, (output_size,), {})


def adaptive_max_pool2d(input, output_size, return_indices=False):
    return _pool("adaptive_max_pool2d", input, (output_size,), {}, return_indices)


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    if return_indices:
        raise ValueError("max_pool3d: return_indices=True is not supported by fastlayers.torch")
    opt = _nondefault(dilation=(dilation, 1), ceil_mode=(ceil_mode, False))
    return _pool("max_pool3d", input, (kernel_size, stride, padding), opt)


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    opt = _nondefault(ceil_mode=(ceil_mode, False), count_include_pad=(count_include_pad, True),
                      divisor_override=(divisor_override, None))
    return _pool("avg_pool3d", input, (kernel_size, stride, padding), opt)


# --- batch norm -----------------------------------------------------------------------------------

def _bn_fwd(ops, a, kw):
    x, rm, rv, w, b = a
    y = _op(ops, "batch_norm")(x, rm, rv, w, b, kw["training"], kw["momentum"], kw["eps"])
    return y, (x, rm, rv, w, b is not None)


def _bn_bwd(ops, g, saved, kw, needs):
    x, rm, rv, w, has_b = saved
    gx, gw, gb = _op(ops, "batch_norm_backward")(g[0], x, w, kw["eps"], kw["training"], rm, rv)
    if has_b and gb is None:
        gb = g[0].sum(axis=tuple(i for i in range(g[0].ndim) if i != 1))
    return gx, None, None, gw, gb if has_b else None


_BN = _Spec("batch_norm", _bn_fwd, _bn_bwd)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """torch.nn.functional.batch_norm; in training the running statistics (contiguous float32 or
    float64 tensors, shared with the kernels without a copy) are updated in place."""
    _check_tensor(input, "input")
    for name, t in (("running_mean", running_mean), ("running_var", running_var)):
        if t is not None and (not isinstance(t, torch.Tensor) or not t.is_contiguous()):
            raise ValueError(f"{name} must be a contiguous tensor (it is updated in place), got "
                             f"{type(t).__name__}")
    return _apply(_BN, {"training": bool(training), "momentum": momentum, "eps": float(eps)},
                  input, running_mean, running_var, weight, bias)


# --- activations ----------------------------------------------------------------------------------

def _act_spec(name, keep="x"):
    def fwd(ops, a, kw):
        y = _op(ops, name)(a[0], *kw["args"])
        return y, (a[0] if keep == "x" else y)

    def bwd(ops, g, saved, kw, needs):
        return (_op(ops, name + "_backward")(g[0], saved, *kw["args"]),)
    return _Spec(name, fwd, bwd)


_ACTS = {"relu": _act_spec("relu", "y"), "leaky_relu": _act_spec("leaky_relu"), "sigmoid": _act_spec("sigmoid", "y"),
         "tanh": _act_spec("tanh", "y"), "softmax": _act_spec("softmax", "y"),
         "log_softmax": _act_spec("log_softmax", "y")}


def _act(name, input, *args):
    return _apply(_ACTS[name], {"args": args}, _check_tensor(input, "input"))


def relu(input, inplace=False):
    return _act("relu", input)  # relu_backward(g, y): y > 0 exactly where x > 0


def leaky_relu(input, negative_slope=0.01, inplace=False):
    return _act("leaky_relu", input, float(negative_slope))


def sigmoid(input):
    return _act("sigmoid", input)


def tanh(input):
    return _act("tanh", input)


def _dim(dim, input):
    if dim is None:
        raise TypeError("dim must be given (torch's implicit dim choice is deprecated), got None")
    return int(dim)


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    return _act("softmax", input, _dim(dim, input))


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    return _act("log_softmax", input, _dim(dim, input))


def _dropout_fwd(ops, a, kw):
    return _op(ops, "dropout")(a[0], kw["p"], seed=kw["seed"]), None


def _dropout_bwd(ops, g, saved, kw, needs):
    return (_op(ops, "dropout_backward")(g[0], kw["p"], seed=kw["seed"]),)


_DROPOUT = _Spec("dropout", _dropout_fwd, _dropout_bwd)


def dropout(input, p=0.5, training=True, inplace=False):
    """Inverted dropout with fastlayers' Philox mask; its seed is drawn from torch's generator, so
    torch.manual_seed makes it reproducible (the mask differs from torch's own)."""
    _check_tensor(input, "input")
    if not training or p == 0:
        return input
    seed = int(torch.randint(0, 2**62, (1,)).item())
    return _apply(_DROPOUT, {"p": float(p), "seed": seed}, input)


# --- shape ops ------------------------------------------------------------------------------------

def _cat_fwd(ops, a, kw):
    arrays = a
    return _op(ops, "cat")(list(arrays), kw["dim"]), [int(x.shape[kw["dim"]]) for x in arrays]


def _cat_bwd(ops, g, sizes, kw, needs):
    return tuple(_op(ops, "cat_backward")(g[0], sizes, kw["dim"]))


_CAT = _Spec("cat", _cat_fwd, _cat_bwd)


def cat(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise ValueError("tensors must hold at least one tensor")
    for i, t in enumerate(tensors):
        _check_tensor(t, f"tensors[{i}]")
    d = int(dim) % tensors[0].ndim
    return _apply(_CAT, {"dim": d}, *tensors)


def _pad_fwd(ops, a, kw):
    return _op(ops, "pad")(a[0], kw["pad"], kw["mode"], kw["value"]), a[0]


def _pad_bwd(ops, g, x, kw, needs):
    return (_op(ops, "pad_backward")(g[0], x, kw["pad"], kw["mode"], kw["value"]),)


_PAD = _Spec("pad", _pad_fwd, _pad_bwd)


def pad(input, pad, mode="constant", value=None):
    return _apply(_PAD, {"pad": list(pad), "mode": mode, "value": value}, _check_tensor(input, "input"))


def _interp_fwd(ops, a, kw):
    return _op(ops, "interpolate")(a[0], **kw), a[0]


def _interp_bwd(ops, g, x, kw, needs):
    return (_op(ops, "interpolate_backward")(g[0], x, **kw),)


_INTERP = _Spec("interpolate", _interp_fwd, _interp_bwd)


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    kw = dict(size=size, scale_factor=scale_factor, mode=mode, align_corners=align_corners,
              recompute_scale_factor=recompute_scale_factor, antialias=antialias)
    return _apply(_INTERP, kw, _check_tensor(input, "input"))


# --- losses ---------------------------------------------------------------------------------------

def _loss_spec(name, n_aux=0):
    """A loss over (input, target, *aux tensors) with options kw["opt"]. The backward op takes
    grad_out= (the losses branch's API) or, in the older API, is scaled by the upstream scalar."""
    def fwd(ops, a, kw):
        return _op(ops, name)(*a, **kw["opt"]), tuple(a)

    def bwd(ops, g, saved, kw, needs):
        fn = _op(ops, name + "_backward")
        if _accepts(fn, "grad_out"):
            gx = fn(*saved, **kw["opt"], grad_out=g[0])
        else:
            gx = fn(*saved, **kw["opt"]) * g[0].reshape(()).astype(saved[0].dtype)
        return (gx,) + (None,) * (len(saved) - 1)
    return _Spec(name, fwd, bwd)


_LOSSES = {n: _loss_spec(n) for n in ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "soft_margin_loss",
                                      "hinge_embedding_loss", "binary_cross_entropy_with_logits", "cross_entropy",
                                      "nll_loss")}


def _loss(name, input, target, opt):
    _check_tensor(input, "input")
    _check_tensor(target, "target")
    if target.requires_grad:
        raise ValueError(f"{name}: fastlayers.torch gives no gradient for target; pass target.detach()")
    return _apply(_LOSSES[name], {"opt": opt}, input, target)


def _tensor_opt(t, name):
    if t is None:
        return None
    if isinstance(t, torch.Tensor):
        if t.requires_grad:
            raise ValueError(f"{name}: fastlayers.torch gives no gradient for {name}; pass {name}.detach()")
        return to_array(t)
    return t


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    return _loss("mse_loss", input, target, {"reduction": reduction})


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    return _loss("l1_loss", input, target, {"reduction": reduction})


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    return _loss("smooth_l1_loss", input, target, {"reduction": reduction, "beta": float(beta)})


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    if weight is not None:
        raise ValueError("huber_loss: weight is not supported by fastlayers")
    return _loss("huber_loss", input, target, {"reduction": reduction, "delta": float(delta)})


def soft_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    return _loss("soft_margin_loss", input, target, {"reduction": reduction})


def hinge_embedding_loss(input, target, margin=1.0, size_average=None, reduce=None, reduction="mean"):
    return _loss("hinge_embedding_loss", input, target, {"margin": float(margin), "reduction": reduction})


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None, reduction="mean",
                                     pos_weight=None):
    opt = {"reduction": reduction}
    opt.update(_nondefault(weight=(_tensor_opt(weight, "weight"), None),
                           pos_weight=(_tensor_opt(pos_weight, "pos_weight"), None)))
    return _loss("binary_cross_entropy_with_logits", input, target, opt)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                  label_smoothing=0.0):
    opt = {"reduction": reduction}
    opt.update(_nondefault(weight=(_tensor_opt(weight, "weight"), None), ignore_index=(int(ignore_index), -100),
                           label_smoothing=(float(label_smoothing), 0.0)))
    name = "cross_entropy" if hasattr(_fl, "cross_entropy") else "softmax_cross_entropy"
    if name == "softmax_cross_entropy":
        if len(opt) > 1:
            raise ValueError(f"cross_entropy: {', '.join(k for k in opt if k != 'reduction')} need a newer fastlayers")
        _LOSSES.setdefault(name, _loss_spec(name))
    return _loss(name, input, target, opt)


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    opt = {"reduction": reduction}
    opt.update(_nondefault(weight=(_tensor_opt(weight, "weight"), None), ignore_index=(int(ignore_index), -100)))
    return _loss("nll_loss", input, target, opt)

