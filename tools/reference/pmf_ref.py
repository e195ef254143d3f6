#!/usr/bin/python3
"""Independent PyTorch reference of the pixel MeanFlow generator and its training loss.

Written from /work/shared/spec/pmf-spec.md (sections 1, 2.3, 3.2, 3.3, 5.1-5.4, 5.6, 6, 11.1, 15), not from
the C code; only the parameter names/shapes and the "tiny"/"S/4" presets are taken from pmf/ so that
golden files load by name. Run with Debian's interpreter: /usr/bin/python3 (torch 1.13).

  /usr/bin/python3 tools/reference/pmf_ref.py --selfcheck
  /usr/bin/python3 tools/reference/pmf_ref.py --goldens tests/goldens   # pmf_tiny_{step,upred,nocfg}
  /usr/bin/python3 tools/reference/pmf_ref.py --bench

Choices where the spec leaves room (each is marked CHOICE in the code):
 1. Images are NCHW (B, C, H, W), as the C side stores them. The patch embedding is a p x p stride-p
    convolution (weights (d', C, p, p)), so the flattening order of a patch does not matter on the
    input side; on the output side the final linear's p*p*C outputs are in (row-in-patch,
    column-in-patch, channel) order (spec 6.2 "(n, h, w, p, q, c)"), then moved to NCHW.
 2. T(t) = clip(t, 0.05, 1) with T' = 1 strictly inside (0.05, 1) and 0 at or beyond the bounds
    (spec 5.4 / 15.4). Sampled t never hits the bounds.
 3. Token and label-table init "N(0, 1/D)" is a variance: std 1/sqrt(D) (spec 15.9).
 4. 2-D RoPE for a g x g grid: patch index n -> row n // g, column n % g (spec writes g = 16);
    pairs (x[2j], x[2j+1]), m = head_dim / 2 pairs, f_k = 10000^(-2k/m) for k < m/2; pair j < m/2
    turns by row * f_j, pair j >= m/2 by col * f_(j - m/2). Prefix tokens are not rotated.
 5. q/k RMSNorm eps 1e-6 like every RMSNorm; one (head_dim) weight shared by all heads.
 6. The loss takes every random draw as input (PmfStepNoise-like dict): e (already times noise_scale),
    t, r, t_min, t_max, omega, fm (r = t rows), drop (class-dropped rows). t_min/t_max are taken as
    given (the sampler puts 0/1 on fm rows); fm selects v_g_fm; drop replaces the label by the null
    class (num_classes) for the u-head and the v-head loss pass and sets v_g = v_t on those rows.
    The JVP tangent v_c2 always uses the true label (spec 15.7). Masks may be any rows; the sampler
    here puts fm on the first int(0.5 B) rows and drop on the first k rows (k = #(U < 0.1)).
 7. Two switches of pmf_loss (defaults: the released code's path; there is no perceptual term):
    pred = "x" (spec 1.3, 5.1: the heads output images, velocity = (z - X) / clip(t)) or "u" (spec
    1.3 table, 11.1: the heads output the velocity itself, for both heads and all v-head calls; du/dt
    is then the forward-mode derivative of the u-head output along (z' = v_c2, h' = 1), t enters
    nowhere; no preconditioner, 5.6 is x-prediction only). cfg = True (spec 3.3, 5.3 step 4: the
    guided target from 3 v-head passes on B rows) or False (v_g = v_t, the plain FM target, on every
    row; the JVP tangent v_c2 = v-head(z, h = 0, omega = 1, t_min = 0, t_max = 1, true label), one
    pass on B rows). With cfg off the sampler draws no omega (draw_noise gives omega = 1); the loss
    takes the omega it is given. Class dropout (labels only, v_g is v_t anyway) applies either way.
 8. The v-head, in the JVP pass, sees the trunk output with its tangent dropped (it is an aux output;
    only its primal is used).
 9. The loss's gradient goes only through the primal u and v; du/dt, v_c2 and v_g are constants.
"""
import argparse
import math
import os
import statistics
import sys
import time
from collections import OrderedDict

import numpy as np
import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "goldens"))
from goldens_lib import save_safetensors  # noqa: E402

PREFIX = (("cls_tokens", 8), ("omega_tokens", 4), ("tmin_tokens", 2), ("tmax_tokens", 2), ("time_tokens", 4))
NPREFIX = 20
TIME_FREQ = 256          # sinusoid width of the timestep embedders (128 cos + 128 sin)
T_EPS = 0.05             # clip(t, 0.05, 1)
RMS_EPS = 1e-6
ROPE_THETA = 10000.0


# ---------------------------------------------------------------------------------------------
# Configuration


def swiglu_hidden(dim):
    h = int(dim * 8 / 3)
    return (h + 7) // 8 * 8 if dim > 1024 else h


def preset(name):
    """Model presets: the C side's CPU presets and the paper's models (spec 6.4)."""
    if name == "tiny":
        c = dict(img=8, C=1, p=4, D=16, heads=2, shared=1, head=1, bottleneck=8, classes=3, noise_scale=1.0)
    elif name == "S/4":
        c = dict(img=32, C=1, p=4, D=192, heads=4, shared=2, head=4, bottleneck=32, classes=10, noise_scale=1.0)
    elif name == "XS/4":   # the default run's model (configs/fmnist_default.yml)
        c = dict(img=32, C=1, p=4, D=96, heads=2, shared=1, head=2, bottleneck=32, classes=10, noise_scale=1.0)
    else:
        size, patch = name.split("/")
        D, heads, shared, bn = {"B": (768, 12, 8, 128), "L": (1024, 16, 24, 128), "H": (1280, 16, 40, 256)}[size]
        ns = {"B/16": 1.0, "B/32": 2.0, "L/16": 1.0, "L/32": 4.0, "H/16": 2.0, "H/32": 4.0}[name]
        c = dict(img=int(patch) * 16, C=3, p=int(patch), D=D, heads=heads, shared=shared, head=8,
                 bottleneck=bn, classes=1000, noise_scale=ns)
    c["name"] = name
    c["hidden"] = swiglu_hidden(c["D"])
    c["g"] = c["img"] // c["p"]
    c["N"] = c["g"] ** 2
    return c


