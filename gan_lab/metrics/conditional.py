"""What only a class-conditional generator can be asked (docs/science.md, "Class-conditional GANs"): does it draw
the class it was asked for, how good is each class, and can its samples teach a classifier.

- **Class accuracy**: the fraction of samples G(z, y) the data set's domain classifier assigns to y.
- **Intra-class FID** (Miyato & Koyama 2018, §5): the Fréchet distance per class between the domain classifier's
  features of the real images of class c and of the samples drawn for c, and its mean over classes.
- **CAS**, the Classification Accuracy Score (Ravuri & Vinyals 2019): a classifier trained only on generated
  samples with their requested labels, tested on held-out real images, beside the same recipe trained on the
  real training images (the domain classifier itself). A generator that covers every class with the right
  variety approaches the real score; one that draws a few prototypes per class falls short of it, whatever its
  FID.
"""

from __future__ import annotations

import math

import torch

from gan_lab.data.base import TensorSource
from gan_lab.metrics.classifier import accuracy, train_classifier


def class_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, list[float]]:
    """(fraction of argmax(logits) == labels, the same per class, NaN for a class not asked for)."""
    hit = (logits.argmax(1) == labels).double()
    k = logits.shape[1]
    per = torch.bincount(labels, hit, minlength=k) / torch.bincount(labels, minlength=k)  # 0/0: NaN, not asked for
    return float(hit.mean()), per.tolist()


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖μ_a − μ_b‖² + tr(Σ_a + Σ_b − 2(Σ_a^½ Σ_b Σ_a^½)^½) between the Gaussians fitted to the rows of a and b
    (unbiased covariances), in float64; tr((Σ_a Σ_b)^½) is taken from the eigenvalues of the symmetric
    Σ_a^½ Σ_b Σ_a^½, negative round-off clipped."""
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    vals, vecs = torch.linalg.eigh(cov_a)
    root_a = (vecs * vals.clamp_min(0).sqrt()) @ vecs.T
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp_min(0).sqrt().sum()
    return float((mu_a - mu_b).pow(2).sum() + cov_a.trace() + cov_b.trace() - 2 * cross)


def intra_fid(real_features: torch.Tensor, real_labels: torch.Tensor, fake_features: torch.Tensor,
              fake_labels: torch.Tensor, n_classes: int) -> tuple[float, list[float]]:
    """(mean over classes, per class) Fréchet distance between each class's real and generated features; a
    class with fewer than 2 images on either side is NaN and left out of the mean."""
    per = []
    for c in range(n_classes):
        r, f = real_features[real_labels == c], fake_features[fake_labels == c]
        per.append(frechet_distance(r, f) if min(len(r), len(f)) >= 2 else math.nan)
    finite = [v for v in per if math.isfinite(v)]
    return (sum(finite) / len(finite) if finite else math.nan), per


def classification_accuracy_score(fake: torch.Tensor, labels: torch.Tensor, source, real_model: torch.nn.Module,
                                  seed: int = 0) -> dict[str, float] | None:
    """CAS of ``fake`` drawn for ``labels``: a :class:`~gan_lab.metrics.classifier.DomainClassifier` trained with
    the domain classifier's own recipe on (fake, labels), its accuracy on ``source``'s held-out labelled images;
    and that of ``real_model``, the domain classifier (the same recipe on the real training images). None when
    ``source`` has no labelled held-out images."""
    heldout, heldout_labels = getattr(source, "heldout", None), getattr(source, "heldout_labels", None)
    if heldout is None or heldout_labels is None or len(heldout) == 0:
        return None
    synthetic = TensorSource(fake.float(), source.spec, labels)
    with torch.random.fork_rng(devices=[]):
        model, _ = train_classifier(synthetic, seed=seed)
    return {"cas": accuracy(model, heldout, heldout_labels), "cas_real": accuracy(real_model, heldout, heldout_labels)}
