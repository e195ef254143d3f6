#!/usr/bin/python3
"""Bench: 1-NFE generation of the released pMF architectures, pmf (C) against the official torch
generate() on this CPU, in the same run. Not a test.

  /usr/bin/python3 bench/bench_official_pmf.py [--pmf-sample build/pmf_sample] [--n 8] [--batch 8]
                                               [--threads 2] [--models B/16,B/32]

For each model: the official pixelMeanFlow (tools/reference/official_pmf/, verbatim) with seeded
random weights (gates and final layers too, so no path is skipped) is saved as the official .pt
and sent through `tools/convert_weights.py pmf`; then, each in its own process and alternated:
  - C:     pmf_sample CONVERTED --n N --batch B --steps 1 --npy OUT (2 threads): the generation
           time pmf_sample reports (loading excluded) and the process's peak RSS;
  - torch: generate(N, ...) after one warm-up batch, torch.set_num_threads(threads), no_grad,
           float32: the wall time of generate() and the process's peak RSS.
Figures are only meaningful on a quiet machine; the script prints the machine's load average.
"""
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
MODELS = {"B/16": ("pmfDiT_B_16", 256), "B/32": ("pmfDiT_B_32", 512), "L/16": ("pmfDiT_L_16", 256),
          "L/32": ("pmfDiT_L_32", 512), "H/16": ("pmfDiT_H_16", 256), "H/32": ("pmfDiT_H_32", 512)}

TORCH_RUN = r'''
import os, resource, sys, time
sys.path.insert(0, sys.argv[1])
import torch
import pmf as official
cls, img, n, batch, threads, pt = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
torch.set_num_threads(threads)
model = official.pixelMeanFlow(cls, img_size=img)
model.load_state_dict(torch.load(pt, map_location="cpu"), strict=False)
model.eval()
class Rng:
    def __init__(s, seed): s.g = torch.Generator().manual_seed(seed)
    def randn(s, shape): return torch.randn(shape, generator=s.g)
def gen(k, seed):
    return model.generate(k, Rng(seed), 1, 7.5, 0.1, 0.8, labels=torch.arange(k) % 1000)
gen(min(batch, n), 0)   # warm-up
t0 = time.time()
done = 0
while done < n:
    k = min(batch, n - done)
    gen(k, done + 1)
    done += k
dt = time.time() - t0
print("TORCH %.4f %d" % (dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
'''


def make_checkpoint(cls, img, path):
    sys.path.insert(0, os.path.join(ROOT, "tools", "reference", "official_pmf"))
    import torch
    import pmf as official
    torch.manual_seed(0)
    model = official.pixelMeanFlow(cls, img_size=img)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("_scale") or "final_layer" in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    torch.save(model.state_dict(), path)
    del model


def run_c(pmf_sample, st, n, batch, threads, out):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads), OMP_WAIT_POLICY="PASSIVE")
    # peak RSS of the child alone: a fresh python that only waits for it
    wrapper = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
               "print(r.stdout + r.stderr); print('RSS', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
               "sys.exit(r.returncode)")
    r = subprocess.run([sys.executable, "-c", wrapper, pmf_sample, st, "--n", str(n), "--batch", str(batch), "--steps", "1",
                        "--npy", out], capture_output=True, text=True, env=env)
    if r.returncode:
        raise SystemExit("pmf_sample failed: %s %s" % (r.stdout, r.stderr))
    secs = float(r.stdout.split(" in ")[1].split(" s")[0])
    rss = int(r.stdout.split("RSS ")[1].split()[0])
    return secs, rss, r.stdout.splitlines()[0]


def run_torch(cls, img, n, batch, threads, pt):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    r = subprocess.run([sys.executable, "-c", TORCH_RUN, os.path.join(ROOT, "tools", "reference", "official_pmf"), cls,
                        str(img), str(n), str(batch), str(threads), pt], capture_output=True, text=True, env=env)
    if r.returncode:
        raise SystemExit("torch generate failed: %s" % r.stderr[-2000:])
    line = [x for x in r.stdout.splitlines() if x.startswith("TORCH")][0].split()
    return float(line[1]), int(line[2])


def main(argv):
    opts = {"--pmf-sample": os.path.join(ROOT, "build", "pmf_sample"), "--n": "8", "--batch": "8", "--threads": "2",
            "--models": "B/16,B/32", "--reps": "2"}
    for i in range(1, len(argv) - 1, 2):
        if argv[i] not in opts:
            raise SystemExit(__doc__)
        opts[argv[i]] = argv[i + 1]
    n, batch, threads, reps = int(opts["--n"]), int(opts["--batch"]), int(opts["--threads"]), int(opts["--reps"])
    print("bench_official_pmf: 1-NFE, %d images, batch %d, %d threads, %d alternated reps; load average %s"
          % (n, batch, threads, reps, " ".join("%.2f" % x for x in os.getloadavg())))
    for name in opts["--models"].split(","):
        cls, img = MODELS[name]
        with tempfile.TemporaryDirectory() as tmp:
            pt, st = os.path.join(tmp, "m.pt"), os.path.join(tmp, "m.safetensors")
            make_checkpoint(cls, img, pt)
            t0 = time.time()
            subprocess.run([sys.executable, os.path.join(ROOT, "tools", "convert_weights.py"), "pmf", pt, st], check=True,
                           capture_output=True)
            conv = time.time() - t0
            c_s, t_s = [], []
            for _ in range(reps):
                secs, rss_c, line = run_c(opts["--pmf-sample"], st, n, batch, threads, os.path.join(tmp, "out.npy"))
                c_s.append(secs)
                tsecs, rss_t = run_torch(cls, img, n, batch, threads, pt)
                t_s.append(tsecs)
            c_best, t_best = min(c_s), min(t_s)
            print("%s @ %d px: C %.3f img/s (%.2f s/img, peak RSS %.2f GB) | torch generate %.3f img/s (%.2f s/img, "
                  "peak RSS %.2f GB) | C/torch %.2fx | convert %.1f s | runs C %s, torch %s"
                  % (name, img, n / c_best, c_best / n, rss_c / 1048576, n / t_best, t_best / n, rss_t / 1048576,
                     t_best / c_best, conv, ["%.2f" % x for x in c_s], ["%.2f" % x for x in t_s]))
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
