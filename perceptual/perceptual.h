// perceptual/perceptual.h: the one public header of pmf's frozen feature networks.
//
// - VGG16 features (torchvision layout, up to relu5_3) and LPIPS v0.1 on top of them (spec 5.5,
//   porting notes A1): the perceptual loss of pMF at 224 x 224.
// - featnet: a small conv classifier trained on Fashion-MNIST (32 x 32 grayscale), used as an
//   LPIPS-style backbone for the built-in default data and as the feature network of a Frechet
//   distance (its 128-d penultimate feature vector, after max-pooling and fc1).
// - lpips_loss: pMF's perceptual term: the same random resized crop on both images, the t < t_thr
//   mask and the weight lambda, with gradients flowing to the prediction only.
// - ConvNeXt-V2-Base pooled features, pMF's ConvNeXt distance and convnext_loss (spec 5.5).
//
// Every network is built from core/ ops, so gradients to the input come from the tape; weights are
// frozen (never requires_grad), so no weight gradient is ever computed. This module includes core/
// only: it knows nothing of pmf/ or dataset/ (cli/ ties them together).
//
// Weight files are safetensors written by tools/convert_weights.py; the tensor names are listed
// there and next to each loader below.
#ifndef PMF_PERCEPTUAL_H
#define PMF_PERCEPTUAL_H

#include <stdint.h>

#include "core/core.h"

// Folder of the committed weights (perceptual/weights in the source tree).
const char *perceptual_weights_dir(void);

// ---------------------------------------------------------------------------------------------
// Channel-wise unit normalisation of LPIPS: y = x / (sqrt(sum_c x^2) + eps) at every (n, h, w)
// of x (N, C, H, W); lpips uses eps = 1e-10 (added after the square root).
// Zero-activation policy: where sum_c x^2 == 0 exactly, the norm's derivative (x / |x|, undefined
// there; PyTorch autograd gives NaN) is taken as 0, so dx = dy / eps and x' -> y' = x' / eps. That
// is the one-sided limit of the exact derivative along x = 0 + s x', finite, and it keeps NaN out
// of the backward pass; after a ReLU the gradient is then masked to 0 anyway (the tap is zero only
// where every pre-activation is <= 0).
Tensor *perceptual_unit_normalize(Tape *tp, Tensor *x, float eps);
#define LPIPS_EPS 1e-10f

// ---------------------------------------------------------------------------------------------
// VGG16 features, torchvision's `vgg16().features` indices 0..29 (13 convs 3x3 pad 1 with bias,
// each followed by ReLU; max-pool 2x2 stride 2 before blocks 2..5; pool5 is never run).
// Safetensors names: "features.{0,2,5,7,10,12,14,17,19,21,24,26,28}.{weight,bias}", weight
// (Cout, Cin, 3, 3), bias (Cout) (torchvision's own state-dict keys).
#define VGG16_N_CONV 13
typedef struct Vgg16 {
    ParamStore ps;
    Tensor *w[VGG16_N_CONV], *b[VGG16_N_CONV];
} Vgg16;

void vgg16_init(Vgg16 *v);                       // declares the tensors (zeroed)
int vgg16_load(Vgg16 *v, const char *path);      // -1 and a message naming the converter on failure
void vgg16_free(Vgg16 *v);
// The torchvision feature index of conv i (0..12): 0, 2, 5, 7, ...
int vgg16_feature_index(int i);
// x (N, 3, H, W), already normalised (LPIPS scaling layer) -> taps[0..4] = relu1_2, relu2_2,
// relu3_3, relu4_3, relu5_3 (64, 128, 256, 512, 512 channels; H, H/2, ..., H/16).
void vgg16_taps(Tape *tp, const Vgg16 *v, Tensor *x, Tensor **taps);

