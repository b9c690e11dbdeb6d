"""Graph models (the functional API): equality with the Sequential/Residual models, gradients of
shared layers, diamonds, merge layers and multi-input/multi-output graphs against finite differences
(float64, reference ops), nesting, save/load, freezing, get_layer, sub-models, transfer learning,
what the executor frees, and errors."""

from __future__ import annotations

import gc
import sys
import weakref

import numpy as np
import pytest

import fastlayers as fl
from fastlayers import nn, optim

from ..helpers import assert_grad_matches
from .test_layers import _to64, check_grads


def _as_graph(seq, x):
    """Call a Sequential's own layers (Residual blocks spelled out with Add) on symbolic tensor x."""
    for layer in seq.layers:
        if isinstance(layer, nn.Residual):
            fx = x
            for inner in layer.body.layers:
                fx = inner(fx)
            skip = x if layer.projection is None else layer.projection(x)
            x = nn.Add()([fx, skip])
        else:
            x = layer(x)
    return x


def _digits(rng, n=48, size=12):
    """A small 3-class image problem (a bright row, column or diagonal) that the nets below learn."""
    y = rng.integers(0, 3, n)
    x = rng.standard_normal((n, 1, size, size)).astype(np.float32) * 0.3
    for i, c in enumerate(y):
        k = rng.integers(0, size)
        if c == 0:
            x[i, 0, k, :] += 1.5
        elif c == 1:
            x[i, 0, :, k] += 1.5
        else:
            x[i, 0, np.arange(size), np.arange(size)] += 1.5
    return x, y


# --- the same network as Sequential/Residual and as a graph ----------------------------------------

def test_graph_equals_sequential_resnet_outputs_gradients_and_fit(rng):
    x, y = _digits(rng)
    seq = nn.models.small_resnet(width=4, seed=5, input_shape=(1, 12, 12))
    twin = nn.models.small_resnet(width=4, seed=5, input_shape=(1, 12, 12))  # same weights, other objects
    inp = nn.Input((1, 12, 12))
    model = nn.Model(inp, _as_graph(twin, inp), loss="cross_entropy")
    assert len(model.layers) == 21  # stem 2, blocks 4 + 5 + 5 (conv relu conv [projection] add), relus 3, head 2
    assert [p.shape for p in model.parameters()] == [p.shape for p in seq.parameters()]

    out_s, out_g = seq.forward(x[:5], training=True), model.forward(x[:5], training=True)
    np.testing.assert_array_equal(out_g, out_s)
    g = rng.standard_normal(out_s.shape).astype(np.float32)
    gx_s, gx_g = seq.backward(g), model.backward(g)
    np.testing.assert_array_equal(gx_g, gx_s)
    for p, q in zip(model.parameters(), seq.parameters()):
        np.testing.assert_array_equal(p.grad, q.grad)

    kw = dict(epochs=3, batch_size=16, validation_split=0.25, seed=1, verbose=0)
    h_s = seq.fit(x, y, optimizer=optim.SGD(seq.parameters(), lr=0.05, momentum=0.9), **kw)
    h_g = model.fit(x, y, optimizer=optim.SGD(model.parameters(), lr=0.05, momentum=0.9), **kw)
    assert h_g.history == h_s.history
    assert model.evaluate(x, y) == seq.evaluate(x, y)
    np.testing.assert_array_equal(model.predict(x), seq.predict(x))


# --- gradients against finite differences (float64, reference ops) ---------------------------------

def _chain(*layers):
    def build(x):
        for layer in layers:
            x = layer(x)
        return x
    return build


def _diamond(merge, rng):
    inp = nn.Input(5)
    a = nn.Linear(5, 4, rng=rng)(inp)
    b = nn.Tanh()(a)                # a feeds three layers: the gradient into `a` is a sum of three
    c = nn.Sigmoid()(a)
    d = nn.Linear(4, 4, rng=rng)(a)
    m = merge([b, c, d])
    return nn.Model(inp, nn.Linear(m_width(merge, 4), 3, rng=rng)(m))


def m_width(merge, w):
    return 3 * w if isinstance(merge, nn.Concatenate) else w


