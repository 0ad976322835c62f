"""Targets: which score of the model's outputs a map explains.

A target turns the model's outputs ``logits`` [N, C] into one score per image [N]; a method
explains that score (its gradient, its change under perturbation). One small vocabulary:

* a plain class index (an int, one int per image, a tensor, a class label, or ``None`` for the
  predicted class) is a :class:`ClassIndex`: the logit of that class for the methods that
  differentiate a score, and its softmax probability for the methods and metrics whose papers
  read the probability of the perturbed input (occlusion, RISE, Score-CAM, LIME, deletion and
  insertion, pixel perturbation): today's behavior, unchanged;
* :class:`Logit` ``(c)``: z_c, for every method;
* :class:`Probability` ``(c)``: softmax(z)_c = exp(z_c) / sum_j exp(z_j);
* :class:`Sigmoid` ``()``: sigmoid(z_0) for a model with one output (a binary classifier with a
  single logit); ``Sigmoid(positive=False)``: 1 - sigmoid(z_0), the negative class;
* :class:`Labels` ``([c1, c2, ...])``: several labels at once (multi-label), the sum of their
  logits, or with ``output="sigmoid"`` the sum of their sigmoid probabilities;
* :class:`Contrast` ``(a, b)``: z_a - z_b, "why a rather than b" (the log-odds of a against b
  under the softmax);
* any callable ``f(logits [M, C]) -> scores [M]`` (wrapped as :class:`Custom`): it must score each
  row on its own, since the rows a method passes are often perturbed copies of the N images.

Class arguments take an int (every image), one int per image, a class label (with a
:class:`~xai_lab.models.Classifier`) or ``None`` (the predicted class). Before a method runs, the
target is *bound* to the batch (:meth:`TargetScore.bind`): ``None`` becomes the classes
predicted on the clean input, and every class is checked against the model's outputs. Rows of a
batch of M = k * N logits belong to images ``row % N`` (k consecutive copies of the batch), the
layout every method uses.
"""
from __future__ import annotations

import abc
import copy
import dataclasses
from typing import Callable, Sequence

import torch

Classes = int | str | Sequence[int | str] | torch.Tensor | None


class TargetScore(abc.ABC):
    """What a map explains: ``scores(logits)`` [M] from the model's outputs [M, C].

    ``name``: what it is, e.g. ``"contrast: logit of 3 - logit of 5"``. ``explained_classes`` (after
    :meth:`bind`): one class per image [N], the class the map is for (class a of a contrast),
    -1 where the target is no single class (several labels, a sigmoid, a callable).
    ``single_class``: True where the score is a function of one class's output (a class index, a
    logit or a probability), which methods that need "the class" (Anchors' decision, the random
    target of the sanity check) require."""

    single_class = False

    @property
    def name(self) -> str:
        return self.describe()

    @abc.abstractmethod
    def describe(self, categories: Sequence[str] | None = None) -> str:
        """``name``, with class labels instead of indices where ``categories`` are given."""

    @abc.abstractmethod
    def scores(self, logits: torch.Tensor, images: torch.Tensor | int | None = None) -> torch.Tensor:
        """The score of every row of ``logits`` [M, C] -> [M]. ``images``: which image each row
        belongs to ([M], or one int for all rows); default ``row % N`` once bound."""

    def bind(self, n: int, num_classes: int, predicted: Callable[[], torch.Tensor], device=None) -> TargetScore:
        """This target for a batch of ``n`` images of a model with ``num_classes`` outputs: classes
        as long tensors [n], checked; ``predicted()`` (called only for a ``None`` class) gives the
        predicted class of each clean image."""
        return _bound(self, n)

    @property
    def needs_prediction(self) -> bool:
        """Whether :meth:`bind` calls ``predicted`` (some class is ``None``)."""
        return False

    @property
    def explained_classes(self) -> torch.Tensor:
        """One class per image [N] (bound target): the class explained, -1 where there is none."""
        return torch.full((self.batch_size,), -1, dtype=torch.long)

    @property
    def batch_size(self) -> int:
        """N, the number of images the target is bound to (0 before :meth:`bind`)."""
        return getattr(self, "bound_n", 0)

    def logit_weights(self, num_classes: int) -> torch.Tensor | None:
        """[N, C] coefficients w with score = sum_c w_c z_c where the score is linear in the logits
        (a logit, several logits, a contrast); None otherwise. Needs a bound target."""
        return None

    def with_labels(self, categories: Sequence[str] | None) -> TargetScore:
        """A copy with every class label (str) replaced by its index in ``categories``."""
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def _bound(target: TargetScore, n: int, **changes) -> TargetScore:
    """A copy of ``target`` bound to ``n`` images, with ``changes`` to its fields."""
    out = copy.copy(target)
    for name, value in {**changes, "bound_n": n}.items():
        object.__setattr__(out, name, value)
    return out


