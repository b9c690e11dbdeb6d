"""The inference plan (nn/plan.py, csrc/cpu/plan/): same outputs as the layer-by-layer eval pass within
float32 tolerance, fusion where it applies and a correct plan where it does not, the cache and its
invalidation, and the fallbacks (unsupported layers, backward after a planned forward)."""

from __future__ import annotations

import numpy as np
import pytest

import fastlayers as fl
from fastlayers import _cpu, nn
from fastlayers.nn import plan as P

from ..helpers import num_threads


def _x(shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _layerwise(model, x):
    with P.disabled():
        return model(x)


def _close(a, b, scale=None):
    scale = float(np.abs(b).max()) if scale is None else scale
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * max(scale, 1.0))


@pytest.mark.parametrize("name", ["cnn", "lenet5", "resnet"])
@pytest.mark.parametrize("batch", [1, 3, 8])
def test_course_models_match_layer_by_layer(name, batch):
    model = nn.models.build(name, seed=0).eval()
    x = _x((batch, 1, 28, 28))
    plan = P.get(model, x.shape)
    assert plan is not None, P.explain(model, x.shape)
    y = model(x)
    assert model._planned
    _close(y, _layerwise(model, x))
    assert y.shape == plan.output_shape and y.dtype == np.float32


def test_fusions_are_the_expected_ones():
    cnn = P.get(nn.models.mnist_cnn(seed=0).eval(), (2, 1, 28, 28))
    assert cnn.steps == ["conv+maxpool2x2+relu", "conv+maxpool2x2+relu", "linear+relu", "linear"]
    lenet = P.get(nn.models.lenet5(seed=0).eval(), (2, 1, 28, 28))
    assert lenet.steps[:2] == ["conv+relu+avgpool2x2"] * 2
    res = P.get(nn.models.small_resnet(seed=0).eval(), (2, 1, 28, 28))
    assert sum(s == "conv+residual+relu" for s in res.steps) == 3  # every block's add + ReLU in its last conv


def test_where_fusion_does_not_apply():
    # A ReLU output read twice (the add fuses into the second conv as its residual, the ReLU stays in
    # the first), a 3x3 stride-1 max pool and a pool after a pool (separate steps), Dropout (the
    # identity), a ReLU after a pool (fused into the pool step), a 1x1 conv writing the model output.
    inp = nn.Input((3, 11, 9))
    a = nn.Conv2d(3, 8, 3, padding=1, rng=0)(inp)
    r = nn.ReLU()(a)
    b = nn.Conv2d(8, 8, 3, padding=1, rng=1)(r)
    s = nn.Add()([b, r])  # r is read by b and by the add: no conv+relu fusion
    p = nn.MaxPool2d(3, stride=1)(s)
    q = nn.AvgPool2d(2)(nn.Dropout(0.5)(p))
    out = nn.Conv2d(8, 4, 1, rng=2)(nn.ReLU()(q))
    model = nn.Model(inp, out).eval()
    x = _x((2, 3, 11, 9))
    plan = P.get(model, x.shape)
    assert plan is not None, P.explain(model, x.shape)
    assert plan.steps == ["conv+relu", "conv+residual", "pool", "pool+relu", "conv"]
    _close(model(x), _layerwise(model, x))


def test_standalone_steps():
    model = nn.Sequential([nn.ReLU(), nn.MaxPool2d(2), nn.ReLU(), nn.AvgPool2d(3, stride=2, padding=1),
                           nn.GlobalAvgPool2d(), nn.ReLU()]).eval()
    x = _x((2, 4, 12, 13))
    assert P.get(model, x.shape).steps == ["relu", "pool+relu", "pool", "gap+relu"]
    _close(model(x), _layerwise(model, x))


def test_plain_forward_keeps_caches_for_backward():
    model = nn.models.mnist_cnn(seed=0).eval()
    x = _x((2, 1, 28, 28))
    y = model.forward(x, training=False)  # not model(x): layer by layer, caches kept
    assert not model._planned
    model.backward(np.ones_like(y))
    _close(model(x), y)


def test_odd_sizes_floor_pool_and_strided_conv():
    model = nn.Sequential([nn.Conv2d(2, 16, 3, stride=2, padding=1, rng=0), nn.ReLU(), nn.MaxPool2d(2),
                           nn.Conv2d(16, 8, (3, 2), rng=1), nn.AvgPool2d(2), nn.ReLU(), nn.Flatten(),
                           nn.Linear(8 * 2 * 2, 5, rng=2)]).eval()
    x = _x((3, 2, 27, 23))
    assert P.get(model, x.shape) is not None, P.explain(model, x.shape)
    _close(model(x), _layerwise(model, x))


