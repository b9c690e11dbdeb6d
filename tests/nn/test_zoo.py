"""The model zoo against torchvision: same state_dict keys, strict loading, and the same eval-mode
outputs with torchvision's random weights and non-trivial batch-norm statistics loaded.

torchvision is imported through tests/torchvision_harness.py (its compiled ops do not load with the
CPU torch; the model definitions need none of them). Without torch or torchvision these tests skip
and say why. Inputs are small (32-64 pixels) to keep the suite fast; every model here works on any
size its pooling allows, as torchvision's do."""

import numpy as np
import pytest

from fastlayers import nn
from fastlayers.nn import zoo

from ..torchvision_harness import import_torchvision

# (zoo name, torchvision kwargs, input H, W)
CASES = [
    ("alexnet", {}, (64, 64)),
    ("vgg11", {}, (32, 32)),
    ("vgg11_bn", {}, (32, 32)),
    ("vgg16", {}, (32, 32)),
    ("vgg16_bn", {}, (32, 32)),
    ("resnet18", {}, (40, 48)),
    ("resnet34", {}, (32, 32)),
    ("resnet50", {}, (32, 32)),
    ("googlenet", {"aux_logits": False, "init_weights": False}, (40, 40)),
    ("densenet121", {}, (32, 32)),
    ("mobilenet_v2", {}, (32, 32)),
]
NUM_CLASSES = 10


@pytest.fixture(autouse=True)
def _one_thread():
    """One kernel thread (and one torch thread): these small inputs make many short OpenMP regions,
    each of which waits for a timeslice per thread on a loaded machine (VGG-11 predict here: 1.4 s
    at one thread, 6.9 s at two)."""
    import fastlayers as fl

    old = fl.get_num_threads()
    fl.set_num_threads(1)
    try:
        import torch
        old_t = torch.get_num_threads()
        torch.set_num_threads(1)
    except ImportError:
        torch = None
    yield
    fl.set_num_threads(old)
    if torch is not None:
        torch.set_num_threads(old_t)


def _tv():
    models, reason = import_torchvision()
    if models is None:
        pytest.skip(f"torchvision model definitions unavailable: {reason}")
    import torch

    return torch, models


