"""The fuzz test's worker process (spawned): turns a plain-data call spec into arrays, calls the
fastlayers op or layer, the NumPy reference on copies, and reports one verdict. A crash or a hang
kills only this process; the parent (runner.py) sees it and names the call.

Verdicts: "result" (equal to the reference), "error" (a TypeError/ValueError naming an argument,
or a MemoryError for an output that cannot be allocated), or a failure: "bad-error" (any other
exception, or a message naming no argument), "mismatch", "mutated" (an input changed), "ref-error"
(fastlayers returned a result where the reference raised).
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import os
import re
import traceback
import warnings

import numpy as np

_FL = None

# Where a parameter name alone is too short to be told apart from ordinary words.
_ALSO_NAMES = {"x": ("x", "input"), "w": ("w", "weight"), "b": ("b", "bias")}


def _fl():
    global _FL
    if _FL is None:
        import fastlayers

        _FL = fastlayers
        fastlayers.set_num_threads(2)  # parallel paths even on one core
    return _FL


# ---- materialising arrays ------------------------------------------------------------------------

def _values(rng, n, special):
    a = rng.standard_normal(n) * rng.choice([1.0, 1.0, 0.1, 100.0])
    if special and n:
        k = max(1, n // 8)
        idx = rng.integers(0, n, k)
        a[idx] = rng.choice([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-42, 3e38, -3e38], k)
    return a


def make_array(spec, built):
    """spec: dict(kind="array", shape, dtype, layout, seed, special, alias) -> an ndarray."""
    shape, dtype, layout = tuple(spec["shape"]), np.dtype(spec["dtype"]), spec["layout"]
    rng = np.random.default_rng(spec["seed"])
    n = int(np.prod(shape)) if shape else 1
    alias = spec.get("alias")
    if alias is not None and alias[0] in built and isinstance(built[alias[0]], np.ndarray):
        other = built[alias[0]]
        if alias[1] == "same" and other.shape == shape:
            return other
        # A view into the other argument's memory, shifted by a few elements (overlapping).
        base = other.reshape(-1) if other.flags.c_contiguous else None
        if base is not None and base.dtype == dtype and base.size:
            off = min(alias[2], base.size - 1)
            if base.size - off >= n:
                return base[off:off + n].reshape(shape)
    values = spec.get("values")
    if values is not None and dtype.kind in "fiu":  # labels: +-1, or class indices in [lo, hi)
        if values[0] == "pm1":
            data = rng.choice([-1, 1], n)
        elif values[0] == "abs":  # a running average of squares (Adam's v) is never negative
            data = np.abs(_values(rng, n, False))
        elif values[0] == "nonpos":  # log-probabilities (log_softmax's output) are never positive
            # (an unsigned dtype holds only 0 of them: -3 cast to uint8 would be 253, not a log-probability)
            data = -np.abs(_values(rng, n, False)) if dtype.kind != "u" else np.zeros(n)
        elif values[0] == "range":
            data = rng.integers(values[1], values[2], n)
        else:  # "probs": rows that sum to 1 over the last axis
            data = rng.random(n)
        data = data.astype(dtype)
        if values[0] == "probs" and len(shape) >= 1 and n:
            data = data.reshape(shape)
            data = (data / np.maximum(data.sum(axis=-1, keepdims=True), 1e-6)).astype(dtype).reshape(-1)
    elif dtype.kind == "b":
        data = rng.integers(0, 2, n).astype(bool)
    elif dtype.kind in "iu":
        lo, hi = (0, 10) if dtype.kind == "u" else (-5, 10)
        data = rng.integers(lo, hi, n).astype(dtype)
        if spec.get("special") and n:
            info = np.iinfo(dtype)
            data[rng.integers(0, n)] = rng.choice([info.min, info.max])
    elif dtype.kind == "c":
        data = (_values(rng, n, False) + 1j * _values(rng, n, False)).astype(dtype)
    elif dtype.kind == "O":
        data = np.array([1.0] * n, dtype=object)
    else:
        with np.errstate(all="ignore"):
            data = _values(rng, n, spec.get("special")).astype(dtype)
    data = data.reshape(shape)
    if layout == "fortran" and data.ndim >= 2:
        return np.asfortranarray(data)
    if layout == "reversed" and data.ndim >= 1:  # negative strides
        return np.ascontiguousarray(data[::-1])[::-1]
    if layout == "strided" and data.ndim >= 1:
        big = np.zeros(shape[:-1] + (shape[-1] * 2,), dtype) if shape else np.zeros(2, dtype)
        view = big[..., ::2] if shape else big[0:1].reshape(())
        view[...] = data
        return view
    if layout == "misaligned" and dtype.itemsize > 1 and dtype.kind != "O":
        raw = bytearray(data.nbytes + 3)
        out = np.frombuffer(raw, dtype, n, 1 + (spec["seed"] % 3)).reshape(shape)
        out[...] = data
        return out
    if layout == "readonly":
        data.flags.writeable = False
        return data
    if layout == "bigendian" and dtype.kind in "fiu" and dtype.itemsize > 1:
        return data.astype(dtype.newbyteorder(">"))
    return data.copy()  # C-contiguous (np.ascontiguousarray would make a 0-d array 1-d)


def build(args: dict):
    built = {}
    for name, value in args.items():
        built[name] = _build_value(value, built)
    return built


def _build_value(value, built):
    if isinstance(value, dict) and value.get("kind") == "array":
        return make_array(value, built)
    if isinstance(value, dict) and value.get("kind") == "tuple":
        return tuple(_build_value(v, built) for v in value["items"])
    if isinstance(value, dict) and value.get("kind") == "list":
        return [_build_value(v, built) for v in value["items"]]
    if isinstance(value, dict) and value.get("kind") == "scalar-array":
        return np.dtype(value["dtype"]).type(value["value"])
    if isinstance(value, dict) and value.get("kind") == "object":
        return object()
    return value


# ---- comparing -----------------------------------------------------------------------------------

def _digest(a):
    if not isinstance(a, np.ndarray):
        return None
    h = hashlib.sha1(np.ascontiguousarray(a).view(np.uint8).reshape(-1).tobytes() if a.dtype.kind != "O"
                     else repr(a.tolist()).encode())
    return (a.shape, str(a.dtype), h.hexdigest())


def _digests(values: dict):
    return {k: _digest(v) for k, v in values.items()}


def _to_ref(value, spec=None, dtype=np.float64):
    """The value the reference gets: numeric arrays as float64 copies of what the kernels saw
    (float32), or float32 copies when the call holds special values (inf, NaN, 3e38: then float32
    overflow is part of the answer, e.g. g*g in Adam); class labels (specs with "values") as they are."""
    if isinstance(value, np.ndarray):
        labels = isinstance(spec, dict) and spec.get("values") and spec["values"][0] == "range"
        if value.dtype.kind in "fiu" and not labels:
            return value.astype(np.float32).astype(dtype)
        return value.copy()
    if isinstance(value, tuple):
        return tuple(_to_ref(v) for v in value)
    if isinstance(value, list):
        return [_to_ref(v) for v in value]
    return value


def _array_like(v):
    """What an op makes of an array-like argument (a scalar, a list): the reference wants arrays."""
    if v is None or isinstance(v, np.ndarray):
        return v
    try:
        a = np.asarray(v)
    except (TypeError, ValueError):
        return v
    return a if a.dtype.kind in "fiub" else v


def _flatten(result):
    if result is None or isinstance(result, np.ndarray):
        return [result]
    if isinstance(result, (tuple, list)):
        out = []
        for r in result:
            out.extend(_flatten(r))
        return out
    return [np.asarray(result)]


def compare(got, want, special: bool, float32_results: bool = True, unstable=None):
    """None if got matches want, else a description of the difference. Op results must be float32
    (float32_results); a layer such as Flatten passes its input's dtype through."""
    g, r = _flatten(got), _flatten(want)
    if len(g) != len(r):
        return f"{len(g)} results, reference has {len(r)}"
    for i, (a, e) in enumerate(zip(g, r)):
        if a is None or e is None:
            if (a is None) != (e is None):
                return f"result {i}: {type(a).__name__} vs reference {type(e).__name__}"
            continue
        a, e = np.asarray(a), np.asarray(e)
        if a.shape != e.shape:
            return f"result {i}: shape {a.shape}, reference {e.shape}"
        if float32_results and a.dtype != np.float32 and a.dtype.kind == "f":
            return f"result {i}: dtype {a.dtype}, expected float32"
        if unstable is not None and i < len(unstable) and unstable[i] is not None and unstable[i].any():
            skip = unstable[i]  # entries without one right float32 answer (run_op): left out
            a, e = np.where(skip, 0, a).astype(a.dtype), np.where(skip, 0, e).astype(e.dtype)
        a64 = a.astype(np.float64)
        # The reference rounded to the result's float32 (a value past 3.4e38 is inf there too), and
        # within a factor 2 of that an intermediate may overflow: a value past 2**127 counts as
        # the infinity of its sign.
        with np.errstate(over="ignore", invalid="ignore"):
            e64 = e.astype(a.dtype).astype(np.float64) if a.dtype == np.float32 else e.astype(np.float64)
            if a.dtype == np.float32:
                e64 = np.where(np.abs(e64) > 2.0**127, np.copysign(np.inf, e64), e64)
                a64 = np.where(np.abs(a64) > 2.0**127, np.copysign(np.inf, a64), a64)
        fin_e, fin_a = np.isfinite(e64), np.isfinite(a64)
        if special:
            both = fin_e & fin_a
        else:
            if not np.array_equal(fin_e, fin_a):
                idx = np.argwhere(fin_e != fin_a)[0]
                return f"result {i}: finite pattern differs at {tuple(idx)}: {a64[tuple(idx)]} vs {e64[tuple(idx)]}"
            nan_e, nan_a = np.isnan(e64), np.isnan(a64)
            if not np.array_equal(nan_e, nan_a):
                return f"result {i}: NaN pattern differs"
            both = fin_e
        if not both.any():
            continue
        scale = max(1.0, float(np.max(np.abs(e64[both]))))
        err = float(np.max(np.abs(a64[both] - e64[both])))
        if err > 2e-3 * scale:
            return f"result {i}: max abs error {err:.3g} (scale {scale:.3g})"
    return None