// Deterministic pseudo-random weights shared with tools/goldens/cases_lpips.py (tests, benches):
//   u(id, i) = splitmix64((id << 40) + i) >> 40, as an integer k in [0, 2^24)
//   value    = (float)scale * (float)(k - 2^23) / 2^23         (both factors exact in float32)
// splitmix64(z): z += 0x9E3779B97F4A7C15; z = (z ^ z>>30) * 0xBF58476D1CE4E5B9;
//                z = (z ^ z>>27) * 0x94D049BB133111EB; return z ^ z>>31      (mod 2^64)
// i is the flat row-major element index. Conv j: weight id 2j, scale sqrt(6 / (Cin*9)) rounded to
// float32 (He-uniform); bias id 2j+1, scale 0.1.
void perceptual_hash_fill(float *x, int64_t n, uint64_t id, float scale);
void vgg16_fill_hash(Vgg16 *v);

// ---------------------------------------------------------------------------------------------
// AlexNet features, torchvision's `alexnet().features` indices 0..11 (pool 12 is never run), the
// trunk of lpips.LPIPS(net='alex'); the taps are lpips' pn.alexnet slices (features[0:2], [2:5],
// [5:8], [8:10], [10:12]):
//   conv0 11x11 stride 4 pad 2 (3 -> 64), ReLU                 tap relu1 (64,  H1 = (H - 7) / 4 + 1)
//   maxpool 3 stride 2, conv3 5x5 pad 2 (64 -> 192), ReLU      tap relu2 (192, H2 = (H1 - 3) / 2 + 1)
//   maxpool 3 stride 2, conv6 3x3 pad 1 (192 -> 384), ReLU     tap relu3 (384, H3 = (H2 - 3) / 2 + 1)
//   conv8 3x3 pad 1 (384 -> 256), ReLU                         tap relu4 (256, H3)
//   conv10 3x3 pad 1 (256 -> 256), ReLU                        tap relu5 (256, H3)
// (integer divisions; 64 px gives 15, 7, 3; 224 px gives 55, 27, 13). Inputs need H, W >= 31.
// Safetensors names: "features.{0,3,6,8,10}.{weight,bias}", weight (Cout, Cin, K, K), bias (Cout)
// (torchvision's own state-dict keys; tools/convert_weights.py alexnet writes them).
#define ALEXNET_N_CONV 5
#define ALEXNET_MIN_SIZE 31
typedef struct Alexnet {
    ParamStore ps;
    Tensor *w[ALEXNET_N_CONV], *b[ALEXNET_N_CONV];
} Alexnet;

void alexnet_init(Alexnet *a);                    // declares the tensors (zeroed, frozen)
int alexnet_load(Alexnet *a, const char *path);   // -1 and a message naming the converter on failure
void alexnet_free(Alexnet *a);
int alexnet_feature_index(int i);                 // torchvision index of conv i (0..4): 0, 3, 6, 8, 10
// x (N, 3, H, W), already normalised (LPIPS scaling layer) -> taps[0..4] = relu1..relu5.
void alexnet_taps(Tape *tp, const Alexnet *a, Tensor *x, Tensor **taps);
// Hash weights (perceptual_hash_fill's formula; tools/goldens/cases_alexnet.py builds the same):
// conv j weight id ALEXNET_HASH_ID0 + 2j, scale float32(sqrt(6 / (Cin K K))); bias id
// ALEXNET_HASH_ID0 + 2j + 1, scale 0.1.
#define ALEXNET_HASH_ID0 100
void alexnet_fill_hash(Alexnet *a);

