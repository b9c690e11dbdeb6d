"""fastlayers.torch: zero-copy exchange, autograd Functions (gradcheck in float64 through the
reference; float32 parity with torch's own ops), drop-in modules, convert, model conversion."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed: the torch bridge is not exercised")

import fastlayers as fl  # noqa: E402
import fastlayers.torch as flt  # noqa: E402
from fastlayers import nn  # noqa: E402
from fastlayers.torch import functional as FF  # noqa: E402
from tests.helpers import reduction_tol  # noqa: E402

TF = torch.nn.functional


def needs(*ops):
    missing = [o for o in ops if not hasattr(fl, o)]
    return pytest.mark.skipif(bool(missing), reason=f"this fastlayers build has no {', '.join(missing)} op yet")


def rand(*shape, dtype=torch.float64, seed=0, grad=True):
    g = torch.Generator().manual_seed(seed + sum(shape))
    return torch.randn(*shape, generator=g, dtype=dtype).requires_grad_(grad)


# --- zero copy ------------------------------------------------------------------------------------

def test_to_array_and_back_share_memory():
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    a = flt.to_array(t)
    assert isinstance(a, np.ndarray) and flt.shares_memory(t, a)
    a[0, 0] = 42.0  # one buffer: the tensor sees the write
    assert t[0, 0].item() == 42.0
    y = fl.relu(a)
    ty = flt.to_tensor(y)
    assert flt.shares_memory(ty, y)
    assert torch.equal(ty, torch.relu(t))


def test_to_array_copies_only_non_contiguous_input():
    t = torch.randn(4, 6).t()
    a = flt.to_array(t)
    assert a.flags.c_contiguous and not flt.shares_memory(t, a)
    np.testing.assert_array_equal(a, t.numpy())


def test_functional_forward_does_not_copy_input_or_output():
    x = torch.randn(2, 3, 8, 8)
    w = torch.randn(4, 3, 3, 3)
    seen = {}
    real = fl.conv2d

    def spy(xa, wa, *args, **kw):
        seen["x"], seen["w"] = xa, wa
        seen["y"] = real(xa, wa, *args, **kw)
        return seen["y"]

    fl.conv2d, orig = spy, fl.conv2d
    try:
        y = FF.conv2d(x, w, None, 1, 1)
    finally:
        fl.conv2d = orig
    assert flt.shares_memory(x, seen["x"]) and flt.shares_memory(w, seen["w"])
    assert flt.shares_memory(y, seen["y"])


def test_core_ops_accept_cpu_tensors_without_a_copy():
    t = torch.randn(5, 7)
    y = fl.relu(t)  # __array__ / __array_interface__ objects go in as NumPy views
    np.testing.assert_array_equal(y, np.maximum(t.numpy(), 0))


def test_wrong_dtypes_are_type_errors():
    with pytest.raises(TypeError, match="float16"):
        FF.relu(torch.randn(3, dtype=torch.float16))
    with pytest.raises(TypeError, match="float32.*float64|float64.*float32"):
        FF.linear(torch.randn(2, 3), torch.randn(4, 3, dtype=torch.float64))
    with pytest.raises(TypeError, match="input must be a torch.Tensor"):
        FF.relu(np.zeros(3))


def test_inplace_change_after_forward_is_caught():
    x = torch.randn(4, 5, requires_grad=True)
    y = FF.sigmoid(x)
    y.add_(1)  # sigmoid's backward reads y
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


# --- gradcheck in float64 (the reference path) ------------------------------------------------------

GRADCHECK = [
    ("conv2d", lambda: (rand(1, 3, 6, 5), rand(2, 3, 3, 2), rand(2)), dict(stride=(2, 1), padding=1)),
    ("conv2d", lambda: (rand(1, 4, 5, 5), rand(4, 2, 3, 3), None), dict(padding=2, dilation=2, groups=2)),
    ("conv1d", lambda: (rand(2, 3, 9), rand(2, 3, 3), rand(2)), dict(stride=2, padding=1)),
    ("linear", lambda: (rand(3, 5), rand(4, 5), rand(4)), {}),
    ("linear", lambda: (rand(2, 3, 5), rand(4, 5), None), {}),
    ("max_pool2d", lambda: (rand(2, 2, 6, 7),), dict(kernel_size=3, stride=2, padding=1)),
    ("avg_pool2d", lambda: (rand(2, 2, 6, 7),), dict(kernel_size=2, padding=1, count_include_pad=False)),
    ("relu", lambda: (rand(3, 7),), {}),
    ("leaky_relu", lambda: (rand(3, 7),), dict(negative_slope=0.2)),
    ("sigmoid", lambda: (rand(3, 7),), {}),
    ("tanh", lambda: (rand(3, 7),), {}),
    ("softmax", lambda: (rand(3, 4, 5),), dict(dim=1)),
    ("log_softmax", lambda: (rand(3, 7),), dict(dim=-1)),
]


@pytest.mark.parametrize("name,make,kw", GRADCHECK, ids=[f"{g[0]}-{i}" for i, g in enumerate(GRADCHECK)])
def test_gradcheck_float64(name, make, kw):
    args = make()
    fn = getattr(FF, name)
    torch.autograd.gradcheck(lambda *a: fn(*a, **kw), tuple(a for a in args if a is not None) if name in
                             ("relu", "leaky_relu", "sigmoid", "tanh", "softmax", "log_softmax", "max_pool2d",
                              "avg_pool2d") else args, eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("name", ["mse_loss", "cross_entropy", "binary_cross_entropy_with_logits"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_gradcheck_losses_float64(name, reduction):
    x = rand(4, 5)
    if name == "cross_entropy":
        target = torch.tensor([0, 4, 2, 1])
    elif name == "mse_loss":
        target = rand(4, 5, seed=1, grad=False)
    else:
        target = torch.rand(4, 5, dtype=torch.float64)
    torch.autograd.gradcheck(lambda a: getattr(FF, name)(a, target, reduction=reduction), (x,), eps=1e-6, atol=1e-5)


@needs("batch_norm", "batch_norm_backward")
@pytest.mark.skipif(not hasattr(fl.reference, "batch_norm"), reason="no reference batch_norm in this build")
@pytest.mark.parametrize("training", [True, False])
def test_gradcheck_batch_norm_float64(training):
    x, w, b = rand(4, 3, 2, 2), rand(3), rand(3)
    rm, rv = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    torch.autograd.gradcheck(lambda x, w, b: FF.batch_norm(x, rm.clone(), rv.clone(), w, b, training, 0.1, 1e-5),
                             (x, w, b), eps=1e-6, atol=1e-5)


# --- float32 parity with torch's own ops --------------------------------------------------------------

def _parity(ours, theirs, inputs, tol):
    a = [t.detach().clone().requires_grad_(t.requires_grad) if isinstance(t, torch.Tensor) else t for t in inputs]
    b = [t.detach().clone().requires_grad_(t.requires_grad) if isinstance(t, torch.Tensor) else t for t in inputs]
    ya, yb = ours(*a), theirs(*b)
    g = torch.randn_like(yb)
    (ya * g).sum().backward()
    (yb * g).sum().backward()
    scale = max(1.0, yb.abs().max().item())
    assert (ya - yb).abs().max().item() <= tol * scale
    for ta, tb in zip(a, b):
        if isinstance(ta, torch.Tensor) and ta.requires_grad:
            gs = max(1.0, tb.grad.abs().max().item())
            assert (ta.grad - tb.grad).abs().max().item() <= tol * gs


def r32(*shape, seed=0, grad=True):
    return rand(*shape, dtype=torch.float32, seed=seed, grad=grad)


PARITY = [
    ("conv2d", (r32(2, 3, 9, 8), r32(5, 3, 3, 3), r32(5)), dict(stride=2, padding=1), 27),
    ("conv1d", (r32(2, 3, 11), r32(4, 3, 5), r32(4)), dict(padding=2), 15),
    ("linear", (r32(6, 20), r32(7, 20), r32(7)), {}, 20),
    ("max_pool2d", (r32(2, 3, 7, 7),), dict(kernel_size=3, stride=2, padding=1), 1),
    ("avg_pool2d", (r32(2, 3, 7, 7),), dict(kernel_size=2, stride=2), 4),
    ("relu", (r32(4, 9),), {}, 1),
    ("sigmoid", (r32(4, 9),), {}, 1),
    ("tanh", (r32(4, 9),), {}, 1),
    ("softmax", (r32(4, 9),), dict(dim=1), 9),
    ("log_softmax", (r32(4, 9),), dict(dim=1), 9),
]


@pytest.mark.parametrize("name,inputs,kw,k", PARITY, ids=[p[0] for p in PARITY])
def test_float32_parity_with_torch(name, inputs, kw, k):
    _parity(lambda *a: getattr(FF, name)(*a, **kw), lambda *a: getattr(TF, name)(*a, **kw), inputs,
            reduction_tol(k * 16))


@pytest.mark.parametrize("name", ["mse_loss", "cross_entropy", "binary_cross_entropy_with_logits"])
def test_float32_loss_parity(name):
    x = r32(8, 6)
    t = {"mse_loss": r32(8, 6, seed=3, grad=False), "cross_entropy": torch.arange(8) % 6,
         "binary_cross_entropy_with_logits": torch.rand(8, 6)}[name]
    xa, xb = x.detach().clone().requires_grad_(), x.detach().clone().requires_grad_()
    la, lb = getattr(FF, name)(xa, t), getattr(TF, name)(xb, t)
    la.backward()
    lb.backward()
    assert abs(la.item() - lb.item()) <= reduction_tol(48) * max(1, abs(lb.item()))
    assert (xa.grad - xb.grad).abs().max().item() <= reduction_tol(48)


def test_target_with_grad_is_refused():
    with pytest.raises(ValueError, match="target"):
        FF.mse_loss(r32(3, 3), r32(3, 3))


# --- drop-in modules and convert -----------------------------------------------------------------------

def _course_cnn():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 5), torch.nn.MaxPool2d(2), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 5), torch.nn.MaxPool2d(2), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(256, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


def test_dropin_module_has_torch_names_and_matches():
    torch.manual_seed(0)
    ref = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1)
    ours = flt.Conv2d(3, 4, 3, stride=2, padding=1)
    ours.load_state_dict(ref.state_dict())
    assert list(ours.state_dict()) == ["weight", "bias"] and isinstance(ours, torch.nn.Conv2d)
    x = torch.randn(2, 3, 9, 9)
    assert torch.allclose(ours(x), ref(x), atol=1e-5)


def test_convert_swaps_in_place_and_training_matches_torch():
    base = _course_cnn()
    ref, model = _course_cnn(), _course_cnn()
    model.load_state_dict(base.state_dict())
    ref.load_state_dict(base.state_dict())
    params_before = list(model.parameters())
    flt.convert(model)
    assert type(model[0]) is flt.Conv2d and type(model[1]) is flt.MaxPool2d and type(model[7]) is flt.Linear
    assert type(model[6]) is torch.nn.Flatten  # torch's own: nothing to swap
    assert all(a is b for a, b in zip(params_before, model.parameters()))
    x, y = torch.randn(16, 1, 28, 28), torch.arange(16) % 10
    opt_a = torch.optim.SGD(model.parameters(), lr=0.05)
    opt_b = torch.optim.SGD(ref.parameters(), lr=0.05)
    for _ in range(3):
        for m, opt, loss_fn in ((model, opt_a, flt.CrossEntropyLoss()), (ref, opt_b, torch.nn.CrossEntropyLoss())):
            opt.zero_grad()
            loss_fn(m(x), y).backward()
            opt.step()
    for pa, pb in zip(model.parameters(), ref.parameters()):
        assert torch.allclose(pa, pb, atol=2e-4), (pa - pb).abs().max()


def test_convert_keeps_unsupported_options_native_and_says_why():
    model = torch.nn.Sequential(torch.nn.GELU(), torch.nn.Linear(3, 3), torch.nn.Upsample(scale_factor=2, mode="bicubic"))
    with pytest.warns(UserWarning, match=r"2: Upsample\(mode='bicubic'\)"):
        flt.convert(model)
    assert type(model[1]) is flt.Linear and type(model[0]) is torch.nn.GELU and type(model[2]) is torch.nn.Upsample
    assert "no fastlayers version" in flt.why_not(torch.nn.GELU())


@needs("batch_norm")
def test_batchnorm_module_updates_running_stats_like_torch():
    torch.manual_seed(1)
    ref, ours = torch.nn.BatchNorm2d(3), flt.BatchNorm2d(3)
    x = torch.randn(4, 3, 5, 5) * 2 + 1
    ya, yb = ours(x), ref(x)
    assert torch.allclose(ya, yb, atol=1e-5)
    assert torch.allclose(ours.running_mean, ref.running_mean, atol=1e-6)
    assert torch.allclose(ours.running_var, ref.running_var, atol=1e-5)
    assert int(ours.num_batches_tracked) == 1
    ours.eval(), ref.eval()
    assert torch.allclose(ours(x), ref(x), atol=1e-5)


# --- whole models ------------------------------------------------------------------------------------

def test_sequential_to_fastlayers_and_back():
    tm = _course_cnn().eval()
    fm = flt.to_fastlayers(tm, input_shape=(1, 28, 28))
    assert [k for k, _ in fm.named_parameters()] == [k for k in tm.state_dict()]
    x = torch.randn(3, 1, 28, 28)
    np.testing.assert_allclose(fm.predict(x.numpy()), tm(x).detach().numpy(), atol=1e-4)
    back = flt.to_torch(fm)
    assert list(back.state_dict()) == list(tm.state_dict())
    assert torch.allclose(back(x), tm(x), atol=1e-5)


def test_fastlayers_models_to_torch():
    model = nn.models.small_resnet(seed=0, width=4)
    tm = flt.to_torch(model).eval()
    assert [k for k, _ in model.named_parameters()] == list(tm.state_dict())
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    np.testing.assert_allclose(tm(torch.from_numpy(x)).detach().numpy(), model.predict(x), atol=1e-4)


def test_graph_model_roundtrip_through_fx():
    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = torch.nn.Conv2d(4, 4, 3, padding=1)
            self.conv2 = torch.nn.Conv2d(4, 4, 3, padding=1)
            self.head = torch.nn.Linear(4, 3)

        def forward(self, x):
            y = torch.relu(self.conv1(x))
            y = self.conv2(y) + x
            return self.head(y.mean((2, 3)))

    class Simple(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = torch.nn.Conv2d(4, 4, 3, padding=1)
            self.conv2 = torch.nn.Conv2d(4, 4, 3, padding=1)
            self.pool = torch.nn.AvgPool2d(6)
            self.head = torch.nn.Linear(4, 3)

        def forward(self, x):
            y = torch.relu(self.conv1(x))
            y = self.conv2(y) + x
            return self.head(torch.flatten(self.pool(y), 1))

    with pytest.raises(ValueError, match="mean"):
        flt.to_fastlayers(Block(), input_shape=(4, 6, 6))
    tm = Simple().eval()
    fm = flt.to_fastlayers(tm, input_shape=(4, 6, 6))
    assert isinstance(fm, nn.Model)
    assert sorted(k for k, _ in fm.named_parameters()) == sorted(tm.state_dict())
    x = torch.randn(2, 4, 6, 6)
    np.testing.assert_allclose(fm.predict(x.numpy()), tm(x).detach().numpy(), atol=1e-5)
    back = flt.to_torch(fm)
    assert sorted(back.state_dict()) == sorted(tm.state_dict())
    assert torch.allclose(back(x), tm(x), atol=1e-5)


def test_unsupported_modules_and_keys_are_clear_errors():
    with pytest.raises(ValueError, match=r"0 \(GELU\).*no fastlayers layer"):
        flt.to_fastlayers(torch.nn.Sequential(torch.nn.GELU()))
    with pytest.raises(ValueError, match=r"1 \(Flatten\).*start_dim"):
        flt.to_fastlayers(torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Flatten(2)))
    fm = flt.to_fastlayers(torch.nn.Sequential(torch.nn.Linear(3, 2)))
    with pytest.raises(ValueError, match="missing.*0.bias"):
        flt.copy_weights(fm, {"0.weight": torch.zeros(2, 3)})
    with pytest.raises(ValueError, match="shape"):
        flt.copy_weights(fm, {"0.weight": torch.zeros(3, 3), "0.bias": torch.zeros(2)})


# --- ops of the losses branch: broadcasting add/mul, matmul, the torch loss options -------------------

@needs("mul", "matmul")
@pytest.mark.parametrize("name,a,b", [("add", (2, 3, 4), (3, 1)), ("mul", (2, 3, 4), (4,)), ("mul", (3, 4), (3, 4)),
                                      ("matmul", (2, 3, 4), (4, 5)), ("matmul", (4,), (2, 4, 3))])
def test_gradcheck_broadcasting_binary_ops(name, a, b):
    torch.autograd.gradcheck(getattr(FF, name), (rand(*a), rand(*b, seed=1)), eps=1e-6, atol=1e-5)
    x, y = r32(*a), r32(*b, seed=1)
    _parity(getattr(FF, name), getattr(torch, name), (x, y), reduction_tol(64))


@needs("l1_loss", "nll_loss", "huber_loss")
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name,kw", [
    ("smooth_l1_loss", dict(beta=0.5)), ("huber_loss", dict(delta=0.7)), ("l1_loss", {}), ("soft_margin_loss", {}),
    ("nll_loss", dict(ignore_index=2)), ("cross_entropy", dict(label_smoothing=0.1)),
    ("cross_entropy", dict(weight=torch.tensor([1.0, 2.0, 0.5, 1.0, 3.0], dtype=torch.float64))),
    ("binary_cross_entropy_with_logits", dict(pos_weight=torch.tensor([2.0] * 5, dtype=torch.float64)))],
    ids=lambda v: v if isinstance(v, str) else "-".join(v) if isinstance(v, dict) else str(v))
def test_loss_options_gradcheck_and_parity(name, kw, reduction):
    x = rand(6, 5)
    target = {"nll_loss": torch.tensor([0, 2, 4, 1, 2, 3]), "cross_entropy": torch.tensor([0, 2, 4, 1, 2, 3]),
              "soft_margin_loss": torch.tensor([1.0, -1.0] * 15, dtype=torch.float64).reshape(6, 5),
              "binary_cross_entropy_with_logits": torch.rand(6, 5, dtype=torch.float64)}.get(name)
    if target is None:
        target = rand(6, 5, seed=4, grad=False)
    torch.autograd.gradcheck(lambda a: getattr(FF, name)(a, target, reduction=reduction, **kw), (x,), eps=1e-6,
                             atol=1e-5)
    kw32 = {k: v.float() if isinstance(v, torch.Tensor) else v for k, v in kw.items()}
    t32 = target.float() if target.is_floating_point() else target
    _parity(lambda a: getattr(FF, name)(a, t32, reduction=reduction, **kw32),
            lambda a: getattr(TF, name)(a, t32, reduction=reduction, **kw32), (x.float().detach().requires_grad_(),),
            reduction_tol(64))


# --- ops of the pool branch -------------------------------------------------------------------------

POOLS = [
    ("max_pool2d", dict(kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True)),
    ("max_pool2d", dict(kernel_size=2, return_indices=True)),
    ("avg_pool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, divisor_override=4)),
    ("lp_pool2d", dict(norm_type=2.0, kernel_size=2)),
    ("adaptive_avg_pool2d", dict(output_size=(3, 2))),
    ("adaptive_max_pool2d", dict(output_size=3)),
    ("adaptive_max_pool2d", dict(output_size=(2, 3), return_indices=True)),
]


@needs("adaptive_avg_pool2d", "adaptive_max_pool2d")
@pytest.mark.parametrize("name,kw", POOLS, ids=[f"{p[0]}-{i}" for i, p in enumerate(POOLS)])
def test_pool_options_gradcheck_and_parity(name, kw):
    first = (lambda y: y[0]) if kw.get("return_indices") else (lambda y: y)
    torch.autograd.gradcheck(lambda a: first(getattr(FF, name)(a, **kw)), (rand(1, 2, 7, 8),), eps=1e-6, atol=1e-5)
    x = r32(2, 3, 7, 8)
    _parity(lambda a: first(getattr(FF, name)(a, **kw)), lambda a: first(getattr(TF, name)(a, **kw)), (x,),
            reduction_tol(16))
    if kw.get("return_indices"):
        assert torch.equal(getattr(FF, name)(x, **kw)[1], getattr(TF, name)(x, **kw)[1])


@needs("adaptive_avg_pool2d")
def test_pool_modules_convert_both_ways():
    tm = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.MaxPool2d(3, 2, 1, ceil_mode=True),
                             torch.nn.AvgPool2d(2, count_include_pad=False), torch.nn.AdaptiveAvgPool2d((2, 1)),
                             torch.nn.Flatten(), torch.nn.Linear(8, 3)).eval()
    fm = flt.to_fastlayers(tm, input_shape=(2, 12, 12))
    x = torch.randn(2, 2, 12, 12)
    np.testing.assert_allclose(fm.predict(x.numpy()), tm(x).detach().numpy(), atol=1e-5)
    back = flt.to_torch(fm)
    assert torch.allclose(back(x), tm(x), atol=1e-5)
    assert type(back[1]) is torch.nn.MaxPool2d and back[1].ceil_mode and back[2].count_include_pad is False


# --- ops of the convpad, conv3d and batchnorm branches (skipped until this build has them) -----------

def needs_ref(*ops):
    missing = [o for o in ops if not hasattr(fl, o) or not hasattr(fl.reference, o)]
    return pytest.mark.skipif(bool(missing), reason=f"this fastlayers build has no {', '.join(missing)} "
                                                    f"(op and reference) yet")


NEW_OPS = [
    ("conv_transpose2d", lambda d: (rand(2, 4, 5, 4, dtype=d), rand(4, 3, 3, 3, dtype=d), rand(3, dtype=d)),
     dict(stride=2, padding=1, output_padding=1)),
    ("conv3d", lambda d: (rand(1, 2, 5, 4, 5, dtype=d), rand(3, 2, 3, 2, 3, dtype=d), rand(3, dtype=d)),
     dict(stride=(1, 2, 1), padding=1)),
    ("pad", lambda d: (rand(2, 3, 4, 5, dtype=d),), dict(pad=[1, 2, 2, 0], mode="reflect")),
    ("pad", lambda d: (rand(2, 3, 4, 5, dtype=d),), dict(pad=[1, -1, 2, 1], mode="constant", value=0.5)),
    ("interpolate", lambda d: (rand(2, 3, 4, 5, dtype=d),), dict(scale_factor=2, mode="nearest")),
    ("interpolate", lambda d: (rand(2, 3, 4, 5, dtype=d),), dict(size=(7, 3), mode="bilinear", align_corners=False)),
    ("cat", lambda d: ([rand(2, 3, 4, dtype=d), rand(2, 1, 4, dtype=d, seed=5)],), dict(dim=1)),
]


@pytest.mark.parametrize("name,make,kw", NEW_OPS, ids=[f"{o[0]}-{i}" for i, o in enumerate(NEW_OPS)])
def test_new_ops_gradcheck_and_parity(name, make, kw):
    if not hasattr(fl, name) or not hasattr(fl.reference, name):
        pytest.skip(f"this fastlayers build has no {name} (op and reference) yet")
    args64 = make(torch.float64)
    fn, tfn = getattr(FF, name), (torch.cat if name == "cat" else getattr(TF, name))
    if name == "cat":
        torch.autograd.gradcheck(lambda *ts: fn(list(ts), **kw), tuple(args64[0]), eps=1e-6, atol=1e-5)
        a32 = [t.detach().float().requires_grad_() for t in args64[0]]
        _parity(lambda *ts: fn(list(ts), **kw), lambda *ts: tfn(list(ts), **kw), a32, reduction_tol(1))
        return
    torch.autograd.gradcheck(lambda *ts: fn(*ts, **kw), args64, eps=1e-6, atol=1e-5)
    a32 = [t.detach().float().requires_grad_() for t in args64]
    _parity(lambda *ts: fn(*ts, **kw), lambda *ts: tfn(*ts, **kw), a32, reduction_tol(64))


@pytest.mark.skipif(not all(hasattr(fl, o) for o in ("batch_norm", "conv_transpose2d", "interpolate", "pad")),
                    reason="this fastlayers build lacks batch_norm, conv_transpose2d, interpolate or pad")
def test_new_layers_convert_both_ways_and_train_like_torch():
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1, padding_mode="reflect"), torch.nn.BatchNorm2d(4),
                             torch.nn.ReLU(), torch.nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1),
                             torch.nn.Upsample(scale_factor=0.5, mode="bilinear"), torch.nn.Flatten(),
                             torch.nn.Linear(3 * 6 * 6, 5))
    x = torch.randn(4, 2, 6, 6)
    tm(x)  # running statistics move off their initial values
    tm.eval()
    fm = flt.to_fastlayers(tm, input_shape=(2, 6, 6))
    assert sorted(k for k, _ in fm.named_parameters()) == sorted(k for k, _ in tm.named_parameters())
    np.testing.assert_allclose(fm.predict(x.numpy()), tm(x).detach().numpy(), atol=1e-4)
    back = flt.to_torch(fm).eval()
    assert torch.allclose(back(x), tm(x), atol=1e-4)
    assert torch.equal(back[1].running_mean, tm[1].running_mean)
    ours = flt.convert(copy_module(tm).train())
    ref = copy_module(tm).train()
    assert type(ours[1]) is flt.BatchNorm2d and type(ours[3]) is flt.ConvTranspose2d
    for m in (ours, ref):
        m(x).square().mean().backward()
    for (ka, pa), (kb, pb) in zip(ours.named_parameters(), ref.named_parameters()):
        assert torch.allclose(pa.grad, pb.grad, atol=1e-4), ka
    assert torch.allclose(ours[1].running_var, ref[1].running_var, atol=1e-5)


def copy_module(m):
    import copy

    return copy.deepcopy(m)


def test_sequential_with_a_custom_block_is_traced():
    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(4, 4, 3, padding=1)
            self.act = torch.nn.ReLU()

        def forward(self, x):
            return self.act(self.conv(x) + x)

    tm = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 1), Block(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                             torch.nn.Linear(4, 3)).eval()
    with pytest.raises(ValueError, match=r"1 \(Block\).*input_shape"):
        flt.to_fastlayers(tm)
    fm = flt.to_fastlayers(tm, input_shape=(2, 5, 5))
    assert isinstance(fm, nn.Model) and sorted(k for k, _ in fm.named_parameters()) == sorted(tm.state_dict())
    x = torch.randn(3, 2, 5, 5)
    np.testing.assert_allclose(fm.predict(x.numpy()), tm(x).detach().numpy(), atol=1e-5)
