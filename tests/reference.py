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


def standardize(z):
    """Per-example z-score with the unbiased std (the paper's torch.std)."""
    z = np.asarray(z, np.float64)
    return (z - z.mean(-1, keepdims=True)) / z.std(-1, ddof=1, keepdims=True)


def _logsumexp(z):
    m = z.max(-1, keepdims=True)
    return (m + np.log(np.exp(z - m).sum(-1, keepdims=True)))[..., 0]


def dkd(teacher, student, labels, temperature, alpha=1.0, beta=8.0):
    """Per-example DKD, written from the paper's definitions (masking by removal).

    The binary probabilities are taken in log space (log-sum-exp of the
    target and of the other classes), so they stay exact when one is ~0.
    """
    t = np.asarray(teacher, np.float64) / temperature
    s = np.asarray(student, np.float64) / temperature
    rows = np.arange(len(t))
    labels = np.asarray(labels, int)
    keep = np.ones_like(t, bool)
    keep[rows, labels] = False
    t_rest, s_rest = t[keep].reshape(len(t), -1), s[keep].reshape(len(s), -1)

    def binary(z, rest):
        total = _logsumexp(z)
        return np.stack([z[rows, labels] - total, _logsumexp(rest) - total], -1)

    log_p_bin, log_q_bin = binary(t, t_rest), binary(s, s_rest)
    p_bin = np.exp(log_p_bin)
    tckd = np.where(p_bin > 0, p_bin * (log_p_bin - log_q_bin), 0.0).sum(-1)
    log_p_rest, log_q_rest = log_softmax(t_rest), log_softmax(s_rest)
    p_rest = np.exp(log_p_rest)
    nckd = np.where(p_rest > 0, p_rest * (log_p_rest - log_q_rest), 0.0).sum(-1)
    return temperature**2 * (alpha * tckd + beta * nckd)


def dkd_minus_1000(teacher, student, labels, temperature, alpha=1.0, beta=8.0):
    """DKD as mdistiller computes it: the target logit minus 1000 for NCKD."""
    t = np.asarray(teacher, np.float64) / temperature
    s = np.asarray(student, np.float64) / temperature
    rows, labels = np.arange(len(t)), np.asarray(labels, int)
    gt = np.zeros_like(t)
    gt[rows, labels] = 1.0
    p, q = softmax(t), softmax(s)
    p_bin = np.stack([(p * gt).sum(-1), (p * (1 - gt)).sum(-1)], -1)
    q_bin = np.stack([(q * gt).sum(-1), (q * (1 - gt)).sum(-1)], -1)
    tckd = (p_bin * (np.log(p_bin) - np.log(q_bin))).sum(-1)
    p2 = softmax(t - 1000.0 * gt)
    log_q2 = log_softmax(s - 1000.0 * gt)
    nckd = (p2 * (np.log(np.where(p2 > 0, p2, 1)) - log_q2)).sum(-1)
    return temperature**2 * (alpha * tckd + beta * nckd)


def attention_transfer(teacher_maps, student_maps):
    """Per-example AT loss: normalized channel-mean of squares, pooled to the smaller map."""

    def at(x, size):
        a = (np.asarray(x, np.float64) ** 2).mean(-1)  # (batch, h, w)
        fh, fw = a.shape[1] // size[0], a.shape[2] // size[1]
        a = a.reshape(len(a), size[0], fh, size[1], fw).mean((2, 4)).reshape(len(a), -1)
        return a / np.linalg.norm(a, axis=-1, keepdims=True)

    size = tuple(min(a, b) for a, b in zip(np.shape(teacher_maps)[1:3], np.shape(student_maps)[1:3]))
    return ((at(teacher_maps, size) - at(student_maps, size)) ** 2).mean(-1)
