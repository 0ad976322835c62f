"""Testing with concept activation vectors (TCAV; Kim et al. 2018, "Interpretability Beyond Feature
Attribution: Quantitative Testing with Concept Activation Vectors", ICML).

A *concept* is given by example images (a magenta square, lesion texture). At a layer l with
activations f_l(x), flattened to a vector of D numbers per image:

* the **CAV** v_C is the unit normal of a linear classifier that separates the activations of the
  concept's images (label 1) from those of a random set of images (label 0), pointing towards the
  concept: v_C = w / ||w|| (:func:`fit_cav`);
* the **conceptual sensitivity** of class k on an image x is the directional derivative of the
  class's logit h_k along the CAV, S_{C,k}(x) = grad_{f_l} h_k(f_l(x)) . v_C (:func:`sensitivities`);
* the **TCAV score** is the fraction of the images X_k of class k whose sensitivity is positive,
  TCAV_{C,k} = |{x in X_k : S_{C,k}(x) > 0}| / |X_k| (:func:`tcav_score`);
* the **statistical test** (:func:`tcav`, :func:`tcav_tests`): a CAV fitted against one random
  set may be a fluke, so CAVs are fitted against many random sets R_1..R_m, giving m TCAV
  scores of the concept, and m random-vs-random CAVs, R_{j+1} against R_j (R_1 against R_m),
  give m scores of meaningless directions (:func:`random_cavs`). A two-sided t-test of the two
  lists (:func:`significance`) rejects "the concept scores like a random direction" when its
  p-value is below alpha / (number of concepts tested) (Bonferroni, as the paper does for
  several hypotheses). A significant concept with a TCAV score below the random ones lowers
  the class score (:attr:`ConceptTest.raises`).

The linear classifier (``cav_classifier``): ``"sgd"`` (default), scikit-learn's
``SGDClassifier(alpha=0.01, max_iter=1000, tol=1e-3)`` -- hinge loss with an L2 penalty, a
linear support vector machine fitted by stochastic gradient descent, the choice of the paper's
code and of captum's ``DefaultClassifier`` -- here seeded by ``random_state``; ``"logistic"``,
scikit-learn's ``LogisticRegression`` (L2, C = 1, L-BFGS: deterministic); or any callable
``fit(x [n, D] float64 array, y [n] 0/1 array, seed) -> (weights [D], intercept)``. The
activations are used as they are (no standardization). A seeded, stratified share
``test_fraction`` of each set can be held out to report the CAV's accuracy (a concept the layer
cannot separate from random images has no meaningful direction); the CAV is fitted on the rest.

Differences from captum's ``TCAV`` (``captum.concept``; checked in ``tests/test_tcav.py``):
captum's CAV is the classifier's raw weight vector (not unit length: its sensitivities are ours
times ||w||, with the same signs and TCAV scores); its default classifier is unseeded and its
train/test split (``test_split_ratio=0.33``) is an unstratified ``random.shuffle``; it has no
random sets or t-test of its own (its tutorial runs ``scipy.stats.ttest_ind`` on score lists,
as :func:`significance` does); its "magnitude" score is the mean of the raw sensitivities.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .capture import LayerRecorder, forward_hooks, model_and_layer
from .models import unwrap
from .ops import check_fraction, check_input, check_positive, eval_mode, model_device
from .targets import check_targets, class_index, target_scores

#: The significance level of :func:`tcav` before the Bonferroni correction.
ALPHA = 0.05
#: The L2 penalty of the ``"sgd"`` classifier (scikit-learn's ``alpha``; the paper's code and captum use 0.01).
SGD_ALPHA = 0.01
CAV_CLASSIFIERS = ("sgd", "logistic")

LinearFit = Callable[[np.ndarray, np.ndarray, int], tuple[np.ndarray, float]]


@dataclass(frozen=True)
class CAV:
    """A concept activation vector: ``vector`` [D], the unit normal of the separating hyperplane,
    pointing towards the concept; ``weights`` [D], the classifier's weights before scaling (the
    same direction) and ``intercept`` b (the classifier says "concept" where w . f + b > 0);
    ``accuracy``, its accuracy on the held-out activations (NaN when none were held out)."""

    vector: torch.Tensor
    weights: torch.Tensor
    intercept: float
    accuracy: float


@dataclass(frozen=True)
class ConceptTest:
    """The result of :func:`tcav` for one concept at ``layer`` for class ``target``.

    ``scores`` [m]: the TCAV score of the concept's CAV against each random set R_1..R_m;
    ``random_scores`` [m]: those of the random-vs-random CAVs (:func:`random_cavs`); ``accuracies``
    [m]: the held-out accuracy of each of the concept's CAVs; ``p_value``: two-sided t-test of the
    two lists; ``alpha``: the level it is compared with (after the Bonferroni correction);
    ``significant``: ``p_value < alpha``."""

    concept: str
    layer: str
    target: int
    scores: torch.Tensor
    random_scores: torch.Tensor
    accuracies: torch.Tensor
    p_value: float
    alpha: float
    significant: bool

    @property
    def mean(self) -> float:
        """The mean TCAV score of the concept over the random sets."""
        return float(self.scores.mean())

    @property
    def random_mean(self) -> float:
        """The mean TCAV score of the random-vs-random CAVs."""
        return float(self.random_scores.mean())

    @property
    def raises(self) -> bool:
        """Whether the concept's mean TCAV score is above the random one: moving the activations
        towards the concept raises the class score on more images than a random direction does
        (a significant test with ``raises`` False: the concept lowers it)."""
        return self.mean > self.random_mean


def _images(name: str, images) -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a tensor of preprocessed images [N, 3, H, W], not {type(images).__name__}")
    if images.dim() == 4 and images.shape[0] == 0:
        raise ValueError(f"{name} holds no images: a concept or random set needs at least one")
    try:
        return check_input(images)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{name}: {exc}") from None


def layer_activations(classifier, images: torch.Tensor, layer=None, batch_size: int = 16,
                      progress: bool = False) -> torch.Tensor:
    """f_l(x): the output of ``layer`` (a name or module; default the classifier's
    ``default_layer``) for each of ``images`` [N, 3, H, W], flattened to [N, D], in batches of
    ``batch_size`` (no autograd graph)."""
    from tqdm import tqdm

    model, _, name = model_and_layer(classifier, layer)
    x = _images("images", images)
    check_positive("batch_size", batch_size, integer=True)
    out = []
    with eval_mode(model), torch.no_grad(), LayerRecorder(model, [name]) as recorder:
        for start in tqdm(range(0, len(x), batch_size), desc=f"activations at {name}", disable=not progress,
                          leave=False):
            recorder.clear()
            model(x[start:start + batch_size].to(model_device(model)))
            out.append(recorder[name].flatten(1).detach().cpu())
    return torch.cat(out)


def layer_gradients(classifier, images: torch.Tensor, target, layer=None, batch_size: int = 16,
                    progress: bool = False) -> torch.Tensor:
    """grad_{f_l} h_k: the gradient of each image's class-``target`` logit with respect to the
    output of ``layer``, flattened to [N, D] like :func:`layer_activations`. ``target``: a class
    index, a class label of the classifier, or one index per image. One forward and one backward
    pass per batch; the graph starts at the layer (nothing before it is recorded)."""
    from tqdm import tqdm

    model, _, name = model_and_layer(classifier, layer)
    x = _images("images", images)
    check_positive("batch_size", batch_size, integer=True)
    targets = _targets(classifier, target, len(x), model, x[:1])
    out = []

    def no_graph_until_the_layer(module, inputs):
        torch.set_grad_enabled(False)

    with eval_mode(model):
        for start in tqdm(range(0, len(x), batch_size), desc=f"gradients at {name}", disable=not progress,
                          leave=False):
            with torch.enable_grad(), forward_hooks([model], no_graph_until_the_layer, pre=True), \
                    LayerRecorder(model, [name], start_graph=True) as recorder:
                logits = model(x[start:start + batch_size].to(model_device(model)))
                activations = recorder[name]
                scores = target_scores(logits, targets[start:start + batch_size].to(logits.device))
                if not scores.requires_grad:
                    raise ValueError(f"The class score does not depend on layer {name!r}; choose a layer before the output")
                (grads,) = torch.autograd.grad(scores.sum(), activations)
            out.append(grads.flatten(1).detach().cpu())
    return torch.cat(out)


def _targets(classifier, target, n: int, model: torch.nn.Module, probe: torch.Tensor) -> torch.Tensor:
    _, clf = unwrap(classifier)
    if target is None:
        raise ValueError("target is required: TCAV tests a concept for one class (an index or a class label)")
    if isinstance(target, str):
        if clf is None:
            raise TypeError("A class label as target needs a Classifier (with categories), not a bare model")
        target = class_index(clf.categories, target)
    if clf is not None:
        num_classes = len(clf.categories)
    else:
        with eval_mode(model), torch.no_grad():
            num_classes = model(probe.to(model_device(model))).shape[1]
    return check_targets(target, n, num_classes, torch.device("cpu"))


def _fit_linear(kind: str | LinearFit, x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
    if callable(kind):
        weights, intercept = kind(x, y, seed)
        weights = np.asarray(weights, dtype=np.float64).reshape(-1)
        if weights.shape != (x.shape[1],):
            raise ValueError(f"cav_classifier returned {weights.size} weights for {x.shape[1]} features")
        return weights, float(intercept)
    if kind == "sgd":
        from sklearn.linear_model import SGDClassifier

        model = SGDClassifier(alpha=SGD_ALPHA, max_iter=1000, tol=1e-3, random_state=seed)
    elif kind == "logistic":
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=1.0, max_iter=1000)
    else:
        raise ValueError(f"cav_classifier must be one of {', '.join(CAV_CLASSIFIERS)} or a callable, not {kind!r}")
    model.fit(x, y)
    # classes_ is [0, 1]: the weights point towards label 1, the concept
    return model.coef_.reshape(-1).astype(np.float64), float(model.intercept_[0])


def _split(n: int, test_fraction: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded (train, test) indices of n items; at least one item stays in training. Nothing held
    out: every item in its order (the fit then sees the rows as given)."""
    n_test = min(int(math.floor(test_fraction * n)), n - 1)
    if n_test == 0:
        return torch.arange(n), torch.arange(0)
    order = torch.randperm(n, generator=generator)
    return order[n_test:], order[:n_test]