def _randomize(torch, tmodel, seed):
    """Weights scaled by 1/sqrt(fan_in) (activations stay O(1) through 100+ layers) and batch norms
    with non-trivial weight, bias and running statistics (eval mode then does more than the identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in tmodel.named_parameters():
            if p.ndim > 1:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) * (2.0 / fan_in) ** 0.5)
            else:  # biases, batch-norm weights (about 1) and biases
                p.copy_(torch.randn(p.shape, generator=g) * 0.1 + (1.0 if name.endswith("weight") else 0.0))
        for name, b in tmodel.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
            elif name.endswith("num_batches_tracked"):
                b.fill_(7)
    return tmodel.eval()


def _build_pair(name, tv_kwargs, size, seed=0):
    """torchvision's model built on the meta device (its own initialisation costs seconds for VGG's
    120M classifier weights and is overwritten anyway) and filled by _randomize; ours with zero
    weights, since the state_dict replaces them."""
    torch, models = _tv()
    with torch.device("meta"):
        tmodel = getattr(models, name)(weights=None, num_classes=NUM_CLASSES, **tv_kwargs)
    tmodel = _randomize(torch, tmodel.to_empty(device="cpu"), seed)
    model = zoo.build(name, num_classes=NUM_CLASSES, input_size=size, seed=seed, init="zeros")
    return torch, tmodel, model


@pytest.mark.parametrize("name,tv_kwargs,size", CASES, ids=[c[0] for c in CASES])
def test_zoo_matches_torchvision(name, tv_kwargs, size):
    torch, tmodel, model = _build_pair(name, tv_kwargs, size)
    sd = tmodel.state_dict()
    keys = model.torch_state_dict_keys()
    assert len(keys) == len(set(keys)) and set(keys) == set(sd.keys()), (
        f"keys differ: only in fastlayers {sorted(set(keys) - set(sd))[:5]}, only in torchvision "
        f"{sorted(set(sd) - set(keys))[:5]}")
    model.load_torch_state_dict(sd)
    x = np.random.default_rng(1).standard_normal((2, 3) + size).astype(np.float32)
    with torch.no_grad():
        expected = tmodel(torch.from_numpy(x)).numpy()
    got = model.predict(x)
    assert got.shape == expected.shape == (2, NUM_CLASSES)
    scale = float(np.abs(expected).max())
    err = float(np.abs(got - expected).max())
    assert scale > 0 and np.isfinite(err)
    assert err <= 1e-4 * scale, f"{name}: max |fastlayers - torchvision| = {err:.3g}, output magnitude {scale:.3g}"
    bn = [la for la in model.layers if type(la).__name__ == "BatchNorm2d"]
    if bn:  # the running statistics arrived (not just the affine parameters)
        tbn = dict(tmodel.named_modules())[bn[-1].name]
        np.testing.assert_array_equal(bn[-1].running_var, tbn.running_var.numpy())


def test_resnet18_training_step_gradients_match_torch():
    """Train mode (batch statistics, running-statistic updates) forward and backward of the whole
    ResNet-18 graph: parameter gradients and the updated running means agree with torchvision's."""
    torch, tmodel, model = _build_pair("resnet18", {}, (32, 32), seed=3)
    model.load_torch_state_dict(tmodel.state_dict())
    tmodel.train()
    x = np.random.default_rng(2).standard_normal((4, 3, 32, 32)).astype(np.float32)
    g = np.random.default_rng(3).standard_normal((4, NUM_CLASSES)).astype(np.float32)
    xt = torch.from_numpy(x)
    out_t = tmodel(xt)
    out_t.backward(torch.from_numpy(g))
    out = model.forward(x, training=True)
    model.backward(g)
    scale = float(np.abs(out_t.detach().numpy()).max())
    assert np.abs(out - out_t.detach().numpy()).max() <= 1e-4 * scale
    # Every gradient, layer by layer, points the same way as PyTorch's. Not elementwise to 1e-4 in the
    # early layers: a pre-activation within ~1e-5 of zero may fall on the other side of a ReLU's kink
    # in one framework (different convolution algorithms round differently), which switches that
    # element's gradient on or off, and a batch norm over few values spreads the change over its
    # channel (measured: 4x3x64x64, one such element moves layer4.0's gradients by 18%).
    tgrads = dict(tmodel.named_parameters())
    for key, p in model.named_parameters():
        want, got = tgrads[key].grad.numpy().ravel(), p.grad.ravel()
        cos = float(got @ want) / (float(np.linalg.norm(got) * np.linalg.norm(want)) + 1e-30)
        assert cos > 0.99, f"{key}: cosine {cos:.4f} between the fastlayers and PyTorch gradients"
    # after the last ReLU nothing can flip: the head and the last block agree elementwise
    for key in ("fc.weight", "fc.bias", "layer4.1.bn2.weight", "layer4.1.bn2.bias"):
        want = tgrads[key].grad.numpy()
        assert np.abs(dict(model.named_parameters())[key].grad - want).max() <= 2e-4 * float(np.abs(want).max()), key
    np.testing.assert_allclose(model.get_layer("layer2.1.bn2").running_mean,
                               tmodel.layer2[1].bn2.running_mean.numpy(), rtol=1e-4, atol=1e-5)


