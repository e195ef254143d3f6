"""The recipe search for the default run (issue 18), run by `experiments/run recipe`.

Unlike the ablations, whose arms all train the same number of steps, every arm here gets the same
*time*: its `training.steps` is set in its config file so that it would train for the stage's
budget on 2 quiet cores (images = budget x the arm's quiet img/s, see configs/recipe/_ablation.yml).
The arms therefore also run at one thread each, two at a time, under load: the result of a run
depends on its steps and thread count, never on how busy the machine was.

Selection never looks at the test set. Each arm is scored on the first 10,000 *training* images
(`results/_ref/fm_train`): FD-featnet, KID, precision/recall and the featnet's class accuracy of
5000 class-balanced 1-NFE samples, for each sampling omega of the stage and each EMA; the held-out
featnet's FD (a second network no loss trains through) is taken at the arm's best setting. The
winner's figures against the test set are the README's, made from a clean checkout."""
import json, os, time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.environ.get("PMF_BUILD", os.path.join(ROOT, "build"))
TRAIN_REF = os.path.join(HERE, "results", "_ref", "fm_train")
HELDOUT = os.path.join(ROOT, "perceptual", "weights", "featnet_fmnist_heldout.safetensors")


def settings():
    return yaml.safe_load(open(os.path.join(HERE, "configs", "recipe", "_ablation.yml")))


def evaluate(sh, ckpt, out, omega, ema, n, heldout=False, interval=None, threads=0, tag="eval", record=True):
    """One pmf_eval of the checkpoint against the training reference; returns its JSON record,
    also appended to out/TAG.jsonl when `record`. interval: (t_min, t_max) of the guidance, None
    for the checkpoint's own. tag names the run's files, so that evaluations can run side by side."""
    tmp = os.path.join(out, tag + ".tmp")
    if os.path.exists(tmp):
        os.remove(tmp)
    cmd = [os.path.join(BUILD, "pmf_eval"), "--fid", ckpt, TRAIN_REF, "--features", "featnet",
           "--omega", str(omega), "--ema", str(ema), "--n", str(n), "--max-images", "10000",
           "--no-progress", "--log", tmp]
    if interval:
        cmd += ["--t-min", str(interval[0]), "--t-max", str(interval[1])]
    if threads:
        cmd += ["--threads", str(threads)]
    if heldout:
        cmd += ["--featnet-weights", HELDOUT, "--fd-only"]
    sh(cmd, os.path.join(out, tag + ".log"), "a")
    rec = json.loads(open(tmp).read().strip().splitlines()[-1])
    os.remove(tmp)
    rec.update({"omega": omega, "ema": ema, "heldout": heldout})
    if interval:
        rec.update({"t_min": interval[0], "t_max": interval[1]})
    if record:
        with open(os.path.join(out, tag + ".jsonl"), "a") as f:
            f.write(json.dumps(rec) + "\n")
    return rec


