"""fastlayers.onnx: export (checked by onnx.checker and run by ONNX Runtime), import of files that
torch.onnx.export writes (outputs equal ONNX Runtime's within 1e-4), clear errors, `fastlayers run`."""

from __future__ import annotations


import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the onnx package is not installed: ONNX import/export is not exercised")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: nothing to compare ONNX models with")

import fastlayers as fl  # noqa: E402
import fastlayers.onnx as flx  # noqa: E402
from fastlayers import nn  # noqa: E402

TOL = 1e-4


def ort_run(proto, x):
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})


def rng_x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def assert_matches_ort(model, proto, x):
    ours = model.predict(x)
    ours = ours if isinstance(ours, list) else [ours]
    theirs = ort_run(proto, x)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=TOL, rtol=TOL)


# --- export ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("build", [
    lambda: nn.models.mnist_cnn(seed=0), lambda: nn.models.lenet5(seed=0),
    lambda: nn.models.small_resnet(seed=0, width=4), lambda: nn.models.mlp([784, 32, 10], seed=0)],
    ids=["cnn", "lenet5", "small_resnet", "mlp"])
def test_export_sequential_runs_in_onnxruntime(build, tmp_path):
    model = build()
    path = tmp_path / "m.onnx"
    model.export_onnx(str(path))
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    x = rng_x(3, *model.input_shape)
    assert_matches_ort(model, proto, x)
    # and back: the exported file imports into a model that computes the same
    assert_matches_ort(flx.load(str(path)), proto, x)


def test_export_graph_model_with_merges():
    inp = nn.Input((3, 8, 8))
    a = nn.ReLU()(nn.Conv2d(3, 4, 3, padding=1, rng=0)(inp))
    b = nn.Conv2d(3, 4, 1, rng=1)(inp)
    s = nn.Add()([a, b])
    m = nn.Multiply()([s, nn.Sigmoid()(b)])
    c = nn.Concatenate()([s, m])
    out = nn.Linear(8, 5, rng=2)(nn.GlobalAvgPool2d()(nn.MaxPool2d(2)(c)))
    side = nn.Softmax()(nn.LeakyReLU(0.1)(out))
    model = nn.Model(inp, [out, side])
    proto = flx.export(model)
    onnx.checker.check_model(proto, full_check=True)
    x = rng_x(2, 3, 8, 8)
    assert_matches_ort(model, proto, x)
    again = flx.load(proto)
    assert_matches_ort(again, proto, x)


def test_export_needs_an_input_shape():
    model = nn.Sequential([nn.Linear(4, 2)])
    with pytest.raises(ValueError, match="input_shape"):
        flx.export(model)
    proto = flx.export(model, input_shape=(4,))
    assert_matches_ort(model, proto, rng_x(5, 4))


# --- import of torch.onnx.export files ------------------------------------------------------------------

torch = pytest.importorskip("torch", reason="PyTorch is not installed: no torch.onnx.export files to import")
tnn = torch.nn
from fastlayers.bench.models import export_torch_onnx  # noqa: E402


def torch_export(module, shape):
    return onnx.load_from_string(export_torch_onnx(torch, module, torch.zeros(2, *shape)))


def course_cnn():
    return tnn.Sequential(tnn.Conv2d(1, 32, 5), tnn.MaxPool2d(2), tnn.ReLU(), tnn.Conv2d(32, 64, 5), tnn.MaxPool2d(2),
                          tnn.ReLU(), tnn.Flatten(), tnn.Linear(1024, 200), tnn.ReLU(), tnn.Linear(200, 10))


def lenet5():
    return tnn.Sequential(tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.AvgPool2d(2), tnn.Conv2d(6, 16, 5), tnn.ReLU(),
                          tnn.AvgPool2d(2), tnn.Flatten(), tnn.Linear(400, 120), tnn.ReLU(), tnn.Linear(120, 84),
                          tnn.ReLU(), tnn.Linear(84, 10))