def test_nan_propagates_like_layer_by_layer():
    model = nn.models.mnist_cnn(seed=0).eval()
    x = _x((2, 1, 28, 28))
    x[0, 0, 5, 5] = np.nan
    y, y0 = model(x), _layerwise(model, x)
    assert np.array_equal(np.isnan(y), np.isnan(y0)) and np.isnan(y[0]).all()
    _close(y[1], y0[1])


def test_batchnorm_is_folded_or_applied():
    if not hasattr(nn, "BatchNorm2d"):
        pytest.skip("BatchNorm2d is not in this build of fastlayers.nn (it comes with the batchnorm branch)")
    rng = np.random.default_rng(3)
    bn1, bn2 = nn.BatchNorm2d(8), nn.BatchNorm2d(3)
    for bn in (bn1, bn2):
        c = bn.num_features
        bn._buffers["running_mean"] = rng.standard_normal(c).astype(np.float32)
        bn._buffers["running_var"] = rng.uniform(0.5, 2, c).astype(np.float32)
        bn.weight.data = rng.uniform(0.5, 1.5, c).astype(np.float32)
        bn.bias.data = rng.standard_normal(c).astype(np.float32)
    model = nn.Sequential([bn2, nn.Conv2d(3, 8, 3, padding=1, rng=0), bn1, nn.ReLU(), nn.GlobalAvgPool2d(),
                           nn.Linear(8, 4, rng=1)]).eval()
    x = _x((4, 3, 10, 10))
    plan = P.get(model, x.shape)
    assert plan is not None, P.explain(model, x.shape)
    assert plan.steps[:2] == ["affine", "conv+relu"]  # bn2 has no conv before it; bn1 folds
    _close(model(x), _layerwise(model, x))


def test_predict_and_evaluate_use_the_plan():
    model = nn.models.lenet5(seed=0)
    x = _x((10, 1, 28, 28))
    y = np.arange(10) % 10
    out = model.predict(x, batch_size=4)  # batches of 4, 4 and 2: two shapes cached
    assert set(model._plans["plans"]) == {(4, 1, 28, 28), (2, 1, 28, 28)}
    model.eval()
    _close(out, _layerwise(model, x))
    ev = model.evaluate(x, y, batch_size=5)
    assert np.isfinite(ev["loss"])


def test_training_invalidates_and_backward_after_plan_is_an_error():
    model = nn.models.mnist_cnn(seed=0)
    x, t = _x((4, 1, 28, 28)), np.arange(4)
    model.eval()
    y0 = model(x)
    with pytest.raises(ValueError, match="inference plan"):
        model.backward(np.ones_like(y0))
    model.compile(fl.optim.SGD(model.parameters(), lr=0.5), loss="cross_entropy")
    model.fit(x, t, epochs=1, batch_size=4, verbose=0)  # the weights change in place
    model.eval()
    y1 = model(x)
    assert not np.allclose(y0, y1)
    _close(y1, _layerwise(model, x))
    # Replacing a parameter's array drops the plans too.
    model.layers[-1].bias.data = model.layers[-1].bias.data + 1.0
    _close(model(x), _layerwise(model, x))
    # An in-place edit needs invalidate().
    model.layers[-1].bias.data += 1.0
    P.invalidate(model)
    _close(model(x), _layerwise(model, x))


def test_fallbacks():
    model = nn.Sequential([nn.Conv2d(1, 4, 3, rng=0), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 26 * 26, 2, rng=1)]).eval()
    x = _x((2, 1, 28, 28))
    assert "Tanh" in P.explain(model, x.shape)
    _close(model(x), _layerwise(model, x))
    assert not model._planned
    ok = nn.models.mnist_cnn(seed=0).eval()
    assert P.run(ok, x.astype(np.float64)) is None  # float64: the layers' own conversion rules apply
    ok.use_plan = False
    assert P.get(ok, x.shape) is None
    # A wrong input shape takes the layer path, which raises its own error.
    with pytest.raises(ValueError):
        nn.models.mnist_cnn(seed=0).eval()(_x((2, 3, 28, 28)))


def test_memory_plan_reuses_the_arena():
    model = nn.models.small_resnet(seed=0).eval()
    plan = P.get(model, (8, 1, 28, 28))
    floats = [8 * 16 * 28 * 28] * 8 + [8 * 32 * 14 * 14] * 8 + [8 * 64 * 7 * 7] * 8  # every activation
    assert plan.arena_bytes < 0.5 * 4 * sum(floats)
    assert plan.peak_bytes == plan.arena_bytes + plan.workspace_bytes