def sampling_sweep(sh, ckpt):
    """The sampling settings of a trained default run (`--sampling CKPT`): CFG omega x guidance
    interval at EMA 0, then every EMA at the best pair, each against the training reference with
    5000 samples. The network is conditioned on (omega, t_min, t_max), so this needs no training.
    Two evaluations at a time, one thread each; settings already in sampling.jsonl are kept."""
    from concurrent.futures import ThreadPoolExecutor
    s = settings()
    out = os.path.join(HERE, "results", "recipe", "sampling", os.path.basename(os.path.dirname(ckpt)))
    os.makedirs(out, exist_ok=True)
    log = os.path.join(out, "sampling.jsonl")
    key = lambda w, iv, e: (float(w), float(iv[0]), float(iv[1]), int(e))
    have = {}
    if os.path.exists(log):
        for l in open(log):
            r = json.loads(l)
            have[key(r["omega"], (r["t_min"], r["t_max"]), r["ema"])] = r

    tag = lambda g: "s_%g_%g_%g_%d" % key(*g)

    def run(grid):
        todo = [g for g in grid if key(*g) not in have]
        with ThreadPoolExecutor(2) as ex:
            for g, r in zip(todo, ex.map(lambda g: evaluate(sh, ckpt, out, g[0], g[2], s["n_eval"], interval=g[1],
                                                             threads=1, tag=tag(g), record=False), todo)):
                have[key(*g)] = r
                with open(log, "a") as f:   # the one record of the sweep
                    f.write(json.dumps(r) + "\n")
                os.remove(os.path.join(out, tag(g) + ".log"))
        return [have[key(*g)] for g in grid]

    first = run([(w, iv, 0) for w in s["sampling_omegas"] for iv in s["sampling_intervals"]])
    b = min(first, key=lambda r: r["value"])
    n_ema = len(yaml.safe_load(open(os.path.join(os.path.dirname(ckpt), "config.yaml")))["training"]["ema_val"])
    emas = run([(b["omega"], (b["t_min"], b["t_max"]), e) for e in list(range(1, n_ema)) + [-1]])
    best = min(first + emas, key=lambda r: r["value"])
    ivs = s["sampling_intervals"]
    t = ["# Sampling settings of the default run (issue 18)", "",
         f"Checkpoint: `{os.path.relpath(ckpt, ROOT) if ckpt.startswith(ROOT) else ckpt}` (the default run's "
         "training, `configs/fmnist_default.yml`). FD-featnet of 5000 class-balanced 1-NFE samples against the "
         "first 10,000 **training** images, by CFG omega (rows) and guidance interval [t_min, t_max] (columns), "
         "EMA 0. Made by `experiments/run recipe --sampling CHECKPOINT`.", "",
         "| omega | " + " | ".join(f"[{a:g}, {z:g}]" for a, z in ivs) + " |",
         "| ---: |" + " ---: |" * len(ivs)]
    for w in s["sampling_omegas"]:
        t.append(f"| {w:g} | " + " | ".join(f"{have[key(w, iv, 0)]['value']:.2f}" for iv in ivs) + " |")
    t += ["", f"At omega {b['omega']:g}, [{b['t_min']:g}, {b['t_max']:g}]: " + ", ".join(
        f"EMA {r['ema']} {r['value']:.2f}" for r in [b] + emas) + ".", "",
        f"Best: omega {best['omega']:g}, interval [{best['t_min']:g}, {best['t_max']:g}], EMA {best['ema']}: "
        f"FD-featnet {best['value']:.2f}, KID {best['kid']:.2f}, precision {best['precision']:.3f}, "
        f"recall {best['recall']:.3f}, class accuracy {best['class_accuracy']:.3f}.", ""]
    open(os.path.join(out, "README.md"), "w").write("\n".join(t))
    print(f"recipe: wrote {os.path.relpath(out, ROOT)}/README.md; best omega {best['omega']:g} "
          f"interval [{best['t_min']:g}, {best['t_max']:g}] EMA {best['ema']}: FD-featnet {best['value']:.2f}", flush=True)


def run_arm(sh, arm, threads, i, n):
    s = settings()
    delta = yaml.safe_load(open(os.path.join(HERE, "configs", "recipe", arm + ".yml"))) or {}
    out = os.path.join(HERE, "results", "recipe", arm)
    if os.path.exists(os.path.join(out, "done")):
        print(f"[{i}/{n}] recipe/{arm}: done already, skipped", flush=True)
        return
    os.makedirs(out, exist_ok=True)
    from run import flatten
    base = os.path.join(ROOT, delta.pop("base", s["base"]))   # stage d: the default run's config
    over = [f"{k}={v}" for k, v in flatten(delta)]
    trained = os.path.join(out, "trained.json")   # a killed run's evaluations start again, not its training
    if os.path.exists(trained):
        wall = json.load(open(trained))["wall_s"]
    else:
        print(f"[{i}/{n}] recipe/{arm}: training ({' '.join(over)}) at {threads} thread(s) ...", flush=True)
        t0 = time.time()
        sh([os.path.join(BUILD, "pmf_train"), "--config", base, "--threads", str(threads)]
           + over + ["--out", out], os.path.join(out, "train.log"))
        wall = time.time() - t0
        json.dump({"wall_s": wall, "threads": threads}, open(trained, "w"))
    ckpt = os.path.join(out, "checkpoint.safetensors")
    for f in ("eval.jsonl", "eval.log"):
        if os.path.exists(os.path.join(out, f)):
            os.remove(os.path.join(out, f))
    # omega first (EMA 0), then the other EMAs at the best omega, then held-out at the best pair
    recs = [evaluate(sh, ckpt, out, w, 0, s["n_eval"]) for w in s["omegas"]]
    w_best = min(recs, key=lambda r: r["value"])["omega"]
    n_ema = len(yaml.safe_load(open(os.path.join(out, "config.yaml")))["training"]["ema_val"])
    recs += [evaluate(sh, ckpt, out, w_best, e, s["n_eval"]) for e in list(range(1, n_ema)) + [-1]]
    best = min(recs, key=lambda r: r["value"])
    evaluate(sh, ckpt, out, best["omega"], best["ema"], s["n_eval"], heldout=True)
    json.dump({"wall_s": wall, "threads": threads, "overrides": over}, open(os.path.join(out, "run.json"), "w"))
    open(os.path.join(out, "done"), "w").write("")
    print(f"[{i}/{n}] recipe/{arm}: trained in {wall:.0f} s; best FD-featnet (train ref) {best['value']:.2f} "
          f"at omega {best['omega']} EMA {best['ema']}", flush=True)


