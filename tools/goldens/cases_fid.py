"""Goldens for eval/'s numbers (tests/test_eval.c): feature statistics, the Frechet distance, the
Inception Score, and .npz files written by numpy itself.

The Frechet distance reference is pytorch-fid's calculate_frechet_distance (fid_score.py lines
179-236, porting notes A2): scipy.linalg.sqrtm(sigma1 @ sigma2, disp=False), the eps = 1e-6
diagonal offset retry when the result is not finite, the real part kept. torch-fidelity's and
pMF's variant, sum(sqrt(eigvals(S1 S2))).real, is stored beside it (fd_eig).

Files (all small, float features from a seeded NumPy generator):
  tests/goldens/fid_features.npz   numpy.savez: feat1 (300, 64) and feat2 (250, 64) float32,
                                   their np.mean / np.cov(rowvar=False) in float64 (mu1, sigma1,
                                   mu2, sigma2), fd_sqrtm and fd_eig (shape (1,))
  tests/goldens/fid_rankdef.npz    numpy.savez_compressed: the same for 40 and 48 samples of 64-d
                                   features (singular covariances, as FID on few images)
  tests/goldens/fid_is.npz         logits (103, 16) float32, is_mean and is_std from torch-fidelity's
                                   isc_features_to_metric without its shuffle (10 contiguous splits)
  tests/data/npz_kinds.npz         numpy.savez of the layouts the C reader must take: a_f4 (3, 5)
                                   '<f4', b_fortran (4, 3) Fortran order, c_scalar (), arr_0 uint8
                                   (2, 4, 4, 3) (must be skipped), mu (5), sigma (5, 5)
  tests/data/npz_kinds_compressed.npz  the same through numpy.savez_compressed
"""
import os

import numpy as np
import scipy.linalg

from goldens_lib import OUT_DIR

DATA_DIR = os.path.join(OUT_DIR, "..", "data")


def fd_pytorch_fid(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid's calculate_frechet_distance, as published."""
    diff = mu1 - mu2
    covmean, _ = scipy.linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError("Imaginary component {}".format(np.max(np.abs(covmean.imag))))
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fd_eig(mu1, sigma1, mu2, sigma2):
    """torch-fidelity / pMF: the trace of the square root from the eigenvalues of S1 S2."""
    diff = mu1 - mu2
    tr = np.sqrt(np.linalg.eigvals(sigma1.dot(sigma2)).astype(np.complex128)).real.sum()
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr)


def features(rng, n, d, shift):
    L = rng.standard_normal((d, d)) * 0.3 / np.sqrt(d) + np.eye(d) * 0.5
    z = rng.standard_normal((n, d)) @ L + shift
    return np.maximum(z, 0).astype(np.float32) + np.float32(0.1)   # post-ReLU-like, like pool3


def stats_case(rng, n1, n2, d):
    f1 = features(rng, n1, d, 0.3)
    f2 = features(rng, n2, d, 0.3 + 0.2 * rng.standard_normal(d))
    a1, a2 = f1.astype(np.float64), f2.astype(np.float64)
    mu1, mu2 = a1.mean(axis=0), a2.mean(axis=0)
    s1, s2 = np.cov(a1, rowvar=False), np.cov(a2, rowvar=False)
    out = dict(feat1=f1, feat2=f2, mu1=mu1, sigma1=s1, mu2=mu2, sigma2=s2,
               fd_sqrtm=np.array([fd_pytorch_fid(mu1, s1, mu2, s2)]), fd_eig=np.array([fd_eig(mu1, s1, mu2, s2)]))
    print("  n=%d,%d d=%d: fd_sqrtm %.12g  fd_eig %.12g" % (n1, n2, d, out["fd_sqrtm"][0], out["fd_eig"][0]))
    return out


def inception_score(logits, splits=10):
    """torch_fidelity.metric_isc.isc_features_to_metric(shuffle=False) in float64 NumPy."""
    x = logits.astype(np.float64)
    x = x - x.max(axis=1, keepdims=True)
    log_p = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    p = np.exp(log_p)
    N, scores = x.shape[0], []
    for i in range(splits):
        pc, lpc = p[(i * N) // splits:((i + 1) * N) // splits], log_p[(i * N) // splits:((i + 1) * N) // splits]
        q = pc.mean(axis=0, keepdims=True)
        kl = (pc * (lpc - np.log(q))).sum(axis=1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


def generate():
    rng = np.random.default_rng(20240611)
    np.savez(os.path.join(OUT_DIR, "fid_features.npz"), **stats_case(rng, 300, 250, 64))
    np.savez_compressed(os.path.join(OUT_DIR, "fid_rankdef.npz"), **stats_case(rng, 40, 48, 64))

    logits = (rng.standard_normal((103, 16)) * 3.0).astype(np.float32)
    m, s = inception_score(logits)
    print("  IS %.12g +- %.12g" % (m, s))
    np.savez(os.path.join(OUT_DIR, "fid_is.npz"), logits=logits, is_mean=np.array([m]), is_std=np.array([s]))

    os.makedirs(DATA_DIR, exist_ok=True)
    a = (np.arange(15, dtype=np.float32).reshape(3, 5) * np.float32(0.25) - np.float32(1.0))
    b = np.asfortranarray(np.arange(12, dtype=np.float64).reshape(4, 3) / 7.0)
    assert b.flags.f_contiguous and not b.flags.c_contiguous
    mu = np.linspace(-1.0, 1.0, 5)
    sg = np.fromfunction(lambda i, j: 1.0 / (1.0 + i + j), (5, 5))
    kinds = dict(a_f4=a, b_fortran=b, c_scalar=np.float64(3.25), arr_0=np.full((2, 4, 4, 3), 7, np.uint8), mu=mu, sigma=sg)
    np.savez(os.path.join(DATA_DIR, "npz_kinds.npz"), **kinds)
    np.savez_compressed(os.path.join(DATA_DIR, "npz_kinds_compressed.npz"), **kinds)
