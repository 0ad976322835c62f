"""Measuring explanations: perturbation faithfulness, sanity checks, localisation, removal of the
most salient pixels (ROAR's masking); per-image scoring of many methods in :mod:`.comparison`."""
from .localisation import pointing_game, relevance_mass
from .perturbation import baseline_image, deletion_auc, insertion_auc, pixel_perturbation
from .removal import removal_mask, removal_order, remove_top_fraction, removed_count
from .sanity import sanity_check

__all__ = ["baseline_image", "deletion_auc", "insertion_auc", "pixel_perturbation", "pointing_game",
           "relevance_mass", "remove_top_fraction", "removal_mask", "removal_order", "removed_count", "sanity_check"]