def _classes_tensor(classes, n: int, num_classes: int, predicted, device, what: str) -> torch.Tensor:
    """One class per image [n] (long, checked); ``None`` -> the predicted classes."""
    if classes is None:
        return predicted().to(device).long()
    if isinstance(classes, str):
        raise ValueError(f"{what}: class label {classes!r} needs a Classifier (a bare model has no class names)")
    return check_targets(classes, n, num_classes, device)


def _rows(images, m: int, n: int | None, device) -> torch.Tensor:
    """Which image each of ``m`` rows belongs to."""
    if images is None:
        if n is None or m % n:
            raise ValueError(f"Got {m} rows of logits for a target bound to {n} images: give images= (which image "
                             "each row belongs to) or a multiple of the batch")
        return torch.arange(m, device=device) % n
    if isinstance(images, int):
        return torch.full((m,), images, dtype=torch.long, device=device)
    return torch.as_tensor(images, device=device).long()


def _column(logits: torch.Tensor, classes, images) -> torch.Tensor:
    """The logit of each row's class: [M]. ``classes``: None (each row's argmax), an int, or one
    per image (a bound target's, checked by :meth:`TargetScore.bind`)."""
    if classes is None:
        index = logits.detach().argmax(dim=1)
    elif isinstance(classes, int) and not isinstance(classes, bool):
        if not 0 <= classes < logits.shape[1]:
            raise ValueError(f"Target class {classes} is out of range: the model has {logits.shape[1]} outputs")
        index = torch.full((logits.shape[0],), classes, dtype=torch.long, device=logits.device)
    elif isinstance(classes, (list, tuple, torch.Tensor)) and not any(isinstance(c, str) for c in classes):
        per_image = torch.as_tensor(classes, device=logits.device).long().flatten()
        index = per_image[_rows(images, logits.shape[0], len(per_image), logits.device)]
    else:
        raise TypeError(f"Target classes {classes!r}: give class indices (labels are looked up by explain with a "
                        "Classifier)")
    return logits.gather(1, index.view(-1, 1)).squeeze(1)


def _label(classes, categories) -> str:
    if classes is None:
        return "predicted class"
    if isinstance(classes, torch.Tensor):
        values = classes.flatten().tolist()
        if len(set(values)) == 1:
            classes = values[0]
        else:
            return "[" + ", ".join(_label(c, categories) for c in values) + "]"
    if isinstance(classes, int) and categories is not None and 0 <= classes < len(categories):
        return categories[classes]
    if isinstance(classes, (list, tuple)):
        return "[" + ", ".join(_label(c, categories) for c in classes) + "]"
    return str(classes)


def _indices(classes, categories):
    return labels_to_indices(classes, categories) if classes is not None else None


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Logit(TargetScore):
    """z_c, the logit of class ``classes`` (an int, one per image, a label, or None: the
    predicted class)."""

    classes: Classes = None
    single_class = True

    def describe(self, categories=None) -> str:
        return f"logit of {_label(self.classes, categories)}"

    def scores(self, logits, images=None):
        return _column(logits, self.classes, images)

    @property
    def needs_prediction(self) -> bool:
        return self.classes is None

    def bind(self, n, num_classes, predicted, device=None):
        classes = _classes_tensor(self.classes, n, num_classes, predicted, device, type(self).__name__)
        return _bound(self, n, classes=classes)

    @property
    def explained_classes(self) -> torch.Tensor:
        if not isinstance(self.classes, torch.Tensor):
            raise TypeError("Bind the target first: its classes are not one per image yet")
        return self.classes

    def logit_weights(self, num_classes):
        return torch.nn.functional.one_hot(self.explained_classes, num_classes).float()

    def with_labels(self, categories):
        return dataclasses.replace(self, classes=_indices(self.classes, categories))


