"""Goldens for op_cross_entropy (tests/test_ops_loss.c) and AdamW (tests/test_optim.c)."""
import os

import numpy as np
import torch
import torch.nn.functional as F

from goldens_lib import OUT_DIR, randn, save_safetensors, write_case


def adamw_reference():
    """Ten steps of torch.optim.AdamW (float64) on one tensor with a fixed sequence of gradients."""
    p0 = randn(3, 5, seed=50)
    grads = randn(10, 3, 5, seed=51)
    p = torch.tensor(p0, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.AdamW([p], lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    after = []
    for k in range(10):
        p.grad = torch.tensor(grads[k], dtype=torch.float64)
        opt.step()
        after.append(p.detach().numpy().copy())
    save_safetensors(os.path.join(OUT_DIR, "optim_adamw.safetensors"),
                     {"p0": p0, "grads": grads, "after": np.stack(after)},
                     {"lr": "0.01", "beta1": "0.9", "beta2": "0.95", "eps": "1e-8", "weight_decay": "0.1"})
    print("  optim_adamw: 10 steps")


def generate():
    labels = np.array([2, 0, 4, 1, 3, 3], dtype=np.int64)
    write_case("loss_cross_entropy", lambda x: F.cross_entropy(x, torch.as_tensor(labels)).reshape(1),
               [randn(6, 5, seed=40, scale=2.0)], seed=41, extra={"labels": labels.astype(np.float32)})
    adamw_reference()
