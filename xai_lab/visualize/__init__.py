"""Feature visualization: images that a class or a channel responds to most.

``activation_maximization`` (Erhan et al. 2009; Olah et al. 2017) and ``deep_dream``
(Mordvintsev et al. 2015) both ascend the gradient of an activation with respect to the image.
"""
from .activation_maximization import activation_maximization
from .deep_dream import deep_dream

__all__ = ["activation_maximization", "deep_dream"]
