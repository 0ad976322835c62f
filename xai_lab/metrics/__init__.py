"""Measuring explanations: perturbation faithfulness, sanity checks, agreement between maps,
localization, top-fraction regions and the share of a map's mass in them, removal of the most
salient pixels (ROAR's masking), exact Shapley values (a test oracle); per-image scoring of many
methods in :mod:`.comparison`. The metric families of Quantus, each cross-checked against it and
declaring ``higher_is_better``: ROAD (:mod:`.road`), faithfulness correlation
(:mod:`.faithfulness`), max-sensitivity and the local Lipschitz estimate (:mod:`.robustness`),
sparseness and complexity (:mod:`.complexity`), the random-logit test (:mod:`.random_logit`)."""
from ..ops import baseline_image  # the one baseline vocabulary, also used by the methods
from .agreement import agreement_matrix, agreement_per_image, block_coherence, pearson, spearman, ssim
from .anchors import anchor_precision, anchors_by_hiding
from .complexity import complexity, sparseness
from .faithfulness import faithfulness_correlation
from .localization import bounding_box, box_iou, pointing_game, relevance_mass
from .perturbation import deletion_auc, insertion_auc, pixel_perturbation
from .random_logit import random_logit
from .regions import mask_iou, top_fraction_mask, top_mass_share
from .removal import removal_mask, removal_order, remove_top_fraction, removed_count
from .road import noisy_linear_imputation, road
from .robustness import local_lipschitz_estimate, max_sensitivity
from .sanity import sanity_check

__all__ = ["agreement_matrix", "agreement_per_image", "anchor_precision", "anchors_by_hiding", "baseline_image",
           "block_coherence", "bounding_box", "box_iou", "complexity", "deletion_auc", "faithfulness_correlation",
           "insertion_auc", "local_lipschitz_estimate", "mask_iou", "max_sensitivity", "noisy_linear_imputation",
           "pearson", "pixel_perturbation", "pointing_game", "random_logit", "relevance_mass", "removal_mask",
           "removal_order", "remove_top_fraction", "removed_count", "road", "sanity_check", "sparseness", "spearman",
           "ssim", "top_fraction_mask", "top_mass_share"]