class ClassIndex(Logit):
    """A plain class index (what an int, a list, a tensor, a label or None means): the logit of
    the class for methods that differentiate a score, its softmax probability for the methods and
    metrics that read the probability of perturbed inputs (see :func:`perturbation_score`)."""

    def describe(self, categories=None) -> str:
        label = _label(self.classes, categories)
        return label if categories is not None else f"class {label}"


class Probability(Logit):
    """softmax(z)_c: the probability of class ``classes`` (an int, one per image, a label, or
    None: the predicted class)."""

    def describe(self, categories=None) -> str:
        return f"probability of {_label(self.classes, categories)}"

    def scores(self, logits, images=None):
        return (_column(logits, self.classes, images) - logits.logsumexp(dim=1)).exp()

    def logit_weights(self, num_classes):
        return None


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Sigmoid(TargetScore):
    """sigmoid(z_0) = 1 / (1 + exp(-z_0)) for a binary classifier with one output (one logit);
    ``positive=False``: 1 - sigmoid(z_0) = sigmoid(-z_0), the probability of the negative class.
    A model with more than one output raises a ``ValueError`` at :meth:`bind`."""

    positive: bool = True

    def describe(self, categories=None) -> str:
        return "sigmoid of the output" if self.positive else "1 - sigmoid of the output"

    def scores(self, logits, images=None):
        if logits.dim() != 2 or logits.shape[1] != 1:
            raise ValueError(f"Sigmoid() explains a model with one output (a single logit); got outputs of shape "
                             f"{list(logits.shape)}: use Probability(c), Logit(c) or Contrast(a, b)")
        z = logits[:, 0]
        return torch.sigmoid(z if self.positive else -z)

    def bind(self, n, num_classes, predicted, device=None):
        if num_classes != 1:
            raise ValueError(f"Sigmoid() explains a model with one output (a single logit); this model has "
                             f"{num_classes} outputs: use Probability(c), Logit(c) or Contrast(a, b)")
        return _bound(self, n)


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Labels(TargetScore):
    """Several labels at once (a multi-label question): the sum of their logits, sum_c z_c
    (``output="logit"``), or of their sigmoid probabilities, sum_c sigmoid(z_c)
    (``output="sigmoid"``, for multi-label models with one independent sigmoid per label).
    ``classes``: distinct class indices or labels, the same for every image."""

    classes: Sequence[int | str] | torch.Tensor
    output: str = "logit"

    def __post_init__(self):
        if self.output not in ("logit", "sigmoid"):
            raise ValueError(f"Labels output must be 'logit' or 'sigmoid', got {self.output!r}")
        values = torch.as_tensor(self.classes).flatten().tolist() if isinstance(self.classes, torch.Tensor) else \
            list(self.classes) if isinstance(self.classes, (list, tuple)) else None
        if not values:
            raise ValueError(f"Labels needs a non-empty list of classes, got {self.classes!r}")
        if len(set(values)) != len(values):
            raise ValueError(f"Labels classes must be distinct, got {values}")
        object.__setattr__(self, "classes", tuple(values))

    def describe(self, categories=None) -> str:
        return f"sum of {self.output}s of {_label(list(self.classes), categories)}"

    def _index(self, num_classes: int, device) -> torch.Tensor:
        if any(isinstance(c, str) for c in self.classes):
            raise ValueError(f"Labels: class labels {list(self.classes)} need a Classifier (a bare model has no names)")
        bad = [c for c in self.classes if not 0 <= int(c) < num_classes]
        if bad:
            raise ValueError(f"Target class {bad[0]} is out of range: the model has {num_classes} classes "
                             f"(0..{num_classes - 1})")
        return torch.as_tensor(self.classes, dtype=torch.long, device=device)

    def scores(self, logits, images=None):
        chosen = logits[:, self._index(logits.shape[1], logits.device)]
        return (torch.sigmoid(chosen) if self.output == "sigmoid" else chosen).sum(dim=1)

    def bind(self, n, num_classes, predicted, device=None):
        self._index(num_classes, device)
        return _bound(self, n)

    def logit_weights(self, num_classes):
        if self.output != "logit":
            return None
        w = torch.zeros(self.batch_size, num_classes)
        w[:, list(self.classes)] = 1.0
        return w

    def with_labels(self, categories):
        return dataclasses.replace(self, classes=labels_to_indices(list(self.classes), categories))


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Contrast(TargetScore):
    """z_a - z_b: "why class ``a`` rather than class ``b``" (= log(p_a / p_b) under the softmax).
    ``a``, ``b``: an int, one per image, a label; ``a=None``: the predicted class. A contrast of
    a class with itself (for any image) raises a ``ValueError``."""

    a: Classes
    b: Classes

    def __post_init__(self):
        if self.b is None:
            raise ValueError("Contrast(a, b) needs the class b to contrast a with")
        scalar = (int, str)
        if isinstance(self.a, scalar) and isinstance(self.b, scalar) and not isinstance(self.a, bool) \
                and self.a == self.b:
            raise ValueError(f"Contrast of class {self.a!r} with itself: the score z_a - z_b would be 0")

    def describe(self, categories=None) -> str:
        return f"contrast: logit of {_label(self.a, categories)} - logit of {_label(self.b, categories)}"

    def scores(self, logits, images=None):
        return _column(logits, self.a, images) - _column(logits, self.b, images)

    @property
    def needs_prediction(self) -> bool:
        return self.a is None

    def bind(self, n, num_classes, predicted, device=None):
        a = _classes_tensor(self.a, n, num_classes, predicted, device, "Contrast")
        b = _classes_tensor(self.b, n, num_classes, predicted, device, "Contrast")
        same = (a == b).nonzero().flatten()
        if same.numel():
            i = int(same[0])
            raise ValueError(f"Contrast of class {int(a[i])} with itself (image {i}): the score z_a - z_b would be 0")
        return _bound(self, n, a=a, b=b)

    @property
    def explained_classes(self) -> torch.Tensor:
        if not isinstance(self.a, torch.Tensor):
            raise TypeError("Bind the target first: its classes are not one per image yet")
        return self.a

    def logit_weights(self, num_classes):
        one_hot = torch.nn.functional.one_hot
        return (one_hot(self.explained_classes, num_classes) - one_hot(self.b, num_classes)).float()

    def with_labels(self, categories):
        return dataclasses.replace(self, a=_indices(self.a, categories), b=_indices(self.b, categories))


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Custom(TargetScore):
    """Any score ``fn(logits [M, C]) -> [M]``, one number per row (rows may be perturbed copies:
    score each on its own). A result of another shape, or not floating point, raises a
    ``ValueError``/``TypeError``. ``label``: its name (default: the function's name)."""

    fn: Callable[[torch.Tensor], torch.Tensor]
    label: str | None = None

    def __post_init__(self):
        if not callable(self.fn):
            raise TypeError(f"Custom target needs a callable fn(logits) -> scores, got {self.fn!r}")

    def describe(self, categories=None) -> str:
        return self.label or f"custom score {getattr(self.fn, '__name__', type(self.fn).__name__)}"

    def scores(self, logits, images=None):
        out = self.fn(logits)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"The target callable {self.name!r} must return a tensor, got {type(out).__name__}")
        if out.shape != (logits.shape[0],):
            raise ValueError(f"The target callable {self.name!r} must return one score per row of the logits, shape "
                             f"[{logits.shape[0]}], got shape {list(out.shape)}")
        if not out.is_floating_point():
            raise TypeError(f"The target callable {self.name!r} must return floating-point scores, got {out.dtype}")
        return out

    def bind(self, n, num_classes, predicted, device=None):
        return _bound(self, n)


