"""Run by tests/test_leaks.py in a fresh process: RSS growth over N calls of each op family.

Each family cycles through its ops, one op per call: 1,000 warm-up calls (allocator pools,
grow-only workspaces, first-touch pages), then N calls, and reports the resident-set growth in KiB
as JSON on stdout. Most calls' outputs are a kilobyte or more, so a leaked output per call would
show as about N KiB; the error family raises in Python and in the C++ bindings.
"""

import gc
import json
import sys

import numpy as np

import fastlayers as fl
from fastlayers import _cpu, nn


def rss_kib() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096 // 1024


def families():
    rng = np.random.default_rng(0)
    r = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    x, g = r(8, 64), r(8, 64)
    img, w = r(2, 3, 12, 12), r(4, 3, 3, 3)
    gy = r(2, 4, 10, 10)
    a, b = r(16, 32), r(32, 16)
    labels = np.arange(8) % 64
    p, grad, m, v, vel = r(256), r(256), np.zeros(256, np.float32), np.zeros(256, np.float32), np.zeros(256, np.float32)
    bad_shape = (1, 1, 5, 5, 1, 3, 3, 4, 3, 1, 1, 0, 0, 1, 1, 1)  # P disagrees: the binding raises
    lin = nn.Sequential([nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)])

    def errors():
        for call in (lambda: fl.conv2d(img, w, stride=2**64), lambda: fl.relu(None),
                     lambda: _cpu.conv2d_workspace_floats(bad_shape, 0, 1),
                     lambda: fl.sgd_update(p[1:], p[:-1], lr=0.1)):
            try:
                call()
            except (TypeError, ValueError):
                pass

    r16 = r(16, 16)
    y10, pm1, go, w1, w16 = r(8, 10), np.sign(g) + (g == 0), r(2, 3, 6, 6), r(4, 8, 3), r(16, 64)
    # Each family: a list of calls, cycled one per iteration.
    return {
        "activation": [lambda: fl.relu(x), lambda: fl.relu_backward(g, x), lambda: fl.sigmoid(x),
                       lambda: fl.tanh_backward(g, x), lambda: fl.softmax(x), lambda: fl.log_softmax_backward(g, x)],
        "conv": [lambda: fl.conv2d(img, w), lambda: fl.conv2d_backward(gy, img, w), lambda: fl.conv1d(x[None], w1)],
        "pool": [lambda: fl.max_pool2d(img, 2), lambda: fl.max_pool2d_backward(go, img, 2),
                 lambda: fl.avg_pool2d(img, 3), lambda: fl.global_avg_pool2d_backward(img[:, :, 0, 0], img)],
        "gemm-linear": [lambda: fl.gemm(a, b), lambda: fl.gemm_backward(r16, a, b), lambda: fl.linear(x, w16),
                        lambda: fl.linear_backward(x[:, :16], x, w16)],
        "loss": [lambda: fl.softmax_cross_entropy(x, labels), lambda: fl.softmax_cross_entropy_backward(x, labels),
                 lambda: fl.mse_loss_backward(x, g), lambda: fl.hinge_loss_backward(x, pm1)],
        "dropout-add": [lambda: fl.dropout(x, 0.5, seed=1), lambda: fl.dropout_backward(g, 0.5, seed=1),
                        lambda: fl.add(x, g), lambda: fl.add_backward(g)],
        "optim": [lambda: fl.sgd_update(p, grad, vel, lr=1e-3, momentum=0.9),
                  lambda: fl.adam_update(p, grad, m, v, step=1, lr=1e-3)],
        "errors": [errors],
        "layers": [lambda: lin.forward(x), lambda: lin.backward(y10)],
    }


def main(n: int):
    # One thread: a loaded CI machine makes two-thread teams on tiny problems wait on each other
    # (milliseconds per call); memory is what is measured here, and the same code paths run.
    fl.set_num_threads(1)
    out = {}
    for name, calls in families().items():
        k = len(calls)
        for i in range(1000):
            calls[i % k]()
        gc.collect()
        before = rss_kib()
        for i in range(n):
            calls[i % k]()
        gc.collect()
        out[name] = rss_kib() - before
    print(json.dumps(out))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