def fit_cav(concept: torch.Tensor, random: torch.Tensor, cav_classifier: str | LinearFit = "sgd", seed: int = 0,
            test_fraction: float = 0.0) -> CAV:
    """The CAV of the activations ``concept`` [n_c, D] against ``random`` [n_r, D] (label 1 and
    0): the weights w of a linear classifier (``cav_classifier``, see the module docstring)
    fitted on them, v = w / ||w||. ``test_fraction`` of each set (seeded by ``seed``) is held out
    to measure the classifier's accuracy; the fit uses the rest."""
    for name, acts in (("concept", concept), ("random", random)):
        if not isinstance(acts, torch.Tensor) or acts.dim() != 2:
            shape = list(acts.shape) if isinstance(acts, torch.Tensor) else type(acts).__name__
            raise ValueError(f"{name} activations must be a tensor [n, D], got {shape}")
        if len(acts) == 0:
            raise ValueError(f"{name} activations hold no example: a concept or random set needs at least one")
    if concept.shape[1] != random.shape[1]:
        raise ValueError(f"concept and random activations differ in size: {concept.shape[1]} vs {random.shape[1]} "
                         "features (same layer and image size?)")
    check_fraction("test_fraction", test_fraction, open_high=True)
    generator = torch.Generator().manual_seed(seed)
    (c_train, c_test), (r_train, r_test) = _split(len(concept), test_fraction, generator), \
        _split(len(random), test_fraction, generator)
    x = torch.cat([concept[c_train], random[r_train]]).double().numpy()
    y = np.r_[np.ones(len(c_train), dtype=np.int64), np.zeros(len(r_train), dtype=np.int64)]
    fitted, intercept = _fit_linear(cav_classifier, x, y, seed)
    weights = torch.from_numpy(fitted)
    norm = float(weights.norm())
    if not norm > 0 or not math.isfinite(norm):
        raise ValueError("The linear classifier returned zero or non-finite weights: no concept direction "
                         "(identical concept and random activations?)")
    accuracy = float("nan")
    if len(c_test) + len(r_test) > 0:
        held = torch.cat([concept[c_test], random[r_test]]).double()
        truth = torch.cat([torch.ones(len(c_test)), torch.zeros(len(r_test))]).bool()
        accuracy = float(((held @ weights + intercept > 0) == truth).double().mean())
    return CAV(vector=(weights / norm).float(), weights=weights.float(), intercept=intercept, accuracy=accuracy)


