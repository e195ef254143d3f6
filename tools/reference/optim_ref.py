#!/usr/bin/python3
"""Independent references for the optimizers in core/ (tests/test_optim_ref.c).

  /usr/bin/python3 tools/reference/optim_ref.py --selfcheck
  /usr/bin/python3 tools/reference/optim_ref.py --goldens tests/goldens

(a) Muon as pMF calls it: `optax.contrib.muon(learning_rate=1e-3, adam_b2=0.95)` (optax v0.2.5,
    spec 7.1, porting-notes A3). A NumPy transcription in float64 of optax's `scale_by_muon`,
    `orthogonalize_via_newton_schulz` and the NAdam-style `scale_by_adam(nesterov=True)`, written from
    the spec and the optax source, not from core/optim_muon.c. Semantics, step k = count after the
    increment (1, 2, ...):
      Muon (ndim-2 flax kernels):
        mu     = beta mu + (1 - beta) g
        mu_hat = beta * mu / (1 - beta^(k+1)) + (1 - beta) * g / (1 - beta^k)
        X = mu_hat, transposed if rows > cols;  X = X / (||X||_F + eps)
        5 x { A = X X^T; B = b A + c A A; X = a X + B X },  (a, b, c) = (3.4445, -4.7750, 2.0315)
        transpose back;  update = -lr * sqrt(max(1, shape[-1] / shape[-2])) * X
      Adam branch (everything else): adamw(lr, b1, b2, eps, eps_root = 0, weight_decay = 0,
        nesterov = True):
        m = b1 m + (1 - b1) g;  n = b2 n + (1 - b2) g^2
        m_hat = b1 m / (1 - b1^(k+1)) + (1 - b1) g / (1 - b1^k);  n_hat = n / (1 - b2^k)
        update = -lr * m_hat / (sqrt(n_hat) + eps)
    Layout: the C store keeps a linear weight as (out, in) (torch layout); flax keeps the kernel as
    (in, out). The reference works literally on the flax kernel K = W^T (optax's shape[-1]/shape[-2]
    is then fan_out / fan_in) and transposes back, so the C code's own orientation handling is
    tested rather than assumed. Which tensors go to Muon is an explicit flag per tensor (spec 15.3:
    the C port partitions by name, so a 2-D tensor may still be an Adam tensor; "emb" below is one).

(b) AdamW: torch.optim.AdamW in float64 (lr, betas, eps, weight_decay), over the same tensors.

Inputs are rounded to float32 first, then everything runs in float64 (the stored numbers are the
exact answers for exactly the float32 inputs the C test reads). Tensors and gradient scales are
chosen so that every term matters at the test's 1e-5 tolerance: parameters are small next to
the steps (so a wrong update shows in the parameters), "w2" has gradients of size 1e-6 (the
eps in X / (||X||_F + eps) changes the update by ~0.3 %), "emb" has gradients of size 1e-7 (Adam's
eps changes its update by ~10 %), "w1" (6, 4) is tall and "w2" (3, 5) wide (both Newton-Schulz
orientations, scale sqrt(1.5) and 1). The AdamW golden uses a weight decay large enough to show.

Golden files (float32 safetensors), for each tensor name N in w1, w2, b, emb:
  N/p0 initial value; N/grads (10, *shape) the gradient of each step; N/after (10, *shape) the
  value after each step. `use_muon` (4,) holds the Muon flags (Muon golden only). Metadata: the
  hyperparameters and the tensor order.
"""
import argparse
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "goldens"))
from goldens_lib import save_safetensors  # noqa: E402

NS_COEFFS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5
STEPS = 10

# name, C shape, Muon?, initial scale, gradient scale
TENSORS = (
    ("w1", (6, 4), True, 1e-3, 1.0),
    ("w2", (3, 5), True, 1e-3, 1e-6),
    ("b", (5,), False, 1e-3, 1.0),
    ("emb", (2, 3), False, 1e-3, 1e-7),
)
MUON_HP = dict(lr=1e-3, beta=0.95, adam_b1=0.9, adam_b2=0.95, eps=1e-8)          # pMF's call
ADAMW_HP = dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.5)
ADAMW_P_SCALE = 0.02