GRAPHS = {
    "diamond_add": lambda rng: _diamond(nn.Add(), rng),
    "diamond_multiply": lambda rng: _diamond(nn.Multiply(), rng),
    "diamond_concat_last_axis": lambda rng: _diamond(nn.Concatenate(axis=-1), rng),
    "input_read_twice_and_output_of_merge": lambda rng: _tensor_used_by_merge_twice(rng),
    "shared_linear_twice_in_a_chain": lambda rng: _shared_chain(rng),
    "shared_conv_on_two_branches": lambda rng: _shared_conv_branches(rng),
    "conv_branches_concat_channels": lambda rng: _inception_like(rng),
    "nested_sequential_and_model_called_twice": lambda rng: _nested(rng),
}


def _tensor_used_by_merge_twice(rng):
    inp = nn.Input(4)
    h = nn.Linear(4, 4, rng=rng)(inp)
    return nn.Model(inp, nn.Multiply()([h, h, inp]))  # x * x * input: one tensor twice in one merge


def _shared_chain(rng):
    dense = nn.Linear(4, 4, rng=rng)
    inp = nn.Input(4)
    return nn.Model(inp, dense(nn.Tanh()(dense(inp))))


def _shared_conv_branches(rng):
    conv = nn.Conv2d(2, 2, 3, padding=1, rng=rng)
    inp = nn.Input((2, 5, 4))
    left = conv(inp)
    right = conv(nn.Tanh()(nn.Conv2d(2, 2, 1, rng=rng)(inp)))
    return nn.Model(inp, nn.Add()([left, nn.Sigmoid()(right)]))


def _inception_like(rng):
    inp = nn.Input((3, 5, 5))
    b1 = nn.Conv2d(3, 2, 1, rng=rng)(inp)
    b2 = nn.Conv2d(3, 3, 3, padding=1, rng=rng)(nn.Conv2d(3, 3, 1, rng=rng)(inp))
    b3 = nn.Conv2d(3, 1, 1, rng=rng)(nn.MaxPool2d(3, stride=1, padding=1)(inp))
    cat = nn.Concatenate()([b1, b2, b3])           # axis=1: channels
    return nn.Model(inp, nn.Linear(6, 2, rng=rng)(nn.GlobalAvgPool2d()(nn.Tanh()(cat))))


def _nested(rng):
    block_in = nn.Input(4)
    block = nn.Model(block_in, nn.Add()([block_in, nn.Linear(4, 4, rng=rng)(nn.Tanh()(block_in))]))
    seq = nn.Sequential([nn.Linear(3, 4, rng=rng), nn.Sigmoid()])
    inp = nn.Input(3)
    x = block(block(seq(inp)))                     # the inner model twice: shared weights
    return nn.Model(inp, nn.Linear(4, 2, rng=rng)(x))


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_graph_backward_matches_finite_differences(name, rng):
    model = GRAPHS[name](rng)
    shape = (3,) + (model.input_shape)
    check_grads(model, shape, rng, name)


def _check_grads_multi(model, shapes, rng, what):
    """Gradients of sum_k sum(out_k * r_k) for every input and parameter of a multi-input (and
    possibly multi-output) model, float64 through the reference ops."""
    with nn.use_ops(fl.reference):
        _to64(model)
        xs = [rng.standard_normal(s) for s in shapes]
        outs = model.forward(xs, training=True)
        outs = outs if isinstance(outs, list) else [outs]
        rs = [rng.standard_normal(o.shape) for o in outs]

        def value():
            ys = model.forward(xs, training=True)
            return float(sum(np.sum(y * r) for y, r in zip(ys if isinstance(ys, list) else [ys], rs)))

        grads = model.backward(rs if isinstance(model.output, list) else rs[0])
        for i, gx in enumerate(grads):
            def f(v, i=i):
                old, xs[i] = xs[i], v
                try:
                    return value()
                finally:
                    xs[i] = old
            assert_grad_matches(gx, f, xs[i], f"{what}: grad input {i}")
        for pname, p in model.named_parameters():
            def f(v, p=p):
                old, p.data = p.data, v
                try:
                    return value()
                finally:
                    p.data = old
            assert_grad_matches(p.grad, f, p.data, f"{what}: grad {pname}")


def _two_in_two_out(rng):
    img = nn.Input((2, 6, 6), name="image")
    vec = nn.Input(3, name="meta")
    h = nn.Flatten()(nn.MaxPool2d(2)(nn.Conv2d(2, 3, 3, padding=1, rng=rng)(img)))   # (N, 27)
    v = nn.Tanh()(nn.Linear(3, 5, rng=rng)(vec))
    both = nn.Concatenate()([h, v])                                                  # (N, 32)
    cls = nn.Linear(32, 3, rng=rng, name="classes")(both)
    reg = nn.Linear(5, 1, rng=rng, name="value")(nn.Multiply()([v, nn.Sigmoid()(v)]))
    return nn.Model([img, vec], [cls, reg])


