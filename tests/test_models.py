"""Tests for pa3.models: shapes and gradients of every registered model, hand-counted parameters of the
report's Tables 1-2, errors (typo, input size, pretrained offline) and initialisation."""
import copy
import math
import urllib.error

import pytest
import torch
import torchvision
from torch import nn

from pa3.files import BadFileError
from pa3.models import ASPP, MODELS, build_model, count_parameters


def conv(k, cin, cout):  # weights + bias
    return k * k * cin * cout + cout


def bn(c):  # weight + bias
    return 2 * c


@pytest.fixture
def no_network(monkeypatch):
    """Make every weight download fail loudly."""
    def boom(*args, **kwargs):
        raise AssertionError("tried to download weights")
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", boom)
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", boom)


@pytest.mark.parametrize("name", list(MODELS))
def test_forward_backward_shape(name, no_network):
    torch.manual_seed(0)
    model = build_model(name, num_classes=5)  # pretrained=False: must not touch the network
    x = torch.randn(2, 3, 64, 96)
    out = model(x)
    assert out.shape == (2, 5, 64, 96)
    out.logsumexp(1).mean().backward()
    params = list(model.parameters())
    assert all(p.grad is not None for p in params)
    assert params[0].grad.abs().sum() > 0 and params[-1].grad.abs().sum() > 0  # first and last layer
    with pytest.raises(ValueError, match=f"{name} needs H and W divisible by 32.*nearest valid size is 64x96"):
        model(torch.randn(1, 3, 70, 90))
    if name in ("deeplabv3", "resnet101_aspp", "unet_aspp"):  # image pooling: BatchNorm over a 1x1 map
        with pytest.raises(ValueError, match=f"{name} needs a batch of at least 2 images in training mode"):
            model(torch.randn(1, 3, 64, 96))


def test_fcn_parameter_count_matches_table_1():
    n = 19
    encoder = sum(conv(3, a, b) + bn(b) for a, b in [(3, 32), (32, 64), (64, 128), (128, 256), (256, 512)])
    decoder = sum(conv(3, a, b) + bn(b) for a, b in [(512, 512), (512, 256), (256, 128), (128, 64), (64, 32)])
    expected = encoder + decoder + conv(1, 32, n)
    assert expected == 5_500_179
    assert count_parameters(build_model("fcn", n)) == expected


