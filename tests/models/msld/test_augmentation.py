"""xai_lab.models.msld.augmentation: views driven by the generator, crops inside the image."""
import torch

from xai_lab.models import msld


def test_augment_is_driven_by_the_generator():
    image = torch.rand(3, 200, 260, generator=torch.Generator().manual_seed(0))
    a = msld.augment(image, torch.Generator().manual_seed(5))
    b = msld.augment(image, torch.Generator().manual_seed(5))
    c = msld.augment(image, torch.Generator().manual_seed(6))
    assert a.shape == (3, 224, 224) and torch.equal(a, b) and not torch.equal(a, c)
    assert 0 <= float(a.min()) and float(a.max()) <= 1
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        top, left, h, w = msld.random_crop_box(200, 260, g)
        assert 0 <= top and top + h <= 200 and 0 <= left and left + w <= 260
        assert 0.5 * 200 * 260 * 0.95 <= h * w <= 200 * 260
