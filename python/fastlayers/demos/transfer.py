"""Transfer learning with few training examples (the course's slide), on the embedded MNIST.

1. Pre-train a CNN (the course's: conv 32@5x5, max-pool, conv 64@5x5, max-pool, dense 200) on the
   digits 0-4 of the embedded training set (about 2,000 images).
2. Target task: the digits 5-9 with only `shots` labelled examples per class (default 20: 100 images;
   measured here: with 50 per class the network trained from scratch is as good or better).
   Keras's recipe, in fastlayers' functional API:
       x = base.get_layer("flatten").output            # the convolutional body's features
       x = nn.ReLU()(nn.Linear(1024, 200)(x))          # a new head: Dense(200, activation='relu')
       out = nn.Linear(200, 5, name="new_head")(x)     #   and Dense(5)
       model = nn.Model(base.input, out)
       model.freeze(up_to="flatten")                   # train the head only ("frozen transfer")
   then unfreeze and fine-tune the whole net at a lower learning rate ("fine-tuned").
3. Baseline: the same network trained from scratch on the same few examples ("from scratch").
Accuracies on the held-out 5-9 digits of the embedded test set (about 500 images).
"""

from __future__ import annotations

import time

import numpy as np

from .. import data, nn, optim


def cnn(num_classes: int, seed) -> nn.Model:
    """The course CNN as a functional graph with named layers (the transfer demo's body + head)."""
    rng = nn.init.as_generator(seed)
    inp = nn.Input((1, 28, 28), name="image")
    x = nn.Conv2d(1, 32, 5, rng=rng, name="conv1")(inp)
    x = nn.ReLU(name="conv1_relu")(nn.MaxPool2d(2, name="pool1")(x))
    x = nn.Conv2d(32, 64, 5, rng=rng, name="conv2")(x)
    x = nn.ReLU(name="conv2_relu")(nn.MaxPool2d(2, name="pool2")(x))
    x = nn.Flatten(name="flatten")(x)
    x = nn.ReLU(name="fc1_relu")(nn.Linear(1024, 200, rng=rng, name="fc1")(x))
    out = nn.Linear(200, num_classes, rng=rng, name="head")(x)
    return nn.Model(inp, out, loss="cross_entropy")


def _fit(model, x, y, epochs, lr, batch_size, seed, momentum=0.9):
    opt = optim.SGD([p for p in model.parameters() if p.trainable], lr=lr, momentum=momentum)
    model.fit(x, y, epochs=epochs, batch_size=batch_size, optimizer=opt, seed=seed, verbose=0)
    return model


def run(seed: int = 0, shots: int = 20, pretrain_epochs: int = 8, head_epochs: int = 30, finetune_epochs: int = 30,
        batch_size: int = 25, lr: float = 0.03, finetune_lr: float | None = None, quiet: bool = False,
        **_ignored) -> dict:
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    t0 = time.perf_counter()
    (xtr, ytr), (xte, yte) = data.load_mnist_embedded()
    xtr, xte = data.standardize(xtr, xte)
    xtr, xte = xtr[:, None], xte[:, None]
    src = ytr < 5
    rng = np.random.default_rng(seed)
    few = np.concatenate([rng.permutation(np.flatnonzero(ytr == d))[:shots] for d in range(5, 10)])
    rng.shuffle(few)
    x_few, y_few = xtr[few], ytr[few] - 5
    tgt = yte >= 5
    x_test, y_test = xte[tgt], yte[tgt] - 5
    say(f"source task: digits 0-4, {int(src.sum())} images; target task: digits 5-9, {len(few)} labelled "
        f"images ({shots} per class), {len(x_test)} held-out test images")

    base = cnn(5, seed)
    _fit(base, xtr[src], ytr[src], pretrain_epochs, 0.04, 64, seed)
    src_acc = base.evaluate(xte[yte < 5], yte[yte < 5])["accuracy"]
    say(f"pre-trained on 0-4 ({pretrain_epochs} epochs): accuracy on held-out 0-4 {src_acc:.4f}")

    # the course's Keras recipe: base.output of the body, a new head, freeze, train; then fine-tune
    rng = nn.init.as_generator(seed + 1)
    x = base.get_layer("flatten").output  # the convolutional body's features
    x = nn.ReLU(name="new_fc_relu")(nn.Linear(1024, 200, rng=rng, name="new_fc")(x))
    out = nn.Linear(200, 5, rng=rng, name="new_head")(x)
    model = nn.Model(base.input, out, loss="cross_entropy")
    model.freeze(up_to="flatten")
    _fit(model, x_few, y_few, head_epochs, lr, batch_size, seed)
    frozen = model.evaluate(x_test, y_test)["accuracy"]
    say(f"frozen body + new head ({head_epochs} epochs): test accuracy {frozen:.4f}")
    model.unfreeze()
    ft_lr = lr / 3 if finetune_lr is None else finetune_lr
    _fit(model, x_few, y_few, finetune_epochs, ft_lr, batch_size, seed + 1)
    finetuned = model.evaluate(x_test, y_test)["accuracy"]
    say(f"fine-tuned ({finetune_epochs} more epochs, lr {ft_lr:.3g}): test accuracy {finetuned:.4f}")

    scratch_model = cnn(5, seed + 2)
    _fit(scratch_model, x_few, y_few, head_epochs + finetune_epochs, lr, batch_size, seed)
    scratch = scratch_model.evaluate(x_test, y_test)["accuracy"]
    say(f"from scratch on the same {len(few)} images ({head_epochs + finetune_epochs} epochs): test accuracy "
        f"{scratch:.4f}")
    seconds = time.perf_counter() - t0
    say(f"transfer demo in {seconds:.1f} s")
    return {"source_accuracy": src_acc, "frozen_accuracy": frozen, "finetuned_accuracy": finetuned,
            "scratch_accuracy": scratch, "seconds": seconds, "test_accuracy": finetuned, "model": model}