def test_unet_parameter_count_matches_table_2():
    n = 19

    def double(cin, cout):  # (Conv, BN, ReLU) x 2
        return conv(3, cin, cout) + bn(cout) + conv(3, cout, cout) + bn(cout)

    def deconv(cin):  # Upsample (no parameters) + Conv halving + BN
        return conv(3, cin, cin // 2) + bn(cin // 2)

    expected = (conv(3, 3, 64) + conv(3, 64, 64) + bn(64)  # block 1: Conv, ReLU, Conv, BN, ReLU
                + double(64, 128) + double(128, 256) + double(256, 512) + double(512, 1024)  # blocks 2-5
                + deconv(1024) + double(1024, 512)  # deconv1, block 6
                + deconv(512) + double(512, 256)  # deconv2, block 7
                + deconv(256) + double(256, 128)  # deconv3, block 8
                + deconv(128) + double(128, 64)  # deconv4, block 9
                + conv(1, 64, n))  # clf
    assert count_parameters(build_model("unet", n)) == expected


def test_aspp_parameter_count_matches_table_4():
    cin, cout = 64, 32
    expected = (conv(1, cin, 128)  # row 1: bare 1x1 conv
                + 3 * (conv(3, cin, 128) + bn(128))  # rows 2-4: atrous convs
                + conv(1, cin, 128) + bn(128)  # row 5: image pooling
                + conv(1, 5 * 128, cout) + bn(cout))  # row 8: projection
    assert count_parameters(ASPP(cin, cout)) == expected


def test_aspp_keeps_size_and_needs_batch_of_two_in_training():
    aspp = ASPP(8, 4)
    assert aspp(torch.randn(2, 8, 5, 7)).shape == (2, 4, 5, 7)
    with pytest.raises(ValueError, match="batch size of at least 2"):
        aspp(torch.randn(1, 8, 5, 7))
    assert aspp.eval()(torch.randn(1, 8, 5, 7)).shape == (1, 4, 5, 7)


def test_typo_lists_valid_names():
    with pytest.raises(ValueError, match="unknown model 'unett'; choose one of fcn, unet, resnet50_deconv"):
        build_model("unett", 19)


def test_size_error_names_nearest_valid_size():
    with pytest.raises(ValueError, match=r"fcn needs H and W divisible by 32; got 250x500, "
                                         r"nearest valid size is 256x512 \(resize or crop to it\)"):
        build_model("fcn", 19)(torch.randn(1, 3, 250, 500))


def test_registry_metadata_covers_every_model():
    assert all(name == cls.name and cls.display and cls.report_table for name, cls in MODELS.items())
    assert MODELS["resnet101_aspp"].display == "Ours" and MODELS["fcn"].display == "Baseline"
    assert [n for n, cls in MODELS.items() if cls.pretrainable] == ["resnet50_deconv", "deeplabv3", "resnet101_aspp"]


@pytest.mark.parametrize("name", ["fcn", "unet"])
def test_scratch_models_refuse_pretrained(name):
    with pytest.raises(ValueError, match="no pretrained weights"):
        build_model(name, 19, pretrained=True)


def test_xavier_initialisation():
    torch.manual_seed(0)
    model = build_model("fcn", 19)
    for layer in (model.encoder[4][0], model.decoder[0][0]):  # Conv2d 256->512, ConvTranspose2d 512->512
        w = layer.weight
        fan_sum = (w.shape[0] + w.shape[1]) * w.shape[2] * w.shape[3]
        assert w.std().item() == pytest.approx(math.sqrt(2 / fan_sum), rel=0.02)
        assert torch.all(layer.bias == 0)
    bn_layer = model.encoder[0][1]
    assert torch.all(bn_layer.weight == 1) and torch.all(bn_layer.bias == 0)


def test_pretrained_file_loads_backbone(tmp_path, no_network):
    torch.manual_seed(0)
    resnet = torchvision.models.resnet50(weights=None)
    path = tmp_path / "resnet50.pth"
    torch.save(resnet.state_dict(), path)  # includes fc.*, which is dropped
    model = build_model("resnet50_deconv", 5, pretrained=str(path))
    assert torch.equal(model.backbone.conv1.weight, resnet.conv1.weight)
    assert torch.equal(model.backbone.layer4[2].bn3.running_var, resnet.layer4[2].bn3.running_var)
    head = model.decoder[0][0].weight  # new head: still Xavier
    assert head.std().item() == pytest.approx(math.sqrt(2 / ((2048 + 512) * 9)), rel=0.02)

    wrong = tmp_path / "wrong.pth"
    torch.save(nn.Conv2d(3, 4, 1).state_dict(), wrong)
    with pytest.raises(RuntimeError, match=r"missing keys \['conv1.weight'.*unexpected keys \['weight', 'bias'\]"):
        build_model("resnet50_deconv", 5, pretrained=wrong)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        build_model("resnet50_deconv", 5, pretrained=tmp_path / "nope.pth")
    # a "weights" file carrying pickled code is refused, with the reason and the fix, and nothing runs
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": resnet.state_dict(), "hook": print}, evil)
    with pytest.raises(BadFileError, match=r"evil\.pth holds pickled Python objects \(code\).*torch.save\(model.state_dict\(\)"):
        build_model("resnet50_deconv", 5, pretrained=evil)


def test_deeplabv3_file_keeps_all_but_class_conv(tmp_path, no_network):
    torch.manual_seed(0)
    coco_like = build_model("deeplabv3", 21, backbone="resnet50")
    path = tmp_path / "deeplab.pth"
    torch.save(coco_like.net.state_dict(), path)
    model = build_model("deeplabv3", 5, pretrained=path, backbone="resnet50")
    assert torch.equal(model.net.classifier[0].project[0].weight, coco_like.net.classifier[0].project[0].weight)
    assert torch.equal(model.net.backbone.conv1.weight, coco_like.net.backbone.conv1.weight)
    assert model.net.classifier[4].weight.shape == (5, 256, 1, 1)


def test_pretrained_true_offline_says_where_to_put_the_file(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    where = f"{torch.hub.get_dir()}/checkpoints/resnet50-0676ba61.pth"
    with pytest.raises(RuntimeError) as err:
        build_model("resnet50_deconv", 5, pretrained=True)
    message = str(err.value)
    assert where in message and "pretrained=False" in message and "pretrained='path/to/" in message


def test_pretrained_true_uses_a_file_put_in_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))  # torch.hub.get_dir() -> tmp_path
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("tried to download"))
    torch.manual_seed(0)
    resnet = torchvision.models.resnet50(weights=None)
    (tmp_path / "checkpoints").mkdir()
    torch.save(resnet.state_dict(), tmp_path / "checkpoints" / "resnet50-0676ba61.pth")
    model = build_model("resnet50_deconv", 5, pretrained=True)
    assert torch.equal(model.backbone.conv1.weight, resnet.conv1.weight)