def test_multi_input_multi_output_gradients(rng):
    _check_grads_multi(_two_in_two_out(rng), [(2, 2, 6, 6), (2, 3)], rng, "two in, two out")


@pytest.mark.parametrize("merge, shapes", [(nn.Add, [(2, 3, 2), (2, 3, 2)]),
                                           (nn.Multiply, [(2, 5), (2, 5), (2, 5)]),
                                           (lambda: nn.Concatenate(axis=2), [(2, 2, 3, 2), (2, 2, 1, 2)]),
                                           (lambda: nn.Concatenate(axis=-1), [(3, 2), (3, 4), (3, 1)])])
def test_merge_layers_backward_matches_finite_differences(merge, shapes, rng):
    ins = [nn.Input(s[1:]) for s in shapes]
    model = nn.Model(ins, merge()(ins))
    _check_grads_multi(model, shapes, rng, type(model.layers[0]).__name__)


def test_merge_layers_float32_public_ops_match_reference(rng):
    a, b = (rng.standard_normal((2, 3, 4, 4)).astype(np.float32) for _ in range(2))
    g = rng.standard_normal((2, 6, 4, 4)).astype(np.float32)
    cat = nn.Concatenate()
    np.testing.assert_array_equal(cat.forward([a, b]), np.concatenate([a, b], axis=1))
    ga, gb = cat.backward(g)
    np.testing.assert_array_equal(ga, g[:, :3])
    np.testing.assert_array_equal(gb, g[:, 3:])
    mul = nn.Multiply()
    np.testing.assert_array_equal(mul.forward([a, b]), a * b)
    ga, gb = mul.backward(g[:, :3])
    np.testing.assert_array_equal(ga, g[:, :3] * b)
    np.testing.assert_array_equal(gb, g[:, :3] * a)
    add = nn.Add()
    np.testing.assert_array_equal(add.forward([a, b, a]), a + b + a)
    grads = add.backward(g[:, :3])
    assert len(grads) == 3 and all(np.array_equal(gi, g[:, :3]) for gi in grads)
    assert len({id(gi) for gi in grads}) == 3  # separate arrays (add_backward's contract)


# --- shared layers ---------------------------------------------------------------------------------

def test_shared_layer_gradient_is_the_sum_over_its_calls(rng):
    dense = nn.Linear(3, 3, rng=rng)
    inp = nn.Input(3)
    model = nn.Model(inp, dense(nn.ReLU()(dense(inp))))
    assert model.layers.count(dense) == 1 and len(model.parameters()) == 2
    x = rng.standard_normal((4, 3)).astype(np.float32)
    g = rng.standard_normal((4, 3)).astype(np.float32)
    model.forward(x, training=True)
    model.backward(g)
    # by hand: y = W relu(W x + b) + b
    w, b = dense.weight.data, dense.bias.data
    h = x @ w.T + b
    r = np.maximum(h, 0)
    gh = (g @ w) * (h > 0)
    np.testing.assert_allclose(dense.weight.grad, g.T @ r + gh.T @ x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dense.bias.grad, g.sum(0) + gh.sum(0), rtol=1e-5, atol=1e-6)


def test_shared_dropout_uses_one_mask_per_call(rng):
    drop = nn.Dropout(0.5, seed=11)
    inp = nn.Input(400)
    model = nn.Model(inp, nn.Add()([drop(inp), drop(inp)]))
    x = np.ones((2, 400), np.float32)
    y = model.forward(x, training=True)
    gx = model.backward(np.ones_like(y))
    np.testing.assert_array_equal(gx, y)          # each call's backward used its own mask
    assert {0.0, 2.0, 4.0} <= set(np.unique(y).tolist())  # two different masks (scale 1/(1-p) = 2)
    assert drop.seed == 13


def test_frozen_shared_layer_gets_no_gradient(rng):
    dense = nn.Linear(3, 3, rng=rng)
    head = nn.Linear(3, 2, rng=rng)
    inp = nn.Input(3)
    model = nn.Model(inp, head(dense(dense(inp))))
    dense.trainable = False
    model.forward(rng.standard_normal((2, 3)).astype(np.float32), training=True)
    model.backward(np.ones((2, 2), np.float32))
    assert dense.weight.grad is None and head.weight.grad is not None


