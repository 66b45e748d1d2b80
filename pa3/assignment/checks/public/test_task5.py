"""Task 5 (modified U-Net, report Table 2), public checks."""
import torch

from pa3.models import build_model, count_parameters


def conv(k, cin, cout):  # weights + bias
    return k * k * cin * cout + cout


def bn(c):
    return 2 * c


def test_shape_and_gradients():
    model = build_model("unet", 5)
    x = torch.randn(2, 3, 32, 64)
    out = model(x)
    assert out.shape == (2, 5, 32, 64)  # (N, classes, H, W): same size as the input
    out.mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_parameter_count_of_table_2():
    def double(cin, cout):
        return conv(3, cin, cout) + bn(cout) + conv(3, cout, cout) + bn(cout)

    def up(cin):
        return conv(3, cin, cin // 2) + bn(cin // 2)

    expected = (conv(3, 3, 64) + conv(3, 64, 64) + bn(64) + double(64, 128) + double(128, 256) + double(256, 512)
                + double(512, 1024) + up(1024) + double(1024, 512) + up(512) + double(512, 256) + up(256)
                + double(256, 128) + up(128) + double(128, 64) + conv(1, 64, 19))
    assert count_parameters(build_model("unet", 19)) == expected