// ---------------------------------------------------------------------------------------------
// featnet: 32 x 32 x 1 inputs in [-1, 1] (Fashion-MNIST centred on a -1 canvas, as pmf's data).
//   conv1 1->32 3x3 p1, ReLU              tap 0 (32, 32x32)
//   maxpool 2, conv2 32->64 3x3 p1, ReLU  tap 1 (64, 16x16)
//   maxpool 2, conv3 64->128 3x3 p1, ReLU tap 2 (128, 8x8)
//   maxpool 2, flatten (2048), fc1 -> 128, ReLU   feature (128): the Frechet-distance feature
//   fc2 128->10                           logits
// (A global-average-pool head reached only 89.3% in 4 epochs; the flattened head does better.)
// Safetensors names: "conv{1..3}.{weight,bias}", "fc{1,2}.{weight,bias}" (torch layouts).
#define FEATNET_SIZE 32
#define FEATNET_N_TAPS 3
#define FEATNET_FEATURE_DIM 128
#define FEATNET_CLASSES 10
typedef struct FeatNet {
    ParamStore ps;
    Tensor *cw[3], *cb[3], *fw[2], *fb[2];
} FeatNet;

// He-normal weights from `seed`, zero biases. Training enables gradients (featnet_train); the
// loaded network stays frozen.
void featnet_init(FeatNet *f, uint64_t seed);
int featnet_load(FeatNet *f, const char *path);   // NULL: the committed featnet_fmnist.safetensors
int featnet_save(const FeatNet *f, const char *path, const char *test_accuracy);
void featnet_free(FeatNet *f);
// x (N, 1, 32, 32) -> logits (N, 10); taps (3 tensors) and feature (N, 128) when not NULL.
Tensor *featnet_forward(Tape *tp, const FeatNet *f, Tensor *x, Tensor **taps, Tensor **feature);
// The feature vector (N, 128) (fc1 after ReLU) of images (N, 1, 32, 32) in [-1, 1]: a Frechet distance's input.
Tensor *featnet_features(Tape *tp, const FeatNet *f, Tensor *x);
// The ConvNeXt term's stand-in on the built-in data: sum of squared differences of the two images'
// feature vectors -> (N) (as convnext_distance on ConvNeXt's pooled feature).
Tensor *featnet_feature_distance(Tape *tp, const FeatNet *f, Tensor *a, Tensor *b);
// The same from the features fa, fb (N, 128): sum of squared differences -> (N).
Tensor *featnet_feature_sqdist(Tape *tp, Tensor *fa, Tensor *fb);

// Training on raw idx pixels (uint8, n x h x w, h, w <= 32, centred on a 32 x 32 canvas).
typedef struct FeatNetTrainConfig {
    int epochs, batch;
    float lr, weight_decay;
    uint64_t seed;
    int log_every;        // steps between progress lines (0: none)
} FeatNetTrainConfig;
typedef struct FeatNetData {
    const uint8_t *pixels, *labels;
    int n, h, w;
} FeatNetData;
void featnet_train_defaults(FeatNetTrainConfig *c);
// Trains f in place with AdamW and a cosine schedule; returns the test accuracy in [0, 1].
double featnet_train(FeatNet *f, const FeatNetTrainConfig *c, const FeatNetData *train, const FeatNetData *test);
// Top-1 accuracy on data.
double featnet_accuracy(const FeatNet *f, const FeatNetData *data);
// Images (n) from raw pixels -> float (n, 1, 32, 32) in [-1, 1], centred, background -1.
void featnet_images(const FeatNetData *d, int start, int n, float *out);

// ---------------------------------------------------------------------------------------------
// LPIPS: the distance of spec 5.5 on a choice of backbone.
typedef enum { LPIPS_NET_VGG16, LPIPS_NET_FEATNET, LPIPS_NET_ALEX } LpipsNet;
#define LPIPS_MAX_TAPS 5
typedef struct Lpips {
    LpipsNet net;
    int n_taps;
    Vgg16 vgg;
    FeatNet featnet;
    Alexnet alex;
    ParamStore lin_ps;
    Tensor *lin[LPIPS_MAX_TAPS];   // (1, C, 1, 1) channel weights per tap
} Lpips;

