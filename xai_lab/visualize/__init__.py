"""Feature visualization: images that a class or a channel responds to most.

``activation_maximization`` (Erhan et al. 2009; Olah et al. 2017) and ``deep_dream``
(Mordvintsev et al. 2015) both ascend the gradient of an activation with respect to the image;
``transform_robustness`` checks whether such an image survives small changes, and
``mean_channel_activations`` finds the channels and data set images to show next to it.
"""
from .activation_maximization import activation_maximization
from .channels import mean_channel_activations
from .deep_dream import deep_dream
from .robustness import class_probability, transform_robustness

__all__ = ["activation_maximization", "class_probability", "deep_dream", "mean_channel_activations",
           "transform_robustness"]