def test_threads_and_non_contiguous_input():
    model = nn.models.small_resnet(seed=0).eval()
    x = _x((2, 1, 28, 28))
    plan = P.get(model, x.shape)
    y = np.empty(plan.output_shape, np.float32)
    ref = _layerwise(model, x)
    for threads in (0, 1, 2):
        plan.run(x, y, threads)
        _close(y, ref)
    xt = np.asfortranarray(x)
    _close(model(xt), ref)


# The plan runs the direct kernel (conv_smallc) with its filters packed once, from 256 input channels
# up too (smallc_applies_prepacked): filter blocks of 32 output channels (the last one 16 wide when
# K/groups is an odd multiple of 16) or of 64 for 7-pixel tiles, rows split over the team. Each against the layer-by-layer pass.
WIDE_CONVS = [
    (256, 48, 9, 3, 1, 1, 1),   # two filter blocks, 32 + 16 channels; 9 rows over 2 or 3 threads
    (272, 40, 8, 3, 2, 1, 2),   # stride 2 (phase planes), K padded to 48, batch 2
    (512, 24, 7, 3, 1, 1, 1),   # 512 x 3 x 3 = 4608 taps, the largest the kernel takes
    (520, 16, 5, 3, 1, 1, 1),   # 4680 taps: past it, conv2d_forward's paths
    (256, 64, 6, 3, 1, 0, 3),   # no padding, 4-pixel rows of 8-pixel tiles
    # 7-pixel tiles x 64-channel blocks (rows a multiple of 7, not of 14; K/groups padded to 64s):
    (64, 64, 7, 3, 1, 1, 2),    # the small ResNet's / ResNet-18's last stage shape
    (96, 128, 21, 3, 1, 1, 1),  # three tiles per row, two filter blocks
    (128, 56, 14, 3, 2, 1, 3),  # stride 2 onto 7x7, 56 real channels of 64
    (32, 48, 9, 3, 1, 1, 2),    # 9-pixel rows: one 9-pixel tile per row, 32 + 16 channels
    (16, 16, 13, 3, 1, 1, 1),   # 13-pixel rows, 16 channels: one 13-pixel tile per row
    (8, 32, 15, 3, 1, 1, 2),    # 15-pixel rows: 14-pixel tiles and a 1-pixel one
    (6, 16, 14, 5, 1, 0, 3),    # LeNet-5's conv2: 10-pixel tiles
    # Fewer than 8 output channels (one 16-lane vector, mostly padding), where the plan takes it:
    (1, 6, 28, 5, 1, 2, 3),     # LeNet-5's conv1
    (16, 1, 14, 3, 1, 1, 2),    # one output channel, 144 taps
    (32, 2, 12, 5, 1, 0, 2),    # two channels, 800 taps: conv2d_forward's paths
]


@pytest.mark.parametrize("case", WIDE_CONVS, ids=[str(c) for c in WIDE_CONVS])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_wide_convs_match_layer_by_layer(case, threads, monkeypatch):
    # The channels-in-lanes Winograd would take the 3x3 stride-1 cases with 16k channels: off here,
    # so that these reach the direct kernel (WINO16_CONVS below test the Winograd one).
    monkeypatch.setenv("FASTLAYERS_PLAN_WINO16", "0")
    C, K, H, R, stride, pad, N = case
    model = nn.Sequential([nn.Conv2d(C, K, R, stride, pad, rng=np.random.default_rng(0)), nn.ReLU()]).eval()
    x = _x((N, C, H, H))
    with num_threads(threads):
        plan = P.get(model, x.shape)
        assert plan is not None, P.explain(model, x.shape)
        assert "winograd_c16" not in plan._c.conv_algorithms
        y = np.empty(plan.output_shape, np.float32)
        plan.run(x, y, threads)
    _close(y, _layerwise(model, x))


# The plan's Winograd with channels in the lanes (csrc/cpu/conv_winograd_c16*): F(4x4, 3x3) and
# F(4x4, 5x5), stride 1, channels multiples of 16. (C, K, H, W, R, pad, N): partial tiles at the
# right and bottom edges, rows wider than one 16-pixel transpose, padding 0-2, the images split over
# the threads (N >= threads) or one image's tiles split over the team (N < threads), tile blocks
# smaller than an image (64 + 64 channels on 30x30: 64 tiles of which a block holds 21).
WINO16_CONVS = [
    (16, 16, 28, 28, 3, 1, 3),  # the small ResNet's first stage
    (32, 32, 14, 14, 3, 1, 1),  # 14 = 3 whole tiles + 2 rows / columns
    (64, 64, 7, 7, 3, 1, 2),
    (16, 48, 9, 19, 3, 0, 1),   # no padding, 17-pixel rows (two transposes), 48 = 3 vectors
    (48, 32, 5, 6, 3, 2, 2),    # padding 2
    (64, 64, 30, 30, 3, 1, 1),  # several tile blocks per image
    (32, 64, 12, 12, 5, 0, 3),  # the course CNN's conv2, F(4x4, 5x5)
    (16, 16, 11, 13, 5, 2, 2),  # 5x5 with padding, odd sizes
    (16, 32, 37, 40, 5, 2, 1),  # 5x5 over several tile blocks (100 tiles, 32 per block), partial tiles
]


