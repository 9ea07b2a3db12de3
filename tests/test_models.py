"""Tests for ddfad_apps.models: shapes on FD-MFCC sizes, option grid, flat-vector forward, learning."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from ddfad_apps.models import (
    MODEL_NAMES,
    VGG11,
    ConvNet,
    ParamSpec,
    ResNet18,
    build_model,
    flatten_params,
    functional_forward,
)

SHAPES = [(3, 20, 51), (3, 13, 30), (3, 20, 101), (3, 40, 151)]


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """These tensors are tiny: a second intra-op thread gains nothing, and on a busy 2-core box
    OpenMP spinning makes the module ~5x slower. Restored afterwards for other test modules."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_output_shape_any_input_size(name: str, shape: tuple[int, int, int]) -> None:
    model = build_model(name, 7, shape, width=8)
    x = torch.randn(3, *shape)
    assert model(x).shape == (3, 7)
    assert model.embed(x).shape == (3, model.feature_dim)


def test_defaults_match_literature() -> None:
    net = ConvNet()  # width 128, depth 3, instancenorm, avgpool on 20x51: 2x6 map after three pools
    assert net.classifier.in_features == 128 * 2 * 6
    assert isinstance(net.features[1], nn.GroupNorm) and net.features[1].num_groups == 128
    assert ResNet18(width=8).classifier.in_features == 64  # 8 * width
    assert isinstance(ResNet18(width=8).features[1], nn.GroupNorm)
    assert VGG11(width=8).classifier.in_features == 64  # 512 * 8 / 64
    assert isinstance(ResNet18(norm="batchnorm", width=8).features[1], nn.BatchNorm2d)


def test_build_model_case_insensitive_and_kwargs() -> None:
    model = build_model("ConvNet", 4, (3, 13, 30), depth=2, width=8, norm="batch", pooling="max")
    assert isinstance(model, ConvNet)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert isinstance(build_model("VGG11", 4, (3, 20, 51), width=8), VGG11)
    assert isinstance(build_model("ResNet18", 4, (3, 20, 51), width=8), ResNet18)


def test_build_model_unknown_name() -> None:
    with pytest.raises(ValueError, match="convnet, resnet18, vgg11"):
        build_model("alexnet", 10, (3, 20, 51))


NORMS = ["none", "batchnorm", "layernorm", "instancenorm", "groupnorm"]


GRID = list(itertools.product(["sigmoid", "relu", "leakyrelu"], NORMS, ["none", "maxpooling", "avgpooling"]))


@pytest.mark.parametrize("activation,norm,pooling", GRID)
def test_convnet_option_grid_all_work_on_20x51(activation: str, norm: str, pooling: str) -> None:
    # With the skip-pooling rule every combination at depths 1-4 must work on 20x51: no ValueError.
    x = torch.randn(2, 3, 20, 51)
    for depth in range(1, 5):
        net = ConvNet(3, 5, depth, 8, activation, norm, pooling, input_size=(20, 51))
        out = net(x)
        assert out.shape == (2, 5) and torch.isfinite(out).all()


def test_convnet_aliases() -> None:
    net = ConvNet(width=8, norm="Instance", pooling="AVG", activation="LeakyReLU")
    assert isinstance(net.features[1], nn.GroupNorm) and net.features[1].num_groups == 8
    assert isinstance(net.features[2], nn.LeakyReLU) and net.features[2].negative_slope == 0.01
    assert isinstance(net.features[3], nn.AvgPool2d)
    assert ConvNet(width=8, norm="group").features[1].num_groups == 4
    assert ConvNet(width=8, norm="layer").features[1].num_groups == 1


