"""EfficientNet-Lite0 fine-tuned to tell monkeypox lesions from other rashes (MSLD v1).

``load_model("msld_efficientnet_lite0")`` is the ImageNet EfficientNet-Lite0 with a new
two-class head (``categories = ["Monkeypox", "Others"]``), trained on the *training patients*
of ``patient_split(msld(), val=0.2, test=0.2, seed=0)`` the first time it is asked for and kept
in the user cache (:func:`fit_or_load`). One module per idea:

* :mod:`.settings` -- the classes, the image size and :class:`TrainSettings`;
* :mod:`.data` -- the patient split, msld-v1-like folders, labels, pixels and the
  ``transform(pixels, record)`` hook (planted marks, ROAR's removal);
* :mod:`.augmentation` -- random crops, flips and color jitter from one seeded generator;
* :mod:`.training` -- pooled features, the logistic head (a linear probe), training and the
  cached model (:mod:`xai_lab.models.cache`);
* :mod:`.evaluation` -- predictions and the figures with patient-bootstrap intervals.

Preprocessing: MSLD images are 224 x 224, so the classifier resizes the short side to 224 and
center-crops 224 (the identity on MSLD) instead of ImageNet's 256 -> 224, which would cut 12.5 %
off every border, where lesions often are.
"""
from .augmentation import augment, augmented_views, random_crop_box
from .data import PixelTransform, center_view, folder_records, label_indices, load_pixels, split_records
from .evaluation import METRICS, Evaluation, describe, evaluate, evaluate_probabilities, predict, scores, weighted_metrics
from .settings import CATEGORIES, DEFAULT_SETTINGS, IMAGE_SIZE, NAME, POSITIVE, ROC_AUC_GOAL, THRESHOLD, TrainSettings
from .training import (
                       RECIPE,
                       as_classifier,
                       cache_key,
                       cache_path,
                       describe_training,
                       deterministic,
                       efficientnet_lite0,
                       fit_head,
                       fit_or_load,
                       imagenet_backbone,
                       load,
                       pooled_features,
                       train,
)

__all__ = ["CATEGORIES", "DEFAULT_SETTINGS", "Evaluation", "IMAGE_SIZE", "METRICS", "NAME", "POSITIVE",
           "PixelTransform",
           "RECIPE", "ROC_AUC_GOAL", "THRESHOLD",
           "TrainSettings", "as_classifier", "augment", "augmented_views", "cache_key", "cache_path", "center_view", "describe",
           "describe_training",
           "deterministic", "efficientnet_lite0", "evaluate", "evaluate_probabilities", "fit_head", "fit_or_load", "folder_records",
           "imagenet_backbone", "label_indices", "load", "load_pixels", "pooled_features", "predict",
           "random_crop_box", "scores", "split_records", "train", "weighted_metrics"]