def _same_shape(C, K, H, W, R, stride, pad):
    return C == K and stride == 1 and H + 2 * pad - R + 1 == H and W + 2 * pad - R + 1 == W


def _one_conv_plan(conv, epilogue, x, threads):
    """A model of one conv and its epilogue - "relu", "pool" (2x2 max pool, then ReLU), "avgpool"
    (ReLU, then a 2x2 average pool) or "residual" (+ the input, then ReLU) - run through its plan
    on x: (model, the plan's conv algorithms, the plan's output). The HWC kernels pool before
    their transpose back to NCHW (OutPool), the others leave the pool to the plan's epilogue."""
    if epilogue == "relu":
        model = nn.Sequential([conv, nn.ReLU()]).eval()
    elif epilogue == "pool":
        model = nn.Sequential([conv, nn.MaxPool2d(2), nn.ReLU()]).eval()
    elif epilogue == "avgpool":
        model = nn.Sequential([conv, nn.ReLU(), nn.AvgPool2d(2)]).eval()
    else:
        inp = nn.Input(x.shape[1:])
        model = nn.Model(inp, nn.ReLU()(nn.Add()([conv(inp), inp]))).eval()
    with num_threads(threads):
        plan = P.get(model, x.shape)
        assert plan is not None, P.explain(model, x.shape)
        y = np.empty(plan.output_shape, np.float32)
        plan.run(x, y, threads)
    return model, plan._c.conv_algorithms, y


# Each case with conv + ReLU, and where the conv keeps its input's shape also with an identity
# residual before the ReLU (fused into the kernel's last pass).
WINO16_RUNS = [(c, "relu") for c in WINO16_CONVS] + [
    (c, "residual") for c in WINO16_CONVS if _same_shape(*c[:5], 1, c[5])]


@pytest.mark.parametrize("run", WINO16_RUNS, ids=[f"{c}-{e}" for c, e in WINO16_RUNS])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_winograd_c16_convs_match_layer_by_layer(run, threads):
    (C, K, H, W, R, pad, N), epilogue = run
    x = _x((N, C, H, W))
    model, algos, y = _one_conv_plan(nn.Conv2d(C, K, R, 1, pad, rng=np.random.default_rng(0)), epilogue, x, threads)
    if "winograd_c16" not in algos:
        assert not _cpu_has_wino16(), f"AVX2 or AVX-512 here, yet the plan chose {algos}"
        pytest.skip("neither AVX2 nor AVX-512 on this machine: the plan keeps its other paths")
    _close(y, _layerwise(model, x))


# The plan's direct kernel with pixels in the lanes (csrc/cpu/conv_pixels*): at most 25 taps, stride 1
# or 2. (C, K, H, W, R, stride, pad, N): the small ResNet's first conv and its 1x1 stride-2
# projection (read in place, no padding), the CNN's and LeNet-5's first convs, rows of several
# 16-pixel segments with a masked tail, odd sizes at stride 2, exactly 25 taps, K not a multiple of 4.
PIXEL_CONVS = [
    (1, 16, 28, 28, 3, 1, 1, 3),
    (16, 32, 28, 28, 1, 2, 0, 2),
    (32, 64, 14, 13, 1, 2, 0, 2),  # 32 taps: AVX2's blocked rows only (the even pixels copied)
    (1, 32, 28, 28, 5, 1, 0, 1),
    (1, 6, 28, 28, 5, 1, 2, 2),
    (2, 5, 9, 35, 3, 2, 0, 2),
    (2, 7, 10, 33, 3, 2, 1, 1),
    (25, 7, 10, 10, 1, 1, 0, 3),
    (16, 16, 6, 6, 1, 1, 0, 2),   # C == K, same size: the residual case too
]


PIXEL_RUNS = [(c, e) for c in PIXEL_CONVS for e in ("relu", "pool")] + [
    (c, "residual") for c in PIXEL_CONVS if _same_shape(*c[:7])]


