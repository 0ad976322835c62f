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


def test_augmented_views_start_with_the_image_and_follow_one_generator():
    image = torch.rand(3, 224, 224, generator=torch.Generator().manual_seed(0))
    views = msld.augmented_views(image, 3, seed=7)
    generator = torch.Generator().manual_seed(7)
    assert len(views) == 4 and views[0] is image
    assert all(torch.equal(view, msld.augment(image, generator)) for view in views[1:])