# --- nesting ---------------------------------------------------------------------------------------

def test_model_inside_sequential_and_sequential_inside_model(rng):
    inner_in = nn.Input(4)
    inner = nn.Model(inner_in, nn.Tanh()(nn.Linear(4, 4, rng=rng)(inner_in)))
    seq = nn.Sequential([nn.Linear(3, 4, rng=rng), inner, nn.Linear(4, 2, rng=rng)])
    check_grads(seq, (3, 3), rng, "model in sequential")
    x = rng.standard_normal((2, 3)).astype(np.float32)
    inp = nn.Input(3)
    outer = nn.Model(inp, seq(inp))
    np.testing.assert_array_equal(outer.predict(x), seq.predict(x))
    assert outer.get_layer(seq.name) is seq
    assert len(outer.parameters()) == len(seq.parameters()) == 6


# --- training a graph --------------------------------------------------------------------------------

def test_multi_io_fit_evaluate_predict(rng):
    model = _two_in_two_out(rng)
    n = 64
    img = rng.standard_normal((n, 2, 6, 6)).astype(np.float32)
    meta = rng.standard_normal((n, 3)).astype(np.float32)
    cls = (img[:, 0].mean((1, 2)) > 0).astype(np.int64) + (meta[:, 0] > 0)
    val = (meta[:, 1] * 0.5).astype(np.float32)
    model.compile(optim.Adam(model.parameters(), lr=0.02), loss=["cross_entropy", "mse"])
    h = model.fit([img, meta], [cls, val], epochs=15, batch_size=16, validation_split=0.25, verbose=0, seed=0)
    assert h.loss[-1] < 0.6 * h.loss[0] and min(h.val_loss) < h.val_loss[0]
    logits, values = model.predict([img, meta])
    assert logits.shape == (n, 3) and values.shape == (n, 1)
    ev = model.evaluate([img, meta], [cls, val])
    ce = nn.SoftmaxCrossEntropyLoss()(logits, cls)
    mse = nn.MSELoss()(values, val[:, None])
    assert ev["loss"] == pytest.approx(float(ce) + float(mse), rel=1e-4)
    with pytest.raises(ValueError, match=r"y must be a list of 2 arrays, one per output \('classes', 'value'\)"):
        model.fit([img, meta], cls, verbose=0)
    with pytest.raises(ValueError, match=r"x must be a list of 2 arrays, one per input \('image', 'meta'\)"):
        model.predict(img)
    with pytest.raises(ValueError, match="2 losses for a model with 2 outputs|3 losses"):
        model.compile(loss=["mse"] * 3)


def test_output_list_of_one(rng):
    x, y = _digits(rng, n=20)
    inp = nn.Input((1, 12, 12))
    model = nn.Model([inp], [nn.Linear(144, 3, rng=rng)(nn.Flatten()(inp))], loss="cross_entropy")
    h = model.fit(x, [y], epochs=2, batch_size=10, verbose=0)
    assert h.accuracy[-1] is not None
    (logits,) = model.predict([x])
    np.testing.assert_array_equal(logits, model.predict(x)[0])
    assert model.evaluate(x, [y])["accuracy"] == pytest.approx(float(np.mean(logits.argmax(1) == y)))


def test_fit_callbacks_and_progress_on_a_graph(rng, capsys, monkeypatch):
    x, y = _digits(rng, n=40)
    inp = nn.Input((1, 12, 12))
    out = nn.Linear(4, 3, rng=rng)(nn.GlobalAvgPool2d()(nn.ReLU()(nn.Conv2d(1, 4, 3, rng=rng)(inp))))
    model = nn.Model(inp, out, loss="cross_entropy")
    stop = nn.EarlyStopping(monitor="loss", patience=0, min_delta=10.0)  # stops after the second epoch
    h = model.fit(x, y, epochs=5, batch_size=10, callbacks=[stop], verbose=1)
    assert len(h.loss) == 2
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].startswith("epoch 2/5: loss=") and "accuracy=" in lines[1]
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    model.fit(x, y, epochs=1, batch_size=10, verbose=1)
    assert "4/4" in capsys.readouterr().err


# --- save / load -----------------------------------------------------------------------------------

class _Count(nn.Layer):
    """A layer with a buffer (like batch norm's statistics): counts training batches."""

    def __init__(self):
        super().__init__()
        self._buffers["seen"] = np.zeros(1, np.float32)

    def forward(self, x, training=None):
        if self._is_training(training):
            self._buffers["seen"] = self._buffers["seen"] + 1
        return x

    def backward(self, grad_out):
        return grad_out