def block_shapes(prefix, c):
    D, hs, H = c["D"], c["D"] // c["heads"], c["hidden"]
    return [(prefix + ".norm1.weight", (D,)), (prefix + ".attn.q.weight", (D, D)), (prefix + ".attn.k.weight", (D, D)),
            (prefix + ".attn.v.weight", (D, D)), (prefix + ".attn.o.weight", (D, D)),
            (prefix + ".attn.q_norm.weight", (hs,)), (prefix + ".attn.k_norm.weight", (hs,)),
            (prefix + ".attn_scale", (D,)), (prefix + ".norm2.weight", (D,)), (prefix + ".mlp.w1.weight", (H, D)),
            (prefix + ".mlp.w3.weight", (H, D)), (prefix + ".mlp.w2.weight", (D, H)), (prefix + ".mlp_scale", (D,))]


def param_shapes(c, with_v_head=True):
    """Name -> shape, in torch layouts (linear (out, in), conv (out, in, kh, kw))."""
    D, C, p, out = c["D"], c["C"], c["p"], c["p"] * c["p"] * c["C"]
    s = []
    if c["bottleneck"]:
        bn = c["bottleneck"]
        s += [("patch.proj1.weight", (bn, C, p, p)), ("patch.proj1.bias", (bn,)),
              ("patch.proj2.weight", (D, bn, 1, 1)), ("patch.proj2.bias", (D,))]
    else:
        s += [("patch.proj.weight", (D, C, p, p)), ("patch.proj.bias", (D,))]
    s += [(n, (k, D)) for n, k in PREFIX]
    s += [("label_embed", (c["classes"] + 1, D)), ("pos_embed", (NPREFIX + c["N"], D))]
    for te in ("te_h", "te_omega", "te_tmin", "te_tmax"):
        s += [(te + ".fc1.weight", (D, TIME_FREQ)), (te + ".fc1.bias", (D,)), (te + ".fc2.weight", (D, D)),
              (te + ".fc2.bias", (D,))]
    heads = ("u", "v") if with_v_head else ("u",)
    for i in range(c["shared"]):
        s += block_shapes("trunk.%d" % i, c)
    for hd in heads:
        for i in range(c["head"]):
            s += block_shapes("%s_head.%d" % (hd, i), c)
        s += [(hd + "_final.norm.weight", (D,)), (hd + "_final.linear.weight", (out, D)),
              (hd + "_final.linear.bias", (out,))]
    # C declaration order puts u_final before the v-head blocks.
    order = [n for n, _ in s if not n.startswith("v_")] + [n for n, _ in s if n.startswith("v_")]
    d = dict(s)
    return OrderedDict((n, d[n]) for n in order)


def init_params(c, seed=0, dtype=torch.float32):
    """Spec 6.3 with a torch.Generator."""
    g = torch.Generator().manual_seed(seed)
    P = OrderedDict()
    for name, shape in param_shapes(c).items():
        leaf = name.rsplit(".", 1)[-1]
        if name.startswith("patch.") and leaf == "weight":          # Xavier-uniform on the conv kernels
            fan_out, fan_in = shape[0], int(np.prod(shape[1:]))
            a = math.sqrt(6.0 / (fan_in + fan_out))
            w = (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) * a
        elif name in dict(PREFIX) or name == "label_embed":          # N(0, 1/D)
            w = torch.randn(shape, generator=g, dtype=torch.float64) / math.sqrt(c["D"])
        elif name == "pos_embed":
            w = torch.randn(shape, generator=g, dtype=torch.float64) * 0.02
        elif name.startswith("te_") and leaf == "weight":           # N(0, 1/fan_in)
            w = torch.randn(shape, generator=g, dtype=torch.float64) / math.sqrt(shape[1])
        elif "_final." in name:
            w = torch.ones(shape, dtype=torch.float64) if ".norm." in name else torch.zeros(shape, dtype=torch.float64)
        elif "norm" in name:                                         # RMSNorm weights (incl. q/k norm)
            w = torch.ones(shape, dtype=torch.float64)
        elif name.endswith("_scale") or leaf == "bias":              # residual gates, biases
            w = torch.zeros(shape, dtype=torch.float64)
        else:                                                        # transformer linears
            w = torch.randn(shape, generator=g, dtype=torch.float64) * (0.32 / math.sqrt(shape[1]))
        P[name] = w.to(dtype)
    return P


def perturb_params(P, seed=1):
    """Make the zero-initialised pieces non-zero (gates, final layers, biases, norms) so that every
    parameter gets a gradient; used for goldens and checks, not for training."""
    g = torch.Generator().manual_seed(seed)
    Q = OrderedDict()
    for name, w in P.items():
        n = torch.randn(w.shape, generator=g, dtype=torch.float64).to(w.dtype)
        if name.endswith("_scale"):
            w = w + 0.5 * n
        elif "_final.linear.weight" in name:
            w = w + 0.3 / math.sqrt(w.shape[1]) * n
        elif name.endswith("bias"):
            w = w + 0.1 * n
        elif "norm" in name:
            w = w + 0.1 * n
        Q[name] = w
    return Q


# ---------------------------------------------------------------------------------------------
# Network (spec 6)


def rmsnorm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + RMS_EPS) * w


def timestep_embed(P, name, s):
    """s (B) -> (B, D): [cos(s f_k), sin(s f_k)], f_k = exp(-ln(1e4) k / 128), then fc1, SiLU, fc2."""
    half = TIME_FREQ // 2
    f = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=s.dtype) / half)
    a = s[:, None] * f[None, :]
    emb = torch.cat([torch.cos(a), torch.sin(a)], dim=-1)
    h = F.silu(F.linear(emb, P[name + ".fc1.weight"], P[name + ".fc1.bias"]))
    return F.linear(h, P[name + ".fc2.weight"], P[name + ".fc2.bias"])


