// dataset/dataset.h: the one public header of pmf's data module: pixels in, batches out.
// It knows nothing about models. Parts: idx files of (Fashion-)MNIST; image decoding (JPEG, PNG)
// and the ADM centre crop; HDF5 shards (write, read); pmf_prepare (sources -> shards); the
// training stream (shards -> shuffled float batches, resumable).
#ifndef PMF_DATASET_H
#define PMF_DATASET_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

// Where Debian's dataset-fashion-mnist package puts its four idx.gz files.
#define FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

typedef struct IdxImages {
    int n, h, w;
    uint8_t *pixels;   // n * h * w, row-major
} IdxImages;

typedef struct IdxLabels {
    int n;
    uint8_t *labels;
} IdxLabels;

// Read an idx3-ubyte image file or idx1-ubyte label file, gzip-compressed or not. On bad input
// returns -1 and leaves a message (core_last_error) naming the file and what was wrong.
int idx_load_images(const char *path, IdxImages *out);
int idx_load_labels(const char *path, IdxLabels *out);
void idx_free_images(IdxImages *im);
void idx_free_labels(IdxLabels *lb);

// Load Fashion-MNIST's train ("train") or test ("t10k") split from `dir` (NULL = the Debian path).
// Checks that images and labels agree in count and that labels are < 10.
int fashion_mnist_load(const char *dir, const char *split, IdxImages *images, IdxLabels *labels);

// ---------------------------------------------------------------------------------------------
// Images: 8-bit interleaved pixels, c = 1 (gray) or 3 (RGB), row-major (h, w, c).
typedef struct DsImage {
    int w, h, c;
    uint8_t *px;
    const char *converted;   // NULL, or what decoding changed ("grayscale JPEG", "CMYK JPEG", ...)
} DsImage;

// Images above this many pixels are refused from the header, before any pixel is decoded.
#define DS_MAX_PIXELS_DEFAULT (100 * 1000 * 1000)

// Decode JPEG or PNG bytes (told apart by their signature) to RGB (c = 3). Grayscale, CMYK, YCCK,
// palette and alpha inputs are converted the way PIL's convert("RGB") does. `name` labels error
// messages. Returns 0, or -1 with a message naming `name` (corrupt, truncated, too large, not an
// image); libjpeg and libpng errors are caught, never exit().
int ds_image_decode(const unsigned char *bytes, size_t n, const char *name, int64_t max_pixels, DsImage *out);
int ds_image_decode_jpeg(const unsigned char *bytes, size_t n, const char *name, int64_t max_pixels, DsImage *out);
int ds_image_decode_png(const unsigned char *bytes, size_t n, const char *name, int64_t max_pixels, DsImage *out);
int ds_image_load(const char *path, int64_t max_pixels, DsImage *out);   // reads the file, decodes

// The PNG decoder with a choice of channels: DS_CHANNELS_RGB is ds_image_decode_png (c = 3 always);
// DS_CHANNELS_NATIVE keeps gray and gray+alpha images as c = 1 (PIL's convert("L")) and gives c = 3
// for RGB, RGBA and palette images. Same checks, limits and messages in both modes.
// ds_image_load_png reads a file and decodes it as PNG (another format is refused, not decoded):
// what pmf_eval's folders of PNGs are read with (cli/eval_readers.c).
typedef enum { DS_CHANNELS_RGB, DS_CHANNELS_NATIVE } DsChannels;
int ds_image_decode_png_channels(const unsigned char *bytes, size_t n, const char *name, int64_t max_pixels,
                                 DsChannels channels, DsImage *out);
int ds_image_load_png(const char *path, int64_t max_pixels, DsChannels channels, DsImage *out);
// No PNG chunk but IDAT may claim more bytes than this (dataset/png_decode.c says why).
#define DS_PNG_MAX_CHUNK_BYTES (8u << 20)
void ds_image_free(DsImage *im);