class BasicBlock(tnn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(cout)
        self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = tnn.Sequential(tnn.Conv2d(cin, cout, 1, stride, bias=False), tnn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (x if self.down is None else self.down(x)))


class ResNet18(tnn.Module):
    """torchvision's resnet18 layer for layer (BasicBlock x [2, 2, 2, 2]), at a given width."""

    def __init__(self, width=64, classes=10):
        super().__init__()
        w = width
        self.stem = tnn.Sequential(tnn.Conv2d(3, w, 7, 2, 3, bias=False), tnn.BatchNorm2d(w), tnn.ReLU(),
                                   tnn.MaxPool2d(3, 2, 1))
        blocks, cin = [], w
        for i, cout in enumerate((w, 2 * w, 4 * w, 8 * w)):
            blocks += [BasicBlock(cin, cout, 1 if i == 0 else 2), BasicBlock(cout, cout, 1)]
            cin = cout
        self.blocks = tnn.Sequential(*blocks)
        self.pool = tnn.AdaptiveAvgPool2d(1)
        self.fc = tnn.Linear(cin, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


class TinyDense(tnn.Module):
    """DenseNet's pattern: BN-ReLU-conv layers whose outputs are concatenated, a transition."""

    def __init__(self):
        super().__init__()
        self.conv0 = tnn.Conv2d(3, 8, 3, padding=1)
        self.layers = tnn.ModuleList([tnn.Sequential(tnn.BatchNorm2d(8 + 4 * i), tnn.ReLU(),
                                                     tnn.Conv2d(8 + 4 * i, 4, 3, padding=1)) for i in range(3)])
        self.trans = tnn.Sequential(tnn.BatchNorm2d(20), tnn.ReLU(), tnn.Conv2d(20, 10, 1), tnn.AvgPool2d(2))
        self.fc = tnn.Linear(10 * 8 * 8, 5)

    def forward(self, x):
        x = self.conv0(x)
        for layer in self.layers:
            x = torch.cat([x, layer(x)], 1)
        x = self.trans(x)
        return self.fc(x.view(x.size(0), -1))


def vgg11(div=16, classes=10):
    """torchvision's vgg11 layer for layer (features, AdaptiveAvgPool2d(7), classifier), channels / div."""
    layers, cin = [], 3
    for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"):
        if v == "M":
            layers.append(tnn.MaxPool2d(2, 2))
        else:
            layers += [tnn.Conv2d(cin, v // div, 3, padding=1), tnn.ReLU(inplace=True)]
            cin = v // div
    hidden = 4096 // div
    return tnn.Sequential(tnn.Sequential(*layers), tnn.AdaptiveAvgPool2d(7), tnn.Flatten(),
                          tnn.Sequential(tnn.Linear(cin * 49, hidden), tnn.ReLU(True), tnn.Dropout(),
                                         tnn.Linear(hidden, hidden), tnn.ReLU(True), tnn.Dropout(),
                                         tnn.Linear(hidden, classes)))


def _randomize_bn(module):
    g = torch.Generator().manual_seed(0)
    for m in module.modules():
        if isinstance(m, tnn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return module


@pytest.mark.parametrize("make,shape", [
    (course_cnn, (1, 28, 28)), (lenet5, (1, 28, 28)), (lambda: ResNet18(width=16), (3, 64, 64)),
    (TinyDense, (3, 16, 16)), (vgg11, (3, 224, 224))], ids=["course_cnn", "lenet5", "resnet18_w16", "dense", "vgg11_div16"])
def test_import_torch_export_matches_onnxruntime(make, shape):
    torch.manual_seed(0)
    module = _randomize_bn(make())
    proto = torch_export(module, shape)
    model = flx.load(proto)
    x = rng_x(2, *shape)
    assert_matches_ort(model, proto, x)
    with torch.no_grad():
        np.testing.assert_allclose(model.predict(x), module(torch.from_numpy(x)).numpy(), atol=TOL, rtol=TOL)


def test_import_dynamo_style_reshape_and_constants():
    """MatMul + Add (bias), Sub/Div by constants, Reshape with a constant shape, Dropout."""
    nodes = [
        onnx.helper.make_node("Sub", ["x", "mu"], ["a"], name="center"),
        onnx.helper.make_node("Div", ["a", "sd"], ["b"], name="scale"),
        onnx.helper.make_node("Reshape", ["b", "shape"], ["c"], name="flat"),
        onnx.helper.make_node("MatMul", ["c", "w"], ["d"], name="mm"),
        onnx.helper.make_node("Add", ["d", "bias"], ["e"], name="bias_add"),
        onnx.helper.make_node("Dropout", ["e"], ["y"], name="drop"),
    ]
    r = np.random.default_rng(1)
    inits = [onnx.numpy_helper.from_array(v, n) for n, v in (
        ("mu", r.standard_normal((1, 2, 1, 1)).astype(np.float32)), ("sd", np.full((1,), 2.0, np.float32)),
        ("shape", np.array([-1, 18], np.int64)), ("w", r.standard_normal((18, 4)).astype(np.float32)),
        ("bias", r.standard_normal(4).astype(np.float32)))]
    graph = onnx.helper.make_graph(nodes, "g", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT,
                                                                                   ["N", 2, 3, 3])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 4])], inits)
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    proto.ir_version = 8
    assert_matches_ort(flx.load(proto), proto, rng_x(3, 2, 3, 3))


def _single_node_model(op, attrs=None, inits=(), name="the_node", x_shape=("N", 2, 5, 5), extra_inputs=()):
    node = onnx.helper.make_node(op, ["x", *extra_inputs], ["y"], name=name, **(attrs or {}))
    graph = onnx.helper.make_graph([node], "g", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT,
                                                                                    list(x_shape))],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", "C", "H", "W"])],
                                   list(inits))
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    proto.ir_version = 8
    return proto


