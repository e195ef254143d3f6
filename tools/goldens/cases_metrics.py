"""Goldens for eval/metrics.c (tests/test_eval.c): KID and precision/recall on small feature sets.

KID follows torch-fidelity's metric_kid.py: sklearn's polynomial kernel (degree 3, gamma 1/d,
coef0 1) and its unbiased mmd2 (off-diagonal means of K_XX and K_YY minus twice the mean of K_XY),
here on one "subset" holding every row of two sets of equal size, where the value does not depend
on how rows are drawn. Precision and recall follow Kynkaenniemi et al. 2019 (NVIDIA's
precision_recall.py, as torch-fidelity's metric_prc.py): k-th nearest-neighbour radii within each
set (itself excluded), a sample counts when its distance to some member is <= that member's radius.

File: tests/goldens/metrics.npz (numpy.savez, ~20 KB):
  kid_a (80, 16), kid_b (80, 16) float32; kid (1,)
  pr_real (70, 6), pr_fake (90, 6) float32; precision, recall (1,) for k = 3
"""
import os

import numpy as np

from goldens_lib import OUT_DIR


def kid_whole(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    d = a.shape[1]
    kern = lambda x, y: (x @ y.T / d + 1.0) ** 3
    kxx, kyy, kxy = kern(a, a), kern(b, b), kern(a, b)
    m = a.shape[0]
    return ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.sum() / (m * m)


def precision_recall(real, fake, k=3):
    real, fake = real.astype(np.float64), fake.astype(np.float64)
    dist = lambda x, y: np.sqrt(((x[:, None, :] - y[None, :, :]) ** 2).sum(-1))
    radius = lambda x: np.sort(dist(x, x), axis=1)[:, k]   # column 0 is the point itself
    rr, rf = radius(real), radius(fake)
    precision = (dist(fake, real) <= rr[None, :]).any(axis=1).mean()
    recall = (dist(real, fake) <= rf[None, :]).any(axis=1).mean()
    return precision, recall


def generate():
    rng = np.random.default_rng(11)
    kid_a = rng.normal(0.0, 1.0, (80, 16)).astype(np.float32)
    kid_b = (rng.normal(0.3, 1.2, (80, 16))).astype(np.float32)
    pr_real = rng.normal(0.0, 1.0, (70, 6)).astype(np.float32)
    pr_fake = rng.normal(0.4, 0.7, (90, 6)).astype(np.float32)
    p, r = precision_recall(pr_real, pr_fake)
    np.savez(os.path.join(OUT_DIR, "metrics.npz"), kid_a=kid_a, kid_b=kid_b, kid=np.array([kid_whole(kid_a, kid_b)]),
             pr_real=pr_real, pr_fake=pr_fake, precision=np.array([p]), recall=np.array([r]))
    print(f"  kid {kid_whole(kid_a, kid_b):.6g} precision {p:.4f} recall {r:.4f}")