// PIL's Image.resize (8-bit, fixed point, horizontal pass then vertical) with its BOX or BICUBIC
// filter, bit for bit. src (h, w, c) -> dst (oh, ow, c).
typedef enum { DS_FILTER_BOX, DS_FILTER_BICUBIC } DsFilter;
void ds_resize(const uint8_t *src, int w, int h, int c, uint8_t *dst, int ow, int oh, DsFilter f);

// guided-diffusion's center_crop_arr (ADM; spec 7.3): while the short side >= 2 * size, BOX-resize
// to (w/2, h/2) (floor); BICUBIC-resize so the short side is `size`; crop the centre.
// dst holds size * size * im->c bytes. -1 (message naming `name`) if the resized image would be
// absurdly large (a 1 x 100000 strip).
int ds_center_crop(const DsImage *im, int size, uint8_t *dst, const char *name);

// ---------------------------------------------------------------------------------------------
// HDF5 shards. One file holds N images at one resolution:
//   /images       uint8 (N, H, W, C), chunked one image per chunk (random access)
//   /labels       int32 (N)
//   /class_names  variable-length UTF-8 strings (K)
//   attributes on "/": format_version, resolution, count, channels, first_index, source, crop_method
#define DS_SHARD_FORMAT_VERSION 1
// Limits a shard's claimed sizes are checked against (with the file's size) before anything is
// allocated from them. pmf_prepare writes 1024 images per shard by default.
#define DS_SHARD_MAX_IMAGES (1 << 24)
#define DS_SHARD_MAX_RESOLUTION 4096
#define DS_SHARD_MAX_CLASSES (1 << 20)

typedef struct DsShardMeta {
    int resolution, channels;
    int64_t first_index;        // index of the shard's first input item (for tracing)
    const char *source;         // e.g. "imagenet:/data/train"
    const char *crop_method;    // e.g. "adm_center_crop"
    int n_classes;
    const char *const *class_names;
} DsShardMeta;

typedef struct DsShardWriter DsShardWriter;
// Writes to `path`.tmp; ds_shard_writer_finish fsyncs and renames it to `path`, so a reader never
// sees a half-written shard. On error: NULL / -1 and a message naming the file.
DsShardWriter *ds_shard_writer_open(const char *path, const DsShardMeta *meta);
int ds_shard_writer_add(DsShardWriter *w, const uint8_t *images, const int32_t *labels, int n);
int ds_shard_writer_finish(DsShardWriter *w);   // frees w
void ds_shard_writer_abort(DsShardWriter *w);   // removes the .tmp file, frees w

typedef struct DsShard {
    char *path;
    int64_t n;
    int h, w, c;
    int resolution, format_version;
    int64_t hid_file, hid_images;   // HDF5 handles (hid_t)
    int32_t *labels;                // n
    int n_classes;
    char **class_names;
} DsShard;

// Debian's HDF5 is the serial (not thread-safe) build: call these from one thread at a time.
// Streams take a process-wide lock around their own HDF5 calls.
// Opens and checks a shard: HDF5 signature, datasets, rank, dtype, shape against the attributes.
// Any problem: -1 and a message naming the file and the dataset.
int ds_shard_open(const char *path, DsShard *s);
int ds_shard_read(DsShard *s, int64_t i, uint8_t *dst);   // image i, H*W*C bytes
int ds_shard_read_range(DsShard *s, int64_t first, int64_t n, uint8_t *dst);   // images first.., n*H*W*C bytes
// 1 if the file starts with the HDF5 signature (what a shard must), else 0.
int ds_is_hdf5_file(const char *path);
void ds_shard_close(DsShard *s);