def test_unsupported_operator_names_node_and_op():
    with pytest.raises(flx.UnsupportedOnnxError, match=r"'the_node' \(op Erf\).*not supported"):
        flx.load(_single_node_model("Erf"))


def test_unsupported_attribute_names_node_and_op():
    w = onnx.numpy_helper.from_array(np.ones((3, 2, 3, 3), np.float32), "w")
    proto = _single_node_model("Conv", {"pads": [0, 0, 1, 1]}, [w], extra_inputs=["w"])
    with pytest.raises(flx.UnsupportedOnnxError, match=r"'the_node' \(op Conv\).*asymmetric pads"):
        flx.load(proto)
    proto = _single_node_model("MaxPool", {"kernel_shape": [2, 2], "storage_order": 1})
    with pytest.raises(flx.UnsupportedOnnxError, match=r"'the_node' \(op MaxPool\).*storage_order"):
        flx.load(proto)


def test_symbolic_input_shape_needs_input_shape():
    proto = _single_node_model("Relu", x_shape=("N", 2, "H", "W"))
    with pytest.raises(ValueError, match="input_shape"):
        flx.load(proto)
    model = flx.load(proto, input_shape=(2, 4, 4))
    assert_matches_ort(model, proto, rng_x(1, 2, 4, 4))


# --- the CLI ------------------------------------------------------------------------------------------

def test_cli_run_on_npy_and_random(tmp_path, capsys):
    from fastlayers.cli import main

    torch.manual_seed(0)
    proto = torch_export(lenet5(), (1, 28, 28))
    path = tmp_path / "lenet.onnx"
    onnx.save(proto, str(path))
    x = rng_x(4, 1, 28, 28)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "y.npy"
    assert main(["run", str(path), "--input", str(tmp_path / "x.npy"), "--output", str(out), "--repeat", "2"]) == 0
    text = capsys.readouterr().out
    assert "top 5 classes" in text and "onnxruntime" in text and "ratio" in text
    np.testing.assert_allclose(np.load(out), ort_run(proto, x)[0], atol=TOL, rtol=TOL)
    assert main(["run", str(path), "--batch", "2", "--repeat", "1", "--no-compare"]) == 0
    assert np.load(tmp_path / "lenet.output.npy").shape == (2, 10)
    assert main(["run", str(tmp_path / "missing.onnx")]) == 2
    assert "no such file" in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(nn, "AdaptiveAvgPool2d"), reason="this fastlayers build has no adaptive pools")
