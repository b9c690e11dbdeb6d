"""pad (torch.nn.functional.pad) and its backward, on the CPU and CUDA kernels (csrc/*/pad.*).

`pad` lists (left, right) pairs from the last dimension backwards; negative entries crop. Modes and
PyTorch's limits (errors are ValueError/TypeError naming the argument):
- "constant" (fill `value`, None meaning 0): any number of dimensions, len(pad) <= 2 * x.ndim; a
  dimension may not be cropped below 0.
- "reflect", "replicate", "circular": 1, 2 or 3 padded trailing dimensions of a (C, *) or (N, C, *)
  input (len(pad) 2, 4, 6 with x.ndim = len(pad)/2 + 1 or + 2), no fill value (0 is accepted, as
  PyTorch does); every dimension but the batch must be non-empty for reflect/replicate. reflect:
  each pad < the dimension's size, output >= 1. replicate: output >= 1. circular: each pad <= the
  size; PyTorch crops first and wraps around the cropped length m, so a pad must also be <= m (where
  PyTorch reads uninitialised memory or fails inside, we raise).

The kernels work on the shape with neighbouring unpadded dimensions merged (at most 8 dimensions
after merging; a constant pad of more, which only > 8-D inputs can need, runs as two array-module
slice copies on the same device instead). Constant padding's backward is the crop back; the other
modes' backward gathers every output cell that copies an input cell.
"""

from __future__ import annotations

from .._backend import backend_for
from .._checks import as_float, as_float32, as_int, check_shape

__all__ = ["pad", "pad_backward"]

_MODES = {"constant": 0, "reflect": 1, "replicate": 2, "circular": 3}
_MAX_RANK = 8


def _pad_list(pad) -> list[int]:
    if not isinstance(pad, (tuple, list)):
        raise TypeError(f"pad must be a tuple or list of ints ((left, right) pairs from the last dimension "
                        f"backwards), got {type(pad).__name__} {pad!r}")
    values = [as_int(v, "pad") for v in pad]
    if len(values) % 2:
        raise ValueError(f"pad must have an even length ((left, right) pairs from the last dimension "
                         f"backwards), got {len(values)} entries: {tuple(values)}")
    return values


def _check_mode(mode) -> int:
    if not isinstance(mode, str) or mode not in _MODES:
        raise ValueError(f"mode must be one of 'constant', 'reflect', 'replicate', 'circular', got {mode!r}")
    return _MODES[mode]


def plan(shape, pad, mode="constant", value=None):
    """Checks (shape, pad, mode, value) as PyTorch does and returns (out_shape, widths, code, fill):
    widths is the per-dimension (left, right) list over all dimensions. Used by pad, pad_backward and
    the convolutions' padding_mode."""
    code = _check_mode(mode)
    values = _pad_list(pad)
    if value is None:
        fill = 0.0
    else:
        fill = as_float(value, "value")
        if code and fill != 0.0:
            raise ValueError(f"value: padding mode {mode!r} takes no fill value (only mode='constant' "
                             f"does), got value={value!r}")
    ndim, k = len(shape), len(values) // 2
    if k > ndim:
        raise ValueError(f"pad has {len(values)} entries ({k} (left, right) pairs) but x has only {ndim} "
                         f"dimensions (shape {tuple(shape)}): at most {2 * ndim} entries")
    if code and (k not in (1, 2, 3) or ndim not in (k + 1, k + 2)):
        raise ValueError(f"mode={mode!r} pads the last 1, 2 or 3 dimensions of a (C, *) or (N, C, *) input: "
                         f"a pad of {len(values)} entries needs x with {k + 1} or {k + 2} dimensions, "
                         f"got x of shape {tuple(shape)}")
    if code in (1, 2) and any(s == 0 for s in shape[ndim - k - 1:]):
        raise ValueError(f"x: mode={mode!r} needs non-empty dimensions (all but the batch dimension), "
                         f"got shape {tuple(shape)}")
    widths = [(0, 0)] * ndim
    for i in range(k):
        widths[ndim - 1 - i] = (values[2 * i], values[2 * i + 1])
    out_shape = []
    for d, (n, (lo, hi)) in enumerate(zip(shape, widths)):
        o = n + lo + hi
        where = f"dimension {d} (size {n}, pad ({lo}, {hi}))"
        if code == 1 and d >= ndim - k and (lo >= n or hi >= n):
            raise ValueError(f"pad: reflect padding must be smaller than the padded dimension, got {where} "
                             f"of x with shape {tuple(shape)}")
        if code in (1, 2) and o < 0:
            raise ValueError(f"pad: the negative pads crop {where} below 0 elements, x shape {tuple(shape)}")
        if code == 3:
            m = n + min(lo, 0) + min(hi, 0)
            if lo > n or hi > n or (o > 0 and (lo > m or hi > m)):
                raise ValueError(f"pad: circular padding would wrap around more than once at {where}: each pad "
                                 f"must be <= the size left after cropping ({m}), x shape {tuple(shape)}")
            if o < 0:
                raise ValueError(f"pad: the negative pads crop {where} below 0 elements, x shape {tuple(shape)}")
        if code == 0 and n + min(lo, 0) + min(hi, 0) < 0:
            raise ValueError(f"pad: the negative pads crop {where} below 0 elements, x shape {tuple(shape)}")
        out_shape.append(o)
    if code in (1, 2) and not any(out_shape[ndim - k:]):
        raise ValueError(f"pad: {mode} padding crops every padded dimension of x (shape {tuple(shape)}) to 0 "
                         f"elements: at least one must keep >= 1 (PyTorch's 'input is too small')")
    return tuple(out_shape), widths, code, fill