def _rich_model(rng):
    shared = nn.Conv2d(2, 2, 3, padding=1, rng=rng, name="shared")
    block_in = nn.Input((2, 6, 6))
    block = nn.Model(block_in, nn.ReLU()(nn.Add()([block_in, nn.Conv2d(2, 2, 3, padding=1, rng=rng)(block_in)])),
                     name="block")
    inp = nn.Input((1, 6, 6), name="pixels")
    x = nn.Conv2d(1, 2, 3, padding=1, rng=rng, name="stem")(inp)
    x = _Count()(x)
    x = block(shared(block(shared(x))))            # a layer and a nested model, each called twice
    y = nn.Sequential([nn.Conv2d(2, 3, 1, rng=rng), nn.Tanh()])(x)
    x = nn.Concatenate()([x, nn.Dropout(0.3, seed=4)(y)])
    out = nn.Linear(5, 3, rng=rng, name="head")(nn.GlobalAvgPool2d()(x))
    aux = nn.Linear(5, 1, rng=rng)(nn.GlobalAvgPool2d()(x))
    return nn.Model(inp, [out, aux], loss=[nn.HingeLoss(margin=0.5), "mse"])


def test_save_load_round_trip(tmp_path, rng):
    model = _rich_model(rng)
    model.get_layer("stem").freeze()
    model.forward(np.zeros((2, 1, 6, 6), np.float32), training=True)  # a buffer update, a dropout step
    path = tmp_path / "graph.fl"
    model.save(path)
    with np.load(path) as z:
        assert int(z["format_version"]) == 3
    loaded = nn.load_model(path)
    assert isinstance(loaded, nn.Model)
    x = rng.standard_normal((3, 1, 6, 6)).astype(np.float32)
    for a, b in zip(loaded.predict(x), model.predict(x)):
        np.testing.assert_array_equal(a, b)
    assert [n for n, _ in loaded.named_parameters()] == [n for n, _ in model.named_parameters()]
    buffers = [q for q, _, _ in model.named_buffers()]
    assert [q for q, _, _ in loaded.named_buffers()] == buffers and len(buffers) == 1 and buffers[0].endswith(".seen")
    np.testing.assert_array_equal(next(loaded.named_buffers())[1]._buffers["seen"], [1])
    assert [la.name for la in loaded.layers] == [la.name for la in model.layers]
    assert not loaded.get_layer("stem").trainable and loaded.get_layer("head").trainable
    assert isinstance(loaded.loss[0], nn.HingeLoss) and loaded.loss[0].margin == 0.5
    assert loaded.summary(print_fn=None) == model.summary(print_fn=None)
    # the shared conv and the nested model are still one object each, called twice
    for name in ("shared", "block"):
        assert sum(node.layer is loaded.get_layer(name) for node in loaded.graph.nodes) == 2
    assert len(loaded.parameters()) == len(model.parameters()) == 12  # six weighted layers, each once
    dropout = [la for la in loaded.layers if isinstance(la, nn.Dropout)][0]
    assert dropout.seed == 5
    # a Sequential is still written as format 2 (older readers open it)
    seq_path = tmp_path / "seq.fl"
    nn.models.mlp([3, 2], seed=0).save(seq_path)
    with np.load(seq_path) as z:
        assert int(z["format_version"]) == 2


def test_multi_io_model_round_trips(tmp_path, rng):
    model = _two_in_two_out(rng)
    model.compile(loss=["cross_entropy", "mse"])
    model.save(tmp_path / "m.fl")
    loaded = nn.load_model(tmp_path / "m.fl")
    xs = [rng.standard_normal((3, 2, 6, 6)).astype(np.float32), rng.standard_normal((3, 3)).astype(np.float32)]
    for a, b in zip(loaded.predict(xs), model.predict(xs)):
        np.testing.assert_array_equal(a, b)
    assert loaded.input_shape == [(2, 6, 6), (3,)] and [t.name for t in loaded.inputs] == ["image", "meta"]
    assert isinstance(loaded.loss[1], nn.MSELoss)