def rope_tables(c, dtype):
    """cos/sin (N, m) for the 2-D RoPE of the patch tokens (CHOICE 4)."""
    hs = c["D"] // c["heads"]
    m = hs // 2
    k = torch.arange(m // 2, dtype=torch.float64)
    f = ROPE_THETA ** (-2.0 * k / m)
    n = torch.arange(c["N"])
    row, col = (n // c["g"]).to(torch.float64), (n % c["g"]).to(torch.float64)
    ang = torch.cat([row[:, None] * f[None, :], col[:, None] * f[None, :]], dim=1)
    return torch.cos(ang).to(dtype), torch.sin(ang).to(dtype)


def rope(x, cos, sin):
    """x (B, heads, N, hs): rotate pairs (x[2j], x[2j+1]) by the angle table (N, hs/2)."""
    a, b = x[..., 0::2], x[..., 1::2]
    ra, rb = a * cos - b * sin, a * sin + b * cos
    return torch.stack([ra, rb], dim=-1).flatten(-2)


def block(P, pre, x, c, rope_cs):
    B, T, D = x.shape
    nh, hs = c["heads"], D // c["heads"]
    n = rmsnorm(x, P[pre + ".norm1.weight"])
    q = F.linear(n, P[pre + ".attn.q.weight"]).view(B, T, nh, hs)
    k = F.linear(n, P[pre + ".attn.k.weight"]).view(B, T, nh, hs)
    v = F.linear(n, P[pre + ".attn.v.weight"]).view(B, T, nh, hs)
    q = rmsnorm(q, P[pre + ".attn.q_norm.weight"]).transpose(1, 2)      # (B, nh, T, hs)
    k = rmsnorm(k, P[pre + ".attn.k_norm.weight"]).transpose(1, 2)
    v = v.transpose(1, 2)
    cos, sin = rope_cs
    q = torch.cat([q[:, :, :NPREFIX], rope(q[:, :, NPREFIX:], cos, sin)], dim=2)
    k = torch.cat([k[:, :, :NPREFIX], rope(k[:, :, NPREFIX:], cos, sin)], dim=2)
    s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hs)
    o = torch.matmul(torch.softmax(s, dim=-1), v).transpose(1, 2).reshape(B, T, D)
    x = x + F.linear(o, P[pre + ".attn.o.weight"]) * P[pre + ".attn_scale"]
    m = rmsnorm(x, P[pre + ".norm2.weight"])
    hdn = F.silu(F.linear(m, P[pre + ".mlp.w1.weight"])) * F.linear(m, P[pre + ".mlp.w3.weight"])
    return x + F.linear(hdn, P[pre + ".mlp.w2.weight"]) * P[pre + ".mlp_scale"]


def head(P, hd, x, c, rope_cs):
    for i in range(c["head"]):
        x = block(P, "%s_head.%d" % (hd, i), x, c, rope_cs)
    y = F.linear(rmsnorm(x[:, NPREFIX:], P[hd + "_final.norm.weight"]), P[hd + "_final.linear.weight"],
                 P[hd + "_final.linear.bias"])                       # (B, N, p*p*C) in (p, q, c) order
    B, g, p, C = x.shape[0], c["g"], c["p"], c["C"]
    return y.reshape(B, g, g, p, p, C).permute(0, 5, 1, 3, 2, 4).reshape(B, C, g * p, g * p)


def net(P, c, z, h, omega, t_min, t_max, y, want_u=True, want_v=True, v_drop_tangent=True):
    """Heads' x-predictions (X_u, X_v), images (B, C, H, W). Conditions: h, omega, t_min, t_max (B),
    labels y (B) long in [0, classes] (classes = null). The network never sees t itself."""
    B, D = z.shape[0], c["D"]
    e = F.conv2d(z, P["patch.proj1.weight" if c["bottleneck"] else "patch.proj.weight"],
                 P["patch.proj1.bias" if c["bottleneck"] else "patch.proj.bias"], stride=c["p"])
    if c["bottleneck"]:
        e = F.conv2d(e, P["patch.proj2.weight"], P["patch.proj2.bias"])
    patches = e.flatten(2).transpose(1, 2)                           # (B, N, D), row-major grid
    emb = {"cls_tokens": P["label_embed"][y],
           "omega_tokens": timestep_embed(P, "te_omega", 1.0 - 1.0 / omega),
           "tmin_tokens": timestep_embed(P, "te_tmin", t_min),
           "tmax_tokens": timestep_embed(P, "te_tmax", t_max),
           "time_tokens": timestep_embed(P, "te_h", h)}
    groups = [P[n][None, :, :] + emb[n][:, None, :] for n, _ in PREFIX]
    x = torch.cat(groups + [patches], dim=1) + P["pos_embed"][None]
    rope_cs = rope_tables(c, z.dtype)
    for i in range(c["shared"]):
        x = block(P, "trunk.%d" % i, x, c, rope_cs)
    xu = head(P, "u", x, c, rope_cs) if want_u else None
    xv = None
    if want_v:
        xt = fwAD.unpack_dual(x).primal if v_drop_tangent else x      # CHOICE 8
        xv = head(P, "v", xt, c, rope_cs)
    return xu, xv


def clip_t(t):
    """T(t) = clip(t, 0.05, 1) with T' = 1 strictly inside, 0 elsewhere (CHOICE 2)."""
    inside = (t > T_EPS) & (t < 1.0)
    return torch.where(inside, t, t.detach().clamp(T_EPS, 1.0))


def bc(s):
    return s[:, None, None, None]


def velocity(z, X, t, pred="x"):
    """Head output -> velocity: x-prediction (z - X) / clip(t) (spec 1.3, 5.1); u-prediction: X itself."""
    if pred == "u":
        return X
    return (z - X) / bc(clip_t(t))


# ---------------------------------------------------------------------------------------------
# Randomness of one step (drawn here only for checks/bench; the loss takes it as input)


def draw_noise(c, B, gen, dtype=torch.float32, p_mean=0.8, p_std=0.8, data_proportion=0.5, cfg_max=7.0,
               cfg_beta=1.0, class_dropout=0.1, cfg=True):
    def rn(*s):
        return torch.randn(s, generator=gen, dtype=torch.float64)

    def ru(*s):
        return torch.rand(s, generator=gen, dtype=torch.float64)
    t = torch.sigmoid(p_std * rn(B) + p_mean)
    r = torch.sigmoid(p_std * rn(B) + p_mean)
    nfm = int(B * data_proportion)
    r[:nfm] = t[:nfm]
    t, r = torch.maximum(t, r), torch.minimum(t, r)
    fm = torch.zeros(B, dtype=torch.bool)
    fm[:nfm] = True
    t_min, t_max = ru(B) * 0.5, 0.5 + ru(B) * 0.5
    t_min[fm], t_max[fm] = 0.0, 1.0
    u = ru(B)
    if cfg_beta == 1.0:
        omega = torch.exp(u * math.log1p(cfg_max))
    else:
        omega = torch.exp(torch.log1p(u * math.expm1((1 - cfg_beta) * math.log1p(cfg_max))) / (1 - cfg_beta))
    if not cfg:
        omega = torch.ones_like(omega)
    k = int((ru(B) < class_dropout).sum())
    drop = torch.zeros(B, dtype=torch.bool)
    drop[:k] = True
    e = rn(B, c["C"], c["img"], c["img"]) * c["noise_scale"]
    d = dict(e=e, t=t, r=r, t_min=t_min, t_max=t_max, omega=omega)
    d = {k_: v.to(dtype) for k_, v in d.items()}
    d.update(fm=fm, drop=drop)
    return d


# ---------------------------------------------------------------------------------------------
# Loss (spec 5.3 steps 2-8 and 10, no perceptual term)


def guidance(P, c, z, t, y, noise, pred="x", cfg=True):
    """Step 4: the v-head velocities for the guided target (v_c, v_u; None with cfg off), the JVP
    tangent v_c2 and the effective scale w (1 with cfg off)."""
    B = z.shape[0]
    omega, t_min, t_max, fm = noise["omega"], noise["t_min"], noise["t_max"], noise["fm"]
    zeros, ones = torch.zeros_like(t), torch.ones_like(t)
    null = torch.full_like(y, c["classes"])
    if not cfg:     # CHOICE 7: one v-head pass at omega = 1, [0, 1], the true label
        with torch.no_grad():
            _, xv = net(P, c, z, zeros, ones, zeros, ones, y, want_u=False)
            return None, None, velocity(z, xv, t, pred), ones
    with torch.no_grad():
        z2 = torch.cat([z, z])
        _, xv = net(P, c, z2, torch.cat([zeros, zeros]), torch.cat([omega, ones]), torch.cat([zeros, zeros]),
                    torch.cat([ones, ones]), torch.cat([y, null]), want_u=False)
        v2 = velocity(z2, xv, torch.cat([t, t]), pred)
        v_c, v_u = v2[:B], v2[B:]
        w = torch.where((t_min <= t) & (t <= t_max), omega, ones)
        _, xv2 = net(P, c, z, zeros, w, zeros, ones, y, want_u=False)
        v_c2 = velocity(z, xv2, t, pred)
    return v_c, v_u, v_c2, w


def pmf_loss(P, c, x, y, noise, norm_eps=0.01, jvp="forward_ad", pred="x", cfg=True):
    """x (B, C, H, W), y (B) long, noise: dict of the step's randomness (CHOICE 6); pred "x" | "u",
    cfg on/off (CHOICE 7). Returns a dict with 'loss' (scalar, differentiable w.r.t. P) and the
    per-sample pieces. x_u / x_u_dot are the u-head output and its tangent (a velocity for pred u)."""
    t, r, e = noise["t"], noise["r"], noise["e"]
    fm, drop = noise["fm"], noise["drop"]
    z = (1 - bc(t)) * x + bc(t) * e
    v_t = (z - x) / bc(clip_t(t))
    v_c, v_u, v_c2, w = guidance(P, c, z, t, y, noise, pred, cfg)
    if cfg:
        v_g = torch.where(bc(fm), v_t + bc(1 - 1 / noise["omega"]) * (v_c - v_u),
                          v_t + bc(1 - 1 / w) * (v_c2 - v_u))
    else:
        v_g = v_t.clone()
    yd = torch.where(drop, torch.full_like(y, c["classes"]), y)
    v_g = torch.where(bc(drop), v_t, v_g)
    cond = (noise["omega"], noise["t_min"], noise["t_max"], yd)

    if jvp == "forward_ad":
        with fwAD.dual_level():
            zd = fwAD.make_dual(z, v_c2)
            td = fwAD.make_dual(t, torch.ones_like(t))
            rd = fwAD.make_dual(r, torch.zeros_like(r))
            xu, xv = net(P, c, zd, td - rd, *cond)
            ud = velocity(zd, xu, td, pred)
            u, du_dt = fwAD.unpack_dual(ud)
            x_u, x_u_dot = fwAD.unpack_dual(xu)
            x_v = fwAD.unpack_dual(xv).primal
    else:   # double-backward JVP (torch.autograd.functional.jvp) of u, then a plain forward with grads
        Pd = OrderedDict((k, v.detach()) for k, v in P.items())

        def fu(z_, t_, r_):
            xu_, _ = net(Pd, c, z_, t_ - r_, *cond, want_v=False)
            return torch.cat([velocity(z_, xu_, t_, pred).flatten(), xu_.flatten()])
        _, tan = torch.autograd.functional.jvp(fu, (z, t, r), (v_c2, torch.ones_like(t), torch.zeros_like(r)))
        du_dt, x_u_dot = tan[:z.numel()].view_as(z), tan[z.numel():].view_as(z)
        x_u, x_v = net(P, c, z, t - r, *cond)
        u = velocity(z, x_u, t, pred)
    v = velocity(z, x_v, t, pred)
    du_dt = du_dt.detach()
    V = u + bc(t - r) * du_dt
    L_u = (V - v_g).pow(2).sum((1, 2, 3))
    L_v = (v - v_g).pow(2).sum((1, 2, 3))
    loss_u = L_u / (L_u + norm_eps).detach()
    loss_v = L_v / (L_v + norm_eps).detach()
    loss = (loss_u + loss_v).mean()
    return dict(loss=loss, loss_u=loss_u, loss_v=loss_v, L_u=L_u, L_v=L_v, z=z, v_t=v_t, v_c=v_c, v_u=v_u,
                v_c2=v_c2, w=w, v_g=v_g, labels_used=yd, x_u=x_u, x_v=x_v, x_u_dot=x_u_dot, u=u, v=v,
                du_dt=du_dt, V=V)


# ---------------------------------------------------------------------------------------------
# Goldens


def tiny_case(dtype=torch.float64):
    """Parameters (perturbed init, float32-rounded), a batch of 4 and its randomness, all float32
    values held in `dtype`. Rows: 0 fm + dropped, 1 fm, 2 r<t with t inside [t_min, t_max],
    3 r<t with t outside (w = 1)."""
    c = preset("tiny")
    P = perturb_params(init_params(c, seed=0, dtype=torch.float64), seed=1)
    P = OrderedDict((k, v.float().to(dtype)) for k, v in P.items())
    gen = torch.Generator().manual_seed(2)
    B = 4
    n = draw_noise(c, B, gen, dtype=torch.float64)
    n["t"] = torch.tensor([0.62, 0.35, 0.71, 0.93], dtype=torch.float64)
    n["r"] = torch.tensor([0.62, 0.35, 0.27, 0.44], dtype=torch.float64)
    n["t_min"] = torch.tensor([0.0, 0.0, 0.21, 0.13], dtype=torch.float64)
    n["t_max"] = torch.tensor([1.0, 1.0, 0.84, 0.77], dtype=torch.float64)
    n["omega"] = torch.tensor([3.7, 1.6, 5.2, 2.4], dtype=torch.float64)
    n["fm"] = torch.tensor([True, True, False, False])
    n["drop"] = torch.tensor([True, False, False, False])
    for k in ("e", "t", "r", "t_min", "t_max", "omega"):
        n[k] = n[k].float().to(dtype)
    x = (torch.rand(B, c["C"], c["img"], c["img"], generator=gen, dtype=torch.float64) * 2 - 1).float().to(dtype)
    y = torch.tensor([2, 0, 1, 2])
    return c, P, x, y, n


def write_goldens(out_dir):
    c, P, x, y, n = tiny_case(torch.float64)
    store = OrderedDict()
    for k, v in P.items():
        store["model/" + k] = v.numpy()

    # (a) a standalone forward with a tangent (z_dot, h' = 1, t' = 1)
    gen = torch.Generator().manual_seed(3)
    B = 4
    z = (torch.randn(B, c["C"], c["img"], c["img"], generator=gen, dtype=torch.float64)).float().double()
    z_dot = torch.randn(z.shape, generator=gen, dtype=torch.float64).float().double()
    ft = torch.tensor([0.9, 0.5, 0.3, 0.02], dtype=torch.float64).float().double()   # row 3: T clipped (T' = 0)
    fh = torch.tensor([0.4, 0.0, 0.25, 0.01], dtype=torch.float64).float().double()
    fo = torch.tensor([1.0, 2.5, 7.9, 4.0], dtype=torch.float64).float().double()
    fmin = torch.tensor([0.0, 0.1, 0.3, 0.45], dtype=torch.float64).float().double()
    fmax = torch.tensor([1.0, 0.7, 0.55, 0.9], dtype=torch.float64).float().double()
    fy = torch.tensor([0, 1, 3, 2])
    with fwAD.dual_level():
        zd = fwAD.make_dual(z, z_dot)
        td = fwAD.make_dual(ft, torch.ones_like(ft))
        hd = fwAD.make_dual(fh, torch.ones_like(fh))
        xu, xv = net(P, c, zd, hd, fo, fmin, fmax, fy)
        ud = velocity(zd, xu, td)
        u, du_dt = fwAD.unpack_dual(ud)
        x_u, x_u_dot = fwAD.unpack_dual(xu)
        x_v = fwAD.unpack_dual(xv).primal
    v = velocity(z, x_v, ft)
    fwd = dict(z=z, z_dot=z_dot, t=ft, h=fh, omega=fo, t_min=fmin, t_max=fmax, labels=fy, x_u=x_u, x_v=x_v, u=u,
               v=v, x_u_dot=x_u_dot, du_dt=du_dt)
    for k, val in fwd.items():
        store["fwd/" + k] = val.detach().double().numpy()

    # (b) one loss evaluation and the gradient of the loss for every parameter
    for k in P:
        P[k].requires_grad_(True)
    out = pmf_loss(P, c, x, y, n)
    grads = torch.autograd.grad(out["loss"], list(P.values()), allow_unused=True)
    store["loss/x"] = x.numpy()
    store["loss/labels"] = y.double().numpy()
    for k in ("e", "t", "r", "t_min", "t_max", "omega", "fm", "drop"):
        store["noise/" + k] = n[k].double().numpy()
    for k in ("loss", "loss_u", "loss_v", "L_u", "L_v", "z", "v_t", "v_c", "v_u", "v_c2", "w", "v_g", "labels_used",
              "x_u_dot", "u", "v", "du_dt", "V"):
        store["loss/" + k] = out[k].detach().double().numpy().reshape(out[k].shape)
    zero = []
    for (k, p), gr in zip(P.items(), grads):
        gr = torch.zeros_like(p) if gr is None else gr
        if float(gr.abs().max()) == 0:
            zero.append(k)
        store["grad/" + k] = gr.numpy()
    meta = dict(preset="tiny", layout="NCHW", norm_eps=0.01, null_label=c["classes"], float="float64 reference of float32 inputs",
                fwd_tangent="z'=fwd/z_dot, h'=1, t'=1", jvp_tangent="z'=loss/v_c2, t'=1, r'=0",
                writer="tools/reference/pmf_ref.py --goldens")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "pmf_tiny_step.safetensors")
    save_safetensors(path, store, meta)
    print("wrote %s (%d tensors, %.1f KB); loss %.9f, L_u %s, L_v %s" % (
        path, len(store), os.path.getsize(path) / 1024, float(out["loss"]), out["L_u"].detach().numpy(),
        out["L_v"].detach().numpy()))
    if zero:
        print("  parameters with an all-zero gradient:", ", ".join(zero))
    write_variant(out_dir, "pmf_tiny_upred", pred="u", cfg=True)
    write_variant(out_dir, "pmf_tiny_nocfg", pred="x", cfg=False)
    return store


