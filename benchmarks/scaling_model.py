"""A first-order model of data-parallel step time and efficiency on 8 GPUs per node x 1..64 nodes,
for ResNet-50 and the course CNN (docs/scaling.md explains the assumptions and their sources).

    python benchmarks/scaling_model.py [--overlap 0.9] [--markdown]

Step time = compute + exposed communication. Communication is NCCL's hierarchical all-reduce of the
float32 gradients: reduce-scatter and all-gather inside the node over NVLink, and a ring (or tree,
whichever is faster) between nodes over the network for each GPU's 1/8 share (rail-optimised: one
NIC per GPU) or, for a node with one Ethernet NIC, for the whole gradient through that NIC. Its
exposed part is what backward cannot hide: max(T_comm - overlap x T_backward, T_comm / buckets),
with T_backward = 2/3 of compute and `overlap` the fraction of backward that communication can use
(measured on CPU ranks by benchmarks/scaling.py; on GPUs NCCL runs on its own stream, so 0.9 is
the default). Nothing here ran on a GPU: the inputs are published figures (see docs/scaling.md).
"""

from __future__ import annotations

import argparse
import math

GB = 1e9
# Links: effective bandwidth (bytes/s) and per-message latency (s).
LINKS = {
    "NVLink3 (A100)": dict(busbw=230 * GB, lat=8e-6),          # NCCL all-reduce busbw within 8 GPUs
    "NVLink4 (H100)": dict(busbw=450 * GB, lat=6e-6),
    "IB HDR 200 Gb/s per GPU": dict(bw=22 * GB, lat=5e-6, rails=8),
    "IB NDR 400 Gb/s per GPU": dict(bw=45 * GB, lat=5e-6, rails=8),
    "Ethernet 100 Gb/s per node": dict(bw=11 * GB, lat=20e-6, rails=1),
    "Ethernet 400 Gb/s per node": dict(bw=45 * GB, lat=20e-6, rails=1),
}
# Models: gradient bytes (float32), compute seconds per step per GPU, per-GPU batch.
MODELS = {
    # 25.6 M parameters; ~2,500 images/s per A100 with mixed precision at batch 256 (NVIDIA's
    # DeepLearningExamples figures): 0.102 s per step.
    "ResNet-50, batch 256/GPU": dict(grad_bytes=25.6e6 * 4, compute=256 / 2500),
    "ResNet-50, batch 32/GPU": dict(grad_bytes=25.6e6 * 4, compute=32 / 2000 + 0.002),
    # the course CNN (mnist_cnn): 259,210 parameters; ~24 MFLOP per sample for a training step;
    # at batch 64 a GPU step is launch-bound, ~0.5 ms (assumed: ~40 kernel launches).
    "course CNN, batch 64/GPU": dict(grad_bytes=259210 * 4, compute=0.5e-3),
}
GPUS_PER_NODE = 8
BUCKET_BYTES = 25e6  # NCCL/DDP-sized buckets on GPUs (PyTorch DDP's default 25 MB)


def allreduce_time(nbytes, nodes, intra, inter):
    g = GPUS_PER_NODE
    t = 2 * (g - 1) / g * nbytes / intra["busbw"] + 2 * math.log2(g) * intra["lat"]
    if nodes > 1:
        share = nbytes / g if inter["rails"] == g else nbytes  # rail-optimised NICs carry 1/8 each
        ring = 2 * (nodes - 1) / nodes * share / inter["bw"] + 2 * (nodes - 1) * inter["lat"]
        tree = 2 * share / inter["bw"] + 2 * math.log2(nodes) * inter["lat"]  # pipelined double binary tree
        t += min(ring, tree)
    return t


def step(model, nodes, intra, inter, overlap):
    m = MODELS[model]
    comm = allreduce_time(m["grad_bytes"], nodes, LINKS[intra], LINKS[inter])
    buckets = max(1, math.ceil(m["grad_bytes"] / BUCKET_BYTES))
    exposed = max(comm - overlap * (2 / 3) * m["compute"], comm / buckets)
    t = m["compute"] + exposed
    return t, comm, m["compute"] / t


def table(overlap=0.9, markdown=True):
    rows = []
    for model in MODELS:
        for intra, inter in (("NVLink3 (A100)", "IB HDR 200 Gb/s per GPU"), ("NVLink4 (H100)", "IB NDR 400 Gb/s per GPU"),
                             ("NVLink3 (A100)", "Ethernet 100 Gb/s per node")):
            cells = []
            for nodes in (1, 2, 4, 8, 16, 32, 64):
                t, comm, eff = step(model, nodes, intra, inter, overlap)
                cells.append(f"{t * 1e3:.2f} / {comm * 1e3:.2f} / {100 * eff:.0f}%")
            rows.append((model, f"{intra} + {inter}", cells))
    head = "| model | links | " + " | ".join(f"{n} node{'s' if n > 1 else ''}" for n in (1, 2, 4, 8, 16, 32, 64)) + " |"
    out = [head, "|---|---|" + "---:|" * 7]
    for model, links, cells in rows:
        out.append(f"| {model} | {links} | " + " | ".join(cells) + " |")
    return "\n".join(out)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--overlap", type=float, default=0.9)
    a = ap.parse_args()
    print("cells: step ms / all-reduce ms / scaling efficiency (compute / step)")
    print(table(a.overlap))