def sensitivities(gradients: torch.Tensor, cavs: torch.Tensor | CAV | Sequence[CAV]) -> torch.Tensor:
    """S_{C,k}(x) = grad_{f_l} h_k(x) . v_C: ``gradients`` [N, D] (:func:`layer_gradients`) times
    the unit CAVs [m, D] (or :class:`CAV` objects) -> [N, m] (one CAV: [N])."""
    single = isinstance(cavs, CAV) or (isinstance(cavs, torch.Tensor) and cavs.dim() == 1)
    if isinstance(cavs, CAV):
        vectors = cavs.vector[None]
    elif isinstance(cavs, torch.Tensor):
        vectors = cavs[None] if cavs.dim() == 1 else cavs
    else:
        vectors = torch.stack([c.vector for c in cavs])
    if gradients.dim() != 2 or vectors.dim() != 2 or gradients.shape[1] != vectors.shape[1]:
        raise ValueError(f"gradients [N, D] and CAVs [m, D] must agree in D, got {list(gradients.shape)} and "
                         f"{list(vectors.shape)}")
    out = gradients.double() @ vectors.double().T
    return out[:, 0] if single else out


def tcav_score(sensitivity: torch.Tensor) -> torch.Tensor:
    """The fraction of images with a positive sensitivity: [N] -> a scalar, [N, m] -> [m]."""
    if sensitivity.numel() == 0:
        raise ValueError("no sensitivities: the class needs at least one image")
    return (sensitivity > 0).double().mean(0)


