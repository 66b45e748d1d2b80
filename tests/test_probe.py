"""Tests for pa3.assignment.probe (the hidden functional checks of tasks 5-8): the references, the repository's
models matching them, and wrong models (a missing ReLU, swapped skips, a wrong dilation, layers defined in
another order, a forward that raises) getting a message that names the right layer."""
import importlib.util
import shutil
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pa3.models
from pa3.assignment import probe as P
from pa3.models import ASPP, ResNet101ASPP, UNet

HIDDEN = Path(P.__file__).parent / "checks" / "hidden"


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    """{name: path} of the five records, written once."""
    return P.write_references(tmp_path_factory.mktemp("references"))


def record(refs, name):
    return torch.load(refs[name], weights_only=True)


def check(refs, name, model):
    rec = record(refs, name)
    return P.compare(rec, model, rec["what"])


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


def test_write_references(refs):
    assert set(refs) == {name for names in P.TASK_RECORDS.values() for name in names} == set(P.REFERENCES)
    for name, path in refs.items():
        assert path == path.parent / f"{name}.pt"
        assert path.stat().st_size < 3e6  # activations (sampled) and shapes only, no weights
        rec = record(refs, name)
        assert rec["seed"] == 0 and rec["params"] and rec["layers"]
        assert all(summary[2].numel() <= P.SAMPLE for *_, summary in rec["layers"])


@pytest.mark.parametrize("name", list(P.REFERENCES))
def test_the_repository_matches_its_references(refs, name):
    P.check_against_reference(refs[name])  # no AssertionError
    assert P.compare(record(refs, name), P._build(P.REFERENCES[name]), name) is None


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


def test_check_against_reference_raises_the_message(refs, monkeypatch):
    monkeypatch.setattr(pa3.models, "build_model", lambda name, num_classes: UNetNoReLU8(num_classes))
    with pytest.raises(AssertionError, match=r"your `block8\.3` \(Conv2d"):
        P.check_against_reference(refs["unet"])

    def stub(name, num_classes):
        raise NotImplementedError("Task 5: build the U-Net")
    monkeypatch.setattr(pa3.models, "build_model", stub)
    with pytest.raises(AssertionError, match=r"Building your U-Net .* with build_model\('unet', 3\) raised "
                                             r"NotImplementedError: Task 5"):
        P.check_against_reference(refs["unet"])


def test_reference_path_without_the_grader(monkeypatch, tmp_path):
    monkeypatch.delenv(P.ENV, raising=False)
    with pytest.raises(AssertionError, match="grader did not provide the reference.*PA3_REFERENCE_DIR is not set"):
        P.reference_path("unet")
    monkeypatch.setenv(P.ENV, str(tmp_path))
    with pytest.raises(AssertionError, match="unet.pt is missing"):
        P.reference_path("unet")


def test_hidden_checks_use_the_copied_probe(refs, monkeypatch, tmp_path):
    """As the grader runs them: pa3_probe.py in a helper folder on the path, $PA3_REFERENCE_DIR set."""
    shutil.copyfile(P.__file__, tmp_path / "pa3_probe.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "pa3_probe", raising=False)
    monkeypatch.setenv(P.ENV, str(refs["unet"].parent))
    names = {5: ["test_unet_computes_table_2"], 6: ["test_resnet50_deconv_computes_table_3"],
             7: ["test_aspp_computes_table_4", "test_resnet101_aspp_computes_its_aspp"],
             8: ["test_unet_aspp_computes_tables_2_and_4"]}
    for task, tests in names.items():
        spec = importlib.util.spec_from_file_location(f"hidden_task{task}", HIDDEN / f"test_task{task}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for name in tests:
            getattr(module, name)()
    assert sys.modules["pa3_probe"].__file__ == str(tmp_path / "pa3_probe.py")
