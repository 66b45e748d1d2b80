"""Tests for pa3.assignment.probe (the graded functional checks of tasks 5-8): the observations, the repository's
models matching them, and wrong models (a missing ReLU, swapped skips, a wrong dilation, layers defined in
another order, a forward that raises) getting a message that names the right layer, also after the observation
came back from the sandbox as JSON."""
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pa3.models
from pa3.assignment import probe as P
from pa3.assignment.runner import from_json_value, to_json_value
from pa3.models import ASPP, ResNet101ASPP, UNet


def _as_sent(observation):
    """An observation as it comes back from the sandbox: encoded, a JSON line, decoded."""
    return from_json_value(json.loads(json.dumps(to_json_value(observation))))


@pytest.fixture(scope="module")
def refs():
    """{name: the repository's observation} of the five functional checks, made once."""
    return {name: _as_sent(P.observe(name)) for name in P.REFERENCES}


def check(refs, name, model):
    return P.judge(refs[name], _as_sent(P.observe_model(model, name)))


def _through_block7(unet, x):
    """The U-Net's own forward up to block 7: (block 1's output, block 2's output, block 7's output)."""
    x1 = unet.block1(x)
    x2 = unet.block2(x1)
    x3 = unet.block3(x2)
    x4 = unet.block4(x3)
    x = unet.block6(torch.cat([x4, unet.deconv1(unet.block5(x4))], 1))
    return x1, x2, unet.block7(torch.cat([x3, unet.deconv2(x)], 1))


class UNetNoReLU8(UNet):
    """Block 8 without the ReLU after its first conv + BN (same parameters)."""

    def forward(self, x):
        x1, x2, x = _through_block7(self, x)
        b = self.block8
        x = b[5](b[4](b[3](b[1](b[0](torch.cat([x2, self.deconv3(x)], 1))))))  # b[2], the ReLU, left out
        x = self.block9(torch.cat([x1, self.deconv4(x)], 1))
        return self.classifier(x)


class UNetSwappedSkip(UNet):
    """Block 8 sees cat(upsampled, skip) instead of cat(skip, upsampled)."""

    def forward(self, x):
        x1, x2, x = _through_block7(self, x)
        x = self.block8(torch.cat([self.deconv3(x), x2], 1))
        x = self.block9(torch.cat([x1, self.deconv4(x)], 1))
        return self.classifier(x)


def test_observations_hold_values_only(refs):
    assert set(refs) == {name for names in P.TASK_RECORDS.values() for name in names} == set(P.REFERENCES)
    for name, seen in refs.items():
        assert seen["seed"] == 0 and seen["params"] and seen["layers"] and torch.is_tensor(seen["output"])
        assert all(summary[2].numel() <= P.SAMPLE for *_, summary in seen["layers"])
        assert len(json.dumps(to_json_value(seen))) < 16e6  # sampled activations and shapes, no weights


@pytest.mark.parametrize("name", list(P.REFERENCES))
def test_the_repository_matches_its_references(refs, name):
    assert P.judge(refs[name], _as_sent(P.observe(name))) is None
    assert check(refs, name, P._build(P.REFERENCES[name])) is None


def test_fill_by_position_ignores_names():
    a = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    b = nn.Module()
    b.first, b.norm = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)
    P.fill_by_position(a, seed=3)
    P.fill_by_position(b, seed=3)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka != kb and torch.equal(va, vb)
    assert b.norm.num_batches_tracked.item() == 0
    assert (b.norm.running_var >= 1).all()
    weight = b.first.weight.clone()
    assert not torch.equal(weight, P.fill_by_position(b, seed=4).first.weight)


def test_missing_relu_in_block8(refs):
    message = check(refs, "unet", UNetNoReLU8(3))
    assert "everything up to your `block8.1` (BatchNorm2d) matches; your `block8.3` (Conv2d" in message
    assert "missing or extra ReLU" in message


def test_swapped_skip_concatenation(refs):
    message = check(refs, "unet", UNetSwappedSkip(3))
    assert "your `deconv3.2` (BatchNorm2d) matches; your `block8.0` (Conv2d" in message
    assert "concatenated" in message


def test_layers_defined_in_another_order(refs):
    model = UNet(3)
    model.deconv1 = model._modules.pop("deconv1")  # now defined last
    message = check(refs, "unet", model)
    assert "your `block6.3.weight` of shape (512, 512, 3, 3)" in message
    assert "`block6.0.weight` of shape (512, 1024, 3, 3)" in message
    assert "in the order of the report's table" in message


def test_wrong_aspp_dilation(refs):
    message = check(refs, "aspp", ASPP(8, 8, rates=(6, 12, 24)))
    assert "your `atrous.2.0` (Conv2d" in message and "dilation" in message


def test_branch_order_in_forward_does_not_matter(refs):
    class PoolingLast(ASPP):
        def forward(self, x):
            branches = [self.conv1x1(x), *(a(x) for a in self.atrous)]
            pooled = F.interpolate(self.pooling(x), size=x.shape[-2:], mode="bilinear", align_corners=True)
            return self.project(torch.cat([*branches, pooled], 1))

    assert check(refs, "aspp", PoolingLast(8, 8)) is None


def test_a_layer_run_twice(refs):
    class Twice(ASPP):
        def forward(self, x):
            self.conv1x1(x)
            return super().forward(x)

    message = check(refs, "aspp", Twice(8, 8))
    assert "your `conv1x1` (Conv2d) ran more often" in message


def test_only_the_final_output_differs(refs):
    class AlignedCorners(ResNet101ASPP):
        def forward(self, x):
            logits = self.classifier(self.aspp(self.backbone(x)))
            return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=True)

    message = check(refs, "resnet101_aspp", AlignedCorners(3))
    assert "every layer with weights matches" in message and "align_corners=False" in message
    assert "your `classifier`, Conv2d" in message


def test_a_forward_that_raises_gives_a_message(refs):
    class Broken(UNet):
        def forward(self, x):
            raise RuntimeError("not written yet")

    message = check(refs, "unet", Broken(3))
    assert message.startswith("Your U-Net (task 5, report Table 2) raised RuntimeError: not written yet on an "
                              "input of shape (1, 3, 32, 32)")


def test_observe_keeps_the_students_exceptions_as_text(refs, monkeypatch):
    monkeypatch.setattr(pa3.models, "build_model", lambda name, num_classes: UNetNoReLU8(num_classes))
    assert "your `block8.3` (Conv2d" in P.judge(refs["unet"], _as_sent(P.observe("unet")))

    def stub(name, num_classes):
        raise NotImplementedError("Task 5: build the U-Net")
    monkeypatch.setattr(pa3.models, "build_model", stub)
    message = P.judge(refs["unet"], _as_sent(P.observe("unet")))
    assert message.startswith("Building your U-Net (task 5, report Table 2) with build_model('unet', 3) raised "
                              "NotImplementedError: Task 5")


def test_a_malformed_observation_gets_a_message_not_an_exception(refs):
    assert P.judge(refs["unet"], {"params": "nonsense"}).startswith("Checking your U-Net")