VARIANT_LOSS_KEYS = ("loss", "L_u", "L_v", "v_g", "du_dt", "V", "u")


def write_variant(out_dir, stem, pred, cfg):
    """The loss + gradient part of pmf_tiny_step for another (pred, cfg): the same parameters, batch
    and randomness (omega = 1 on every row with cfg off, as the sampler gives), no fwd/ block and only
    the loss/ tensors the C test compares."""
    c, P, x, y, n = tiny_case(torch.float64)
    if not cfg:
        n["omega"] = torch.ones_like(n["omega"])
    for k in P:
        P[k].requires_grad_(True)
    out = pmf_loss(P, c, x, y, n, pred=pred, cfg=cfg)
    grads = torch.autograd.grad(out["loss"], list(P.values()), allow_unused=True)
    store = OrderedDict()
    for k, v in P.items():
        store["model/" + k] = v.detach().numpy()
    for k in ("e", "t", "r", "t_min", "t_max", "omega", "fm", "drop"):
        store["noise/" + k] = n[k].double().numpy()
    store["loss/x"] = x.numpy()
    store["loss/labels"] = y.double().numpy()
    for k in VARIANT_LOSS_KEYS:
        store["loss/" + k] = out[k].detach().double().numpy().reshape(out[k].shape)
    zero = []
    for (k, p), gr in zip(P.items(), grads):
        gr = torch.zeros_like(p) if gr is None else gr
        if float(gr.abs().max()) == 0:
            zero.append(k)
        store["grad/" + k] = gr.numpy()
    tangent = "z'=v-head(z, h=0, omega=1, t_min=0, t_max=1, true label)" if not cfg else "z'=v_c2, t'=1, r'=0"
    meta = dict(preset="tiny", layout="NCHW", norm_eps=0.01, null_label=c["classes"], pred=pred, cfg=int(cfg),
                float="float64 reference of float32 inputs", jvp_tangent=tangent + ", h'=1",
                writer="tools/reference/pmf_ref.py --goldens")
    path = os.path.join(out_dir, stem + ".safetensors")
    save_safetensors(path, store, meta)
    print("wrote %s (pred %s, cfg %s; %d tensors, %.1f KB); loss %.9f, L_u %s, L_v %s" % (
        path, pred, "on" if cfg else "off", len(store), os.path.getsize(path) / 1024, float(out["loss"]),
        out["L_u"].detach().numpy(), out["L_v"].detach().numpy()))
    if zero:
        print("  parameters with an all-zero gradient:", ", ".join(zero))
    return store


