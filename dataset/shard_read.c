// dataset/shard_read.c: opens an HDF5 shard and checks it before trusting it: the HDF5 signature,
// the attributes, and each dataset's rank, dtype and shape. A truncated, foreign or mis-shaped file
// gives a message naming the file and the dataset, never a crash or silently wrong pixels.
// HDF5's own error stack printing is switched off; our messages replace it.
#include "dataset/dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <hdf5.h>

#include "core/core.h"

void ds_hdf5_quiet(void);

void ds_hdf5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

int ds_is_hdf5_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    unsigned char sig[8] = {0};
    size_t got = fread(sig, 1, 8, f);
    fclose(f);
    return got == 8 && memcmp(sig, "\211HDF\r\n\032\n", 8) == 0;
}

static int read_attr_i64(hid_t obj, const char *path, const char *name, int64_t *v) {
    if (H5Aexists(obj, name) <= 0) {
        core_set_error("dataset: shard '%s' has no attribute '%s' (not a pmf shard?)", path, name);
        return -1;
    }
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    int ok = H5Tget_class(t) == H5T_INTEGER && H5Sget_simple_extent_npoints(sp) == 1 &&
             H5Aread(a, H5T_NATIVE_INT64, v) >= 0;
    H5Sclose(sp);
    H5Tclose(t);
    H5Aclose(a);
    if (!ok) core_set_error("dataset: shard '%s': attribute '%s' is not one integer", path, name);
    return ok ? 0 : -1;
}

// Opens dataset `name`, checks integer class (and byte size/sign when given) and rank; dims out.
static hid_t open_checked(hid_t file, const char *path, const char *name, int rank, size_t size, int is_unsigned,
                          hsize_t *dims) {
    if (H5Lexists(file, name, H5P_DEFAULT) <= 0) {
        core_set_error("dataset: shard '%s' has no dataset '%s'", path, name);
        return -1;
    }
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    if (d < 0) {
        core_set_error("dataset: shard '%s': '%s' is not a dataset", path, name);
        return -1;
    }
    hid_t t = H5Dget_type(d), sp = H5Dget_space(d);
    int r = H5Sget_simple_extent_ndims(sp);
    int is_int = H5Tget_class(t) == H5T_INTEGER;
    size_t bytes = H5Tget_size(t);
    int ok = r == rank && is_int && (!size || bytes == size) &&
             (is_unsigned < 0 || (H5Tget_sign(t) == H5T_SGN_NONE) == is_unsigned);
    if (ok) H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    H5Tclose(t);
    if (!ok) {
        core_set_error("dataset: shard '%s': dataset '%s' must be %sintegers of rank %d (got %s of %zu bytes, rank %d)",
                       path, name, size == 1 ? "unsigned 8-bit " : "", rank, is_int ? "integers" : "non-integers",
                       bytes, r);
        H5Dclose(d);
        return -1;
    }
    return d;
}

static int read_class_names(hid_t file, DsShard *s, int64_t file_size) {
    if (H5Lexists(file, "class_names", H5P_DEFAULT) <= 0) return 0;   // optional
    hid_t d = H5Dopen2(file, "class_names", H5P_DEFAULT);
    hid_t t = H5Dget_type(d), sp = H5Dget_space(d);
    int ok = H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) > 0 && H5Sget_simple_extent_ndims(sp) == 1;
    hsize_t k = 0;
    if (ok) H5Sget_simple_extent_dims(sp, &k, NULL);
    // k is a claim: each stored variable-length string takes at least 16 bytes of the file.
    if (ok && (k > DS_SHARD_MAX_CLASSES || (int64_t)k > file_size / 16)) {
        H5Sclose(sp);
        H5Tclose(t);
        H5Dclose(d);
        core_set_error("dataset: shard '%s': dataset 'class_names' claims %llu names (limit %d, file of %lld bytes)",
                       s->path, (unsigned long long)k, DS_SHARD_MAX_CLASSES, (long long)file_size);
        return -1;
    }
    if (ok && k > 0) {
        hid_t mt = H5Tcopy(t);   // same character set: HDF5 will not convert UTF-8 to ASCII
        char **names = calloc(k, sizeof(char *));
        ok = names && H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, names) >= 0;
        if (ok) {
            s->class_names = calloc(k, sizeof(char *));
            if (s->class_names) {
                s->n_classes = (int)k;
                for (hsize_t i = 0; i < k; i++)
                    if (!(s->class_names[i] = strdup(names[i] ? names[i] : ""))) ok = 0;
            } else {
                ok = 0;
            }
            H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, names);
        }
        free(names);
        H5Tclose(mt);
    }
    H5Sclose(sp);
    H5Tclose(t);
    H5Dclose(d);
    if (!ok) core_set_error("dataset: shard '%s': dataset 'class_names' must be a 1-D array of strings", s->path);
    return ok ? 0 : -1;
}

