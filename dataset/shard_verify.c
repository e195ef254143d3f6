// dataset/shard_verify.c: checks shards in a child process. ds_shard_open checks a shard's layout
// and claimed sizes, but a damaged file can still crash or hang inside libhdf5 itself (Debian's
// 1.10 has heap overflows in attribute and global-heap decoding and endless loops in its metadata
// cache on corrupt files). Those cannot be caught in the process that suffers them, so each file
// is opened and fully read (labels, class names, every image) in a forked child with a deadline:
// a crash (signal) or a hang (killed at the deadline) is reported as a damaged file, and the
// caller goes on. A fork costs well under a millisecond next to reading a shard; a separate
// helper program would add a binary to find and keep in step for no gain.
#include "dataset/dataset.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"

// The child's whole job: open (layout and limits), read every image. 0 or 1 with the message.
static int verify_in_child(const char *path, int out_fd) {
    DsShard s;
    int rc = ds_shard_open(path, &s);
    if (rc == 0) {
        uint8_t *px = malloc((size_t)s.h * s.w * s.c);
        if (!px) {
            core_set_error("dataset: shard '%s': out of memory for one image", path);
            rc = -1;
        }
        for (int64_t i = 0; px && i < s.n && rc == 0; i++) rc = ds_shard_read(&s, i, px);
        free(px);
        ds_shard_close(&s);
    }
    if (rc != 0) {
        const char *m = core_last_error();
        ssize_t w = write(out_fd, m, strlen(m));
        (void)w;
    }
    return rc == 0 ? 0 : 1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

DsVerifyResult ds_shard_verify(const char *path, double timeout_s, char *msg, size_t cap) {
    if (cap) msg[0] = 0;
    int fds[2];
    if (pipe(fds) != 0) {
        snprintf(msg, cap, "cannot create a pipe: %s", strerror(errno));
        return DS_VERIFY_ERROR;
    }
    fflush(NULL);   // nothing buffered is written twice
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]), close(fds[1]);
        snprintf(msg, cap, "cannot fork: %s", strerror(errno));
        return DS_VERIFY_ERROR;
    }
    if (pid == 0) {
        close(fds[0]);
        _exit(verify_in_child(path, fds[1]));
    }
    close(fds[1]);
    // Collect the child's message until it closes the pipe (exit or death) or the deadline passes.
    size_t got = 0;
    double deadline = now_s() + timeout_s;
    int hung = 0;
    for (;;) {
        double left = deadline - now_s();
        if (left <= 0) {
            hung = 1;
            break;
        }
        struct pollfd p = {fds[0], POLLIN, 0};
        int r = poll(&p, 1, (int)(left * 1000) + 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) continue;   // timeout: re-checked at the loop's top
        char buf[512];
        ssize_t k = read(fds[0], buf, sizeof buf);
        if (k <= 0) break;   // EOF: the child is done
        size_t room = cap > got + 1 ? cap - got - 1 : 0, n = (size_t)k < room ? (size_t)k : room;
        memcpy(msg + got, buf, n);
        got += n;
        if (cap) msg[got] = 0;
    }
    close(fds[0]);
    if (hung) kill(pid, SIGKILL);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    if (hung) {
        snprintf(msg, cap, "dataset: shard '%s': no answer within %.1f s (libhdf5 hangs on this file: damaged)", path,
                 timeout_s);
        return DS_VERIFY_HUNG;
    }
    if (WIFSIGNALED(st)) {
        snprintf(msg, cap, "dataset: shard '%s': reading it crashed libhdf5 (signal %d: %s): damaged", path,
                 WTERMSIG(st), strsignal(WTERMSIG(st)));
        return DS_VERIFY_CRASHED;
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return DS_VERIFY_OK;
    if (got == 0)   // e.g. a sanitizer stopped it inside libhdf5 (its report is on stderr)
        snprintf(msg, cap, "dataset: shard '%s': the checking process failed without a message (exit status %d): "
                           "damaged", path, WEXITSTATUS(st));
    return DS_VERIFY_DAMAGED;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int ds_shard_verify_dir(const char *dir, double timeout_s, FILE *report, int *n_files) {
    *n_files = 0;
    DIR *d = opendir(dir);
    if (!d) {
        core_set_error("dataset: cannot open shard folder '%s': %s", dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t L = strlen(de->d_name);
        if (L < 4 || strcmp(de->d_name + L - 3, ".h5") != 0) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **t = realloc(names, cap * sizeof *names);
            if (!t) break;
            names = t;
        }
        if (!(names[n] = strdup(de->d_name))) break;
        n++;
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_str);
    static const char *verdict[] = {"ok", "damaged", "crashed", "hung", "error"};
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(dir) + strlen(names[i]) + 2;
        char *path = malloc(len), msg[1024];
        if (!path) break;
        snprintf(path, len, "%s/%s", dir, names[i]);
        DsVerifyResult r = ds_shard_verify(path, timeout_s, msg, sizeof msg);
        if (r != DS_VERIFY_OK) bad++;
        if (report) fprintf(report, "%-8s %s\n", verdict[r], r == DS_VERIFY_OK ? path : msg);
        free(path);
        free(names[i]);
    }
    free(names);
    *n_files = (int)n;
    return bad;
}