# ---- calling -------------------------------------------------------------------------------------

def _names_argument(message: str, names) -> bool:
    for name in names:
        for word in _ALSO_NAMES.get(name, (name,)):
            if re.search(rf"(?<![A-Za-z0-9_]){re.escape(word)}(?![A-Za-z0-9])", message):
                return True
    return False


def _classify(exc, names):
    fl = _fl()
    if isinstance(exc, MemoryError):
        return "error", f"MemoryError: {exc}"
    if type(exc) in (TypeError, ValueError) or isinstance(exc, fl.nn.BackwardBeforeForward):
        msg = str(exc)
        if not _names_argument(msg, names):
            return "bad-error", f"{type(exc).__name__} naming no argument of {sorted(names)}: {msg}"
        return "error", f"{type(exc).__name__}: {msg}"
    return "bad-error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"


def _reference_failed(exc):
    """fastlayers returned a result where the reference raised. A TypeError/ValueError there is a
    disagreement about what is valid: a failure ("ref-error"). Any other exception is the
    reference's own limit (e.g. a division by zero on empty input): counted, not failed."""
    what = f"fastlayers returned a result, the reference raised {type(exc).__name__}: {exc}"
    tb = traceback.extract_tb(exc.__traceback__)
    inside_numpy = bool(tb) and f"{os.sep}numpy{os.sep}" in tb[-1].filename  # e.g. max() of an empty axis
    if type(exc) in (TypeError, ValueError) and not inside_numpy:
        return "ref-error", what
    return "ref-limit", what