def summarize(arm):
    out = os.path.join(HERE, "results", "recipe", arm)
    evs = [json.loads(l) for l in open(os.path.join(out, "eval.jsonl")) if l.strip()]
    main = [e for e in evs if not e["heldout"]]
    best = min(main, key=lambda r: r["value"])
    held = [e for e in evs if e["heldout"]]
    cfg = yaml.safe_load(open(os.path.join(out, "config.yaml")))
    run = json.load(open(os.path.join(out, "run.json")))
    log = open(os.path.join(out, "train.log")).read()
    return {"arm": arm, "out": out, "best": best, "evals": main,
            "heldout": held[0]["value"] if held else float("nan"),
            "steps": cfg["training"]["steps"], "batch": cfg["training"]["batch_size"],
            "images": cfg["training"]["steps"] * cfg["training"]["batch_size"],
            "wall": run["wall_s"], "threads": run["threads"], "log": log}


def write_readme(arms):
    s = settings()
    d = os.path.join(HERE, "results", "recipe")
    res = [summarize(a) for a in arms if os.path.exists(os.path.join(d, a, "done"))]
    if not res:
        return
    from run import tile
    for r in res:
        r["label"] = r["arm"]
    tile(res, os.path.join(d, "grids.png"))
    notes = {}
    for r in res:
        first = open(os.path.join(HERE, "configs", "recipe", r["arm"] + ".yml")).readline().strip()
        notes[r["arm"]] = first.lstrip("# ") if first.startswith("#") else ""
    t = ["# Recipe search for the default run (issue 18)", "", s["about"].strip(), "",
         "Scores: 5000 class-balanced 1-NFE samples against the first 10,000 **training** images "
         "(the test set is not looked at here), in the featnet's space: FD-featnet, KID (unbiased MMD² with the cubic kernel, in the featnet's units), "
         "precision and recall (k = 3) and the featnet's accuracy on the class asked for. Each arm "
         "is shown at its best (omega, EMA) by FD; EMA k is `training.ema_val[k]` (kimg, capped by "
         "the 5% ramp), -1 the raw weights. held-out: FD in the second featnet's space at that "
         "setting. Lower is better for FD and KID.", "",
         "| arm | stage | steps x batch | FD-featnet | KID | precision | recall | class acc. | held-out FD | best omega, EMA | what |",
         "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for r in sorted(res, key=lambda r: (r["arm"].split("_")[0], r["best"]["value"])):
        b = r["best"]
        t.append(f"| {r['arm']} | {r['arm'].split('_')[0]} | {r['steps']} x {r['batch']} | {b['value']:.2f} | "
                 f"{b.get('kid', float('nan')):.2f} | {b.get('precision', float('nan')):.3f} | "
                 f"{b.get('recall', float('nan')):.3f} | {b.get('class_accuracy', float('nan')):.3f} | "
                 f"{r['heldout']:.2f} | {b['omega']:g}, {b['ema']} | {notes[r['arm']]} |")
    t += ["", "FD-featnet by sampling omega (EMA 0):", "",
          "| arm | " + " | ".join(f"omega {w:g}" for w in s["omegas"]) + " |",
          "| --- |" + " ---: |" * len(s["omegas"])]
    for r in res:
        by = {e["omega"]: e["value"] for e in r["evals"] if e["ema"] == 0}
        t.append(f"| {r['arm']} | " + " | ".join(f"{by.get(w, float('nan')):.2f}" for w in s["omegas"]) + " |")
    t += ["", s.get("conclusion", "").strip(), "",
          "## Samples (the arms' final grids: first EMA, the base config's omega)", "", "![samples](grids.png)", ""]
    open(os.path.join(d, "README.md"), "w").write("\n".join(t))
    print(f"recipe: wrote {os.path.relpath(d, ROOT)}/README.md and grids.png", flush=True)


def main(args, sh):
    cdir = os.path.join(HERE, "configs", "recipe")
    all_arms = sorted(n[:-4] for n in os.listdir(cdir) if n.endswith(".yml") and not n.startswith("_"))
    arms = args.arms.split(",") if args.arms else all_arms
    from run import ensure_ref
    ensure_ref(TRAIN_REF, "train")
    if args.sampling:
        return sampling_sweep(sh, os.path.abspath(args.sampling))
    for i, a in enumerate(arms, 1):
        run_arm(sh, a, args.threads, i, len(arms))
    write_readme(all_arms)
