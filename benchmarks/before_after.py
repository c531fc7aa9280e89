"""Does a change make the step cost more? keras_kd at two revisions, one run.

The throughput benchmark's contenders `keras_kd`, `keras_kd_unchecked` and
`keras_distillation` (same pairs, data, optimizer and settings as
`benchmarks/throughput.py`) are timed in child processes that alternate
between the two revisions of keras_kd (before, after, before, after, ...): the
older revision's `keras_kd/` is extracted with `git archive` into a temporary
folder beside a copy of today's `benchmarks/`, so both run the same benchmark
code. Each child times its contenders interleaved over `--rounds` rounds, after
a warm-up.

Within a child, keras.distillation is the control: the claim is the ratio
keras_kd / keras.distillation by process CPU time (above 1: keras_kd is
faster), per child, then its median over the children of each revision. The
non-finite check's share of a step is `keras_kd_unchecked / keras_kd`'s time
ratio, read the same way.

    python -m benchmarks.before_after --revision 5d35a9c [--children 4] [--rounds 4] [--steps 20]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile

CONTENDERS = ("keras_kd", "keras_kd_unchecked", "keras_distillation")
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child(pairs, rounds, steps):
    """Times the contenders on each pair with the keras_kd importable here;
    prints `{pair: {name: [(wall, cpu), ...]}}` as the last line."""
    from benchmarks import common
    from benchmarks import throughput

    result = {}
    for pair in pairs:
        runners = {name: throughput.build(name, pair, steps) for name in CONTENDERS}
        result[pair] = common.interleave(runners, rounds)
    print(json.dumps(result))


def extract(revision, folder):
    """`keras_kd/` at `revision` and today's `benchmarks/` in `folder`."""
    archive = os.path.join(folder, "source.tar")
    subprocess.run(["git", "archive", "-o", archive, revision, "keras_kd"], cwd=HERE, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    os.remove(archive)
    shutil.copytree(os.path.join(HERE, "benchmarks"), os.path.join(folder, "benchmarks"),
                    ignore=shutil.ignore_patterns("*.json", "__pycache__"))


def run_child(source, pairs, rounds, steps):
    """Runs `child` in a fresh process whose `keras_kd` is the one in `source`."""
    command = [sys.executable, "-m", "benchmarks.before_after", "--child", "--pairs", *pairs,
               "--rounds", str(rounds), "--steps", str(steps)]
    env = dict(os.environ, PYTHONPATH=source, KERAS_BACKEND="tensorflow")
    output = subprocess.run(command, cwd=source, env=env, capture_output=True, text=True)
    if output.returncode:
        raise RuntimeError(f"child in {source} failed:\n{output.stderr[-3000:]}")
    return json.loads(output.stdout.strip().splitlines()[-1])


def cpu_ratios(times, numerator, denominator):
    """Per-round ratios of CPU time: denominator / numerator (above 1:
    `numerator` is faster)."""
    return [d[1] / n[1] for n, d in zip(times[numerator], times[denominator])]


def summary(children, pair, numerator, denominator):
    """Median over the children of each child's median per-round ratio."""
    per_child = [statistics.median(cpu_ratios(c[pair], numerator, denominator)) for c in children]
    return {"median": statistics.median(per_child), "min": min(per_child), "max": max(per_child),
            "per_child": per_child}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revision", default="5d35a9c", help="the 'before' git revision")
    parser.add_argument("--children", type=int, default=4, help="child processes per revision")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--pairs", nargs="+", default=["mlp", "conv"])
    parser.add_argument("--out", default="benchmarks/before_after.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.pairs, args.rounds, args.steps)

    from benchmarks import common  # TensorFlow is imported in the children only after here.

    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True,
                          text=True, check=True).stdout.strip()
    runs = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as folder:
        extract(args.revision, folder)
        for index in range(args.children):
            for label, source in (("before", folder), ("after", HERE)):
                runs[label].append(run_child(source, args.pairs, args.rounds, args.steps))
                print(f"child {index + 1}/{args.children} {label} done", flush=True)
    ratios = {
        label: {
            pair: {
                "keras_kd / keras_distillation": summary(children, pair, "keras_kd", "keras_distillation"),
                "keras_kd_unchecked / keras_kd": summary(children, pair, "keras_kd_unchecked", "keras_kd"),
            }
            for pair in args.pairs
        }
        for label, children in runs.items()
    }
    print(f"machine: {common.machine()}")
    print(f"before = {args.revision}, after = {head} (working tree); {args.children} children each, "
          f"alternating; {args.rounds} rounds x {args.steps} steps of batch 256 per contender per child")
    print("CPU-time speed ratio, median over children (min-max of the children's medians):")
    for pair in args.pairs:
        for name in ("keras_kd / keras_distillation", "keras_kd_unchecked / keras_kd"):
            cells = [
                f"{label} {r['median']:.3f} ({r['min']:.3f}-{r['max']:.3f})"
                for label, r in ((label, ratios[label][pair][name]) for label in runs)
            ]
            print(f"  [{pair}] {name:32s} " + "   ".join(cells))
    common.write_json(args.out, {
        "machine": common.machine(), "before": args.revision, "after": head,
        "children": args.children, "rounds": args.rounds, "steps": args.steps,
        "ratios": ratios, "times": runs,
    })
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