// VGG16 trunk from `trunk_path` (tools/convert_weights.py vgg16) and the LPIPS v0.1 lin weights
// from `lin_path` (NULL: perceptual/weights/lpips/lpips_v0.1_vgg_lin.safetensors; names
// "lin{0..4}.weight", (1, C, 1, 1)). trunk_path NULL leaves the trunk zeroed for the caller to fill
// (tests, benches).
int lpips_vgg16_load(Lpips *lp, const char *trunk_path, const char *lin_path);
// AlexNet trunk from `trunk_path` (tools/convert_weights.py alexnet) and the LPIPS v0.1 lin weights
// from `lin_path` (NULL: perceptual/weights/lpips/lpips_v0.1_alex_lin.safetensors; "lin{0..4}.weight",
// (1, C, 1, 1), C = 64, 192, 384, 256, 256): lpips.LPIPS(net='alex'). trunk_path NULL leaves the
// trunk zeroed for the caller to fill (tests).
int lpips_alex_load(Lpips *lp, const char *trunk_path, const char *lin_path);
// featnet backbone (NULL: the committed weights), uniform channel weights 1 (lpips' lpips=False
// mode: the plain squared distance of unit vectors), taps 0..2.
int lpips_featnet_load(Lpips *lp, const char *path);
void lpips_free(Lpips *lp);
// Per-sample distance (N) between images a, b (N, C, H, W) in [-1, 1]. VGG and AlexNet: C = 1 is
// repeated to 3 channels, then the v0.1 scaling layer (AlexNet: H, W >= 31); featnet: C must be 1,
// H = W = 32.
Tensor *lpips_distance(Lpips *lp, Tape *tp, Tensor *a, Tensor *b);
// The featnet's two distances from one forward pass of each input (lp loaded with
// lpips_featnet_load): the LPIPS-style distance of its taps and the squared distance of its
// 128-d feature, (N) each, the same numbers as lpips_distance and featnet_feature_distance.
void lpips_featnet_both(Lpips *lp, Tape *tp, Tensor *a, Tensor *b, Tensor **d_lpips, Tensor **d_features);

// ---------------------------------------------------------------------------------------------
// The random resized crop of spec 5.5, the same on both images of a pair.
typedef struct CropBox {
    int top, left, h, w;
} CropBox;
// area ~ U(0.08, 1) H W, log-aspect ~ U(log 3/4, log 4/3), w = clip(round(sqrt(area aspect)), 1, W),
// h = clip(round(sqrt(area / aspect)), 1, H), top and left uniform integers. Draws 4 values.
CropBox perceptual_crop_sample(Rng *rng, int H, int W);
// Sample b's box of x (N, C, H, W), resampled to size x size with bicubic antialias
// (op_resize: a = -0.5, as torch's antialias path and jax's scale_and_translate "cubic").
Tensor *perceptual_crop_resize(Tape *tp, Tensor *x, const CropBox *boxes, int size);
// Boxes for B samples: each draws perceptual_crop_sample's 4 values (random_crop) or gets the whole
// H x W image (random_crop 0, nothing drawn).
void perceptual_crop_draw(Rng *rng, int B, int H, int W, int random_crop, CropBox *boxes);

typedef struct LpipsLossConfig {
    float t_thr;      // samples with t >= t_thr contribute 0 (spec 5.5: 0.8, 0.6 for long runs)
    float lambda;     // weight (spec 5.5: 0.4)
    int crop_size;    // side of the resampled crop: 224 for VGG16 and AlexNet, 32 for the featnet
    int random_crop;  // 1: random resized crop (spec 5.5); 0: the whole image resized to crop_size
} LpipsLossConfig;
void lpips_loss_defaults(LpipsLossConfig *c, LpipsNet net);

// lambda * [t < t_thr] * LPIPS(crop(pred_x), crop(x)) per sample -> (B). pred_x and x (B, C, H, W)
// in [-1, 1]; t (B) host floats. x is a constant and pred_x's tangent is dropped: gradients flow
// to pred_x only. Masked samples are not run through the network. rng draws the crops.
Tensor *lpips_loss(Lpips *lp, Tape *tp, Tensor *pred_x, Tensor *x, const float *t, const LpipsLossConfig *cfg,
                   Rng *rng);

