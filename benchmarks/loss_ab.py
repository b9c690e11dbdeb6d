"""A/B of the default loss / elementwise / activation / gemm paths: an older build of fastlayers
against the current one, interleaved in one process (old, new, new, old, ...), medians over rounds.

    git clone -q --no-checkout . /tmp/ab_base && git -C /tmp/ab_base checkout -q <base commit>
    FASTLAYERS_CUDA=OFF pip install -q --no-build-isolation --no-deps --target /tmp/ab_site /tmp/ab_base
    mkdir -p /tmp/ab && cp -r /tmp/ab_site/fastlayers /tmp/ab/fastlayers_old
    MALLOC_MMAP_THRESHOLD_=2000000000 MALLOC_TRIM_THRESHOLD_=4000000000 \
        python benchmarks/loss_ab.py [ROUNDS [SUBSTRING]]

The old package is imported as fastlayers_old from FASTLAYERS_OLD_DIR (default /tmp/ab). The malloc
settings keep both sides' fresh outputs on the heap (no per-call page faults whose cost depends on
the allocation history rather than on the code). Prints, per case, each side's median time per
call, the median of the per-round ratios new/old with their min-max, and min(new)/min(old).
"""
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.environ.get("FASTLAYERS_OLD_DIR", "/tmp/ab"))
import fastlayers_old as old  # noqa: E402

import fastlayers as new  # noqa: E402

rng = np.random.default_rng(0)
def f32(*s): return rng.standard_normal(s).astype(np.float32)

cases = []
for shape in [(10,), (100, 10), (32, 64, 56, 56)]:
    a, b = f32(*shape), f32(*shape)
    t01 = (rng.random(shape) > 0.5).astype(np.float32)
    pm = np.where(rng.random(shape) < 0.5, -1.0, 1.0).astype(np.float32)
    tag = "x".join(map(str, shape))
    cases += [
        (f"mse_loss {tag}", lambda m, a=a, b=b: m.mse_loss(a, b)),
        (f"mse_loss_backward {tag}", lambda m, a=a, b=b: m.mse_loss_backward(a, b)),
        (f"bce_logits {tag}", lambda m, a=a, t=t01: m.binary_cross_entropy_with_logits(a, t)),
        (f"bce_logits_backward {tag}", lambda m, a=a, t=t01: m.binary_cross_entropy_with_logits_backward(a, t)),
        (f"logistic_loss {tag}", lambda m, a=a, t=pm: m.logistic_loss(a, t)),
        (f"hinge_loss_backward {tag}", lambda m, a=a, t=pm: m.hinge_loss_backward(a, t)),
        (f"add {tag}", lambda m, a=a, b=b: m.add(a, b)),
        (f"relu {tag}", lambda m, a=a: m.relu(a)),
        (f"relu_backward {tag}", lambda m, a=a, b=b: m.relu_backward(b, a)),
    ]
for n, c in [(1, 10), (100, 10), (4096, 1000)]:
    z = f32(n, c); y = rng.integers(0, c, n)
    cases += [(f"softmax_cross_entropy {n}x{c}", lambda m, z=z, y=y: m.softmax_cross_entropy(z, y)),
              (f"softmax_cross_entropy_backward {n}x{c}", lambda m, z=z, y=y: m.softmax_cross_entropy_backward(z, y))]
for shape in [(1, 64), (100, 200), (256, 256)]:
    a, b = f32(*shape), f32(shape[1], shape[1])
    cases.append((f"gemm {shape}x{shape[1]}", lambda m, a=a, b=b: m.gemm(a, b)))

def per_call(fn, target=0.02):
    fn()
    k, t = 1, 0.0
    while True:
        t0 = time.perf_counter()
        for _ in range(k): fn()
        t = time.perf_counter() - t0
        if t >= target: return t / k
        k *= 4 if t < target / 8 else 2

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 7
only = sys.argv[2] if len(sys.argv) > 2 else ""
cases = [c for c in cases if only in c[0]]
print(f"threads={new.get_num_threads()}  rounds={rounds} (interleaved old/new, median per-call time)")
print(f"{'case':42s} {'old':>10s} {'new':>10s} {'new/old':>8s} {'min-max':>13s} {'min/min':>8s}")
for name, f in cases:
    to, tn, ratios = [], [], []
    for r in range(rounds):
        if r % 2 == 0:
            o = per_call(lambda: f(old)); n_ = per_call(lambda: f(new))
        else:
            n_ = per_call(lambda: f(new)); o = per_call(lambda: f(old))
        to.append(o); tn.append(n_); ratios.append(n_ / o)
    def fmt(t): return f"{t*1e6:8.2f}us" if t < 1e-3 else f"{t*1e3:8.3f}ms"
    print(f"{name:42s} {fmt(statistics.median(to)):>10s} {fmt(statistics.median(tn)):>10s} "
          f"{statistics.median(ratios):8.3f} {min(ratios):6.3f}-{max(ratios):5.3f} {min(tn)/min(to):8.3f}", flush=True)
