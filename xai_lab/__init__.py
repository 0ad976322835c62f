"""xai_lab: explain what a convolutional image classifier looks at.

>>> import xai_lab
>>> clf = xai_lab.load_model()                     # EfficientNet-Lite0, ImageNet weights
>>> x = clf.preprocess(xai_lab.data.load_image("cat.jpg"))
>>> e = xai_lab.explain(clf, x, method="gradcam")  # Explanation: .saliency [1, 224, 224]
>>> xai_lab.methods()                              # the names ``method=`` accepts
"""
from . import data
from . import methods as _method_modules  # noqa: F401  (importing it registers every method)
from .explain import Explanation, explain
from .models import Classifier, load_model, model_names
from .registry import methods  # the function; the subpackage stays importable as xai_lab.methods.<family>

__version__ = "0.1.0"
__all__ = ["Classifier", "Explanation", "data", "explain", "load_model", "methods", "model_names", "__version__"]