// Any per-sample distance (N) between images a, b (N, C, h, w); net is the network it runs.
typedef Tensor *(*PerceptualDistanceFn)(void *net, Tape *tp, Tensor *a, Tensor *b);
// The loss around a distance: lambda * [t < t_thr] * dist(crop(pred_x), crop(x)) per sample -> (B),
// sample b cut to boxes[b] and resampled to cfg->crop_size (cfg->random_crop is not read: the caller
// drew the boxes). x is a constant, pred_x's tangent is dropped; masked samples are not run.
Tensor *perceptual_masked_loss(Tape *tp, Tensor *pred_x, Tensor *x, const float *t, const LpipsLossConfig *cfg,
                               const CropBox *boxes, PerceptualDistanceFn dist, void *net);
// Several distances on one crop: out[k] = [t < t_thr] * dist[k](crop(pred_x), crop(x)) per sample
// (B), every term on the same crops (boxes[b], resampled to crop_size), each image cropped once.
void perceptual_masked_terms(Tape *tp, Tensor *pred_x, Tensor *x, const float *t, float t_thr, int crop_size,
                             const CropBox *boxes, int n_terms, const PerceptualDistanceFn *dist, void *const *net,
                             Tensor **out);


// ---------------------------------------------------------------------------------------------
// ConvNeXt-V2 (HF transformers' ConvNextV2Model; pMF uses facebook/convnextv2-base-22k-224, spec
// 5.5): depths 3, 3, 27, 3, widths 128, 256, 512, 1024.
//   stem      conv 4x4 stride 4 (3 -> d0, bias), LayerNorm over channels
//   stage s   s >= 1: LayerNorm over channels, conv 2x2 stride 2 (d_{s-1} -> d_s, bias); then
//             depth_s blocks: dwconv 7x7 pad 3 groups C (bias) -> NHWC -> LayerNorm -> Linear C->4C
//             -> GELU (erf) -> GRN -> Linear 4C->C -> NCHW -> + input (no layer scale, no drop path)
//   GRN       Gx = ||x||_2 over (H, W) per (n, c), Nx = Gx / (mean_c Gx + 1e-6),
//             y = gamma (x Nx) + beta + x
//   feature   LayerNorm(d3) of the global average pool (N, d3); the classifier is not used.
// Every LayerNorm has eps 1e-6. Inputs are images in [-1, 1] passed WITHOUT ImageNet normalisation
// (as pMF codes it); C = 1 is repeated to 3 channels. H, W >= 32 (224 in pMF).
// Safetensors names (HF's ConvNextV2Model keys, the "convnextv2." prefix and the classifier dropped;
// tools/convert_weights.py convnextv2 writes them, with metadata "depths" and "dims" = "3,3,27,3"):
//   embeddings.patch_embeddings.{weight (d0, 3, 4, 4), bias (d0)}
//   embeddings.layernorm.{weight, bias} (d0)
//   encoder.stages.{s}.downsampling_layer.0.{weight, bias} (d_{s-1})          s = 1..3 (LayerNorm)
//   encoder.stages.{s}.downsampling_layer.1.{weight (d_s, d_{s-1}, 2, 2), bias (d_s)}   (conv)
//   encoder.stages.{s}.layers.{i}.dwconv.{weight (C, 1, 7, 7), bias (C)}
//   encoder.stages.{s}.layers.{i}.layernorm.{weight, bias} (C)
//   encoder.stages.{s}.layers.{i}.pwconv1.{weight (4C, C), bias (4C)}
//   encoder.stages.{s}.layers.{i}.grn.{weight, bias} (1, 1, 1, 4C)
//   encoder.stages.{s}.layers.{i}.pwconv2.{weight (C, 4C), bias (C)}
//   layernorm.{weight, bias} (d3)
#define CONVNEXT_N_STAGES 4
#define CONVNEXT_LN_EPS 1e-6f
#define CONVNEXT_BASE_DIM 1024
typedef struct ConvNextBlock {
    Tensor *dw_w, *dw_b, *ln_w, *ln_b, *pw1_w, *pw1_b, *grn_g, *grn_b, *pw2_w, *pw2_b;
} ConvNextBlock;
typedef struct ConvNext {
    ParamStore ps;
    int depths[CONVNEXT_N_STAGES], dims[CONVNEXT_N_STAGES];
    int n_blocks;
    Tensor *stem_w, *stem_b, *stem_ln_w, *stem_ln_b;
    Tensor *down_ln_w[CONVNEXT_N_STAGES], *down_ln_b[CONVNEXT_N_STAGES];   // [1..3]; [0] NULL
    Tensor *down_w[CONVNEXT_N_STAGES], *down_b[CONVNEXT_N_STAGES];
    ConvNextBlock *blocks;   // n_blocks, stage by stage
    Tensor *final_ln_w, *final_ln_b;
} ConvNext;