def run_op(spec):
    fl = _fl()
    from fastlayers import reference

    name, args, inplace = spec["op"], spec["args"], set(spec.get("inplace", ()))
    values = build(args)
    special = any(isinstance(v, dict) and v.get("special") for v in args.values())
    ref_values = _reference_inputs(spec, values, np.float32 if special else np.float64)
    before = _digests(values)
    pos = [values[k] for k in spec["positional"]]
    kw = {k: values[k] for k in values if k not in spec["positional"]}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = getattr(fl, name)(*pos, **kw)
    except Exception as exc:  # noqa: BLE001 - classified below
        # A message may name any parameter of the op, passed or not ("size or scale_factor must be
        # given" is about arguments that were left out).
        params = list(inspect.signature(getattr(fl, name)).parameters)
        verdict, detail = _classify(exc, list(args) + params + spec.get("names", []))
        after = _digests(values)
        changed = [k for k in values if before[k] != after[k]]
        if changed:
            return "mutated", f"raised {detail!r} but modified {changed}"
        return verdict, detail
    after = _digests(values)
    changed = [k for k in values if before[k] != after[k] and k not in inplace]
    if changed:
        return "mutated", f"inputs modified: {changed}"
    if name not in getattr(reference, "__all__", dir(reference)) and not hasattr(reference, name):
        return "result", "no reference"
    try:
        want = _reference_result(reference, name, spec, ref_values, inplace)
        # With special values the reference runs in float32 (overflow is part of the answer), but a
        # sum such as 3e38 + 0.67 - 3e38 has no one right float32 answer: it depends on the order of
        # the terms (the float32 error bound is n * 2**-24 * sum |terms|). Such entries are left
        # out: where the terms' magnitudes (the reference on |inputs|, float64) exceed 1e6 times the
        # result, or float32's range.
        unstable = _unstable(reference, name, spec, values, inplace) if special else None
    except Exception as exc:  # noqa: BLE001
        return _reference_failed(exc)
    if inplace:  # compare the updated arrays
        got = tuple(values[k] for k in spec["inplace_order"])
    diff = compare(got, want, special, float32_results=not inplace, unstable=unstable)
    return ("mismatch", diff) if diff else ("result", "ok")


