"""Goldens for convolution, pooling and resize (tests/test_ops_conv.c).

Every case is one torch.nn.functional call on tiny NCHW inputs (N=2, C=3 or 4, up to 16x16),
evaluated in float64 from float32-rounded inputs. Max-pool inputs are a random permutation of
evenly spaced values, so every window has a unique maximum that a finite-difference step of 1e-3
cannot change.
"""
import numpy as np
import torch.nn.functional as F

from goldens_lib import randn, write_case


def distinct(*shape, seed=0, spacing=0.02):
    """Values spaced `spacing` apart, randomly placed, centred on zero."""
    n = int(np.prod(shape))
    perm = np.random.default_rng(seed).permutation(n).astype(np.float64)
    return ((perm - (n - 1) / 2) * spacing).reshape(shape).astype(np.float32)


def conv_cases():
    def conv(stride, pad, groups=1):
        def fn(x, w, b=None):
            return F.conv2d(x, w, b, stride=stride, padding=pad, groups=groups)
        return fn

    # 3x3, stride 1, pad 1, with bias
    write_case("conv_3x3_s1_p1_bias", conv(1, 1),
               [randn(2, 3, 6, 6, seed=100), randn(4, 3, 3, 3, seed=101, scale=0.5), randn(4, seed=102)], seed=103)
    # 3x3, stride 2, pad 0, no bias, non-square input (7x9 -> 3x4)
    write_case("conv_3x3_s2_p0_nobias", conv(2, 0),
               [randn(2, 3, 7, 9, seed=110), randn(4, 3, 3, 3, seed=111, scale=0.5)], seed=113)
    # 1x1 (a per-pixel linear map)
    write_case("conv_1x1", conv(1, 0),
               [randn(2, 3, 5, 5, seed=120), randn(5, 3, 1, 1, seed=121), randn(5, seed=122)], seed=123)
    # groups = 2: Cin 4 -> Cout 6, each group 2 -> 3
    write_case("conv_groups2", conv(1, 1, groups=2),
               [randn(2, 4, 6, 6, seed=130), randn(6, 2, 3, 3, seed=131, scale=0.5), randn(6, seed=132)], seed=133)
    # depthwise: groups = Cin = Cout = 3, 3x3 pad 1
    write_case("conv_depthwise", conv(1, 1, groups=3),
               [randn(2, 3, 6, 6, seed=140), randn(3, 1, 3, 3, seed=141), randn(3, seed=142)], seed=143)
    # 4x4 stride 4 (patch embedding): 8x8 -> 2x2
    write_case("conv_patch4", conv(4, 0),
               [randn(2, 3, 8, 8, seed=150), randn(5, 3, 4, 4, seed=151, scale=0.3), randn(5, seed=152)], seed=153)
    # rectangular kernel 3x2 with different strides and pads per axis: stride (1, 2), pad (1, 0)
    write_case("conv_rect_k3x2_s1x2_p1x0", conv((1, 2), (1, 0)),
               [randn(2, 3, 5, 7, seed=160), randn(4, 3, 3, 2, seed=161, scale=0.5), randn(4, seed=162)], seed=163)

    # batch 4, 9x7 -> 9x7: the C test runs it twice, once with the default tiling (one tile per
    # image) and once with 2-row tiles (PMF_CONV_TILE_ROWS=2: 5 tiles, the last one short)
    write_case("conv_3x3_batch4", conv(1, 1),
               [randn(4, 3, 9, 7, seed=170), randn(5, 3, 3, 3, seed=171, scale=0.5), randn(5, seed=172)], seed=173)
    # depthwise 7x7 pad 3 (ConvNeXt's block conv), 16 channels, 6x6, one image: every tap crosses a border
    write_case("conv_dw7_p3_c16", conv(1, 3, groups=16),
               [randn(1, 16, 6, 6, seed=180), randn(16, 1, 7, 7, seed=181, scale=0.3), randn(16, seed=182)], seed=183)
    # depthwise 3x3, stride 2, pad 1 (the direct kernel's strided loops): 7x7 -> 4x4
    write_case("conv_dw3_s2_p1", conv(2, 1, groups=4),
               [randn(2, 4, 7, 7, seed=190), randn(4, 1, 3, 3, seed=191, scale=0.5), randn(4, seed=192)], seed=193)
    # ConvNeXt stem: 4x4 stride 4, 8x12 -> 2x3, 3 -> 8 channels
    write_case("conv_stem4x4_s4", conv(4, 0),
               [randn(2, 3, 8, 12, seed=195), randn(8, 3, 4, 4, seed=196, scale=0.3), randn(8, seed=197)], seed=198)
    # ConvNeXt downsample: 2x2 stride 2, 6x8 -> 3x4, 4 -> 6 channels
    write_case("conv_2x2_s2", conv(2, 0),
               [randn(2, 4, 6, 8, seed=185), randn(6, 4, 2, 2, seed=186, scale=0.5), randn(6, seed=187)], seed=188)