def test_deep_convnet_skips_pools_on_small_maps() -> None:
    # 13x30 would reach 0 in H after four floor pools; the rule keeps it at >= 1 and never 1x1
    # while instance-normed convolutions still follow (which would make the output constant).
    net = ConvNet(width=8, depth=8, input_size=(13, 30))
    x = torch.randn(2, 3, 13, 30)
    assert net(x).shape == (2, 10)
    assert net.feature_dim == 8  # the final pool may reach 1x1
    assert not torch.allclose(net(x)[0], net(x)[1])  # the output still depends on the input


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"input_size": (0, 51)}, r"ConvNet cannot process input size \(0, 51\)"),
        ({"input_size": (1, 1)}, "instancenorm"),
        ({"norm": "groupnorm", "width": 6}, "divisible by 4"),
        ({"norm": "bogus"}, "unknown norm"),
        ({"activation": "tanh"}, "unknown activation"),
        ({"pooling": "lp"}, "unknown pooling"),
        ({"depth": 0}, "depth"),
    ],
)
def test_convnet_invalid_raises_value_error(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ConvNet(**{"width": 8, **kwargs})


def test_resnet_vgg_invalid_input_raises_value_error() -> None:
    with pytest.raises(ValueError, match="ResNet18 cannot process input size"):
        ResNet18(width=8, input_size=(20, 0))
    with pytest.raises(ValueError, match="VGG11 cannot process input size"):
        VGG11(width=8, input_size=(-1, 51))
    assert VGG11(width=8, norm="batchnorm", input_size=(1, 1))(torch.randn(2, 3, 1, 1)).shape == (2, 10)


@pytest.mark.parametrize(
    "name,norm",
    [("convnet", "instancenorm"), ("convnet", "batchnorm"), ("resnet18", "batchnorm"), ("vgg11", "instancenorm")],
)
def test_functional_forward_matches_module(name: str, norm: str) -> None:
    model = build_model(name, 4, (3, 20, 51), width=8, norm=norm)
    if norm == "batchnorm":  # give BN non-trivial running stats so the buffers matter
        model.train()
        with torch.no_grad():
            model(torch.randn(8, 3, 20, 51) * 3 + 1)
    model.eval()
    x = torch.randn(5, 3, 20, 51)
    spec = ParamSpec.from_module(model)
    flat = flatten_params(model).requires_grad_(True)
    assert flat.dim() == 1 and flat.numel() == spec.total == sum(p.numel() for p in model.parameters())
    assert spec.names == tuple(n for n, _ in model.named_parameters())

    out = functional_forward(model, spec, flat, x)
    torch.testing.assert_close(out, model(x), rtol=1e-5, atol=1e-5)

    out.square().sum().backward()
    assert flat.grad is not None and flat.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())  # the module itself is untouched

    with torch.no_grad():
        shifted = flat + 0.1 * torch.randn_like(flat)
    assert not torch.allclose(functional_forward(model, spec, shifted, x), out)


def test_unflatten_views_and_validation() -> None:
    model = ConvNet(width=8, depth=2)
    spec = ParamSpec.from_module(model)
    flat = flatten_params(model)
    params = spec.unflatten(flat)
    assert list(params) == list(spec.names)
    for (name, p), t in zip(model.named_parameters(), params.values()):
        assert t.shape == p.shape and torch.equal(t, p)
        assert t.untyped_storage().data_ptr() == flat.untyped_storage().data_ptr()  # a view, not a copy
    with pytest.raises(ValueError, match="1-D vector"):
        spec.unflatten(flat[:-1])


def test_unrolled_student_step_reaches_synthetic_data() -> None:
    # The MTT pattern: one differentiable SGD step on the flat vector, then a loss on the result
    # must give a gradient on the synthetic inputs (second-order flow through the model).
    model = ConvNet(width=8, depth=2, input_size=(13, 30))
    spec = ParamSpec.from_module(model)
    start = flatten_params(model)
    x_syn = torch.randn(4, 3, 13, 30, requires_grad=True)
    y_syn = torch.tensor([0, 1, 2, 3])
    flat = start.clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(functional_forward(model, spec, flat, x_syn), y_syn)
    (grad,) = torch.autograd.grad(loss, flat, create_graph=True)
    stepped = flat - 0.01 * grad
    target = start + 0.01 * torch.randn_like(start)
    (stepped - target).square().sum().backward()
    assert x_syn.grad is not None and x_syn.grad.abs().sum() > 0


def test_functional_forward_train_mode_updates_passed_buffers() -> None:
    model = ConvNet(width=8, depth=1, norm="batchnorm").train()
    spec = ParamSpec.from_module(model)
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    functional_forward(model, spec, flatten_params(model), torch.randn(4, 3, 20, 51) + 2.0, buffers)
    assert not torch.equal(buffers["features.1.running_mean"], model.features[1].running_mean)
    assert torch.count_nonzero(model.features[1].running_mean) == 0  # the module's own stats untouched


def test_tiny_convnet_overfits_random_data() -> None:
    # A real learning check: from chance (loss ~ ln 4) to memorising 20 random samples, i.e. 100%
    # train accuracy and a near-zero loss, within 100 Adam steps (stops as soon as it gets there).
    x = torch.randn(20, 3, 20, 51)
    y = torch.arange(20) % 4
    net = ConvNet(3, 4, depth=2, width=16, input_size=(20, 51))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    first_loss = None
    for _ in range(100):
        logits = net(x)
        loss = nn.functional.cross_entropy(logits, y)
        first_loss = first_loss if first_loss is not None else loss.item()
        accuracy = (logits.argmax(1) == y).float().mean().item()
        if accuracy == 1.0 and loss.item() < 0.05:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first_loss > 1.0  # started untrained
    assert accuracy == 1.0 and loss.item() < 0.05
