"""The `fastlayers` command line.

    fastlayers train [--model cnn|mlp|lenet5|resnet|perceptron|logreg] [--epochs N] [--batch-size B]
                     [--lr LR] [--device cpu|cuda] [--data DIR] [--save PATH] [--seed S] [--limit N]
    fastlayers train --model transfer|unet|voxels [--epochs N] [--lr LR] [--seed S] [--plot PATH]
    fastlayers bench [...]          # the benchmark suite (fastlayers.bench)

`train` trains on the MNIST subset embedded in the package (4,000 train / 1,000 held-out test images)
or, with --data DIR, on the full MNIST read from (or downloaded into) DIR. Progress goes to stderr
(a progress bar on a terminal) and stdout; the last line of stdout is exactly `test_accuracy=<fraction>`.

The demos (fastlayers.demos) train on data the package carries or generates: `transfer` (a CNN
pre-trained on digits 0-4, a new head for 5-9 from 50 examples per class, frozen then fine-tuned;
last line test_accuracy=<fine-tuned>), `unet` (U-Net segmentation of synthetic shapes; last line
test_miou=<f>; --plot PATH saves inputs, true and predicted masks) and `voxels` (a Conv3d classifier
of synthetic voxel shapes; last line test_accuracy=<f>).
"""

from __future__ import annotations

import argparse
import sys
import time

from .demos import DEMOS

# Per-model training defaults (SGD with momentum 0.9, learning rate × gamma after every epoch). The
# CNN's were chosen so that it reaches >= 0.97 on the 1,000 held-out images of the embedded subset
# (0.977-0.978 for seeds 0, 1, 2) in 5 epochs.
DEFAULTS = {
    "cnn": dict(epochs=5, batch_size=64, lr=0.04, gamma=0.7),
    "lenet5": dict(epochs=8, batch_size=32, lr=0.05, gamma=0.8),
    "resnet": dict(epochs=6, batch_size=32, lr=0.02, gamma=0.8),
    "mlp": dict(epochs=10, batch_size=64, lr=0.05, gamma=0.85),
    "perceptron": dict(epochs=5, batch_size=32, lr=0.01, gamma=1.0),
    "logreg": dict(epochs=10, batch_size=64, lr=0.05, gamma=0.9),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fastlayers", description="fastlayers: train models, run benchmarks")
    sub = p.add_subparsers(dest="command", metavar="{train,bench}")
    sub.required = True
    t = sub.add_parser("train", help="train a model on MNIST (the embedded subset by default)",
                       description="Train a model on MNIST; the last line of stdout is test_accuracy=<fraction>.")
    t.add_argument("--model", default="cnn", choices=sorted(DEFAULTS) + list(DEMOS),
                   help="which model (default: cnn), or one of the demos transfer, unet, voxels")
    t.add_argument("--epochs", type=int, help="epochs (default per model; cnn: 5)")
    t.add_argument("--batch-size", type=int, help="mini-batch size (default per model; cnn: 64)")
    t.add_argument("--lr", type=float, help="initial learning rate (default per model; cnn: 0.04)")
    t.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    t.add_argument("--lr-decay", type=float, help="multiply the learning rate by this after each epoch (default per model; cnn: 0.7)")
    t.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="cpu (default) or cuda")
    t.add_argument("--data", metavar="DIR", help="train on the full MNIST IDX files in DIR (downloaded when missing)")
    t.add_argument("--no-download", action="store_true", help="with --data: never download")
    t.add_argument("--save", metavar="PATH", help="save the trained model (architecture + weights) to PATH")
    t.add_argument("--seed", type=int, default=0, help="seed for the initial weights and the shuffling (default 0)")
    t.add_argument("--limit", type=int, help="use only the first N training images (smoke runs)")
    t.add_argument("--test-limit", type=int, help="evaluate on only the first N test images")
    t.add_argument("--threads", type=int, help="CPU threads for the kernels (default: OMP_NUM_THREADS or all)")
    t.add_argument("--plot", metavar="PATH", help="unet demo: save a PNG of inputs, true and predicted masks")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress output, only the result line")
    sub.add_parser("bench", help="run the benchmark suite (fastlayers bench --help for its options)", add_help=False)
    return p


def _load_data(args):
    import numpy as np

    from . import data

    if args.data:
        (xtr, ytr), (xte, yte) = data.load_mnist(args.data, download=not args.no_download)
        source = f"MNIST from {args.data}"
    else:
        (xtr, ytr), (xte, yte) = data.load_mnist_embedded()
        source = "the embedded MNIST subset"
    if args.limit is not None:
        if args.limit < 1:
            raise ValueError(f"--limit must be >= 1, got {args.limit}")
        xtr, ytr = xtr[:args.limit], ytr[:args.limit]
    if args.test_limit is not None:
        if args.test_limit < 1:
            raise ValueError(f"--test-limit must be >= 1, got {args.test_limit}")
        xte, yte = xte[:args.test_limit], yte[:args.test_limit]
    xtr, xte = data.standardize(xtr, xte)
    return (xtr[:, None], np.asarray(ytr)), (xte[:, None], np.asarray(yte)), source