def significance(scores, random_scores, alpha: float = ALPHA, n_tests: int = 1,
                 equal_var: bool = True) -> tuple[float, bool]:
    """(p, significant): the two-sided t-test of two lists of TCAV scores
    (``scipy.stats.ttest_ind``; ``equal_var=True``: Student's test, as the paper's code; False:
    Welch's), significant when p < ``alpha`` / ``n_tests`` (Bonferroni). Two lists without any
    variance and with equal means have no p-value (NaN): not significant."""
    from scipy import stats

    check_fraction("alpha", alpha, open_low=True, open_high=True)
    check_positive("n_tests", n_tests, integer=True)
    a, b = (np.asarray(torch.as_tensor(s, dtype=torch.float64)).reshape(-1) for s in (scores, random_scores))
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"the t-test needs at least 2 scores in each list, got {len(a)} and {len(b)}")
    p = float(stats.ttest_ind(a, b, equal_var=equal_var).pvalue)
    return p, bool(p < alpha / n_tests)


def cavs_against(concept: torch.Tensor, random_sets: Sequence[torch.Tensor], cav_classifier: str | LinearFit = "sgd",
                 seed: int = 0, test_fraction: float = 0.0) -> list[CAV]:
    """The CAVs of the activations ``concept`` [n, D] against each of ``random_sets`` [n_j, D]:
    the j-th (counting from 1, as R_1..R_m of :func:`tcav`) fitted with seed ``seed + j``."""
    return [fit_cav(concept, r, cav_classifier, seed + j, test_fraction) for j, r in enumerate(random_sets, 1)]


def random_cavs(random_sets: Sequence[torch.Tensor], cav_classifier: str | LinearFit = "sgd", seed: int = 0,
                test_fraction: float = 0.0) -> list[CAV]:
    """The random-vs-random CAVs of the activations of R_1..R_m (at least 3 sets): the j-th is
    R_{j+1} (R_1 for j = m) in the role of the concept against R_j, fitted with seed ``seed + j``
    like the j-th CAV of :func:`cavs_against`. Every set is a concept once and a counterpart
    once: the m random directions do not all share one set, whose particular draw would
    otherwise move all m scores together (one random concept against every R_j, the scheme of
    the paper's code, let a clean model pass the magenta-square test at one seed of
    :mod:`xai_lab.experiments.concept_test`)."""
    m = len(random_sets)
    if m < 3:
        raise ValueError(f"random-vs-random CAVs need at least 3 random sets, got {m}")
    return [fit_cav(random_sets[j % m], random_sets[j - 1], cav_classifier, seed + j, test_fraction)
            for j in range(1, m + 1)]