Target = int | str | Sequence[int | str] | torch.Tensor | TargetScore | Callable | None


def as_target(target: Target) -> TargetScore:
    """Any accepted ``target=`` as a :class:`TargetScore`: a target object stays; a callable
    becomes :class:`Custom`; an int, a label, one per image, a tensor or None become a
    :class:`ClassIndex`."""
    if isinstance(target, TargetScore):
        return target
    if isinstance(target, bool):
        raise TypeError("target must be a class index, one per image, a label, None, a target object "
                        "(xai_lab.targets: Logit, Probability, Sigmoid, Labels, Contrast) or a callable")
    if callable(target) and not isinstance(target, torch.Tensor):
        return Custom(target)
    if target is not None and not isinstance(target, (int, str, list, tuple, torch.Tensor)):
        if not hasattr(target, "__len__"):
            raise TypeError(f"target must be a class index, one per image, a label, None, a target object or a "
                            f"callable, got {type(target).__name__}")
    return ClassIndex(target)


def bind_to_logits(target: Target, logits: torch.Tensor) -> TargetScore:
    """``target`` bound to a batch whose clean outputs are ``logits`` [N, C] (``None`` classes
    become the argmax of these logits)."""
    n, num_classes = logits.shape
    return as_target(target).bind(n, num_classes, lambda: logits.detach().argmax(dim=1), logits.device)


