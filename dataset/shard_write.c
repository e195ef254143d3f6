// dataset/shard_write.c: writes one HDF5 shard (layout in dataset.h). Images are appended in
// blocks to an extendible dataset chunked one image per chunk, so a reader can fetch any image
// with one chunk read. The file is written as <path>.tmp and renamed only when complete and
// fsynced: an interrupted run leaves at worst a .tmp, never a shard that looks finished.
// Not here: reading and checking shards (shard_read.c).
#include "dataset/dataset.h"

#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>

#include "core/core.h"

struct DsShardWriter {
    char *path, *tmp;
    DsShardMeta meta;
    hid_t file, images;
    int64_t n, cap_labels;
    int32_t *labels;
};

void ds_hdf5_quiet(void);   // shard_read.c

static int fsync_path(const char *path, int dir) {
    int fd = open(path, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

DsShardWriter *ds_shard_writer_open(const char *path, const DsShardMeta *meta) {
    ds_hdf5_quiet();
    int R = meta->resolution, C = meta->channels;
    if (R < 1 || (C != 1 && C != 3)) {
        core_set_error("dataset: shard '%s': bad resolution %d or channels %d", path, R, C);
        return NULL;
    }
    DsShardWriter *w = core_calloc(1, sizeof *w, "shard writer");
    w->path = strdup(path);
    w->tmp = core_malloc(strlen(path) + 5, "shard path");
    sprintf(w->tmp, "%s.tmp", path);
    w->meta = *meta;
    w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (w->file < 0) {
        core_set_error("dataset: cannot create shard '%s' (HDF5)", w->tmp);
        free(w->path);
        free(w->tmp);
        free(w);
        return NULL;
    }
    hsize_t dims[4] = {0, (hsize_t)R, (hsize_t)R, (hsize_t)C};
    hsize_t maxd[4] = {H5S_UNLIMITED, (hsize_t)R, (hsize_t)R, (hsize_t)C};
    hsize_t chunk[4] = {1, (hsize_t)R, (hsize_t)R, (hsize_t)C};
    hid_t space = H5Screate_simple(4, dims, maxd);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 4, chunk);
    w->images = H5Dcreate2(w->file, "images", H5T_STD_U8LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    H5Sclose(space);
    if (w->images < 0) {
        core_set_error("dataset: shard '%s': cannot create dataset 'images'", w->tmp);
        ds_shard_writer_abort(w);
        return NULL;
    }
    return w;
}

int ds_shard_writer_add(DsShardWriter *w, const uint8_t *images, const int32_t *labels, int n) {
    if (n <= 0) return 0;
    int R = w->meta.resolution, C = w->meta.channels;
    hsize_t size[4] = {(hsize_t)(w->n + n), (hsize_t)R, (hsize_t)R, (hsize_t)C};
    hsize_t start[4] = {(hsize_t)w->n, 0, 0, 0}, count[4] = {(hsize_t)n, (hsize_t)R, (hsize_t)R, (hsize_t)C};
    int rc = -1;
    if (H5Dset_extent(w->images, size) < 0) goto out;
    hid_t fs = H5Dget_space(w->images);
    hid_t ms = H5Screate_simple(4, count, NULL);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    herr_t e = H5Dwrite(w->images, H5T_NATIVE_UINT8, ms, fs, H5P_DEFAULT, images);
    H5Sclose(ms);
    H5Sclose(fs);
    if (e < 0) goto out;
    if (w->n + n > w->cap_labels) {
        w->cap_labels = (w->n + n) * 2;
        w->labels = realloc(w->labels, sizeof(int32_t) * (size_t)w->cap_labels);
        if (!w->labels) core_fatal("out of memory for shard labels");
    }
    memcpy(w->labels + w->n, labels, sizeof(int32_t) * (size_t)n);
    w->n += n;
    rc = 0;
out:
    if (rc) core_set_error("dataset: shard '%s': writing %d images to dataset 'images' failed (disk full?)", w->tmp, n);
    return rc;
}

static int attr_i64(hid_t obj, const char *name, int64_t v) {
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = a < 0 ? -1 : H5Awrite(a, H5T_NATIVE_INT64, &v);
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return e < 0 ? -1 : 0;
}

static hid_t vlen_utf8(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

static int attr_str(hid_t obj, const char *name, const char *v) {
    hid_t t = vlen_utf8(), sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    const char *s = v ? v : "";
    herr_t e = a < 0 ? -1 : H5Awrite(a, t, &s);
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    return e < 0 ? -1 : 0;
}

static int write_tables(DsShardWriter *w) {
    const DsShardMeta *m = &w->meta;
    hsize_t n = (hsize_t)w->n, k = (hsize_t)(m->n_classes > 0 ? m->n_classes : 0);
    hid_t sp = H5Screate_simple(1, &n, NULL);
    hid_t d = H5Dcreate2(w->file, "labels", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = d < 0 ? -1 : n ? H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, w->labels) : 0;
    if (d >= 0) H5Dclose(d);
    H5Sclose(sp);
    if (e < 0) return -1;
    hid_t t = vlen_utf8();
    sp = H5Screate_simple(1, &k, NULL);
    d = H5Dcreate2(w->file, "class_names", t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    e = d < 0 ? -1 : k ? H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, m->class_names) : 0;
    if (d >= 0) H5Dclose(d);
    H5Sclose(sp);
    H5Tclose(t);
    if (e < 0) return -1;
    hid_t root = w->file;
    if (attr_i64(root, "format_version", DS_SHARD_FORMAT_VERSION) || attr_i64(root, "resolution", m->resolution) ||
        attr_i64(root, "channels", m->channels) || attr_i64(root, "count", w->n) ||
        attr_i64(root, "first_index", m->first_index) || attr_str(root, "source", m->source) ||
        attr_str(root, "crop_method", m->crop_method) || attr_str(root, "layout", "NHWC uint8"))
        return -1;
    return 0;
}

int ds_shard_writer_finish(DsShardWriter *w) {
    int rc = write_tables(w);
    if (rc) core_set_error("dataset: shard '%s': writing labels, class names or attributes failed", w->tmp);
    H5Dclose(w->images);
    w->images = -1;
    if (H5Fclose(w->file) < 0 && rc == 0) {
        core_set_error("dataset: shard '%s': closing the HDF5 file failed", w->tmp);
        rc = -1;
    }
    w->file = -1;
    if (rc == 0 && fsync_path(w->tmp, 0) != 0) {
        core_set_error("dataset: shard '%s': fsync failed", w->tmp);
        rc = -1;
    }
    if (rc == 0 && rename(w->tmp, w->path) != 0) {
        core_set_error("dataset: cannot rename '%s' to '%s'", w->tmp, w->path);
        rc = -1;
    }
    if (rc == 0) {
        char *dir = strdup(w->path);
        fsync_path(dirname(dir), 1);
        free(dir);
    } else {
        remove(w->tmp);
    }
    free(w->labels);
    free(w->path);
    free(w->tmp);
    free(w);
    return rc;
}

void ds_shard_writer_abort(DsShardWriter *w) {
    if (!w) return;
    if (w->images >= 0) H5Dclose(w->images);
    if (w->file >= 0) H5Fclose(w->file);
    remove(w->tmp);
    free(w->labels);
    free(w->path);
    free(w->tmp);
    free(w);
}