def _merged(shape, out_shape, widths):
    """(in, out, lo) lists with neighbouring unpadded dimensions merged into one."""
    ins, outs, los = [], [], []
    for n, o, (lo, hi) in zip(shape, out_shape, widths):
        plain = lo == 0 and hi == 0
        if ins and plain and los[-1] == 0 and outs[-1] == ins[-1]:
            ins[-1] *= n
            outs[-1] *= n
        else:
            ins.append(n)
            outs.append(o)
            los.append(lo)
    return ins, outs, los


def _slices(shape, out_shape, widths):
    src = tuple(slice(max(-lo, 0), n - max(-hi, 0)) for n, (lo, hi) in zip(shape, widths))
    dst = tuple(slice(max(lo, 0), o - max(hi, 0)) for o, (lo, hi) in zip(out_shape, widths))
    return src, dst


def pad(x, pad, mode="constant", value=None):
    """x padded (or cropped, for negative entries) as torch.nn.functional.pad; a new float32 array."""
    be = backend_for(x=x)
    zero_d = getattr(x, "ndim", None) == 0
    x = as_float32(x, "x", be)
    if zero_d:  # as_float32 makes 0-d input 1-d; a 0-d x takes only pad=() and stays 0-d
        x = x.reshape(())
    out_shape, widths, code, fill = plan(tuple(int(s) for s in x.shape), pad, mode, value)
    if not out_shape:
        return x.copy()
    y = be.empty(out_shape)
    if y.size == 0:
        return y
    ins, outs, los = _merged(x.shape, out_shape, widths)
    if len(ins) > _MAX_RANK:  # only constant mode on > 8-D input gets here
        y.fill(fill)
        src, dst = _slices(x.shape, out_shape, widths)
        y[dst] = x[src]
        return y
    be.run("pad_forward", x, y, code, ins, outs, los, fill)
    return y


def pad_backward(grad_out, x, pad, mode="constant", value=None):
    """d/dx of pad: each output cell's gradient added to the input cell it copies (value is ignored,
    accepted so the forward's arguments can be passed unchanged)."""
    be = backend_for(grad_out=grad_out, x=x)
    zero_d = getattr(x, "ndim", None) == 0
    x = as_float32(x, "x", be)
    if zero_d:
        x = x.reshape(())
    out_shape, widths, code, _ = plan(tuple(int(s) for s in x.shape), pad, mode, value)
    grad_out = as_float32(grad_out, "grad_out", be)
    if not out_shape:
        grad_out = grad_out.reshape(grad_out.shape if grad_out.size != 1 else ())
    check_shape(grad_out, out_shape, "grad_out")
    if not out_shape:
        return grad_out.copy()
    if grad_out.size == 0 or x.size == 0:
        return be.zeros(x.shape)
    ins, outs, los = _merged(x.shape, out_shape, widths)
    if len(ins) > _MAX_RANK:
        gx = be.zeros(x.shape)
        src, dst = _slices(x.shape, out_shape, widths)
        gx[src] = grad_out[dst]
        return gx
    gx = be.empty(x.shape)
    be.run("pad_backward", grad_out, gx, code, ins, outs, los)
    return gx