def test_export_pool_options():
    model = nn.Sequential([nn.Conv2d(2, 4, 3, rng=0), nn.MaxPool2d(3, 2, 1, ceil_mode=True),
                           nn.AvgPool2d(2, count_include_pad=False, padding=1), nn.AdaptiveMaxPool2d((2, 2)),
                           nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3, rng=1)], input_shape=(2, 13, 13))
    proto = flx.export(model)
    assert [n.op_type for n in proto.graph.node][:5] == ["Conv", "MaxPool", "AveragePool", "MaxPool",
                                                          "GlobalAveragePool"]
    x = rng_x(2, 2, 13, 13)
    assert_matches_ort(model, proto, x)
    assert_matches_ort(flx.load(proto), proto, x)
    with pytest.raises(ValueError, match=r"adaptive_avg_pool2d.*\(AdaptiveAvgPool2d\).*does not divide"):
        flx.export(nn.Sequential([nn.AdaptiveAvgPool2d(3, name="adaptive_avg_pool2d_x")], input_shape=(1, 7, 7)))


@pytest.mark.parametrize("keepdims", [1, 0])
def test_reduce_mean_over_hw_is_global_pooling(keepdims):
    """What torch's dynamo exporter writes for AdaptiveAvgPool2d(1) (opset 18+: axes as an input)."""
    node = onnx.helper.make_node("ReduceMean", ["x", "axes"], ["y"], name="mean", keepdims=keepdims)
    out_shape = ["N", 2, 1, 1] if keepdims else ["N", 2]
    graph = onnx.helper.make_graph([node], "g", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT,
                                                                                    ["N", 2, 5, 4])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, out_shape)],
                                   [onnx.numpy_helper.from_array(np.array([-2, -1], np.int64), "axes")])
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)])
    proto.ir_version = 8
    assert_matches_ort(flx.load(proto), proto, rng_x(3, 2, 5, 4))
    bad = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("ReduceMean", ["x"], ["y"], name="m1", axes=[1])], "g", graph.input, graph.output),
        opset_imports=[onnx.helper.make_opsetid("", 17)])
    with pytest.raises(flx.UnsupportedOnnxError, match=r"'m1' \(op ReduceMean\).*axes \[1\]"):
        flx.load(bad, check=False)


@pytest.mark.skipif(not all(hasattr(nn, c) for c in ("BatchNorm2d", "ConvTranspose2d", "Upsample")) or
                    not hasattr(fl, "pad"), reason="this fastlayers build lacks BatchNorm2d, ConvTranspose2d, "
                                                   "Upsample or pad")
def test_export_new_layers():
    bn = nn.BatchNorm2d(4)
    r = np.random.default_rng(3)
    bn._buffers["running_mean"][:] = r.standard_normal(4)
    bn._buffers["running_var"][:] = r.random(4) + 0.5
    model = nn.Sequential([nn.Conv2d(2, 4, 3, padding=1, padding_mode="reflect", rng=0), bn, nn.ReLU(),
                           nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1, rng=1),
                           nn.Upsample(scale_factor=0.5, mode="bilinear"), nn.Pad([1, 1, 0, 2], "replicate"),
                           nn.Upsample(size=(9, 8), mode="nearest"),
                           nn.Conv2d(3, 2, 3, padding="same", dilation=2, rng=2), nn.Flatten()], input_shape=(2, 5, 5))
    proto = flx.export(model)
    x = rng_x(2, 2, 5, 5)
    assert_matches_ort(model, proto, x)
    assert_matches_ort(flx.load(proto), proto, x)