# ---------------------------------------------------------------------------------------------
# Self-checks


def rel(a, b):
    return float((a - b).abs().max() / max(float(b.abs().max()), 1e-300))


def selfcheck():
    torch.set_num_threads(1)
    ok = True

    def report(name, passed, detail):
        nonlocal ok
        ok &= passed
        print("%-4s %-58s %s" % ("ok" if passed else "FAIL", name, detail))

    # 0. parameter counts against spec 15.1 / table 6.4 (millions, inference / training)
    want = {"B/16": (118.234, 175.474), "L/16": (410.321, 511.790), "H/16": (955.509, 1113.905),
            "B/32": (120.301, 179.313), "L/32": (412.977, 516.808), "H/32": (959.050, 1120.397)}
    worst = 0.0
    for name, (inf, tr) in want.items():
        c = preset(name)
        ni = sum(int(np.prod(s)) for s in param_shapes(c, with_v_head=False).values()) / 1e6
        nt = sum(int(np.prod(s)) for s in param_shapes(c).values()) / 1e6
        worst = max(worst, abs(ni - inf), abs(nt - tr))
    tiny = sum(int(np.prod(s)) for s in param_shapes(preset("tiny")).values())
    s4 = sum(int(np.prod(s)) for s in param_shapes(preset("S/4")).values())
    report("param counts = spec table 6.4 (6 paper models)", worst < 0.0006,
           "max |diff| %.4fM; tiny %d, S/4 %d (training)" % (worst, tiny, s4))

    # 1. at init X = 0, so u = z / clip(t)
    c = preset("tiny")
    P = init_params(c, seed=0, dtype=torch.float64)
    gen = torch.Generator().manual_seed(5)
    B = 6
    n = draw_noise(c, B, gen, dtype=torch.float64)
    x = torch.rand(B, 1, 8, 8, generator=gen, dtype=torch.float64) * 2 - 1
    y = torch.randint(0, 3, (B,), generator=gen)
    out = pmf_loss(P, c, x, y, n)
    T = n["t"].clamp(T_EPS, 1)
    err = float((out["u"] - out["z"] / bc(T)).abs().max())
    report("init: X_u = X_v = 0 and u = z/clip(t)", float(out["x_u"].abs().max()) == 0 and
           float(out["x_v"].abs().max()) == 0 and err < 1e-14, "max|X| %.1e, max|u - z/T| %.1e" % (
               max(float(out["x_u"].abs().max()), float(out["x_v"].abs().max())), err))
    # and at init du/dt = (z' - 0)/T - u T'/T exactly
    ddt = (out["v_c2"] - out["u"]) / bc(T)
    report("init: du/dt = (v_c2 - u)/T", rel(out["du_dt"], ddt) < 1e-12, "rel %.1e" % rel(out["du_dt"], ddt))

    # 2. rows with r = t: V = u, L_u is the plain FM v-loss (x-pred), independent of du/dt
    c, P, x, y, n = tiny_case(torch.float64)
    out = pmf_loss(P, c, x, y, n)
    fm = n["fm"]
    xu0, _ = net(P, c, out["z"], torch.zeros(4, dtype=torch.float64), n["omega"], n["t_min"], n["t_max"],
                 out["labels_used"], want_v=False)
    u0 = velocity(out["z"], xu0, n["t"])
    L_fm = (u0 - out["v_g"]).pow(2).sum((1, 2, 3))
    e1 = rel(out["L_u"][fm], L_fm[fm])
    report("r = t rows: L_u = sum (u(h=0) - v_g)^2", e1 < 1e-12, "rel %.1e (rows %s)" % (e1, fm.nonzero().flatten().tolist()))
    # dropped row 0 (r = t, v_g = v_t): L_u = ||X_u - x||^2 / T^2
    T0 = n["t"][0].clamp(T_EPS, 1)
    L_x = (xu0[0] - x[0]).pow(2).sum() / T0 ** 2
    e2 = rel(out["L_u"][0], L_x)
    report("r = t, dropped row: L_u = ||X_u - x||^2 / T^2", e2 < 1e-12, "rel %.1e" % e2)
    e3 = rel(out["V"][fm], out["u"][fm])
    report("r = t rows: V = u", e3 == 0.0, "rel %.1e" % e3)

    # 3. JVP vs central finite difference of u along (v_c2, t' = 1, r' = 0), and vs double backward
    cond = (n["omega"], n["t_min"], n["t_max"], out["labels_used"])
    Pd = OrderedDict((k, v.detach()) for k, v in P.items())

    def u_of(eps):
        z_ = out["z"] + eps * out["v_c2"]
        t_ = n["t"] + eps
        xu_, _ = net(Pd, c, z_, t_ - n["r"], *cond, want_v=False)
        return velocity(z_, xu_, t_)
    h = 1e-5
    fd = (u_of(h) - u_of(-h)) / (2 * h)
    e4 = rel(out["du_dt"], fd)
    report("du/dt (forward_ad) vs central FD, float64", e4 < 1e-7, "rel %.1e (max|du/dt| %.3g)" % (
        e4, float(out["du_dt"].abs().max())))
    out2 = pmf_loss(P, c, x, y, n, jvp="double_backward")
    e5 = max(rel(out["du_dt"], out2["du_dt"]), rel(out["x_u_dot"], out2["x_u_dot"]), abs(float(out["loss"] - out2["loss"])))
    report("forward_ad vs autograd.functional.jvp (du/dt, X', loss)", e5 < 1e-12, "max %.1e" % e5)

    # 4. loss gradient through the primal only: directional FD of the loss with du/dt, v_c2, v_g frozen
    Pg = OrderedDict((k, v.detach().clone().requires_grad_(True)) for k, v in P.items())
    o = pmf_loss(Pg, c, x, y, n)
    grads = torch.autograd.grad(o["loss"], list(Pg.values()))
    gdir = torch.Generator().manual_seed(9)
    dirs = [torch.randn(p.shape, generator=gdir, dtype=torch.float64) for p in Pg.values()]
    an = sum(float((g_ * d_).sum()) for g_, d_ in zip(grads, dirs))

    def frozen_loss(eps):
        Q = OrderedDict((k, v.detach() + eps * d_) for (k, v), d_ in zip(Pg.items(), dirs))
        xu_, xv_ = net(Q, c, o["z"], n["t"] - n["r"], *cond)
        u_, v_ = velocity(o["z"], xu_, n["t"]), velocity(o["z"], xv_, n["t"])
        V_ = u_ + bc(n["t"] - n["r"]) * o["du_dt"]
        Lu = (V_ - o["v_g"]).pow(2).sum((1, 2, 3))
        Lv = (v_ - o["v_g"]).pow(2).sum((1, 2, 3))
        return float((Lu / (o["L_u"] + 0.01) + Lv / (o["L_v"] + 0.01)).mean())
    fdg = (frozen_loss(1e-6) - frozen_loss(-1e-6)) / 2e-6
    e6 = abs(an - fdg) / abs(fdg)
    report("grad . d vs FD of loss (du/dt, targets, weights frozen)", e6 < 1e-6, "rel %.1e (%.6g vs %.6g)" % (e6, an, fdg))

    # 4b. u-prediction: u is the head output, du/dt its derivative along (v_c2, h' = 1) by central FD
    #     and by double backward; the gradient by directional FD as in 4.
    ou = pmf_loss(P, c, x, y, n, pred="u")
    e7 = max(rel(ou["u"], ou["x_u"]), rel(ou["du_dt"], ou["x_u_dot"]), rel(ou["V"][fm], ou["u"][fm]))

    def uu_of(eps):
        xu_, _ = net(Pd, c, ou["z"] + eps * ou["v_c2"], n["t"] + eps - n["r"], *cond, want_v=False)
        return xu_
    fdu = (uu_of(h) - uu_of(-h)) / (2 * h)
    e8 = rel(ou["du_dt"], fdu)
    ou2 = pmf_loss(P, c, x, y, n, pred="u", jvp="double_backward")
    e9 = max(rel(ou["du_dt"], ou2["du_dt"]), abs(float(ou["loss"] - ou2["loss"])))
    _, xvu = net(Pd, c, ou["z"], torch.zeros(4, dtype=torch.float64), n["omega"], torch.zeros(4, dtype=torch.float64),
                 torch.ones(4, dtype=torch.float64), y, want_u=False)
    e10 = rel(ou["v_c"], xvu)
    report("pred u: u = head out, du/dt = its tangent, V = u on r = t", e7 == 0.0, "rel %.1e" % e7)
    report("pred u: du/dt vs central FD / double backward; v_c = v-head", e8 < 1e-7 and e9 < 1e-12 and e10 < 1e-14,
           "rel %.1e / %.1e; %.1e (max|du/dt| %.3g)" % (e8, e9, e10, float(ou["du_dt"].abs().max())))
    Pg = OrderedDict((k, v.detach().clone().requires_grad_(True)) for k, v in P.items())
    o = pmf_loss(Pg, c, x, y, n, pred="u")
    grads = torch.autograd.grad(o["loss"], list(Pg.values()))
    an = sum(float((g_ * d_).sum()) for g_, d_ in zip(grads, dirs))

    def frozen_loss_u(eps):
        Q = OrderedDict((k, v.detach() + eps * d_) for (k, v), d_ in zip(Pg.items(), dirs))
        u_, v_ = net(Q, c, o["z"], n["t"] - n["r"], *cond)
        V_ = u_ + bc(n["t"] - n["r"]) * o["du_dt"]
        Lu = (V_ - o["v_g"]).pow(2).sum((1, 2, 3))
        Lv = (v_ - o["v_g"]).pow(2).sum((1, 2, 3))
        return float((Lu / (o["L_u"] + 0.01) + Lv / (o["L_v"] + 0.01)).mean())
    fdg = (frozen_loss_u(1e-6) - frozen_loss_u(-1e-6)) / 2e-6
    e11 = abs(an - fdg) / abs(fdg)
    report("pred u: grad . d vs FD of loss (frozen as in 4)", e11 < 1e-6, "rel %.1e (%.6g vs %.6g)" % (e11, an, fdg))

    # 4c. cfg off: v_g = v_t on every row; the tangent is the v-head at omega 1 with the true label.
    #     Cross-check: cfg on with omega = 1 on every row gives w = 1, 1 - 1/omega = 0, so v_g = v_t
    #     and the same v_c2: the whole loss must coincide with cfg off (both preds).
    n1 = dict(n, omega=torch.ones_like(n["omega"]))
    worst = 0.0
    for pr in ("x", "u"):
        off = pmf_loss(P, c, x, y, n1, pred=pr, cfg=False)
        on1 = pmf_loss(P, c, x, y, n1, pred=pr, cfg=True)
        worst = max(worst, rel(off["v_g"], off["v_t"]), rel(off["v_c2"], on1["v_c2"]), rel(off["du_dt"], on1["du_dt"]),
                    rel(off["L_u"], on1["L_u"]), rel(off["L_v"], on1["L_v"]), rel(off["v_g"], on1["v_g"]))
    off = pmf_loss(P, c, x, y, n1, cfg=False)
    _, xv1 = net(Pd, c, off["z"], torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64),
                 torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64), y, want_u=False)
    e12 = rel(off["v_c2"], velocity(off["z"], xv1, n["t"]))
    report("cfg off: v_g = v_t; = cfg on with omega 1 (x and u)", worst < 1e-15, "max rel %.1e" % worst)
    report("cfg off: v_c2 = v-head(omega 1, [0, 1], true label)", e12 == 0.0, "rel %.1e" % e12)

    # 5. 20 Adam steps on a fixed toy batch decrease the loss (spec init, float32)
    c = preset("tiny")
    P = OrderedDict((k, v.clone().requires_grad_(True)) for k, v in init_params(c, seed=0).items())
    gen = torch.Generator().manual_seed(11)
    B = 8
    n = draw_noise(c, B, gen)
    xb = (torch.rand(B, 1, 8, 8, generator=gen) * 2 - 1)
    yb = torch.randint(0, 3, (B,), generator=gen)
    opt = torch.optim.Adam(list(P.values()), lr=1e-2, betas=(0.9, 0.95))
    hist = []
    for _ in range(21):
        o = pmf_loss(P, c, xb, yb, n)
        hist.append((float(o["loss"]), float((o["L_u"] + o["L_v"]).mean())))
        if len(hist) == 21:
            break
        opt.zero_grad()
        o["loss"].backward()
        opt.step()
    dec = hist[-1][1] < 0.5 * hist[0][1] and hist[-1][0] < hist[0][0]
    report("20 Adam steps (lr 1e-2, tiny, B 8) decrease the loss", dec,
           "loss %.5f -> %.5f; mean(L_u + L_v) %.3f -> %.3f" % (hist[0][0], hist[-1][0], hist[0][1], hist[-1][1]))
    print("selfcheck:", "all passed" if ok else "FAILURES")
    return ok