@pytest.mark.parametrize("run", PIXEL_RUNS, ids=[f"{c}-{e}" for c, e in PIXEL_RUNS])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_pixel_lane_convs_match_layer_by_layer(run, threads, monkeypatch):
    monkeypatch.setenv("FASTLAYERS_PLAN_HWC", "0")  # which takes pooled layers of 16k channels on AVX2
    (C, K, H, W, R, stride, pad, N), epilogue = run
    x = _x((N, C, H, W))
    conv = nn.Conv2d(C, K, R, stride, pad, rng=np.random.default_rng(0))
    model, algos, y = _one_conv_plan(conv, epilogue, x, threads)
    # Past 25 taps only AVX2's blocked rows take it (1x1 stride 2).
    expect = _cpu_has_wino16() and (C * R * R <= 25 or _cpu.active_isa() == "avx2")
    assert ("pixels" in algos) == expect, algos
    _close(y, _layerwise(model, x))


# The plan's HWC direct kernel (csrc/cpu/conv_hwc*): output channels multiples of 16, stride 1 or 2,
# up to 7x7. FASTLAYERS_PLAN_HWC=1 makes every plan take it where it can run (by default: AVX2
# machines' layers that Winograd and the pixels kernel do not take, not 1x1, C > 1).
# (C, K, H, W, R, stride, pad, N): the small ResNet's two stride-2 layers (rows of 14 and 7 pixels),
# a 1x1 projection, a stride-1 5x5 with 48 channels, 7x7 stride 2 on odd sizes, LeNet-5's conv2 (6
# channels) and an RGB 3x3 (channels not a multiple of the lanes).
HWC_CONVS = [
    (16, 32, 28, 28, 3, 2, 1, 2),
    (32, 64, 14, 14, 3, 2, 1, 3),
    (32, 16, 10, 10, 1, 2, 0, 2),
    (48, 16, 9, 11, 5, 1, 2, 1),
    (16, 16, 13, 15, 7, 2, 3, 2),
    (16, 16, 8, 8, 3, 1, 1, 2),  # C == K, same size: the residual case too
    (6, 16, 14, 14, 5, 1, 0, 3),
    (3, 16, 11, 13, 3, 1, 1, 2),
]
HWC_RUNS = [(c, e) for c in HWC_CONVS for e in ("relu", "pool")] + [
    (c, "residual") for c in HWC_CONVS if _same_shape(*c[:7])]


@pytest.mark.parametrize("run", HWC_RUNS, ids=[f"{c}-{e}" for c, e in HWC_RUNS])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_hwc_convs_match_layer_by_layer(run, threads, monkeypatch):
    monkeypatch.setenv("FASTLAYERS_PLAN_HWC", "1")
    monkeypatch.setenv("FASTLAYERS_PLAN_WINO16", "0")
    monkeypatch.setenv("FASTLAYERS_PLAN_PIXCONV", "0")
    (C, K, H, W, R, stride, pad, N), epilogue = run
    x = _x((N, C, H, W))
    conv = nn.Conv2d(C, K, R, stride, pad, rng=np.random.default_rng(0))
    model, algos, y = _one_conv_plan(conv, epilogue, x, threads)
    assert "hwc" in algos or not _cpu_has_wino16(), algos
    _close(y, _layerwise(model, x))


# Conv + 2x2 pool steps on the HWC kernels, pooled in HWC before the transpose (OutPool) and, with
# FASTLAYERS_PLAN_FUSED_POOL=0, by the plan's epilogue: (C, K, H, W, R, pad, N). The CNN's conv1 (one
# input channel: the HWC kernel by default on AVX2 when a pool follows) and conv2 (Winograd), odd
# output sizes (the last row and column dropped by the floor-mode pool), 7x7 and an RGB 3x3 on the
# HWC kernel. Batch 1 at 2 and 3 threads splits one image's pooled rows over the team.
POOLED_CONVS = [
    (1, 32, 28, 28, 5, 0, 2),
    (32, 64, 12, 12, 5, 0, 3),
    (16, 16, 11, 13, 5, 2, 1),
    (16, 32, 15, 13, 3, 1, 2),
    (3, 16, 11, 13, 3, 1, 1),
    (16, 16, 13, 15, 7, 3, 2),
]


@pytest.mark.parametrize("case", POOLED_CONVS, ids=[str(c) for c in POOLED_CONVS])
@pytest.mark.parametrize("epilogue", ["pool", "avgpool"])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_pooled_convs_match_layer_by_layer(case, epilogue, threads, monkeypatch):
    C, K, H, W, R, pad, N = case
    x = _x((N, C, H, W))
    conv = nn.Conv2d(C, K, R, 1, pad, rng=np.random.default_rng(0))
    ref = None
    for fused in ("1", "0"):
        monkeypatch.setenv("FASTLAYERS_PLAN_FUSED_POOL", fused)
        model, algos, y = _one_conv_plan(conv, epilogue, x, threads)
        if not _cpu_has_wino16():
            pytest.skip("neither AVX2 nor AVX-512 on this machine: the plan keeps its other paths")
        if _cpu.active_isa() == "avx2":  # AVX-512 machines keep the pixels kernel for one channel
            assert algos[0] in ("hwc", "winograd_c16"), algos
        ref = _layerwise(model, x) if ref is None else ref
        assert y.shape == ref.shape
        _close(y, ref)