# ---------------------------------------------------------------------------------------------
# (a) optax.contrib.muon, transcribed

def orthogonalize_via_newton_schulz(x, eps, coeffs=NS_COEFFS, steps=NS_STEPS):
    """optax orthogonalize_via_newton_schulz: x (m, n) float64."""
    assert x.ndim == 2
    a, b, c = coeffs
    transposed = x.shape[0] > x.shape[1]
    if transposed:
        x = x.T
    x = x / (np.linalg.norm(x) + eps)          # Frobenius norm (jnp.linalg.norm of a matrix)
    for _ in range(steps):
        A = x @ x.T
        B = b * A + c * A @ A
        x = a * x + B @ x
    return x.T if transposed else x


class MuonRef:
    """optax.contrib.muon(learning_rate=lr, beta, eps, adam_b1, adam_b2, nesterov=True), no decay.

    Parameters are given in the C layout; `muon` flags pick the branch. A Muon tensor of C shape
    (out, in) is handed to the optax transcription as the flax kernel (in, out)."""

    def __init__(self, params, muon, lr, beta, adam_b1, adam_b2, eps):
        self.lr, self.beta, self.b1, self.b2, self.eps = lr, beta, adam_b1, adam_b2, eps
        self.muon = list(muon)
        self.count = 0
        self.mu = [np.zeros_like(self._flax(p, m)) for p, m in zip(params, self.muon)]
        self.nu = [np.zeros_like(self._flax(p, m)) for p, m in zip(params, self.muon)]

    @staticmethod
    def _flax(x, is_muon):
        return x.T if is_muon else x

    def _muon_update(self, i, g):
        beta, k = self.beta, self.count
        self.mu[i] = beta * self.mu[i] + (1 - beta) * g                  # update_moment, order 1
        mu_hat = beta * (self.mu[i] / (1 - beta ** (k + 1))) + (1 - beta) * (g / (1 - beta ** k))
        o = orthogonalize_via_newton_schulz(mu_hat, self.eps)
        o = np.sqrt(max(1.0, o.shape[-1] / o.shape[-2])) * o
        return -self.lr * o                                              # scale_by_learning_rate

    def _adam_update(self, i, g):
        b1, b2, k = self.b1, self.b2, self.count
        self.mu[i] = b1 * self.mu[i] + (1 - b1) * g
        self.nu[i] = b2 * self.nu[i] + (1 - b2) * g * g
        m_hat = b1 * (self.mu[i] / (1 - b1 ** (k + 1))) + (1 - b1) * (g / (1 - b1 ** k))
        n_hat = self.nu[i] / (1 - b2 ** k)
        return -self.lr * m_hat / (np.sqrt(n_hat + 0.0) + self.eps)     # eps_root = 0

    def step(self, params, grads):
        self.count += 1
        out = []
        for i, (p, g, m) in enumerate(zip(params, grads, self.muon)):
            gk = self._flax(g, m)
            u = self._muon_update(i, gk) if m else self._adam_update(i, gk)
            out.append(p + self._flax(u, m))                             # optax.apply_updates
        return out


def run_muon(p0, grads, muon):
    opt = MuonRef([p for p in p0], muon, **MUON_HP)
    params, after = list(p0), [[] for _ in p0]
    for k in range(STEPS):
        params = opt.step(params, [g[k] for g in grads])
        for i, p in enumerate(params):
            after[i].append(p.copy())
    return [np.stack(a) for a in after]


# ---------------------------------------------------------------------------------------------
# (b) torch.optim.AdamW