# ---------------------------------------------------------------------------------------------
# Bench


def bench_child(preset_name, B, reps, nt):
    """One thread count, in this process (the parent sets OMP/OpenBLAS threads before torch loads)."""
    torch.set_num_threads(nt)
    c = preset(preset_name)
    P = OrderedDict((k, v.clone().requires_grad_(True)) for k, v in perturb_params(init_params(c, seed=0)).items())
    opt = torch.optim.Adam(list(P.values()), lr=1e-4, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(B, c["C"], c["img"], c["img"], generator=gen) * 2 - 1
    y = torch.randint(0, c["classes"], (B,), generator=gen)
    times = []
    for i in range(reps + 1):
        n = draw_noise(c, B, gen)
        t0 = time.perf_counter()
        o = pmf_loss(P, c, x, y, n)
        opt.zero_grad()
        o["loss"].backward()
        opt.step()
        dt = time.perf_counter() - t0
        if i:   # the first step warms up
            times.append(dt)
    med = statistics.median(times)
    print("pmf_ref bench: preset %s batch %d threads %d: %.2f img/s (median of %d steps, %.0f ms/step, min %.0f, "
          "max %.0f; guidance 3B fwd + JVP fwd + backward + Adam, float32, torch %s)" % (
              preset_name, B, nt, B / med, reps, med * 1e3, min(times) * 1e3, max(times) * 1e3, torch.__version__),
          flush=True)


def bench(preset_name="S/4", B=64, reps=5, threads=(1, 2)):
    """Each thread count in a fresh process: Debian's torch uses OpenMP for its own kernels and the
    pthread OpenBLAS for GEMM, whose thread count is fixed at load time by OPENBLAS_NUM_THREADS."""
    import subprocess
    for nt in threads:
        env = dict(os.environ, OMP_NUM_THREADS=str(nt), OPENBLAS_NUM_THREADS=str(nt))
        subprocess.run([sys.executable, os.path.abspath(__file__), "--bench-child", str(nt), "--bench-preset",
                        preset_name, "--bench-batch", str(B), "--bench-reps", str(reps)], env=env, check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--selfcheck", action="store_true")
    ap.add_argument("--goldens", metavar="OUT_DIR")
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--bench-preset", default="S/4")
    ap.add_argument("--bench-batch", type=int, default=64)
    ap.add_argument("--bench-reps", type=int, default=5)
    ap.add_argument("--bench-child", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.bench_child:
        bench_child(a.bench_preset, a.bench_batch, a.bench_reps, a.bench_child)
        return 0
    if not (a.selfcheck or a.goldens or a.bench):
        ap.error("nothing to do: give --selfcheck, --goldens OUT_DIR or --bench")
    rc = 0
    if a.selfcheck:
        rc |= 0 if selfcheck() else 1
    if a.goldens:
        torch.set_num_threads(1)
        write_goldens(a.goldens)
    if a.bench:
        bench(a.bench_preset, a.bench_batch, a.bench_reps)
    return rc


if __name__ == "__main__":
    sys.exit(main())
