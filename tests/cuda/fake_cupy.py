"""A stand-in for CuPy that records every host synchronisation, for tests without a GPU.

`FakeArray` holds a NumPy array as its "device memory" and behaves like a cupy.ndarray where the
library code uses one (shape and dtype metadata, arithmetic, reductions returning 0-d arrays,
indexing, `.data.ptr`, `.device`), but each way of reading device values on the host — float(),
int(), bool(), operator.index(), .item(), .tolist(), .get(), cupy.asnumpy(), np.asarray() of it
(`__array__`, which real CuPy refuses), printing — is recorded in `log` with its call stack before
it answers. Kernels of the CUDA module are replaced by `FakeCuda`, which records the call and
computes nothing (the outputs keep whatever their memory held): what is checked is the host code
between the kernels, not their results.
"""

from __future__ import annotations

import sys
import traceback
import types

import numpy as np

log: list[dict] = []  # {"what": ..., "stack": [(file, line, function), ...]}


def _record(what: str):
    stack = [(f.filename, f.lineno, f.name) for f in traceback.extract_stack()[:-2]]
    log.append({"what": what, "stack": stack})


def _unwrap(v):
    if isinstance(v, FakeArray):
        return v._a
    if isinstance(v, (list, tuple)):
        return type(v)(_unwrap(e) for e in v)
    return v


def _wrap(v):
    if isinstance(v, np.ndarray):
        return FakeArray(v)
    if isinstance(v, (np.generic,)):  # CuPy reductions give 0-d device arrays, not host scalars
        return FakeArray(np.asarray(v))
    if isinstance(v, tuple):
        return tuple(_wrap(e) for e in v)
    return v


class _Device:
    def __init__(self, id=0):
        self.id = id
        self.attributes = {"MultiProcessorCount": 132}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def synchronize(self):
        _record("Device.synchronize()")


class FakeArray:
    __module__ = "cupy._fake"  # fastlayers._backend.is_cupy_array looks at the type's module

    def __init__(self, a):
        self._a = np.asarray(a)

    # --- metadata: host-side in CuPy too, no synchronisation ------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    device = property(lambda self: _Device(0))
    data = property(lambda self: types.SimpleNamespace(ptr=self._a.ctypes.data))
    T = property(lambda self: FakeArray(self._a.T))

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self._a.ctypes.data, False), "version": 3}

    def __len__(self):
        return len(self._a)

    # --- host reads: recorded -------------------------------------------------------------------
    def __float__(self):
        _record("float()")
        return float(self._a)

    def __int__(self):
        _record("int()")
        return int(self._a)

    def __bool__(self):
        _record("bool()")
        return bool(self._a)

    def __index__(self):
        _record("operator.index()")
        return int(self._a)

    def __array__(self, dtype=None, copy=None):
        _record("np.asarray() (implicit device-to-host copy)")
        return self._a if dtype is None else self._a.astype(dtype)

    def __repr__(self):
        _record("repr()")
        return f"FakeArray({self._a!r})"

    __str__ = __repr__

    def __format__(self, spec):
        _record("format()")
        return format(self._a.item() if self._a.ndim == 0 else self._a, spec)

    def item(self):
        _record(".item()")
        return self._a.item()

    def tolist(self):
        _record(".tolist()")
        return self._a.tolist()

    def get(self, stream=None):
        _record(".get()")
        return self._a.copy()

    # --- device work: no synchronisation --------------------------------------------------------
    def __getitem__(self, key):
        return FakeArray(self._a[_unwrap(key)])

    def __setitem__(self, key, value):
        self._a[_unwrap(key)] = _unwrap(value)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        out = kwargs.get("out")
        if out is not None:
            kwargs["out"] = _unwrap(out)
        return _wrap(getattr(ufunc, method)(*_unwrap(inputs), **kwargs))

    def __array_function__(self, func, types_, args, kwargs):
        return _wrap(func(*_unwrap(args), **_unwrap(kwargs)))

    def __getattr__(self, name):  # reshape, astype, sum, argmax, copy, fill, ravel, ...
        if name.startswith("__"):  # never numpy's __array_interface__ / __array_struct__ (host views)
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if not callable(attr):
            return attr
        return lambda *a, **k: _wrap(attr(*_unwrap(a), **{kk: _unwrap(v) for kk, v in k.items()}))


def _binary(op):
    def f(self, other):
        return _wrap(op(self._a, _unwrap(other)))

    def r(self, other):
        return _wrap(op(_unwrap(other), self._a))

    return f, r


for _name, _op in [("add", np.add), ("sub", np.subtract), ("mul", np.multiply), ("truediv", np.true_divide),
                   ("floordiv", np.floor_divide), ("pow", np.power), ("mod", np.mod), ("matmul", np.matmul),
                   ("and", np.logical_and), ("or", np.logical_or)]:
    _f, _r = _binary(_op)
    setattr(FakeArray, f"__{_name}__", _f)
    setattr(FakeArray, f"__r{_name}__", _r)
for _name, _op in [("lt", np.less), ("le", np.less_equal), ("gt", np.greater), ("ge", np.greater_equal),
                   ("eq", np.equal), ("ne", np.not_equal)]:
    setattr(FakeArray, f"__{_name}__", _binary(_op)[0])