def test_sequential_containing_a_model_round_trips(tmp_path, rng):
    inp = nn.Input(3)
    inner = nn.Model(inp, nn.Tanh()(nn.Linear(3, 3, rng=rng)(inp)))
    seq = nn.Sequential([inner, nn.Linear(3, 2, rng=rng)], loss="mse")
    seq.save(tmp_path / "s.fl")
    loaded = nn.load_model(tmp_path / "s.fl")
    x = rng.standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x), seq.predict(x))
    assert isinstance(loaded[0], nn.Model)


def test_save_refuses_sharing_it_cannot_rebuild(tmp_path, rng):
    dense = nn.Linear(3, 3, rng=rng)
    inp = nn.Input(3)
    model = nn.Model(inp, dense(nn.Sequential([dense, nn.Tanh()])(inp)))
    with pytest.raises(ValueError, match=f"layer '{dense.name}' is used in"):
        model.save(tmp_path / "m.fl")


# --- freezing, get_layer, names, sub-models, transfer learning ---------------------------------------------

def _cnn(rng):
    inp = nn.Input((1, 12, 12))
    x = nn.ReLU()(nn.Conv2d(1, 4, 3, padding=1, rng=rng, name="conv_a")(inp))
    x = nn.MaxPool2d(2)(x)
    x = nn.ReLU()(nn.Conv2d(4, 6, 3, padding=1, rng=rng, name="conv_b")(x))
    return nn.Model(inp, x, name="body")


def test_get_layer_names_and_freeze_up_to(rng):
    body = _cnn(rng)
    names = [la.name for la in body.layers]
    assert names[0] == "conv_a" and names[3] == "conv_b" and len(set(names)) == len(names)
    assert body.get_layer("conv_b") is body.layers[3] and body.get_layer(index=-1) is body.layers[-1]
    with pytest.raises(ValueError, match="no layer named 'nope'.*'conv_a'"):
        body.get_layer("nope")
    body.freeze(up_to=names[2])
    assert [la.trainable for la in body.layers] == [False, False, False, True, True]
    assert body.num_parameters(trainable_only=True) == body.get_layer("conv_b").num_parameters()
    body.unfreeze()
    assert all(la.trainable for la in body.layers)
    seq = nn.models.mnist_cnn(seed=0)
    seq.freeze(up_to=seq[3].name)
    assert [la.trainable for la in seq.layers[:5]] == [False] * 4 + [True]
    assert seq.get_layer(seq[3].name) is seq[3]


def test_auto_names_are_unique_and_explicit_names_reserved():
    a, b = nn.Conv2d(1, 1, 1), nn.Conv2d(1, 1, 1)
    assert a.name.startswith("conv2d") and b.name.startswith("conv2d_") and a.name != b.name
    assert nn.GlobalAvgPool2d().name.startswith("global_avg_pool2d")
    assert nn.LeakyReLU().name.startswith("leaky_relu")
    nn.Linear(2, 2, name="linear_900")
    assert nn.Linear(2, 2).name == "linear_901"
    with pytest.raises(ValueError, match="non-empty"):
        nn.ReLU(name="")
    with pytest.raises(TypeError, match="name must be a str"):
        nn.ReLU(name=3)
    inp = nn.Input(3)
    dotted = nn.Model(inp, nn.Linear(3, 2, name="fc.0")(inp))  # dotted names give PyTorch-style keys
    assert [n for n, _ in dotted.named_parameters()] == ["fc.0.weight", "fc.0.bias"]
    inp = nn.Input(2)
    with pytest.raises(ValueError, match="two different layers are named 'twin'"):
        nn.Model(inp, nn.Linear(2, 2, name="twin")(nn.Linear(2, 2, name="twin")(inp)))


def test_sub_model_shares_layers_and_weights(rng):
    body = _cnn(rng)
    sub = nn.Model(body.input, body.get_layer("conv_a").output)
    assert sub.layers == [body.get_layer("conv_a")]
    x = rng.standard_normal((2, 1, 12, 12)).astype(np.float32)
    conv = body.get_layer("conv_a")
    # predict runs the inference plan, whose conv kernel may sum in another order than the layer's
    # forward: equal to float32 rounding (a stale or unshared weight would differ by 2x below).
    close = dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sub.predict(x), conv.forward(x), **close)
    conv.weight.data = conv.weight.data * 2   # the sub-model sees the base's weights
    np.testing.assert_allclose(sub.predict(x), conv.forward(x), **close)
    # cutting at an intermediate tensor: the rest of the graph as a model of its own
    head = nn.Model(body.get_layer("conv_a").output, body.output)
    np.testing.assert_allclose(head.predict(sub.predict(x)), body.predict(x), **close)