def test_pooled_convs_keep_nan_and_inf_where_they_belong(monkeypatch):
    # Max pooling propagates NaN; the Winograd kernel sends an image holding a NaN or inf to its
    # direct sum, which then pools the full-size result.
    for C, K, H, R in [(1, 32, 28, 5), (32, 64, 12, 5), (16, 16, 12, 3)]:
        for epilogue in ("pool", "avgpool"):
            x = _x((3, C, H, H))
            x[1, 0, 5, 6] = np.nan
            x[2, C - 1, 0, H - 1] = np.inf
            for threads in (1, 2):
                monkeypatch.setenv("FASTLAYERS_PLAN_FUSED_POOL", "1")
                model, algos, y = _one_conv_plan(nn.Conv2d(C, K, R, 1, 0, rng=np.random.default_rng(0)), epilogue,
                                                 x, threads)
                ref = _layerwise(model, x)
                np.testing.assert_array_equal(np.isnan(y), np.isnan(ref), err_msg=f"{algos} {epilogue}")
                np.testing.assert_array_equal(np.isinf(y), np.isinf(ref))
                assert np.isnan(y[1]).any() and not np.isnan(y[0]).any()
                finite = np.isfinite(ref)
                np.testing.assert_allclose(y[finite], ref[finite], rtol=1e-4, atol=1e-4)


def test_values_between_hwc_kernels_stay_in_hwc(monkeypatch):
    # A value written by a Winograd c16 / conv_hwc step and read only as the input of such steps
    # stays in HWC (no transpose out and back in): the small ResNet's block-inner values. The
    # results match the layer-by-layer pass with and without it, one image split over a team, a
    # NaN image (the Winograd's direct fallback writing HWC), and a consumer with a pool, fused or
    # left to the epilogue.
    resnet = nn.models.build("resnet", seed=0).eval()
    chain = nn.Sequential([nn.Conv2d(16, 16, 3, 1, 1, rng=0), nn.ReLU(), nn.Conv2d(16, 32, 3, 1, 1, rng=1),
                           nn.MaxPool2d(2), nn.ReLU(), nn.Conv2d(32, 32, 3, 2, 1, rng=2), nn.ReLU(),
                           nn.Conv2d(32, 16, 5, 1, 2, rng=3), nn.ReLU(), nn.AvgPool2d(2)]).eval()
    # With every conv on an HWC kernel (FASTLAYERS_PLAN_PIXCONV=0, FASTLAYERS_PLAN_HWC=1) all nine
    # of the ResNet's values are: the residuals read in HWC, the global pool too.
    all_hwc = {"FASTLAYERS_PLAN_PIXCONV": "0", "FASTLAYERS_PLAN_HWC": "1"}
    # By default on AVX2 its first conv and projections move to conv_hwc to join them (9); on
    # AVX-512 they keep the pixels kernel and only the block-inner values are HWC (3).
    n_resnet = 9 if _cpu.active_isa() == "avx2" else 3
    for model, shape, n_hwc, env in [(resnet, (1, 28, 28), n_resnet, {}), (chain, (16, 14, 13), 2, {}),
                                     (resnet, (1, 28, 28), 9, all_hwc)]:
        for batch, threads in [(1, 1), (1, 2), (1, 3), (3, 2)]:
            x = _x((batch,) + shape)
            if batch == 3:
                x[1, 0, 4, 4] = np.nan
            ref = _layerwise(model, x)
            for values, fused in [("1", "1"), ("1", "0"), ("0", "1")]:
                monkeypatch.setenv("FASTLAYERS_PLAN_HWC_VALUES", values)
                monkeypatch.setenv("FASTLAYERS_PLAN_FUSED_POOL", fused)
                for k, v in env.items():
                    monkeypatch.setenv(k, v)
                with num_threads(threads):
                    plan = P.build(model, x.shape, threads=0)
                    y = plan(x)
                for k in env:
                    monkeypatch.delenv(k)
                if _cpu_has_wino16():
                    assert plan._c.hwc_values == (n_hwc if values == "1" else 0), plan._c.conv_algorithms
                    if n_hwc == 9 and values == "1":
                        assert plan._c.hwc_layouts == ["y"] + ["xy"] * 8 + ["x", ""], plan._c.hwc_layouts
                np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
                finite = np.isfinite(ref)
                _close(y[finite], ref[finite])