FakeArray.__neg__ = lambda self: FakeArray(-self._a)
FakeArray.__abs__ = lambda self: FakeArray(np.abs(self._a))
FakeArray.__invert__ = lambda self: FakeArray(~self._a)
for _name in ("iadd", "isub", "imul", "itruediv"):
    def _inplace(self, other, _op=getattr(np.ndarray, f"__{_name}__")):
        _op(self._a, _unwrap(other))
        return self
    setattr(FakeArray, f"__{_name}__", _inplace)


def _module() -> types.ModuleType:
    """The fake `cupy` module."""
    m = types.ModuleType("cupy")
    m.ndarray = FakeArray

    def asarray(a, dtype=None, order=None):
        if isinstance(a, FakeArray):
            return a if dtype is None or a.dtype == dtype else FakeArray(a._a.astype(dtype))
        return FakeArray(np.array(a, dtype=dtype, copy=True))  # host-to-device: allowed

    def ascontiguousarray(a, dtype=None):
        if isinstance(a, FakeArray):
            return FakeArray(np.ascontiguousarray(a._a, dtype=dtype))
        return asarray(np.ascontiguousarray(a, dtype=dtype))

    def asnumpy(a, stream=None):
        if isinstance(a, FakeArray):
            _record("cupy.asnumpy()")
            return a._a.copy()
        return np.asarray(a)

    m.asarray, m.array, m.ascontiguousarray, m.asnumpy = asarray, asarray, ascontiguousarray, asnumpy
    for name in ("empty", "zeros", "ones", "full", "arange", "eye"):
        setattr(m, name, (lambda fn: lambda *a, **k: FakeArray(fn(*a, **k)))(getattr(np, name)))
    for name in ("float16", "float32", "float64", "int32", "int64", "uint8", "bool_", "nan", "inf", "newaxis"):
        setattr(m, name, getattr(np, name))

    def _generic(name):
        fn = getattr(np, name)
        return lambda *a, **k: _wrap(fn(*_unwrap(a), **{kk: _unwrap(v) for kk, v in k.items()}))

    for name in ("sum", "argmax", "argmin", "max", "min", "mean", "abs", "exp", "log", "sqrt", "where", "stack",
                 "concatenate", "maximum", "minimum", "sign", "tanh", "clip", "all", "any", "isfinite", "isnan",
                 "reshape", "transpose", "empty_like", "zeros_like", "ones_like", "full_like", "matmul", "dot",
                 "take", "logical_and", "logical_or", "equal", "square", "multiply", "add", "subtract"):
        setattr(m, name, _generic(name))
    # Host-side in CuPy (they compare pointers and extents): plain Python bools.
    m.may_share_memory = lambda a, b, max_work=None: bool(np.may_share_memory(_unwrap(a), _unwrap(b)))
    m.shares_memory = lambda a, b, max_work=None: bool(np.shares_memory(_unwrap(a), _unwrap(b)))
    m.__getattr__ = lambda name: _generic(name) if hasattr(np, name) else (_ for _ in ()).throw(AttributeError(name))
    stream = types.SimpleNamespace(ptr=0, synchronize=lambda: _record("stream.synchronize()"))
    runtime = types.SimpleNamespace(getDevice=lambda: 0, getDeviceCount=lambda: 1,
                                    memGetInfo=lambda: (8 << 30, 16 << 30))
    m.cuda = types.SimpleNamespace(get_current_stream=lambda: stream, runtime=runtime, Device=_Device,
                                   Stream=lambda *a, **k: stream)
    m.random = types.SimpleNamespace()
    return m


class FakeCuda:
    """The CUDA module's kernels: each call is recorded; workspace queries answer 0 floats, the
    device queries one device, constants are the CPU module's."""

    def __init__(self, real_names):
        self.calls: list[str] = []
        self._names = set(real_names)

    def device_count(self):
        return 1

    def device_name(self, device):
        return "fake GPU"

    def runtime_version(self):
        return 13000

    def __getattr__(self, name):
        if name not in self._names:
            raise AttributeError(name)
        if name.endswith("_workspace_floats"):
            return lambda *a: 0
        from fastlayers import _cpu

        constant = getattr(_cpu, name, None)
        if constant is not None and not callable(constant):
            return constant  # module constants (loss_workspace_doubles, ...): the CPU module has the same

        def kernel(*args):
            assert all(not isinstance(a, (np.ndarray, FakeArray)) for a in args), \
                f"{name}: an array reached the CUDA module instead of a device pointer"
            self.calls.append(name)

        return kernel


def install(monkeypatch, real_cuda_names) -> FakeCuda:
    """Put the fake CuPy and CUDA module in place for this test; returns the CUDA fake."""
    from fastlayers import _backend

    fake = FakeCuda(real_cuda_names)
    monkeypatch.setitem(sys.modules, "cupy", _module())
    monkeypatch.setattr(_backend, "_cuda", fake)
    monkeypatch.setattr(_backend, "_cuda_backend", None)
    log.clear()
    return fake