def pool_cases():
    write_case("maxpool_2x2_s2", lambda x: F.max_pool2d(x, 2, 2),
               [distinct(2, 3, 6, 6, seed=200)], seed=201)
    write_case("maxpool_3x3_s2_p1_ceil", lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True),
               [distinct(2, 3, 7, 7, seed=210)], seed=211)
    # ceil_mode's last-window rule: 5x5, k2 s2 p1 gives ceil((5+2-2)/2)+1 = 4 windows, but the
    # 4th would start in the right padding, so torch keeps 3.
    write_case("maxpool_2x2_s2_p1_ceil_drop", lambda x: F.max_pool2d(x, 2, 2, 1, ceil_mode=True),
               [distinct(2, 3, 5, 5, seed=220)], seed=221)

    write_case("avgpool_3x3_s1_p1_excl", lambda x: F.avg_pool2d(x, 3, 1, 1, count_include_pad=False),
               [randn(2, 3, 6, 6, seed=230)], seed=231)
    write_case("avgpool_3x3_s1_p1_incl", lambda x: F.avg_pool2d(x, 3, 1, 1, count_include_pad=True),
               [randn(2, 3, 6, 6, seed=240)], seed=241)
    write_case("avgpool_2x2_s2", lambda x: F.avg_pool2d(x, 2, 2),
               [randn(2, 3, 6, 6, seed=250)], seed=251)

    write_case("adaptive_avgpool_7to3", lambda x: F.adaptive_avg_pool2d(x, (3, 3)),
               [randn(2, 3, 7, 7, seed=260)], seed=261)
    write_case("adaptive_avgpool_8to1", lambda x: F.adaptive_avg_pool2d(x, (1, 1)),
               [randn(2, 3, 8, 8, seed=270)], seed=271)
    write_case("adaptive_avgpool_5to7", lambda x: F.adaptive_avg_pool2d(x, (7, 7)),
               [randn(2, 3, 5, 5, seed=280)], seed=281)
    write_case("adaptive_avgpool_6x9to4x5", lambda x: F.adaptive_avg_pool2d(x, (4, 5)),
               [randn(2, 3, 6, 9, seed=290)], seed=291)


def resize_cases():
    def rs(h, w, mode, aa=False):
        return lambda x: F.interpolate(x, size=(h, w), mode=mode, align_corners=False, antialias=aa)

    write_case("resize_bilinear_down", rs(5, 5, "bilinear"), [randn(2, 3, 8, 8, seed=300)], seed=301)
    write_case("resize_bilinear_up", rs(8, 7, "bilinear"), [randn(2, 3, 5, 5, seed=310)], seed=311)
    write_case("resize_bicubic_down", rs(5, 5, "bicubic"), [randn(2, 3, 8, 8, seed=320)], seed=321)
    write_case("resize_bicubic_up", rs(8, 7, "bicubic"), [randn(2, 3, 5, 5, seed=330)], seed=331)
    write_case("resize_bilinear_aa_down", rs(5, 5, "bilinear", True), [randn(2, 3, 16, 16, seed=340)], seed=341)
    write_case("resize_bicubic_aa_down", rs(6, 6, "bicubic", True), [randn(2, 3, 16, 16, seed=350)], seed=351)
    # antialias while upsampling: torch keeps the aa kernels. Bilinear then equals the plain
    # resize (checked: max difference 4e-16); bicubic does not (a = -0.5 and border weights
    # renormalised instead of clamped indices: differences up to 0.2).
    write_case("resize_bilinear_aa_up", rs(8, 7, "bilinear", True), [randn(2, 3, 5, 5, seed=360)], seed=361)
    write_case("resize_bicubic_aa_up", rs(8, 7, "bicubic", True), [randn(2, 3, 5, 5, seed=370)], seed=371)
    # antialias, down in H (12 -> 5) and up in W (4 -> 9) at once
    write_case("resize_bicubic_aa_mixed", rs(5, 9, "bicubic", True), [randn(2, 3, 12, 4, seed=380)], seed=381)


def generate():
    conv_cases()
    pool_cases()
    resize_cases()