int ds_shard_open(const char *path, DsShard *s) {
    ds_hdf5_quiet();
    memset(s, 0, sizeof *s);
    s->hid_file = s->hid_images = -1;
    s->path = strdup(path);
    if (!s->path) {
        core_set_error("dataset: out of memory opening shard '%s'", path);
        return -1;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        core_set_error("dataset: cannot open shard '%s'", path);
        goto fail;
    }
    if (!ds_is_hdf5_file(path)) {
        core_set_error("dataset: shard '%s' is not an HDF5 file (no HDF5 signature)", path);
        goto fail;
    }
    int64_t file_size = (int64_t)st.st_size;
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) {
        core_set_error("dataset: shard '%s': HDF5 cannot open it (truncated or damaged file)", path);
        goto fail;
    }
    s->hid_file = file;
    int64_t version, res, count, chans;
    if (read_attr_i64(file, path, "format_version", &version) || read_attr_i64(file, path, "resolution", &res) ||
        read_attr_i64(file, path, "count", &count) || read_attr_i64(file, path, "channels", &chans))
        goto fail;
    if (version != DS_SHARD_FORMAT_VERSION) {
        core_set_error("dataset: shard '%s': format_version %lld, this reader knows %d", path, (long long)version,
                       DS_SHARD_FORMAT_VERSION);
        goto fail;
    }
    hsize_t dims[4];
    hid_t im = open_checked(file, path, "images", 4, 1, 1, dims);
    if (im < 0) goto fail;
    s->hid_images = im;
    if ((int64_t)dims[0] != count || (int64_t)dims[1] != res || (int64_t)dims[2] != res || (int64_t)dims[3] != chans ||
        (chans != 1 && chans != 3) || res < 1 || res > DS_SHARD_MAX_RESOLUTION) {
        core_set_error("dataset: shard '%s': dataset 'images' has shape (%llu, %llu, %llu, %llu), attributes say "
                       "(%lld, %lld, %lld, %lld)",
                       path, (unsigned long long)dims[0], (unsigned long long)dims[1], (unsigned long long)dims[2],
                       (unsigned long long)dims[3], (long long)count, (long long)res, (long long)res, (long long)chans);
        goto fail;
    }
    // count is a claim: the labels alone take 4 bytes per image of the file, and a shard holds at
    // most DS_SHARD_MAX_IMAGES. Checked before anything is sized from it.
    if (count < 0 || count > DS_SHARD_MAX_IMAGES || count > file_size / 4) {
        core_set_error("dataset: shard '%s': attribute 'count' claims %lld images (limit %d; a file of %lld bytes "
                       "holds at most %lld labels)",
                       path, (long long)count, DS_SHARD_MAX_IMAGES, (long long)file_size, (long long)(file_size / 4));
        goto fail;
    }
    s->n = count;
    s->h = s->w = s->resolution = (int)res;
    s->c = (int)chans;
    s->format_version = (int)version;
    hsize_t ln;
    hid_t lab = open_checked(file, path, "labels", 1, 0, -1, &ln);
    if (lab < 0) goto fail;
    if ((int64_t)ln != count) {
        H5Dclose(lab);
        core_set_error("dataset: shard '%s': dataset 'labels' has %llu entries for %lld images", path,
                       (unsigned long long)ln, (long long)count);
        goto fail;
    }
    s->labels = malloc(sizeof(int32_t) * (size_t)(count ? count : 1));
    if (!s->labels) {
        H5Dclose(lab);
        core_set_error("dataset: shard '%s': out of memory for %lld labels", path, (long long)count);
        goto fail;
    }
    herr_t e = count ? H5Dread(lab, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, s->labels) : 0;
    H5Dclose(lab);
    if (e < 0) {
        core_set_error("dataset: shard '%s': cannot read dataset 'labels' (truncated file?)", path);
        goto fail;
    }
    if (read_class_names(file, s, file_size)) goto fail;
    for (int64_t i = 0; i < count; i++)
        if (s->labels[i] < 0 || (s->n_classes > 0 && s->labels[i] >= s->n_classes)) {
            core_set_error("dataset: shard '%s': dataset 'labels': label %d of image %lld is outside 0..%d", path,
                           s->labels[i], (long long)i, s->n_classes - 1);
            goto fail;
        }
    return 0;
fail:
    ds_shard_close(s);
    return -1;
}

int ds_shard_read(DsShard *s, int64_t i, uint8_t *dst) { return ds_shard_read_range(s, i, 1, dst); }

int ds_shard_read_range(DsShard *s, int64_t i, int64_t n, uint8_t *dst) {
    if (i < 0 || n < 1 || i >= s->n || n > s->n - i) {
        core_set_error("dataset: shard '%s': image %lld out of range (%lld images)", s->path,
                       (long long)(i < 0 || i >= s->n ? i : s->n), (long long)s->n);
        return -1;
    }
    hsize_t start[4] = {(hsize_t)i, 0, 0, 0}, count[4] = {(hsize_t)n, (hsize_t)s->h, (hsize_t)s->w, (hsize_t)s->c};
    hid_t fs = H5Dget_space(s->hid_images), ms = H5Screate_simple(4, count, NULL);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    herr_t e = H5Dread(s->hid_images, H5T_NATIVE_UINT8, ms, fs, H5P_DEFAULT, dst);
    H5Sclose(ms);
    H5Sclose(fs);
    if (e < 0) {
        if (n == 1)
            core_set_error("dataset: shard '%s': dataset 'images': cannot read image %lld (truncated file?)", s->path,
                           (long long)i);
        else
            core_set_error("dataset: shard '%s': dataset 'images': cannot read images %lld..%lld (truncated file?)",
                           s->path, (long long)i, (long long)(i + n - 1));
        return -1;
    }
    return 0;
}

void ds_shard_close(DsShard *s) {
    if (s->hid_images >= 0) H5Dclose(s->hid_images);
    if (s->hid_file >= 0) H5Fclose(s->hid_file);
    for (int i = 0; i < s->n_classes; i++) free(s->class_names[i]);
    free(s->class_names);
    free(s->labels);
    free(s->path);
    memset(s, 0, sizeof *s);
    s->hid_file = s->hid_images = -1;
}
