"""Shared by the tests of xai_lab.models.msld: the tiny settings and one tiny training."""
import pytest
import torch

from xai_lab.models import msld
from xai_lab.models.msld import training

# Four training, two validation and two test patients per class, one image each; each training
# image as is and one augmented view: seconds to train.
TINY = msld.TrainSettings(copies=2, max_steps=30, patience=10, val=0.25, test=0.25)


@pytest.fixture(scope="package")
def spied_training(msld_one_image_patients):
    """One tiny training, with the records every feature extraction was given."""
    seen = []
    original = training.pooled_features

    def spy(backbone, recs, *args, **kwargs):
        seen.extend(recs)
        return original(backbone, recs, *args, **kwargs)

    training.pooled_features = spy
    try:
        threads = torch.get_num_threads()
        model, info = msld.train(TINY, msld_one_image_patients, progress=False)
        assert torch.get_num_threads() == threads and not torch.are_deterministic_algorithms_enabled()
    finally:
        training.pooled_features = original
    return model, info, seen
