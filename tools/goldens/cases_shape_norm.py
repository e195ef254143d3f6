"""Goldens for op_contiguous (of permuted and sliced views), op_concat, op_embedding and the
normalisations op_rmsnorm, op_layernorm, op_layernorm_channels, op_softmax
(tests/test_ops_shape_norm.c).

View arguments (permutation, slice bounds, concat axis) are fixed in the C build functions; the
names here say which is which. Embedding ids are stored as the float array "ids".
"""
import numpy as np
import torch
import torch.nn.functional as F

from goldens_lib import randn, write_case


def shape_cases():
    write_case("shape_permute_201", lambda x: x.permute(2, 0, 1), [randn(2, 3, 4, seed=600)], seed=601)
    write_case("shape_permute_0213", lambda x: x.permute(0, 2, 1, 3), [randn(2, 3, 4, 5, seed=602)], seed=603)
    write_case("shape_slice_ax1", lambda x: x[:, 1:4, :], [randn(2, 5, 4, seed=604)], seed=605)
    write_case("shape_slice_last", lambda x: x[..., 1:3], [randn(3, 5, seed=606)], seed=607)

    write_case("concat_2_last", lambda a, b: torch.cat([a, b], dim=2),
               [randn(2, 3, 2, seed=610), randn(2, 3, 5, seed=611)], seed=612)
    write_case("concat_3_ax1", lambda a, b, c: torch.cat([a, b, c], dim=1),
               [randn(2, 1, 4, seed=613), randn(2, 3, 4, seed=614), randn(2, 2, 4, seed=615)], seed=616)
    # Six parts, as pMF's token sequence (class | omega | t_min | t_max | time | patches): more inputs
    # than a tape node holds (TAPE_MAX_INPUTS).
    parts = [randn(2, t, 3, seed=620 + i) for i, t in enumerate((2, 1, 1, 1, 2, 3))]
    write_case("concat_6_ax1", lambda *xs: torch.cat(xs, dim=1), parts, seed=627)

    ids = np.array([3, 0, 3, 1, 4, 3], dtype=np.int64)   # 3 repeats: its gradient row accumulates
    write_case("embedding", lambda table: table[torch.as_tensor(ids)], [randn(5, 4, seed=630)], seed=631,
               extra={"ids": ids.astype(np.float32)})


def rms(x, w, eps):
    y = x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps)
    return y * w if w is not None else y


def norm_cases():
    w = (1.0 + 0.3 * randn(8, seed=641)).astype(np.float32)
    write_case("rmsnorm_w", lambda x, w: rms(x, w, 1e-6), [randn(2, 3, 8, seed=640), w], seed=642)
    write_case("rmsnorm_now", lambda x: rms(x, None, 1e-6), [randn(3, 8, seed=643)], seed=644)
    b = (0.5 * randn(8, seed=646)).astype(np.float32)
    write_case("layernorm_wb", lambda x, w, b: F.layer_norm(x, (8,), w, b, 1e-5),
               [randn(2, 3, 8, seed=645), w, b], seed=647)
    write_case("layernorm_now", lambda x: F.layer_norm(x, (8,), None, None, 1e-5), [randn(3, 8, seed=648)],
               seed=649)
    # LayerNorm over the channels of (N, C, H, W), as ConvNeXt's channels-first LayerNorm: the
    # reference permutes to channels-last and back. The third case has a constant channel (a plane
    # of equal values), which an op normalising over the wrong axes would get wrong.
    def ln_channels(x, w, b, eps):
        return F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), w, b, eps).permute(0, 3, 1, 2)

    wc = (1.0 + 0.3 * randn(5, seed=661)).astype(np.float32)
    bc = (0.5 * randn(5, seed=662)).astype(np.float32)
    write_case("layernorm_channels_wb", lambda x, w, b: ln_channels(x, w, b, 1e-6),
               [randn(2, 5, 3, 4, seed=660), wc, bc], seed=663)
    write_case("layernorm_channels_now", lambda x: ln_channels(x, None, None, 1e-6),
               [randn(2, 5, 3, 4, seed=664)], seed=665)
    xc = randn(2, 5, 3, 4, seed=666)
    xc[:, 2] = 0.75
    write_case("layernorm_channels_const", lambda x, w, b: ln_channels(x, w, b, 1e-6), [xc, wc, bc], seed=667)
    write_case("softmax_last", lambda x: torch.softmax(x, dim=-1), [randn(2, 3, 5, seed=650, scale=1.5)],
               seed=651)


def generate():
    shape_cases()
    norm_cases()
