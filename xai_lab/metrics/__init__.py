"""Measuring explanations: perturbation faithfulness, sanity checks, localisation."""
from .localisation import pointing_game, relevance_mass
from .perturbation import baseline_image, deletion_auc, insertion_auc, pixel_perturbation
from .sanity import sanity_check

__all__ = ["baseline_image", "deletion_auc", "insertion_auc", "pixel_perturbation", "pointing_game",
           "relevance_mass", "sanity_check"]