def test_strict_loading_names_the_keys():
    torch, tmodel, model = _build_pair("resnet18", {}, (32, 32))
    sd = dict(tmodel.state_dict())
    bad = dict(sd)
    del bad["layer2.0.bn1.running_var"]
    bad["layer9.weight"] = bad["fc.bias"]
    before = model.get_layer("fc").weight.data.copy()
    with pytest.raises(ValueError, match=r"missing keys.*layer2\.0\.bn1\.running_var.*unexpected keys.*layer9\.weight"):
        model.load_torch_state_dict(bad)
    np.testing.assert_array_equal(model.get_layer("fc").weight.data, before)  # nothing copied on error
    bad = dict(sd)
    bad["fc.weight"] = torch.zeros(3, 512)
    with pytest.raises(ValueError, match=r"fc\.weight has shape \(3, 512\), the model's \(10, 512\)"):
        model.load_torch_state_dict(bad)
    with pytest.raises(ValueError, match=r"fc\.weight has shape"):
        model.load_torch_state_dict(bad, strict=False)  # a shape mismatch is an error either way (as PyTorch)
    # num_batches_tracked is optional; strict=False skips the keys that do not match
    no_count = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    model.load_torch_state_dict(no_count)
    partial = {k: v for k, v in sd.items() if k.startswith("layer1.")}
    partial["extra.weight"] = torch.ones(2)
    model.load_torch_state_dict(partial, strict=False)
    np.testing.assert_array_equal(model.get_layer("layer1.0.conv1").weight.data, sd["layer1.0.conv1.weight"].numpy())
    with pytest.raises(TypeError, match="state_dict must be a mapping"):
        model.load_torch_state_dict([1, 2])


def test_zoo_models_are_graph_models_with_torchvision_names():
    model = zoo.resnet18(num_classes=5, in_channels=1, input_size=32, seed=0)
    assert isinstance(model, nn.Model)
    assert model.input_shape == (1, 32, 32) and model.output_shape == (5,)
    assert model.get_layer("layer4.1.conv2").out_channels == 512
    model.freeze(up_to="layer4.1.relu_1")
    assert not model.get_layer("layer4.1.bn2").trainable and model.get_layer("fc").trainable
    sub = nn.Model(model.input, model.get_layer("layer3.1.relu_1").output)
    assert sub.output_shape == (256, 2, 2)
    with pytest.raises(ValueError, match="unknown zoo model 'resnet7'"):
        zoo.build("resnet7")
    with pytest.raises(ValueError, match="input_size"):
        zoo.alexnet(input_size=32)
    with pytest.raises(ValueError, match="divisible by 16"):
        zoo.unet(input_size=(40, 40))


def test_unet_shape_and_one_training_step():
    model = zoo.unet(num_classes=3, in_channels=1, input_size=(16, 16), depth=2, width=4, batch_norm=True, seed=0)
    assert model.output_shape == (3, 16, 16)
    names = [la.name for la in model.layers]
    assert "up2.upconv" in names and "up1.cat" in names and names[-1] == "head"
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 1, 16, 16)).astype(np.float32)
    y = rng.integers(0, 3, (4, 16, 16))
    import fastlayers as fl

    model.compile(fl.optim.Adam(model.parameters(), lr=1e-2))
    h = model.fit(x, y, epochs=3, batch_size=4, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0]


def test_from_torch_sequential():
    torch, _ = _tv()
    t = torch.nn
    torch.manual_seed(0)
    tm = t.Sequential(t.Conv2d(3, 8, 3, padding=1, bias=False), t.BatchNorm2d(8), t.ReLU6(),
                      t.MaxPool2d(2), t.Sequential(t.Conv2d(8, 4, 3, stride=2), t.LeakyReLU(0.2)),
                      t.AdaptiveAvgPool2d((2, 2)), t.Flatten(), t.Dropout(0.3), t.Linear(16, 5))
    _randomize(torch, tm, 1)
    model = nn.from_torch(tm)
    assert isinstance(model, nn.Sequential) and not model.training
    x = np.random.default_rng(0).standard_normal((3, 3, 12, 12)).astype(np.float32)
    with torch.no_grad():
        want = tm(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.predict(x), want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    with pytest.raises(TypeError, match=r"module 1 is a GELU"):
        nn.from_torch(t.Sequential(t.Linear(2, 2), t.GELU()))