// Shards are trusted input: libhdf5 itself can crash or hang on a damaged file. These check a
// shard (open, layout, every image read) in a forked child with a deadline, so a crash or hang
// in libhdf5 is reported as a damaged file instead of taking the caller down (shard_verify.c).
typedef enum { DS_VERIFY_OK, DS_VERIFY_DAMAGED, DS_VERIFY_CRASHED, DS_VERIFY_HUNG, DS_VERIFY_ERROR } DsVerifyResult;
// msg (cap bytes) gets the reason when the result is not DS_VERIFY_OK.
DsVerifyResult ds_shard_verify(const char *path, double timeout_s, char *msg, size_t cap);
// Every *.h5 of `dir` in name order, one line per file to `report` (NULL: none): "ok PATH" or
// "damaged|crashed|hung|error MESSAGE". Returns the number of bad files (*n_files: files
// checked), or -1 with a message if the folder cannot be read.
int ds_shard_verify_dir(const char *dir, double timeout_s, FILE *report, int *n_files);

// ---------------------------------------------------------------------------------------------
// pmf_prepare: one of three sources -> shards <out_dir>/shard-00000.h5, ... Items are split into
// shards of `shard_size` input items in input order, so shard k always holds the same items and an
// interrupted run resumes: a finished shard is kept (checked by opening it), a missing or
// half-written one is redone. Bad items are skipped with a warning that names the file.
typedef enum { DS_SRC_IMAGENET, DS_SRC_FOLDER, DS_SRC_FASHION_MNIST } DsSourceKind;

typedef struct DsPrepareConfig {
    DsSourceKind kind;
    const char *input;        // imagenet: the train/ folder; folder: image folder; fmnist: idx dir (NULL: Debian's)
    const char *label_file;   // folder source: lines "relative/path label" (integer or class name)
    const char *split;        // fmnist: "train" or "t10k"
    const char *out_dir;
    int resolution;
    int shard_size;           // input items per shard (0: 1024)
    int64_t max_pixels;       // 0: DS_MAX_PIXELS_DEFAULT
    int64_t limit;            // use only the first `limit` items (0: all)
    int threads;              // decode threads (0: OpenMP default)
    int progress;             // 1: progress bar on stderr
    int pad_small;            // 1: an image no larger than the resolution is centred on a black
                              // canvas instead of upscaled (pmf_train's built-in convention:
                              // Fashion-MNIST's 28 x 28 on 32 x 32)
} DsPrepareConfig;

typedef struct DsPrepareStats {
    int64_t items, written, skipped, converted;
    int shards_written, shards_kept;
} DsPrepareStats;

int ds_prepare(const DsPrepareConfig *cfg, DsPrepareStats *stats);

// ---------------------------------------------------------------------------------------------
// Stream: shards -> batches of float NCHW in [-1, 1] (x / 127.5 - 1) and int32 labels.
// Per epoch the shard order is permuted (Philox, seed), the images are dealt to ranks (image j of
// the stream goes to rank j % world), and each rank's images pass a shuffle buffer. The order is a
// pure function of (seed, epoch, rank, world), so the position is two integers. Batches never span
// epochs (the tail of an epoch is dropped). A background thread prefetches batches.
typedef struct DsStreamConfig {
    const char *dir;          // folder of shard-*.h5
    int batch;
    uint64_t seed;
    int shuffle_buffer;       // items (0: 10000; 1: no shuffling within the shard order)
    int flip;                 // random horizontal flip (p = 0.5)
    int rank, world;          // data parallel partition (world 0 counts as 1)
    int prefetch;             // batches read ahead (0: 4)
} DsStreamConfig;

typedef struct DsStreamPos {
    int64_t epoch;
    int64_t index;            // items of this rank's epoch order already handed out
} DsStreamPos;

typedef struct DsStream DsStream;
DsStream *ds_stream_open(const DsStreamConfig *cfg, const DsStreamPos *start);   // start NULL: (0, 0)
// Fills x (batch, C, H, W) and y (batch); returns 0, or -1 with a message (a shard went bad).
int ds_stream_next(DsStream *s, float *x, int32_t *y);
DsStreamPos ds_stream_tell(const DsStream *s);   // the position after the last batch handed out
void ds_stream_shape(const DsStream *s, int *c, int *h, int *w, int64_t *per_epoch);
void ds_stream_close(DsStream *s);

#endif
