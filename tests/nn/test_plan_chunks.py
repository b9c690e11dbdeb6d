"""The inference plan in chunks (nn/plan.py's _chunking, Plan::run over chunk_bounds): a batch run a
chunk of images at a time, every step scaled to the chunk's images, the steps splitting a chunk over
the threads or each thread running chunks of its own, gives the whole-batch plan's outputs; the
split is even; the default chunks keep a chunk's activations near one core's L2; bad arguments
raise."""

from __future__ import annotations

import numpy as np
import pytest

from fastlayers import _cpu, nn
from fastlayers.nn import plan as P

from ..helpers import num_threads


def _x(shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _graph_model():
    # conv + relu, conv + residual, a pool step, a standalone ReLU, an add, a pool + relu, global
    # average pool, dense (with the "affine" model below: every step kind a chunk scales).
    inp = nn.Input((3, 11, 9))
    a = nn.Conv2d(3, 8, 3, padding=1, rng=0)(inp)
    r = nn.ReLU()(a)
    b = nn.Conv2d(8, 8, 3, padding=1, rng=1)(r)
    s = nn.Add()([b, r])
    p = nn.MaxPool2d(3, stride=1)(s)
    u = nn.Add()([p, nn.ReLU()(p)])  # p is read twice: a standalone ReLU and an add step
    q = nn.AvgPool2d(2)(u)
    out = nn.Linear(8, 5, rng=2)(nn.Flatten()(nn.GlobalAvgPool2d()(nn.ReLU()(q))))
    return nn.Model(inp, out).eval(), (3, 11, 9)


def _models():
    yield "cnn", nn.models.build("cnn", seed=0).eval(), (1, 28, 28)
    yield "lenet5", nn.models.build("lenet5", seed=0).eval(), (1, 28, 28)
    yield "resnet", nn.models.build("resnet", seed=0).eval(), (1, 28, 28)
    model, image = _graph_model()
    yield "graph", model, image
    if hasattr(nn, "BatchNorm2d"):
        bn = nn.BatchNorm2d(4)
        bn.running_mean[:] = np.arange(4, dtype=np.float32)
        bn.running_var[:] = 1.0 + np.arange(4, dtype=np.float32)
        # a standalone ReLU (on the model's input), a batch norm with no conv before it (affine + relu)
        yield "affine", nn.Sequential([nn.ReLU(), bn, nn.ReLU(), nn.MaxPool2d(2), nn.Flatten()]).eval(), (4, 6, 6)


def _build(model, shape, monkeypatch, chunk, per_thread=None):
    monkeypatch.setenv("FASTLAYERS_PLAN_CHUNK", str(chunk))
    if per_thread is not None:
        monkeypatch.setenv("FASTLAYERS_PLAN_PER_THREAD", "1" if per_thread else "0")
    plan = P.build(model, shape, threads=0)
    monkeypatch.delenv("FASTLAYERS_PLAN_CHUNK")
    monkeypatch.delenv("FASTLAYERS_PLAN_PER_THREAD", raising=False)
    return plan


@pytest.mark.parametrize("threads,per_thread", [(1, False), (2, False), (2, True), (3, True)])
def test_chunks_give_the_whole_batch_outputs(threads, per_thread, monkeypatch):
    # Seven images (odd: uneven chunks, a last chunk shorter than the threads) in chunks of 1-4,
    # the steps splitting each chunk over the threads or each thread running chunks of its own:
    # every image's result is computed by the same kernels either way, so the outputs are equal.
    with num_threads(threads):
        for name, model, image in _models():
            x = _x((7,) + image)
            x[5].flat[3] = np.nan  # stays in image 5's outputs
            whole = _build(model, x.shape, monkeypatch, 0, per_thread=False)
            assert whole.chunk == 7 and not whole.per_thread
            ref = whole.run(x, np.empty(whole.output_shape, np.float32))
            assert np.isnan(ref[5]).any() and not np.isnan(np.delete(ref, 5, axis=0)).any(), name
            for chunk in (1, 2, 3, 4):
                plan = _build(model, x.shape, monkeypatch, chunk, per_thread)
                assert plan.chunk == chunk and plan.per_thread == per_thread and plan.steps == whole.steps, name
                y = np.full(plan.output_shape, -7.0, np.float32)
                plan.run(x, y)
                np.testing.assert_array_equal(y, ref, err_msg=f"{name}, chunks of {chunk}, {threads} threads")
                seconds = plan.run_profiled(x, y)
                assert len(seconds) == len(plan.steps) and min(seconds) >= 0.0
                np.testing.assert_array_equal(y, ref)
                plan.run(x, y, 1)  # a per-thread plan on one thread: its chunks one after the other
                np.testing.assert_array_equal(y, ref)


@pytest.mark.parametrize("per_thread", [False, True])
def test_chunk_bounds_split_evenly(per_thread, monkeypatch):
    model = nn.Sequential([nn.ReLU()]).eval()
    with num_threads(3):
        for batch in range(1, 9):
            plan = _build(model, (batch, 5), monkeypatch, 0, per_thread)._c
            assert plan.batch == batch and plan.per_thread == per_thread
            for threads in (1, 2, 3):
                for images in range(1, 41):
                    b = plan.chunk_bounds(images, threads)
                    sizes = np.diff(b)
                    assert b[0] == 0 and b[-1] == images and (sizes >= 1).all() and (sizes <= batch).all()
                    case = (batch, threads, images, b)
                    fewest = -(-images // batch)
                    if per_thread:  # every thread as many chunks: a multiple of the threads, as even as can be
                        assert len(sizes) == min(images, -(-fewest // threads) * threads), case
                        assert sizes.max() - sizes.min() <= 1, case
                    else:  # every thread as many of a chunk's images: sizes in multiples of the threads
                        unit = threads if threads > 1 and batch % threads == 0 else 1
                        assert len(sizes) == -(-(-(-images // unit)) // (batch // unit)), case
                        assert (sizes[:-1] % unit == 0).all() and sizes.max() - sizes.min() <= unit, case


def test_default_chunks_keep_a_chunk_near_the_caches(monkeypatch):
    resnet = nn.models.build("resnet", seed=0).eval()
    x = _x((64, 1, 28, 28))
    for threads in (1, 2):
        with num_threads(threads):
            P.invalidate(resnet)
            plan = P.get(resnet, x.shape)
            assert plan.per_thread == (threads > 1)
            assert 2 <= plan.chunk < 64 and "chunks of" in repr(plan)
            one = P.build(resnet, (plan.chunk, 1, 28, 28), threads=1)  # one chunk's plan, its values
            assert plan.arena_bytes == threads * one.arena_bytes <= 1.1 * P.CHUNK_BYTES_PER_THREAD * threads
            whole = _build(resnet, x.shape, monkeypatch, 0, per_thread=False)
            assert whole.arena_bytes > 4 * plan.arena_bytes
            np.testing.assert_array_equal(resnet(x), whole(x))
    with num_threads(2):
        lenet = P.build(nn.models.build("lenet5", seed=0).eval(), (64, 1, 28, 28))
        assert lenet.per_thread and lenet.chunk == 32  # small activations: a chunk per thread
        assert not P.build(resnet, (1, 1, 28, 28)).per_thread  # fewer images than threads
    with num_threads(1):
        assert P.build(nn.models.build("lenet5", seed=0).eval(), (64, 1, 28, 28)).chunk == 32


def test_chunked_run_checks_its_arguments(monkeypatch):
    model = nn.Sequential([nn.Flatten(), nn.Linear(6, 3, rng=0)]).eval()
    plan = _build(model, (5, 1, 2, 3), monkeypatch, 2)
    assert plan._c.batch == 2
    y = np.empty((5, 3), np.float32)
    with pytest.raises(ValueError, match="x must hold 30 floats"):
        plan._c.run(np.zeros((4, 6), np.float32), y, 0, 5)
    with pytest.raises(ValueError, match="images must be >= 0"):
        plan._c.run(np.zeros((5, 6), np.float32), y, 0, -1)
    with pytest.raises(ValueError, match="y must hold 15 floats"):
        plan._c.run(np.zeros((5, 6), np.float32), np.empty((4, 3), np.float32), 0, 5)
    for images in (2**62, 2**63 - 1):  # 6 floats an image: more than 2^63 floats
        with pytest.raises(ValueError, match="images = .* is too many"):
            plan._c.run(np.zeros((5, 6), np.float32), y, 0, images)
    x = np.zeros((5, 6), np.float32)
    with pytest.raises(ValueError, match="must not overlap"):  # y a view of x's memory
        plan._c.run(x, x.reshape(-1)[:15].reshape(5, 3), 0, 5)
    with pytest.raises(ValueError, match="must not overlap"):
        plan.run(x, x.reshape(-1)[15:].reshape(5, 3))
    with pytest.raises(ValueError, match="x must hold 30 floats, got 1"):  # 0-d
        plan._c.run(np.array(1.0, np.float32), y, 0, 5)
    with pytest.raises(ValueError, match="x must hold 12 floats, got 0"):  # empty; images 0: the plan's batch
        plan._c.run(np.zeros((0, 6), np.float32), np.zeros((0, 3), np.float32), 0, 0)
    for images in (0, -1, 2**20 + 1, 2**63 - 1):
        with pytest.raises(ValueError, match="images must be in"):
            plan._c.chunk_bounds(images, 1)
    assert plan._c.chunk_bounds(2**20, 1)[-1] == 2**20  # the largest it takes
    c = _cpu.InferencePlan()  # 6 floats are not whole images of a batch of 4
    i, o = c.add_value(6, -1), c.add_value(6, -2)
    c.add_act(i, o, 6, 1)
    with pytest.raises(ValueError, match="multiple of the batch"):
        c.finalize(0, 1, 4)
    c2 = _cpu.InferencePlan()  # a dense step of 3 rows over values of 2 images: not whole images
    i, o = c2.add_value(12, -1), c2.add_value(6, -2)
    c2.add_linear(i, o, 3, 2, 4, np.ones((2, 4), np.float32), None, 0)
    with pytest.raises(ValueError, match="whole images"):
        c2.finalize(0, 1, 2)


def test_chunk_switches_are_checked(monkeypatch):
    model = nn.Sequential([nn.ReLU()]).eval()
    monkeypatch.setenv("FASTLAYERS_PLAN_CHUNK", "four")
    with pytest.raises(ValueError, match="FASTLAYERS_PLAN_CHUNK"):
        P.build(model, (8, 5))
    monkeypatch.setenv("FASTLAYERS_PLAN_CHUNK", "4")
    monkeypatch.setenv("FASTLAYERS_PLAN_PER_THREAD", "yes")
    with pytest.raises(ValueError, match="FASTLAYERS_PLAN_PER_THREAD"):
        P.build(model, (8, 5))


def test_large_dense_weights_keep_the_batch_in_one_piece(monkeypatch):
    # A chunk reads the dense layers' weights again: past CHUNK_DENSE_WEIGHT_LIMIT no chunks.
    model = nn.Sequential([nn.Conv2d(1, 8, 3, padding=1, rng=0), nn.ReLU(), nn.Flatten(),
                           nn.Linear(8 * 28 * 28, 16, rng=1)]).eval()  # 401 KB of dense weights
    x = _x((32, 1, 28, 28))
    with num_threads(2):
        chunked = P.build(model, x.shape)
        assert chunked.per_thread and chunked.chunk < 32
        monkeypatch.setattr(P, "CHUNK_DENSE_WEIGHT_LIMIT", 300 * 1024)
        whole = P.build(model, x.shape)
        assert not whole.per_thread and whole.chunk == 32
        np.testing.assert_array_equal(chunked(x), whole(x))
