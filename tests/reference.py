"""Independent float64 numpy references for the distillation loss."""

import numpy as np


def log_softmax(z):
    z = np.asarray(z, dtype=np.float64)
    finite_max = np.max(np.where(np.isfinite(z), z, -np.inf), axis=-1, keepdims=True)
    shifted = z - finite_max
    with np.errstate(divide="ignore"):
        return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def kl(teacher, student, temperature):
    """Per-example T² · KL(softmax(t/T) ‖ softmax(s/T)), with 0 · log 0 = 0."""
    log_p = log_softmax(np.asarray(teacher, np.float64) / temperature)
    log_q = log_softmax(np.asarray(student, np.float64) / temperature)
    p = np.exp(log_p)
    with np.errstate(invalid="ignore"):
        pointwise = np.where(p > 0, p * (log_p - log_q), 0.0)
    return temperature**2 * pointwise.sum(axis=-1)


def soft_crossentropy(teacher, student, temperature):
    log_p = log_softmax(np.asarray(teacher, np.float64) / temperature)
    log_q = log_softmax(np.asarray(student, np.float64) / temperature)
    p = np.exp(log_p)
    with np.errstate(invalid="ignore"):
        pointwise = np.where(p > 0, p * log_q, 0.0)
    return -(temperature**2) * pointwise.sum(axis=-1)


def logit_mse(teacher, student):
    t = np.asarray(teacher, np.float64)
    s = np.asarray(student, np.float64)
    finite = np.isfinite(t) & np.isfinite(s)
    sq = np.where(finite, (np.where(finite, t, 0) - np.where(finite, s, 0)) ** 2, 0)
    return sq.sum(-1) / np.maximum(finite.sum(-1), 1)


def sparse_crossentropy(labels, logits):
    log_q = log_softmax(logits)
    return -log_q[np.arange(len(labels)), np.asarray(labels, int)]


def reduce(per_example, sample_weight=None):
    """Keras's sum_over_batch_size: sum(values · weights) / batch size."""
    per_example = np.asarray(per_example, np.float64)
    if sample_weight is not None:
        per_example = per_example * np.asarray(sample_weight, np.float64)
    return per_example.sum() / per_example.size


def total_loss(teacher, student, labels, temperature, alpha, terms, sample_weight=None):
    """alpha · CE + (1 - alpha) · Σ wᵢ · termᵢ; `terms` is [(weight, fn, T or None)]."""
    student_loss = reduce(sparse_crossentropy(labels, student), sample_weight)
    distillation = 0.0
    for weight, fn, own_temperature in terms:
        t = own_temperature if own_temperature is not None else temperature
        distillation += weight * reduce(fn(teacher, student, t), sample_weight)
    return alpha * student_loss + (1 - alpha) * distillation


def softmax(z):
    return np.exp(log_softmax(z))


def total_loss_gradient(teacher, student, labels, temperature, alpha, sample_weight=None):
    """d total_loss / d student logits for the default KL term (weight 1).

    Per row i of a batch of B: `w_i / B · [alpha · (softmax(s_i) - onehot(y_i))
    + (1 - alpha) · T · (softmax(s_i / T) - softmax(t_i / T))]`; masked
    (-inf) classes get 0.
    """
    t = np.asarray(teacher, np.float64)
    s = np.asarray(student, np.float64)
    batch_size = len(s)
    weights = np.ones(batch_size) if sample_weight is None else np.asarray(sample_weight, np.float64)
    onehot = np.eye(s.shape[-1])[np.asarray(labels, int)]
    student_part = softmax(s) - onehot
    kl_part = temperature * (softmax(s / temperature) - softmax(t / temperature))
    return weights[:, None] / batch_size * (alpha * student_part + (1 - alpha) * kl_part)