def test_cli_run_on_an_image(tmp_path, capsys):
    Image = pytest.importorskip("PIL.Image", reason="Pillow is not installed: image input is not exercised")
    from fastlayers.cli import main

    model = nn.models.lenet5(seed=0)
    path = tmp_path / "lenet.onnx"
    model.export_onnx(str(path))
    img = (np.random.default_rng(0).random((40, 30)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "digit.png")
    assert main(["run", str(path), "--input", str(tmp_path / "digit.png"), "--repeat", "1", "--no-compare",
                 "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "input (1, 1, 28, 28)" in out and "top 3 classes" in out
    x = np.asarray(Image.fromarray(img).resize((28, 28)), np.float32)[None, None] / 255
    np.testing.assert_allclose(np.load(tmp_path / "lenet.output.npy"), model.predict(x), atol=1e-5)


def test_imported_model_goes_to_torch_and_back_to_onnx():
    import fastlayers.torch as flt

    torch.manual_seed(0)
    module = _randomize_bn(ResNet18(width=4)).eval()
    proto = torch_export(module, (3, 32, 32))
    fm = flx.load(proto)
    x = rng_x(2, 3, 32, 32)
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
        got = flt.to_torch(fm).eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, atol=TOL, rtol=TOL)
    again = flx.export(fm)
    np.testing.assert_allclose(ort_run(again, x)[0], want, atol=TOL, rtol=TOL)


@pytest.mark.skipif(not hasattr(nn, "Upsample") or not hasattr(fl, "pad"), reason="this build has no Upsample / pad")
def test_pad_resize_and_padding_modes_both_ways():
    model = nn.Sequential([nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular", rng=0),
                           nn.Upsample(scale_factor=2, mode="nearest"), nn.Pad([1, 0, 2, 1], "constant", 0.5),
                           nn.Upsample(size=(5, 7), mode="bilinear", align_corners=True),
                           nn.Conv2d(3, 2, 3, padding="same", dilation=2, padding_mode="replicate", rng=1),
                           nn.Upsample(scale_factor=1.5, mode="bilinear"), nn.Flatten()], input_shape=(2, 4, 3))
    proto = flx.export(model)
    x = rng_x(2, 2, 4, 3)
    assert_matches_ort(model, proto, x)
    assert_matches_ort(flx.load(proto), proto, x)
    torch.manual_seed(0)
    tm = tnn.Sequential(tnn.ReflectionPad2d((1, 2, 0, 1)), tnn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect"),
                        tnn.Upsample(scale_factor=2, mode="nearest"), tnn.ReplicationPad2d(1),
                        tnn.Upsample(scale_factor=0.5, mode="bilinear"), tnn.Flatten())
    proto = torch_export(tm, (2, 6, 5))
    x = rng_x(2, 2, 6, 5)
    assert_matches_ort(flx.load(proto), proto, x)


@pytest.mark.skipif(not all(hasattr(nn, c) for c in ("ConvTranspose2d", "Conv3d", "MaxPool3d")),
                    reason="this fastlayers build has no ConvTranspose2d / Conv3d / MaxPool3d")
def test_transposed_and_3d_convolutions_all_ways():
    import fastlayers.torch as flt

    torch.manual_seed(0)
    for tm, shape in ((tnn.Sequential(tnn.Conv2d(2, 4, 3, padding=1), tnn.ReLU(),
                                      tnn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1), tnn.Flatten(),
                                      tnn.Linear(3 * 12 * 12, 5)), (2, 6, 6)),
                      (tnn.Sequential(tnn.Conv3d(1, 2, 3, padding=1), tnn.MaxPool3d(2), tnn.Flatten()), (1, 4, 4, 4))):
        tm.eval()
        x = rng_x(2, *shape)
        with torch.no_grad():
            want = tm(torch.from_numpy(x)).numpy()
        fm = flt.to_fastlayers(tm, input_shape=shape)
        np.testing.assert_allclose(fm.predict(x), want, atol=TOL, rtol=TOL)
        np.testing.assert_allclose(ort_run(flx.export(fm), x)[0], want, atol=TOL, rtol=TOL)
        np.testing.assert_allclose(flx.load(torch_export(tm, shape)).predict(x), want, atol=TOL, rtol=TOL)