// Declares the tensors (zeroed, frozen). depths, dims: 4 values each; NULL gives Base's.
void convnext_init(ConvNext *net, const int *depths, const int *dims);
// Reads every declared tensor (each shape checked: a mismatch names the file, the tensor and both
// shapes; a file whose "depths"/"dims" metadata differ is named as such). -1 and a message naming
// the converter on failure.
int convnext_load(ConvNext *net, const char *path);
void convnext_free(ConvNext *net);
int convnext_feature_dim(const ConvNext *net);   // dims[3] (1024 for Base)
// Hash weights (perceptual_hash_fill's formula; tools/goldens/cases_convnext.py builds the same).
// Tensor i of net->ps (declaration order, the list above with blocks in order) gets id
// CONVNEXT_HASH_ID0 + i; u is the hash value at scale 1 (uniform in [-1, 1)):
//   LayerNorm weights (stem, downsampling .0, blocks, final)   1 + 0.1 u (float32 add)
//   LayerNorm biases                                             0.1 u
//   conv / pwconv1 weights (stem, downsampling .1, dwconv)       sqrt(3 / fan_in) u, fan_in =
//                                                                Cin/groups*KH*KW or in-features
//   pwconv2 weight                                               0.3 sqrt(3 / 4C) u
//   pwconv2 bias                                                 0.02 u
//   GRN gamma (grn.weight) / beta (grn.bias)                     0.5 u / 0.1 u
//   other biases (stem, downsampling .1, dwconv, pwconv1)        0.1 u
// Scales are computed in double and rounded to float32. With them the 36-block Base keeps unit-
// scale activations (each block adds about 0.1 of variance to the residual stream), so random
// images give well separated features.
#define CONVNEXT_HASH_ID0 5000
void convnext_fill_hash(ConvNext *net);
// x (N, 1 or 3, H, W) in [-1, 1] -> the feature (N, dims[3]).
Tensor *convnext_features(Tape *tp, const ConvNext *net, Tensor *x);
// pMF's ConvNeXt distance: sum over the feature of (f(a) - f(b))^2 -> (N).
Tensor *convnext_distance(Tape *tp, const ConvNext *net, Tensor *a, Tensor *b);
// t_thr 0.8, lambda 0.1, crop 224, random crop on (spec 5.5).
void convnext_loss_defaults(LpipsLossConfig *c);
// lambda * [t < t_thr] * convnext_distance(crop(pred_x), crop(x)) per sample -> (B), as lpips_loss:
// the same crop on both images (every sample draws its 4 values, masked or not), masked samples not
// run, x a constant, pred_x's tangent dropped (gradients flow to pred_x only).
Tensor *convnext_loss(const ConvNext *net, Tape *tp, Tensor *pred_x, Tensor *x, const float *t,
                      const LpipsLossConfig *cfg, Rng *rng);

#endif