def _reference_inputs(spec, values, dtype):
    """The reference's copy of each argument (_to_ref); an array passed twice stays one array."""
    ref_values, copies = {}, {}
    for k, v in values.items():
        ref = copies.get(id(v)) if isinstance(v, np.ndarray) else None
        if ref is None:
            ref = _to_ref(_array_like(v) if k in spec.get("arrays", ()) else v, spec["args"][k], dtype)
            if isinstance(v, np.ndarray):
                copies[id(v)] = ref
        ref_values[k] = ref
    return ref_values


def _reference_result(reference, name, spec, ref_values, inplace):
    rpos = [ref_values[k] for k in spec["positional"]]
    rkw = {k: ref_values[k] for k in ref_values if k not in spec["positional"]}
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = getattr(reference, name)(*rpos, **rkw)
    if inplace:  # the updated arrays
        return tuple(ref_values[k] for k in spec["inplace_order"])
    return want


def _unstable(reference, name, spec, values, inplace):
    """Per result, a mask of the ill-conditioned entries (see run_op), or None where the reference
    cannot be evaluated on |inputs|."""
    want64 = _reference_result(reference, name, spec, _reference_inputs(spec, values, np.float64), inplace)
    magnitudes = _reference_inputs(spec, values, np.float64)
    for k, v in magnitudes.items():
        labels = isinstance(spec["args"].get(k), dict) and spec["args"][k].get("values")
        if isinstance(v, np.ndarray) and v.dtype.kind == "f" and not labels:
            magnitudes[k] = np.abs(v)
    try:
        cond = _reference_result(reference, name, spec, magnitudes, inplace)
    except Exception:  # noqa: BLE001 - e.g. an argument that must keep its sign
        return None
    masks = []
    for w, c in zip(_flatten(want64), _flatten(cond)):
        if w is None or c is None or np.shape(w) != np.shape(c):
            masks.append(None)
            continue
        w, c = np.abs(np.asarray(w, np.float64)), np.abs(np.asarray(c, np.float64))
        with np.errstate(invalid="ignore", over="ignore"):
            masks.append(np.isfinite(c) & ((c > 1e6 * np.maximum(1.0, np.nan_to_num(w))) | (c > 3.4e38)))
    return masks


def run_layer(spec):
    fl = _fl()
    from fastlayers import reference
    from fastlayers.nn import use_ops

    names = list(spec["ctor"]) + ["x", "grad_out", "input"]
    ctor = build(spec["ctor"])
    values = build({"x": spec["x"]})
    x = values["x"]
    before = _digests(values)
    cls = getattr(fl.nn, spec["layer"])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            layer = cls(**ctor)
            twin = copy.deepcopy(layer)
            y = layer.forward(x, training=spec["training"])
            g = None
            gx = None
            if spec["backward"]:
                gspec = dict(spec["grad"])
                if gspec.get("shape") == "like-output":
                    gspec["shape"] = list(np.shape(y))
                g = make_array(gspec, {})
                gx = layer.backward(g)
    except Exception as exc:  # noqa: BLE001
        verdict, detail = _classify(exc, names)
        if _digests(values) != before:
            return "mutated", f"raised {detail!r} but modified x"
        return verdict, detail
    if _digests(values) != before:
        return "mutated", "x modified"
    special = bool(spec["x"].get("special"))
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings(), use_ops(reference):
            warnings.simplefilter("ignore")
            f32 = lambda a: a.astype(np.float32) if isinstance(a, np.ndarray) and a.dtype.kind in "fiu" else a  # noqa
            yr = twin.forward(f32(x), training=spec["training"])
            gxr = twin.backward(f32(g)) if spec["backward"] else None
    except Exception as exc:  # noqa: BLE001
        return _reference_failed(exc)
    diff = compare((y, gx), (yr, gxr), special, float32_results=False)
    if diff is None and spec["backward"]:
        for (pname, p), (_, pr) in zip(layer.named_parameters(), twin.named_parameters()):
            diff = compare(p.grad, pr.grad, special)
            if diff:
                diff = f"grad of {pname}: {diff}"
                break
    return ("mismatch", diff) if diff else ("result", "ok")


def serve(conn):
    """Worker main loop: one spec in, one (verdict, detail) out, until told to stop."""
    try:
        import resource

        if os.environ.get("FASTLAYERS_FUZZ_NO_RLIMIT") != "1":  # ASan reserves terabytes of address space
            limit = int(os.environ.get("FASTLAYERS_FUZZ_MEMORY_GB", "4")) << 30
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):
        pass
    _fl()
    conn.send(("ready", os.getpid()))
    while True:
        try:
            spec = conn.recv()
        except EOFError:
            return
        if spec is None:
            return
        try:
            out = run_layer(spec) if "layer" in spec else run_op(spec)
        except Exception as exc:  # noqa: BLE001 - a bug in the harness, reported as such
            out = ("harness-error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}")
        conn.send(out)