def test_transfer_learning_pattern(rng):
    x, y = _digits(rng, n=60)
    base = _cnn(rng)
    w0 = [p.data.copy() for p in base.parameters()]
    h = base.output
    h = nn.GlobalAvgPool2d()(h)
    h = nn.Linear(6, 3, rng=rng)(h)
    model = nn.Model(base.input, h)
    base.trainable = False
    model.compile(optim.Adam(model.parameters(), lr=0.05), loss="cross_entropy")
    hist = model.fit(x, y, epochs=6, batch_size=12, verbose=0, seed=0)
    assert hist.loss[-1] < hist.loss[0]
    for p, w in zip(base.parameters(), w0):
        np.testing.assert_array_equal(p.data, w)   # the frozen body kept its weights
    assert "(frozen)" in model.summary(print_fn=None)
    base.trainable = True                           # fine-tune everything
    model.fit(x, y, epochs=1, batch_size=12, verbose=0)
    assert any(not np.array_equal(p.data, w) for p, w in zip(base.parameters(), w0))


def test_layer_output_needs_exactly_one_call(rng):
    dense = nn.Linear(2, 2, rng=rng)
    with pytest.raises(ValueError, match="called on symbolic tensors 0 times"):
        dense.output
    dense(nn.Input(2))
    assert dense.output.shape == (2,)
    dense(nn.Input(2))
    with pytest.raises(ValueError, match="2 times"):
        dense.output


# --- memory: what the executor keeps ---------------------------------------------------------------

class _Probe(nn.Layer):
    """y = 2x without a cache; records a weak reference to each output and, when it runs, which
    earlier outputs are still alive."""

    log: list = []

    def forward(self, x, training=None):
        gc.collect()
        _Probe.alive_at.append([r() is not None for r in _Probe.log])
        y = x * 2
        _Probe.log.append(weakref.ref(y))
        return y

    def backward(self, grad_out):
        return grad_out * 2


def test_executor_frees_activations_once_their_readers_ran(rng):
    _Probe.log, _Probe.alive_at = [], []
    inp = nn.Input(8)
    a = _Probe()(inp)
    b = _Probe()(a)
    c = _Probe()(b)
    d = _Probe()(nn.Add()([c, a]))     # `a` is read again here: it must live until then
    model = nn.Model(inp, _Probe()(d))
    x = rng.standard_normal((2, 8)).astype(np.float32)
    for training in (True, False):
        _Probe.log, _Probe.alive_at = [], []
        model.forward(x, training=training)
        # when the probes run: b's, c's and d's callers see only the tensors still to be read
        assert _Probe.alive_at[1] == [True]             # a (read by b and by the add)
        assert _Probe.alive_at[2] == [True, True]       # a, b (b read by c now)
        assert _Probe.alive_at[3] == [False, False, False]  # the add has run: a, b, c are gone


def test_inference_passes_release_layer_caches(rng):
    seq = nn.Sequential([nn.Linear(3, 4, rng=rng), nn.ReLU(), nn.Linear(4, 2, rng=rng)])
    inp = nn.Input(3)
    model = nn.Model(inp, nn.Tanh()(seq(inp)))
    x = rng.standard_normal((5, 3)).astype(np.float32)
    model.predict(x)
    assert all(la.__dict__.get("_x") is None and la.__dict__.get("_y") is None for la in seq.layers)
    assert model.layers[-1].__dict__.get("_y") is None
    model.forward(x, training=False)       # a plain forward keeps them: backward may follow
    assert seq.layers[1]._y is not None
    model.backward(np.ones((5, 2), np.float32))
    assert seq.layers[1]._y is None        # backward released them, as it went (like PyTorch's saved tensors)
    with pytest.raises(RuntimeError, match="second backward after one forward"):
        model.backward(np.ones((5, 2), np.float32))
    model.predict(x)
    with pytest.raises((RuntimeError, ValueError, TypeError, AttributeError)):
        model.backward(np.ones((5, 2), np.float32))


# --- the plan ----------------------------------------------------------------------------------------