def run_adamw(p0, grads):
    ps = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in p0]
    hp = ADAMW_HP
    opt = torch.optim.AdamW(ps, lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"],
                            weight_decay=hp["weight_decay"])
    after = [[] for _ in p0]
    for k in range(STEPS):
        for p, g in zip(ps, grads):
            p.grad = torch.tensor(g[k], dtype=torch.float64)
        opt.step()
        for i, p in enumerate(ps):
            after[i].append(p.detach().numpy().copy())
    return [np.stack(a) for a in after]


# ---------------------------------------------------------------------------------------------

def f32(a):
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def inputs(seed, p_scale=None):
    rng = np.random.default_rng(seed)
    p0, grads = [], []
    for _, shape, _, ps, gs in TENSORS:
        p0.append(f32(rng.standard_normal(shape) * (p_scale if p_scale is not None else ps)))
        grads.append(f32(rng.standard_normal((STEPS,) + shape) * gs))
    return p0, grads


def store(p0, grads, after):
    out = {}
    for (name, *_), p, g, a in zip(TENSORS, p0, grads, after):
        out[f"{name}/p0"], out[f"{name}/grads"], out[f"{name}/after"] = p, g, a
    return out


def write_goldens(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    names = ",".join(t[0] for t in TENSORS)
    muon = [t[2] for t in TENSORS]

    p0, grads = inputs(seed=70)
    tensors = store(p0, grads, run_muon(p0, grads, muon))
    tensors["use_muon"] = np.array(muon, dtype=np.float32)
    meta = {k: repr(v) for k, v in MUON_HP.items()}
    meta.update(tensors=names, steps=str(STEPS), ns_coeffs="3.4445,-4.7750,2.0315", ns_steps="5",
                nesterov="1", weight_decay="0", layout="C (out, in); optax applied to the (in, out) kernel",
                reference="tools/reference/optim_ref.py: NumPy float64 transcription of optax.contrib.muon")
    path = os.path.join(out_dir, "optim_muon10.safetensors")
    save_safetensors(path, tensors, meta)
    print(f"  {path}: {STEPS} steps, tensors {names}, muon {muon}")

    p0, grads = inputs(seed=71, p_scale=ADAMW_P_SCALE)
    meta = {k: repr(v) for k, v in ADAMW_HP.items()}
    meta.update(tensors=names, steps=str(STEPS), reference="torch.optim.AdamW, float64")
    path = os.path.join(out_dir, "optim_adamw10.safetensors")
    save_safetensors(path, store(p0, grads, run_adamw(p0, grads)), meta)
    print(f"  {path}: {STEPS} steps, tensors {names}")


# ---------------------------------------------------------------------------------------------

def selfcheck():
    ok = True

    def check(label, cond, detail=""):
        nonlocal ok
        ok &= bool(cond)
        print(f"  {'ok  ' if cond else 'FAIL'} {label} {detail}")

    rng = np.random.default_rng(5)
    # Newton-Schulz: a near-orthogonalisation (singular values roughly in (0.5, 1.5), optax's
    # docstring says ~U(0.5, 1.5)), equivariant under transposition, independent of the scale.
    for shape in ((6, 4), (3, 5), (8, 8)):
        x = rng.standard_normal(shape)
        o = orthogonalize_via_newton_schulz(x, 1e-8)
        s = np.linalg.svd(o, compute_uv=False)
        check(f"NS {shape} singular values in (0.3, 1.5)", s.min() > 0.3 and s.max() < 1.5,
              f"[{s.min():.3f}, {s.max():.3f}]")
        u, _, vt = np.linalg.svd(x, full_matrices=False)
        m = u.T @ o @ vt.T                       # diagonal with positive entries: same U, V
        check(f"NS {shape} keeps the singular vectors",
              np.abs(m - np.diag(np.diag(m))).max() < 1e-12 and np.diag(m).min() > 0)
        ot = orthogonalize_via_newton_schulz(x.T, 1e-8)
        check(f"NS {shape} transpose-equivariant", np.abs(ot - o.T).max() < 1e-14)
        check(f"NS {shape} scale-invariant (eps = 0)",
              np.abs(orthogonalize_via_newton_schulz(1e3 * x, 0.0) - orthogonalize_via_newton_schulz(x, 0.0)).max()
              < 1e-12)
    # eps placement: a tiny matrix is shrunk by ||X|| / (||X|| + eps) before the iteration.
    x = rng.standard_normal((3, 5)) * 1e-6
    o_eps, o_no = orthogonalize_via_newton_schulz(x, 1e-8), orthogonalize_via_newton_schulz(x, 0.0)
    d = np.linalg.norm(o_eps - o_no) / np.linalg.norm(o_no)
    check("NS eps matters for a 1e-6 matrix", 1e-4 < d < 1e-1, f"(rel change {d:.2e})")

    # Adam branch with the Nesterov term switched off must be torch.optim.Adam (same b2 bias
    # correction and eps placement).
    class PlainAdam(MuonRef):
        def _adam_update(self, i, g):
            b1, b2, k = self.b1, self.b2, self.count
            self.mu[i] = b1 * self.mu[i] + (1 - b1) * g
            self.nu[i] = b2 * self.nu[i] + (1 - b2) * g * g
            return -self.lr * (self.mu[i] / (1 - b1 ** k)) / (np.sqrt(self.nu[i] / (1 - b2 ** k)) + self.eps)

    p = rng.standard_normal((5,))
    gs = rng.standard_normal((STEPS, 5)) * np.array([1, 1e-7, 1, 1e-3, 1])
    ref = PlainAdam([p], [False], lr=1e-3, beta=0.95, adam_b1=0.9, adam_b2=0.95, eps=1e-8)
    tp = torch.tensor(p, requires_grad=True)
    topt = torch.optim.Adam([tp], lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
    cur, worst = [p], 0.0
    for k in range(STEPS):
        cur = ref.step(cur, [gs[k]])
        tp.grad = torch.tensor(gs[k])
        topt.step()
        worst = max(worst, np.abs(cur[0] - tp.detach().numpy()).max())
    check("Adam branch (nesterov off) == torch.optim.Adam", worst < 1e-15, f"(max abs {worst:.1e})")

    # Step 1 in closed form: mu_hat = g (1 + beta / (1 + beta)) for both branches, so the first
    # Muon update is -lr * scale * NS(g) (eps aside) and the first Adam update is
    # -lr * m_hat / (|g| + eps) with m_hat = g (1 + b1 / (1 + b1)).
    w, gw = rng.standard_normal((6, 4)), rng.standard_normal((6, 4))
    r = MuonRef([w], [True], **MUON_HP)
    upd = r.step([w], [gw])[0] - w
    want = -1e-3 * np.sqrt(6 / 4) * orthogonalize_via_newton_schulz(gw, 0.0)
    check("Muon step 1 = -lr sqrt(out/in) NS(g) for an (out, in) weight",
          np.linalg.norm(upd - want) / np.linalg.norm(want) < 1e-7)
    v, gv = rng.standard_normal(5), rng.standard_normal(5)
    r = MuonRef([v], [False], **MUON_HP)
    upd = r.step([v], [gv])[0] - v
    want = -1e-3 * gv * (1 + 0.9 / 1.9) / (np.abs(gv) + 1e-8)
    check("NAdam step 1 closed form", np.abs(upd - want).max() < 1e-15)
    print("selfcheck:", "PASS" if ok else "FAIL")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--selfcheck", action="store_true")
    ap.add_argument("--goldens", metavar="DIR")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if not (args.selfcheck or args.goldens):
        ap.error("give --selfcheck and/or --goldens DIR")
    if args.selfcheck and not selfcheck():
        sys.exit(1)
    if args.goldens:
        write_goldens(args.goldens)


if __name__ == "__main__":
    main()
