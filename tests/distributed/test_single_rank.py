"""fastlayers.distributed in one process (no launcher): the API, the sampler's rules, the bucketed
reducer's bookkeeping (hooks, buckets, shared and frozen parameters) and errors. What needs several
ranks is in test_mpi.py (launched with mpiexec)."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import fastlayers as fl
from fastlayers import distributed as dist
from fastlayers.distributed import _comm
from fastlayers.distributed.reducer import Reducer, _HookedParameter
from fastlayers.nn.layers import Parameter


@pytest.fixture(autouse=True)
def _fresh_group(monkeypatch):
    for var in _comm._SIZE_VARS:
        monkeypatch.delenv(var, raising=False)
    _comm._reset_for_tests()
    yield
    _comm._reset_for_tests()


def test_init_without_launcher_is_one_rank_and_says_so():
    with pytest.warns(RuntimeWarning, match="not started by an MPI launcher"):
        assert dist.init() == (0, 1)
    assert dist.rank() == 0 and dist.world_size() == 1 and dist.is_primary() and dist.is_initialized()
    dist.barrier()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dist.init() == (0, 1)  # a second call is a no-op


def test_launched_without_mpi4py_is_a_clear_error():
    code = ("import sys; sys.modules['mpi4py'] = None\n"
            "from fastlayers import distributed as d\n"
            "try:\n    d.init()\nexcept RuntimeError as e:\n    print('ERR', e)\n")
    env = dict(os.environ, OMPI_COMM_WORLD_SIZE="2")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert "ERR" in p.stdout and "mpi4py" in p.stdout and "fastlayers[mpi]" in p.stdout, p.stdout + p.stderr


def test_collectives_on_one_rank():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    r = dist.allreduce(a)
    assert np.array_equal(r, a) and r is not a
    assert dist.allreduce(a, op="mean", out=a) is a
    h = dist.allreduce_async(a, op="max")
    assert h.test() and np.array_equal(h.wait(), a)
    assert dist.broadcast(a) is a
    assert dist.broadcast_object({"k": 1}) == {"k": 1}
    assert dist.allgather_object(5) == [5]
    assert dist.allreduce(3.5) == 3.5


@pytest.mark.parametrize("call,exc,match", [
    (lambda: dist.allreduce(np.zeros(3, np.float32), op="avg"), ValueError, "op must be one of"),
    (lambda: dist.allreduce([1.0, 2.0]), TypeError, "NumPy or CuPy array"),
    (lambda: dist.allreduce(np.zeros(3, np.int32), op="mean"), TypeError, "floating-point"),
    (lambda: dist.allreduce(np.zeros(3, np.float32), out=np.zeros(4, np.float32)), ValueError, "out must be"),
    (lambda: dist.broadcast(np.zeros(3, np.float32), root=1), ValueError, "root must be a rank"),
    (lambda: dist.broadcast(np.zeros((3, 4), np.float32)[:, ::2]), ValueError, "C-contiguous"),
    (lambda: dist.allreduce(np.zeros(3, ">f4")), TypeError, "native-endian"),
])
def test_collective_errors_name_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_distributed_sampler_follows_pytorch_rules():
    torch_data = pytest.importorskip("torch.utils.data")
    for n, r, drop in [(10, 3, False), (10, 3, True), (9, 3, False), (2, 3, False), (11, 4, True), (0, 2, False)]:
        for rank in range(r):
            ours = dist.DistributedSampler(n, num_replicas=r, rank=rank, shuffle=False, drop_last=drop)
            theirs = torch_data.DistributedSampler(range(n), num_replicas=r, rank=rank, shuffle=False,
                                                   drop_last=drop)
            assert list(ours) == list(theirs), (n, r, drop, rank)
            assert len(ours) == len(theirs)


def test_distributed_sampler_shuffles_per_epoch_alike_on_every_rank():
    n, r = 103, 4
    samplers = [dist.DistributedSampler(n, num_replicas=r, rank=k, seed=5) for k in range(r)]
    seen = []
    for epoch in (0, 1):
        for s in samplers:
            s.set_epoch(epoch)
        parts = [s.indices() for s in samplers]
        allidx = np.concatenate(parts)
        assert len(allidx) == 104 and set(allidx.tolist()) == set(range(n))  # padded by one repeat
        seen.append(parts[0].copy())
    assert not np.array_equal(seen[0], seen[1])  # a new order each epoch
    with pytest.raises(ValueError, match="rank must be in"):
        dist.DistributedSampler(10, num_replicas=2, rank=2)
    batches = list(samplers[0].batches(10))
    assert [len(b) for b in batches] == [10, 10, 6]


def test_shard_splits_every_batch_exactly_once():
    for size in range(0, 12):
        for w in (1, 2, 3, 5):
            parts = [dist.shard(7, 7 + size, r, w) for r in range(w)]
            assert parts[0][0] == 7 and parts[-1][1] == 7 + size
            assert all(parts[i][1] == parts[i + 1][0] for i in range(w - 1))
            sizes = [b - a for a, b in parts]
            assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def _tiny_cnn(seed=0):
    return fl.nn.Sequential([fl.nn.Conv2d(1, 4, 3, rng=seed), fl.nn.ReLU(), fl.nn.Flatten(),
                             fl.nn.Linear(4 * 6 * 6, 5, rng=seed + 1)], loss="cross_entropy")


def _data(n=50):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 1, 8, 8)).astype(np.float32), rng.integers(0, 5, n)


def test_one_rank_data_parallel_is_plain_fit_bit_for_bit():
    x, y = _data()
    a, b = _tiny_cnn(), _tiny_cnn()
    ha = a.fit(x, y, epochs=2, batch_size=8, optimizer=fl.optim.SGD(a.parameters(), lr=0.05, momentum=0.9),
               seed=1, verbose=0)
    dp = dist.DataParallel(b, bucket_cap_mb=0.0005)  # several buckets
    hb = dp.fit(x, y, epochs=2, batch_size=8, optimizer=fl.optim.SGD(b.parameters(), lr=0.05, momentum=0.9),
                seed=1, verbose=0)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert np.array_equal(pa.data, pb.data)
        assert type(pb) is Parameter  # the hooks are gone after fit
    assert ha["loss"] == hb["loss"] and ha["accuracy"] == hb["accuracy"]
    assert dp.stats["steps"] == 14 and dp.stats["buckets"] > 1
    assert dp.evaluate(x, y) == pytest.approx(a.evaluate(x, y))


def test_fit_distributed_flag_and_resume_with_initial_epoch():
    x, y = _data()
    a, b = _tiny_cnn(), _tiny_cnn()
    opt_a = fl.optim.SGD(a.parameters(), lr=0.05, momentum=0.9)
    a.fit(x, y, epochs=3, batch_size=8, optimizer=opt_a, seed=4, verbose=0)
    opt_b = fl.optim.SGD(b.parameters(), lr=0.05, momentum=0.9)
    b.fit(x, y, epochs=1, batch_size=8, optimizer=opt_b, seed=4, verbose=0, distributed=True)
    dist.DataParallel(b).fit(x, y, epochs=3, batch_size=8, optimizer=opt_b, seed=4, verbose=0, initial_epoch=1)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert np.array_equal(pa.data, pb.data)
    with pytest.raises(ValueError, match="initial_epoch"):
        dist.DataParallel(b).fit(x, y, epochs=2, initial_epoch=2, verbose=0)


def test_data_parallel_fit_checks_its_arguments_as_fit_does():
    # One setup (TrainableModel._fit_setup) for both: the same errors, naming the argument.
    x, y = _data()
    for fit in (_tiny_cnn().fit, dist.DataParallel(_tiny_cnn()).fit):
        with pytest.raises(ValueError, match="validation_data must be a pair"):
            fit(x, y, epochs=1, validation_data=(x,), verbose=0)
        with pytest.raises(ValueError, match="validation_split=0.001 leaves 0"):
            fit(x, y, epochs=1, validation_split=0.001, verbose=0)
        with pytest.raises(TypeError, match="y must be an array of targets"):
            fit(x, None, epochs=1, verbose=0)


def test_checkpoint_round_trip_with_schedule(tmp_path):
    x, y = _data()
    m = _tiny_cnn()
    opt = fl.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
    sched = fl.optim.ExponentialLR(opt, 0.5)
    path = str(tmp_path / "c.ckpt")
    m.fit(x, y, epochs=2, batch_size=8, optimizer=opt, seed=2, verbose=0,
          callbacks=[sched, dist.Checkpoint(path, schedulers=[sched])])
    st = dist.load_checkpoint(path)
    assert st.epoch == 2 and st.optimizer.lr == pytest.approx(opt.lr) and type(st.optimizer) is fl.optim.SGD
    s2 = fl.optim.ExponentialLR(st.optimizer, 0.5)
    st.restore(s2)
    assert s2.t == 2 and s2.base_lr == 0.05
    for p, q in zip(m.parameters(), st.model.parameters()):
        assert np.array_equal(p.data, q.data)
        assert np.array_equal(opt.state[id(p)]["velocity"], st.optimizer.state[id(q)]["velocity"])
    with pytest.raises(ValueError, match="holds 1 learning-rate"):
        st.restore()


def test_reducer_hooks_buckets_frozen_and_shared_parameters():
    inp = fl.nn.Input((6,))
    shared = fl.nn.Linear(6, 6, rng=0)
    h = shared(shared(inp))  # one layer at two nodes: its gradient is assigned twice per backward
    frozen = fl.nn.Linear(6, 3, rng=1)
    out = fl.nn.Linear(3, 2, rng=2)(frozen(h))
    model = fl.nn.Model(inp, out, loss="cross_entropy")
    frozen.trainable = False
    ref = fl.nn.Model(inp, out, loss="cross_entropy")  # same layers: compute the plain gradients first
    x = np.random.default_rng(0).standard_normal((5, 6)).astype(np.float32)
    t = np.array([0, 1, 1, 0, 1])
    loss = ref.loss
    loss(ref.forward(x, training=True), t)
    ref.backward(loss.backward(), need_input_grad=False)
    want = {id(p): p.grad.copy() for p in ref.parameters() if p.trainable}
    red = Reducer(model.parameters(), bucket_cap_mb=1e-4)
    assert all(isinstance(p, _HookedParameter) for p in red.params)
    assert frozen.weight not in red.params and len(red.params) == 4
    for step in range(2):  # step 0 learns the counts (2 for the shared layer), step 1 overlaps
        red.start_step(0.25)
        loss(model.forward(x, training=True), t)
        model.backward(loss.backward(), need_input_grad=False)
        if step == 1:
            assert red.next_launch == len(red.buckets)  # every bucket left during backward
        red.finish()
        for p in red.params:
            np.testing.assert_allclose(p.grad, 0.25 * want[id(p)], rtol=1e-6, atol=1e-7)
    assert red.expected[id(shared.weight)] >= 2
    red.detach()
    assert all(type(p) is Parameter for p in model.parameters())
    assert shared.weight.grad is not None


def test_cli_checkpoint_and_resume_equal_an_uninterrupted_run(tmp_path, capsys):
    from fastlayers.cli import main

    base = ["train", "--model", "mlp", "--limit", "200", "--test-limit", "100", "--batch-size", "32", "-q"]
    a, b, c = (str(tmp_path / n) for n in ("a.npz", "b.npz", "c.ckpt"))
    assert main(base + ["--epochs", "3", "--save", a]) == 0
    assert main(base + ["--epochs", "1", "--checkpoint", c]) == 0
    assert main(base + ["--epochs", "3", "--resume", c, "--save", b]) == 0
    ma, mb = fl.nn.load_model(a), fl.nn.load_model(b)
    for p, q in zip(ma.parameters(), mb.parameters()):
        assert np.array_equal(p.data, q.data)
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == out[0] and out[0].startswith("test_accuracy=")
    assert main(base + ["--resume", str(tmp_path / "missing.ckpt")]) == 2
    assert "--resume" in capsys.readouterr().err
