"""Train the course CNN on digits 0-4 of the embedded MNIST subset, then freeze its convolutional
part and retrain only the dense head on digits 5-9 (transfer learning with `trainable = False`).

    python examples/transfer_learning.py
"""

import numpy as np

import fastlayers as fl
from fastlayers import data, nn, optim

(xtr, ytr), (xte, yte) = data.load_mnist_embedded()
xtr, xte = data.standardize(xtr, xte)
xtr, xte = xtr[:, None], xte[:, None]

model = nn.models.mnist_cnn(seed=0)
model.summary()
first = ytr < 5
opt = optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
model.fit(xtr[first], ytr[first], epochs=3, batch_size=32, optimizer=opt, validation_split=0.1)

for layer in model.layers[:6]:  # conv, pool, relu, conv, pool, relu
    layer.trainable = False
model.layers[-1] = nn.Linear(200, 10, rng=np.random.default_rng(1))  # a fresh head
second = ytr >= 5
opt = optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
model.fit(xtr[second], ytr[second], epochs=3, batch_size=32, optimizer=opt,
          callbacks=[nn.EarlyStopping(patience=1, restore_best_weights=True)], validation_split=0.1)
test = yte >= 5
print("accuracy on digits 5-9:", model.evaluate(xte[test], yte[test])["accuracy"])
model.save("cnn_transfer.npz")
print("reloaded:", nn.load_model("cnn_transfer.npz").evaluate(xte[test], yte[test])["accuracy"])