def tcav_tests(gradients: torch.Tensor, concept_cavs: Mapping[str, Sequence[CAV]], random_cavs: Sequence[CAV],
                  alpha: float = ALPHA, n_tests: int | None = None, layer: str = "", target: int = -1
                  ) -> dict[str, ConceptTest]:
    """The statistical test of TCAV from the class images' ``gradients`` [N, D]
    (:func:`layer_gradients`): for each concept, the TCAV scores of its CAVs against R_1..R_m
    (``concept_cavs``), compared with those of the random-vs-random CAVs ``random_cavs``
    (:func:`random_cavs`) by :func:`significance` at ``alpha`` / ``n_tests`` (default: the
    number of concepts). ``layer`` and ``target`` are recorded in the results."""
    if not concept_cavs:
        raise ValueError("concept_cavs must name at least one concept")
    n_tests = len(concept_cavs) if n_tests is None else n_tests
    check_positive("n_tests", n_tests, integer=True)
    random_scores = tcav_score(sensitivities(gradients, random_cavs))
    out = {}
    for concept, cavs in concept_cavs.items():
        if len(cavs) != len(random_cavs):
            raise ValueError(f"concept {concept!r} has {len(cavs)} CAVs but there are {len(random_cavs)} random ones: "
                             "fit both against the same random sets")
        scores = tcav_score(sensitivities(gradients, cavs))
        p, significant = significance(scores, random_scores, alpha, n_tests)
        out[concept] = ConceptTest(concept=concept, layer=layer, target=target, scores=scores,
                                   random_scores=random_scores, accuracies=torch.tensor([c.accuracy for c in cavs]),
                                   p_value=p, alpha=alpha / n_tests, significant=significant)
    return out


def tcav(classifier, class_images: torch.Tensor, concepts: Mapping[str, torch.Tensor],
         random_sets: Sequence[torch.Tensor], target, layer=None, alpha: float = ALPHA,
         cav_classifier: str | LinearFit = "sgd", test_fraction: float = 0.2, batch_size: int = 16,
         seed: int = 0, progress: bool = False, n_tests: int | None = None) -> dict[str, ConceptTest]:
    """TCAV with its statistical test for each of ``concepts`` ``{name: images [n, 3, H, W]}`` and
    class ``target`` (index or label) of ``classifier``, on ``class_images`` (images of that class),
    at ``layer`` (default the classifier's ``default_layer``).

    ``random_sets`` R_1..R_m (at least 3): the counterparts of every concept's CAVs
    (:func:`cavs_against`) and the sets of the random-vs-random CAVs (:func:`random_cavs`),
    holding out ``test_fraction`` of each set for the CAV's accuracy. :func:`tcav_tests` compares
    each concept's m TCAV scores with the m random-vs-random scores at ``alpha`` / ``n_tests``
    (default: the number of concepts; pass the number of hypotheses when the concepts are tested
    in several calls). Activations of every set and the gradients of ``class_images`` are
    computed once, ``batch_size`` images at a time."""
    if not isinstance(concepts, Mapping) or not concepts:
        raise ValueError("concepts must be a non-empty mapping {name: images}")
    if len(random_sets) < 3:
        raise ValueError(f"random_sets needs at least 3 sets (for 3 random-vs-random CAVs), got {len(random_sets)}")
    _, _, name = model_and_layer(classifier, layer)
    class_x = _images("class_images", class_images)
    concept_x = {c: _images(f"concepts[{c!r}]", x) for c, x in concepts.items()}
    random_x = [_images(f"random_sets[{j}]", x) for j, x in enumerate(random_sets)]
    shapes = {tuple(x.shape[1:]) for x in [class_x, *concept_x.values(), *random_x]}
    if len(shapes) > 1:
        raise ValueError(f"all images must have one shape [3, H, W]; got {sorted(shapes)}")

    def activations(x):
        return layer_activations(classifier, x, name, batch_size, progress)

    grads = layer_gradients(classifier, class_x, target, name, batch_size, progress)
    target_index = int(_targets(classifier, target, 1, unwrap(classifier)[0], class_x[:1])[0])
    counterparts = [activations(x) for x in random_x]
    options = {"cav_classifier": cav_classifier, "seed": seed, "test_fraction": test_fraction}
    null = random_cavs(counterparts, **options)
    concept_cavs = {c: cavs_against(activations(x), counterparts, **options) for c, x in concept_x.items()}
    return tcav_tests(grads, concept_cavs, null, alpha, n_tests, name, target_index)


__all__ = ["ALPHA", "CAV", "CAV_CLASSIFIERS", "ConceptTest", "SGD_ALPHA", "cavs_against", "fit_cav", "layer_activations",
           "layer_gradients", "random_cavs", "sensitivities", "significance", "tcav", "tcav_score", "tcav_tests"]