def test_graph_plan_from_nodes_sorted_and_checked(rng):
    relu, tanh, add = nn.ReLU(), nn.Tanh(), nn.Add()
    G, N = nn.graph.Graph, nn.graph.Node
    # given out of order: sorted so that every slot is written before it is read
    g = G([N(add, (1, 2), (3,), multi_input=True), N(tanh, (1,), (2,)), N(relu, (0,), (1,))], 4, [0], [3],
          [(3,)] * 4)
    assert [n.layer for n in g.nodes] == [relu, tanh, add]
    assert g.frees == [[0], [], [1, 2]]
    x = rng.standard_normal((2, 3)).astype(np.float32)
    (y,), _ = g.forward([x], training=False)
    np.testing.assert_allclose(y, np.maximum(x, 0) + np.tanh(np.maximum(x, 0)), rtol=1e-6)
    with pytest.raises(ValueError, match="cycle through layer"):
        G([N(relu, (2,), (1,)), N(tanh, (1,), (2,))], 3, [0], [2], [(3,)] * 3)
    with pytest.raises(ValueError, match="reads slot 5, which is neither"):
        G([N(relu, (5,), (1,))], 2, [0], [1], [(3,)] * 2)
    with pytest.raises(ValueError, match="written twice"):
        G([N(relu, (0,), (1,)), N(tanh, (0,), (1,))], 2, [0], [1], [(3,)] * 2)


# --- errors ------------------------------------------------------------------------------------------

def test_graph_errors(rng):
    a, b = nn.Input(3, name="first"), nn.Input(3, name="second")
    y = nn.Linear(3, 2, rng=rng, name="fc")(b)
    with pytest.raises(ValueError, match="depends on input 'second' \\(read by layer 'fc'\\), which is not among"):
        nn.Model(a, y)
    with pytest.raises(ValueError, match="input 'first' is not connected to the outputs"):
        nn.Model([a, b], y)
    with pytest.raises(ValueError, match=r"layer 'sum' \(Add\) cannot take inputs of shape \(N, 3\), \(N, 2\)"):
        nn.Add(name="sum")([a, y])
    with pytest.raises(ValueError, match=r"layer 'join' \(Concatenate\).*equal sizes on every other axis"):
        nn.Concatenate(name="join")([nn.Input((2, 4, 4)), nn.Input((2, 5, 4))])
    with pytest.raises(ValueError, match=r"layer 'fc2' \(Linear\) cannot take input of shape \(N, 3\).*in_features=5"):
        nn.Linear(5, 2, name="fc2")(a)
    with pytest.raises(ValueError, match="at least 2 inputs"):
        nn.Add()([a])
    with pytest.raises(ValueError, match="axis must not be 0"):
        nn.Concatenate(axis=0)
    with pytest.raises(TypeError, match="input 1 is a ndarray"):
        nn.Add()([a, np.zeros((1, 3))])
    with pytest.raises(TypeError, match="input 0 is a ndarray"):
        nn.Add()([np.zeros((1, 3)), a])
    with pytest.raises(TypeError, match="must be symbolic tensors"):
        nn.Model(np.zeros(3), y)
    model = nn.Model(b, y)
    with pytest.raises(ValueError, match=r"input 'second' must have shape \(N, 3\), got \(2, 4\)"):
        model.forward(np.zeros((2, 4), np.float32))
    with pytest.raises(RuntimeError, match="backward before forward"):
        nn.Model(a, nn.Tanh()(a)).backward(np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="at least 2 inputs"):
        nn.Add().forward([np.zeros(3)])
    with pytest.raises(ValueError, match="add_9: Add needs inputs of one shape"):
        nn.Add(name="add_9").forward([np.zeros((1, 3), np.float32), np.zeros((1, 2), np.float32)])
    # a cycle can only come from a tampered structure; it is still reported, not looped on
    t = nn.Tanh()(a)
    u = nn.ReLU(name="loop")(t)
    t._node.inputs = (u,)
    with pytest.raises(ValueError, match="cycle"):
        nn.Model(a, u)
    with pytest.raises(ValueError, match="not a top-level layer"):
        model.freeze(up_to=nn.ReLU())


def test_cuda_device_error_or_run(rng):
    inp = nn.Input(3)
    model = nn.Model(inp, nn.Linear(3, 2, rng=rng)(inp), loss="mse")
    if not fl.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not usable"):
            model.to("cuda")
        pytest.skip("no usable CUDA GPU (or CuPy) on this machine: the graph is not run on the GPU")
    x = rng.standard_normal((8, 3)).astype(np.float32)
    y = rng.standard_normal((8, 2)).astype(np.float32)
    expected = model.predict(x)
    model.to("cuda")
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-5, atol=1e-6)
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    model.to("cpu")
    assert isinstance(model.parameters()[0].data, np.ndarray)