def _check_options(args, epochs, batch_size, lr, gamma):
    """Every option checked before any data is read or any training runs, named as typed."""
    import math
    import os

    if epochs < 1:
        raise ValueError(f"--epochs must be >= 1, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"--lr must be a finite number > 0, got {lr}")
    if not (0 <= args.momentum < 1):
        raise ValueError(f"--momentum must be in [0, 1), got {args.momentum}")
    if not (gamma > 0 and math.isfinite(gamma)):
        raise ValueError(f"--lr-decay must be a finite number > 0, got {gamma}")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    if args.threads is not None:
        from ._threads import MAX_THREADS

        if not 1 <= args.threads <= MAX_THREADS:
            raise ValueError(f"--threads must be in [1, {MAX_THREADS}], got {args.threads}")
    if args.save:
        folder = os.path.dirname(os.path.abspath(args.save))
        if os.path.isdir(args.save) or not os.path.isdir(folder):
            raise ValueError(f"--save {args.save}: not a file in an existing folder (the model is saved there "
                             f"after training)")


def _demo(args) -> int:
    from . import demos

    for opt, val in (("--data", args.data), ("--save", args.save), ("--lr-decay", args.lr_decay)):
        if val is not None:
            raise ValueError(f"{opt} does not apply to the {args.model} demo")
    if args.model == "transfer" and (args.limit is not None or args.test_limit is not None):
        raise ValueError("--limit / --test-limit do not apply to the transfer demo (it uses all of the embedded "
                         "subset's 0-4 digits and 50 examples of each of 5-9)")
    if args.plot is not None and args.model != "unet":
        raise ValueError("--plot applies to the unet demo only")
    if args.device != "cpu":
        raise ValueError(f"the {args.model} demo runs on the CPU (--device cpu)")
    kw = {"seed": args.seed, "quiet": args.quiet}
    if args.epochs is not None:
        if args.epochs < 1:
            raise ValueError(f"--epochs must be >= 1, got {args.epochs}")
        kw.update({"epochs": args.epochs} if args.model != "transfer" else
                  {"head_epochs": args.epochs, "finetune_epochs": args.epochs})
    if args.batch_size is not None:
        if args.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
        kw["batch_size"] = args.batch_size
    if args.lr is not None:
        if not args.lr > 0:
            raise ValueError(f"--lr must be a finite number > 0, got {args.lr}")
        kw["lr"] = args.lr
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    for opt, val, key in (("--limit", args.limit, "n_train"), ("--test-limit", args.test_limit, "n_test")):
        if val is not None:
            if val < 1:
                raise ValueError(f"{opt} must be >= 1, got {val}")
            kw[key] = val  # unet / voxels: the number of generated training / held-out samples
    if args.plot:
        import os

        folder = os.path.dirname(os.path.abspath(args.plot))
        if not os.path.isdir(folder):
            raise ValueError(f"--plot {args.plot}: the folder does not exist")
        kw["plot"] = args.plot
    if args.threads is not None:
        from . import set_num_threads

        set_num_threads(args.threads)
    result = demos.run(args.model, **kw)
    if args.model == "unet":
        print(f"test_miou={result['test_miou']:.4f}", flush=True)
    else:
        if args.model == "transfer" and not args.quiet:
            print(f"frozen_accuracy={result['frozen_accuracy']:.4f} scratch_accuracy={result['scratch_accuracy']:.4f}",
                  flush=True)
        print(f"test_accuracy={result['test_accuracy']:.4f}", flush=True)
    return 0


def train(args) -> int:
    from . import nn, optim

    if args.model in DEMOS:
        return _demo(args)
    d = DEFAULTS[args.model]
    epochs = d["epochs"] if args.epochs is None else args.epochs
    batch_size = d["batch_size"] if args.batch_size is None else args.batch_size
    lr = d["lr"] if args.lr is None else args.lr
    gamma = d["gamma"] if args.lr_decay is None else args.lr_decay
    _check_options(args, epochs, batch_size, lr, gamma)
    if args.threads is not None:
        from . import set_num_threads

        set_num_threads(args.threads)

    (xtr, ytr), (xte, yte), source = _load_data(args)
    model = nn.models.build(args.model, seed=args.seed, num_classes=10, input_shape=xtr.shape[1:])
    model.to(args.device)  # a clear RuntimeError when CUDA is not usable
    opt = optim.SGD(model.parameters(), lr=lr, momentum=args.momentum)
    callbacks = [optim.ExponentialLR(opt, gamma)] if gamma != 1.0 else []
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    say(f"model {args.model}: {model.num_parameters():,} parameters; data: {source}, "
        f"{len(xtr)} train / {len(xte)} test images; device {args.device}")
    say(f"SGD lr={lr} momentum={args.momentum} lr x{gamma}/epoch, {epochs} epochs, batch size {batch_size}, "
        f"seed {args.seed}")
    t0 = time.perf_counter()
    model.fit(xtr, ytr, epochs=epochs, batch_size=batch_size, optimizer=opt, callbacks=callbacks,
              seed=args.seed, verbose=0 if args.quiet else 1)
    train_s = time.perf_counter() - t0
    result = model.evaluate(xte, yte)
    say(f"trained in {train_s:.1f} s; test_loss={result['loss']:.4f}")
    if args.save:
        model.to("cpu").save(args.save)
        say(f"saved the model to {args.save}")
    print(f"test_accuracy={result['accuracy']:.4f}", flush=True)
    return 0


def bench(argv) -> int:
    try:
        from . import bench as _bench
    except ImportError as e:
        print(f"fastlayers bench: the benchmark suite (fastlayers.bench) is not available in this "
              f"installation ({e})", file=sys.stderr)
        return 2
    rc = _bench.main(list(argv))
    return 0 if rc is None else int(rc)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":  # bench parses its own options
        return bench(argv[1:])
    args = _parser().parse_args(argv)
    try:
        return train(args)
    except (ValueError, TypeError, RuntimeError, OSError) as e:
        print(f"fastlayers train: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
