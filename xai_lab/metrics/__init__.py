"""Measuring explanations: perturbation faithfulness, sanity checks, agreement between maps,
localization, top-fraction regions and the share of a map's mass in them, removal of the most
salient pixels (ROAR's masking), exact Shapley values (a test oracle); per-image scoring of many
methods in :mod:`.comparison`."""
from ..ops import baseline_image  # the one baseline vocabulary, also used by the methods
from .agreement import agreement_matrix, agreement_per_image, block_coherence, pearson, spearman, ssim
from .anchors import anchor_precision, anchors_by_hiding
from .localization import bounding_box, box_iou, pointing_game, relevance_mass
from .perturbation import deletion_auc, insertion_auc, pixel_perturbation
from .regions import mask_iou, top_fraction_mask, top_mass_share
from .removal import removal_mask, removal_order, remove_top_fraction, removed_count
from .sanity import sanity_check

__all__ = ["agreement_matrix", "agreement_per_image", "anchor_precision", "anchors_by_hiding", "baseline_image",
           "block_coherence", "bounding_box", "box_iou", "deletion_auc", "insertion_auc", "mask_iou",
           "pearson", "pixel_perturbation", "pointing_game", "relevance_mass", "removal_mask",
           "removal_order", "remove_top_fraction", "removed_count", "sanity_check", "spearman", "ssim",
           "top_fraction_mask", "top_mass_share"]