def test_count_flops_on_meta_device_equals_a_real_count():
    from torch.utils.flop_counter import FlopCounterMode

    from pa3.models import count_flops

    model = build_model("fcn", 19).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.randn(1, 3, 64, 128))
    assert count_flops("fcn", 19, (64, 128)) == counter.get_total_flops() > 0


def test_summary_lists_table1_shapes():
    from pa3.models import summary

    rows = summary(build_model("fcn", 19), (64, 128))
    assert [r["output"] for r in rows][:5] == [(1, 32, 32, 64), (1, 64, 16, 32), (1, 128, 8, 16),
                                               (1, 256, 4, 8), (1, 512, 2, 4)]
    assert rows[-1] == {"layer": "classifier", "type": "Conv2d", "output": (1, 19, 64, 128), "params": 32 * 19 + 19}
    assert sum(r["params"] for r in rows) == count_parameters(build_model("fcn", 19))


@pytest.mark.parametrize("name", list(MODELS))
def test_checkpointing_leaves_gradients_and_running_stats_unchanged(name, no_network):
    """Activation checkpointing recomputes the blocks in backward: the same gradients (dropout replays its
    masks), BatchNorm running stats updated once (restored after the recomputation), the same state dict
    keys and evaluation outputs; switching it off restores the plain forward."""
    from pa3.models import checkpoint_blocks, set_activation_checkpointing

    kwargs = {"dropout": 0.1} if name in ("resnet101_aspp", "unet_aspp") else {}
    torch.manual_seed(0)
    plain = build_model(name, 5, **kwargs)
    checkpointed = copy.deepcopy(plain)
    assert set_activation_checkpointing(checkpointed) is checkpointed
    x = torch.randn(2, 3, 32, 64)
    for model in (plain, checkpointed):
        torch.manual_seed(1)  # the same dropout masks in both forwards
        model(x).logsumexp(1).mean().backward()
    for (key, p), q in zip(plain.named_parameters(), checkpointed.parameters()):
        assert torch.allclose(q.grad, p.grad, rtol=1e-5, atol=1e-7), key
    state, state_checkpointed = plain.state_dict(), checkpointed.state_dict()
    assert state.keys() == state_checkpointed.keys()
    for key in state:  # running_mean/var, num_batches_tracked: one update, as without checkpointing
        assert torch.equal(state[key], state_checkpointed[key]), key
    with torch.no_grad():
        assert torch.equal(plain.eval()(x), checkpointed.eval()(x))
    set_activation_checkpointing(checkpointed, False)
    assert all("forward" not in vars(block) for block in checkpoint_blocks(checkpointed))