def perturbation_score(target: TargetScore, output: str | None = None) -> TargetScore:
    """The score a method or metric that reads perturbed inputs explains for ``target``.

    ``output=None``: a plain class index -> its softmax probability (the choice of the papers of
    occlusion, RISE, Score-CAM, LIME and deletion/insertion); a target object -> itself.
    ``output="probability"``: a class index or :class:`Logit` -> :class:`Probability` of the same
    class; ``output="logit"``: a class index -> :class:`Logit`. Any other pairing asks for a
    score other than the one the target names and raises a ``ValueError``."""
    if output not in (None, "probability", "logit"):
        raise ValueError(f"output must be 'probability' or 'logit' (or None: the target's own score), got {output!r}")
    kind = type(target)
    if output is None:
        return Probability(target.classes) if kind is ClassIndex else target
    wanted = Probability if output == "probability" else Logit
    if kind is wanted:
        return target
    if kind is ClassIndex or (kind is Logit and wanted is Probability):
        return wanted(target.classes)
    raise ValueError(f"output={output!r} reads the {output} of a class, but the target is {target.name!r}, which "
                     "brings its own score: leave output unset")


def resolve_targets(target, logits: torch.Tensor) -> torch.Tensor:
    """``None`` -> the predicted class of each image; an int -> that class for every image; one
    int per image -> those. Returns a long tensor [N] on the logits' device; classes outside
    ``[0, C)`` raise a ``ValueError``."""
    if target is None:
        return logits.detach().argmax(dim=1)
    n, num_classes = logits.shape
    return check_targets(target, n, num_classes, logits.device)


def check_targets(target: int | Sequence[int] | torch.Tensor, n: int, num_classes: int, device) -> torch.Tensor:
    """Explicit targets (an int, or one int per image) as a long tensor [n], checked against
    ``num_classes``."""
    if isinstance(target, bool) or isinstance(target, TargetScore) or callable(target):
        raise TypeError(f"target must be an int, one int per image, or None here, got {target!r}")
    if isinstance(target, int):
        targets = torch.full((n,), target, dtype=torch.long)
    else:
        targets = torch.as_tensor(target).flatten()
        if targets.is_floating_point() or targets.dtype == torch.bool:
            raise TypeError(f"targets must be integers, got {targets.dtype}")
        if targets.numel() != n:
            raise ValueError(f"Got {targets.numel()} targets for {n} images; give one per image or a single int")
        targets = targets.long()
    bad = targets[(targets < 0) | (targets >= num_classes)]
    if bad.numel():
        raise ValueError(f"Target class {int(bad[0])} is out of range: the model has {num_classes} classes (0..{num_classes - 1})")
    return targets.to(device)


def target_scores(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The logit of each image's target class, [N]."""
    return logits.gather(1, targets.view(-1, 1)).squeeze(1)


def class_index(categories: Sequence[str], label: str) -> int:
    """The index of class ``label`` in ``categories``, matched without regard to case; an
    unknown label raises a ``ValueError`` that lists the closest labels."""
    lowered = [c.lower() for c in categories]
    if label.lower() in lowered:
        return lowered.index(label.lower())
    import difflib

    close = difflib.get_close_matches(label.lower(), lowered, n=3)
    hint = f"; close labels: {', '.join(close)}" if close else ""
    raise ValueError(f"Unknown class label {label!r}{hint}")


def labels_to_indices(target, categories: Sequence[str] | None):
    """``target`` with every class label (str) replaced by its index in ``categories`` (inside
    target objects too); a label without categories (a bare model) raises a ``ValueError``."""
    if isinstance(target, TargetScore):
        return target.with_labels(categories)
    if isinstance(target, str) or (isinstance(target, (list, tuple)) and any(isinstance(t, str) for t in target)):
        if categories is None:
            raise ValueError(f"target {target!r} is a class label, but a bare model has no class names: "
                             "give class indices, or explain a Classifier")
        if isinstance(target, str):
            return class_index(categories, target)
        return [class_index(categories, t) if isinstance(t, str) else t for t in target]
    return target