def test_values_read_by_other_steps_stay_nchw():
    # A graph whose two HWC-kernel outputs meet in an add (a step, or the second conv's residual)
    # that feeds a Flatten + Linear, which reads NCHW: nothing is kept in HWC, and the results match.
    inp = nn.Input((16, 10, 10))
    a = nn.ReLU()(nn.Conv2d(16, 16, 3, 1, 1, rng=0)(inp))
    b = nn.Conv2d(16, 16, 3, 1, 1, rng=1)(inp)
    out = nn.Linear(16 * 100, 4, rng=2)(nn.Flatten()(nn.Add()([a, b])))
    model = nn.Model(inp, out).eval()
    x = _x((2, 16, 10, 10))
    plan = P.get(model, x.shape)
    assert plan is not None, P.explain(model, x.shape)
    assert plan._c.hwc_values == 0 and set(plan._c.hwc_layouts) == {""}, plan._c.hwc_layouts
    _close(model(x), _layerwise(model, x))


def test_hwc_is_the_default_on_avx2_and_for_3x3_stride_2_on_avx512():
    # (C, K, R, stride, the ISAs that take it by default)
    for C, K, R, stride, isas in [(16, 32, 3, 2, ("avx2", "avx512")), (6, 16, 5, 1, ("avx2",)),
                                  (8, 32, 3, 2, ("avx2",)), (1, 32, 7, 1, ()), (16, 32, 1, 2, ())]:
        plan = P.get(nn.Sequential([nn.Conv2d(C, K, R, stride, R // 2, rng=0)]).eval(), (2, C, 14, 14))
        algo = plan._c.conv_algorithms[0]
        assert (algo == "hwc") == (_cpu.active_isa() in isas), (C, K, R, stride, algo)
    # One input channel: only with a 2x2 pool after it (pooled in HWC), as the CNN's conv1.
    for pool, expect in [(True, True), (False, False)]:
        layers = [nn.Conv2d(1, 32, 5, rng=0)] + ([nn.MaxPool2d(2)] if pool else []) + [nn.ReLU()]
        algo = P.get(nn.Sequential(layers).eval(), (2, 1, 28, 28))._c.conv_algorithms[0]
        assert (algo == "hwc") == (expect and _cpu.active_isa() == "avx2"), (pool, algo)


def test_pixel_lane_kernel_takes_at_most_25_taps():
    for C, R, expect in [(25, 1, True), (26, 1, False), (1, 5, True), (3, 3, False)]:
        plan = P.get(nn.Sequential([nn.Conv2d(C, 8, R, rng=0)]).eval(), (1, C, 12, 12))
        assert (plan._c.conv_algorithms[0] == "pixels") == (expect and _cpu_has_wino16()), (C, R)


def _cpu_has_wino16():  # the channels-in-lanes Winograd and the pixels kernel: AVX-512 and AVX2
    return _cpu.active_isa() in ("avx2", "avx512")


def test_winograd_c16_keeps_nan_and_inf_where_they_belong():
    # A NaN or inf in a 6x6 patch would spread over its whole 4x4 output tile: the kernel sends an
    # image holding one to the direct sum, so that the outputs match the layer-by-layer pass
    # element for element (NaN where it reads the NaN, finite elsewhere).
    model = nn.Sequential([nn.Conv2d(16, 16, 3, 1, 1, rng=np.random.default_rng(0)), nn.ReLU()]).eval()
    x = _x((3, 16, 12, 12))
    x[1, 3, 5, 6] = np.nan
    x[2, 0, 0, 11] = np.inf
    for threads in (1, 2):
        with num_threads(threads):
            plan = P.get(model, x.shape)
            assert "winograd_c16" in plan._c.conv_algorithms or not _cpu_has_wino16()
            y = np.empty(plan.output_shape, np.float32)
            plan.run(x, y, threads)
        ref = _layerwise(model, x)
        np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
        np.testing.assert_array_equal(np.isinf(y), np.isinf(ref))
        finite = np.isfinite(ref)
        assert np.isnan(y[1]).sum() == 16 * 9  # every channel, the 3x3 around the NaN
        np.testing.assert_allclose(y[finite], ref[finite], rtol=1e-4, atol=1e-4)
    x1 = x[:1].copy()  # a finite batch next to it keeps the Winograd results
    with num_threads(1):
        _close(model(x1), _layerwise(model, x1))


def test_plan_checks_its_arguments():
    c = _cpu.InferencePlan()
    i = c.add_value(16, -1)
    o = c.add_value(4, -2)
    with pytest.raises(ValueError, match="value id"):
        c.add_act(i, 7, 4, 1)
    with pytest.raises(ValueError, match="sizes"):
        c.add_act(i, o, 16, 1)
    with pytest.raises(ValueError, match="act"):
        c.add_linear(i, o, 1, 4, 16, np.zeros((4, 16), np.float32), None, 5)
    with pytest.raises(ValueError, match="weight"):
        c.add_linear(i, o, 1, 4, 16, np.zeros((4, 15), np.float32), None, 0)
    c.add_linear(i, o, 1, 4, 16, np.ones((4, 16), np.float32), np.arange(4, dtype=np.float32), 1)
    c.finalize(0, 1)
    y = np.empty(4, np.float32)
    with pytest.raises(ValueError, match="16 floats"):
        c.run(np.zeros(15, np.float32), y)
    with pytest.raises(TypeError, match="float32"):
        c.run(np.zeros(16, np.float64), y)
    with pytest.raises(ValueError, match="writable"):
        y.flags.writeable = False
        c.run(np.zeros(16, np.float32), y)
    y = np.empty(4, np.float32)
    c.run(-np.ones(16, np.float32), y)
    assert y.tolist() == [0.0, 0.0, 0.0, 0.0]  # relu(-16 + b), b < 16
    c.run(np.ones(16, np.float32), y)
    assert y.tolist() == [16.0, 17.0, 18.0, 19.0]


def test_torch_cross_check():
    torch = pytest.importorskip("torch")
    model = nn.models.small_resnet(seed=0).eval()
    x = _x((2, 1, 28, 28))
    tm = _torch_small_resnet(torch, model)
    with torch.no_grad():
        ref = tm(torch.from_numpy(x)).numpy()
    _close(model(x), ref)


def _torch_small_resnet(torch, model):
    """The same network in torch.nn, weights copied from `model`."""
    tnn = torch.nn
    convs = [la for la in _walk(model) if isinstance(la, nn.Conv2d)]
    lin = [la for la in _walk(model) if isinstance(la, nn.Linear)][0]

    def conv(la):
        c = tnn.Conv2d(la.in_channels, la.out_channels, la.kernel_size, la.stride, la.padding, bias=la.bias is not None)
        c.weight.data = torch.from_numpy(la.weight.data.copy())
        if la.bias is not None:
            c.bias.data = torch.from_numpy(la.bias.data.copy())
        return c

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            self.c = tnn.ModuleList([conv(la) for la in convs])
            self.fc = tnn.Linear(lin.in_features, lin.out_features)
            self.fc.weight.data = torch.from_numpy(lin.weight.data.copy())
            self.fc.bias.data = torch.from_numpy(lin.bias.data.copy())

        def forward(self, x):
            r = torch.relu
            c = self.c
            x = r(c[0](x))
            x = r(c[2](r(c[1](x))) + x)  # block 1: identity
            x = r(c[4](r(c[3](x))) + c[5](x))  # block 2: projection (built after the body)
            x = r(c[7](r(c[6](x))) + c[8](x))
            return self.fc(x.mean((2, 3)))

    return Net()


def _walk(layer):
    yield layer
    for ch in layer.children():
        yield from _walk(ch)


def test_adaptive_avg_pool_in_the_plan():
    """AdaptiveAvgPool2d: (1, 1) is the global-average step, an output of the input's size a view;
    any other size has no plan step (the layers run it). With it, the zoo's ResNets and AlexNet plan."""
    body = [nn.Conv2d(3, 4, 3, rng=0), nn.ReLU()]
    gap = nn.Sequential(body + [nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(4, 2, rng=1)]).eval()
    same = nn.Sequential(body + [nn.AdaptiveAvgPool2d((None, 5)), nn.Flatten(), nn.Linear(100, 2, rng=1)]).eval()
    other = nn.Sequential(body + [nn.AdaptiveAvgPool2d(3), nn.Flatten(), nn.Linear(36, 2, rng=1)]).eval()
    x = _x((2, 3, 7, 7))
    for model in (gap, same):
        assert P.get(model, x.shape) is not None, P.explain(model, x.shape)
        y = model(x)
        assert model._planned
        _close(y, _layerwise(model, x))
    assert "output_size (3, 3)" in P.explain(other, x.shape)
    _close(other(x), _layerwise(other, x))
    resnet = nn.zoo.resnet18(num_classes=10, input_size=64, seed=0).eval()
    xr = _x((2, 3, 64, 64))
    plan = P.get(resnet, xr.shape)
    assert plan is not None, P.explain(resnet, xr.shape)
    assert plan.steps[-2:] == ["gap", "linear"]
    _close(resnet(xr), _layerwise(resnet, xr))
