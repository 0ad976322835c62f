import torch

from xai_lab.metrics.common import bound_target, image_of_rows, logit_or_own_score, repeated_target
from xai_lab.targets import ClassIndex, Contrast, Labels, Logit, Probability


def test_a_class_index_reads_its_logit_and_a_target_object_its_own_score():
    logits = torch.tensor([[1.0, 3.0, 0.0], [2.0, -1.0, 0.5]])
    plain = logit_or_own_score(bound_target(None, logits))
    assert type(plain) is Logit and torch.equal(plain.scores(logits), torch.tensor([3.0, 2.0]))
    probability = logit_or_own_score(bound_target(Probability(2), logits))
    torch.testing.assert_close(probability.scores(logits), logits.softmax(1)[:, 2])
    contrast = logit_or_own_score(bound_target(Contrast(0, [1, 2]), logits))
    assert torch.equal(contrast.scores(logits), torch.tensor([-2.0, 1.5]))


def test_repeated_targets_keep_the_classes_fixed_on_the_clean_images():
    logits = torch.tensor([[1.0, 3.0, 0.0], [2.0, -1.0, 0.5]])
    contrast = repeated_target(bound_target(Contrast(None, 2), logits), 3)
    assert contrast.a.tolist() == [1, 0] * 3 and contrast.b.tolist() == [2, 2] * 3 and contrast.batch_size == 0
    index = repeated_target(bound_target(None, logits), 2)
    assert type(index) is ClassIndex and index.classes.tolist() == [1, 0, 1, 0]
    labels = repeated_target(bound_target(Labels([0, 2]), logits), 4)
    assert labels.classes == (0, 2)
    assert image_of_rows(2, 3).tolist() == [0, 0, 0, 1, 1, 1]
