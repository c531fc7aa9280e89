"""Reading random batches of a cached teacher's logits: memory map vs `TeacherCache.read`.

A shuffled epoch over a `TeacherCache` on disk reads each batch's rows at
random. This times, in turn (A B A B ...), `--batches` random batches of
`--batch-size` rows read two ways, fresh rows every time:

- `memory_map`: `np.asarray(cache.logits[rows])` through the `.npy` file's
  memory map (what the LM example did before);
- `read`: `cache.read(rows)`, one `os.preadv` per row into a new array.

It prints the medians per batch (wall, and process CPU split into user and
kernel time) and the median per-round ratio memory_map / read. The gap appears
when the file is bigger than free memory: pass the LM example's cache with
`--path`, or let the script write a synthetic file of `--synthetic-gb`
(random float32 rows of 48 x 4000) into `--work-dir`.

    python -m benchmarks.cache_reads --path artifacts/lm_distillation/teacher_logits.<sha>.npy
    python -m benchmarks.cache_reads --synthetic-gb 2
"""

import argparse
import os
import resource
import statistics
import tempfile
import time

import numpy as np

import keras_kd
from benchmarks import common

ROW_SHAPE = (48, 4000)


def _synthetic(path, gigabytes):
    rows = int(gigabytes * 1e9 // (4 * np.prod(ROW_SHAPE)))
    logits = np.lib.format.open_memmap(path, mode="w+", dtype="float32", shape=(rows,) + ROW_SHAPE)
    generator = np.random.default_rng(0)
    for start in range(0, rows, 256):
        stop = min(rows, start + 256)
        logits[start:stop] = generator.standard_normal((stop - start,) + ROW_SHAPE, np.float32)
    logits.flush()
    del logits


def _timed(function):
    before = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.perf_counter()
    function()
    after = resource.getrusage(resource.RUSAGE_SELF)
    return (time.perf_counter() - wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--path", help="an existing cache's .npy file")
    parser.add_argument("--synthetic-gb", type=float, default=2.0)
    parser.add_argument("--work-dir", default=tempfile.gettempdir())
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=20, help="batches per timed unit")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "cache_reads.json"))
    args = parser.parse_args()
    path, synthetic = args.path, args.path is None
    if synthetic:
        path = os.path.join(args.work_dir, "cache_reads_synthetic.npy")
        _synthetic(path, args.synthetic_gb)
    try:
        logits = np.load(path, mmap_mode="r")
        cache = keras_kd.TeacherCache(logits, fingerprint=0, path=os.path.abspath(path))
        generator = np.random.default_rng(1)

        def batches():
            return [generator.choice(len(cache), args.batch_size, replace=False) for _ in range(args.batches)]

        contenders = {
            "memory_map": lambda: [np.asarray(cache.logits[rows]) for rows in batches()],
            "read": lambda: [cache.read(rows) for rows in batches()],
        }
        times = {name: [] for name in contenders}
        for _ in range(args.rounds):
            for name, function in contenders.items():
                times[name].append(_timed(function))
        per_batch = {
            name: {part: 1000 * statistics.median(t[i] for t in rounds) / args.batches
                   for i, part in enumerate(("wall_ms", "user_ms", "kernel_ms"))}
            for name, rounds in times.items()
        }
        ratio = common.ratio_summary(times, "read", "memory_map", 0)
        file_gb = os.path.getsize(path) / 1e9
    finally:
        if synthetic:
            os.remove(path)
    available_gb = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 1e9
    payload = {
        "machine": common.machine(), "file_gb": file_gb, "synthetic": synthetic,
        "free_memory_gb_at_end": available_gb, "batch_rows": args.batch_size,
        "row_bytes": int(cache.logits[0].nbytes), "batches_per_round": args.batches,
        "rounds": args.rounds, "per_batch_medians": per_batch, "memory_map_over_read_wall": ratio,
    }
    common.write_json(args.output, payload)
    print(f"{file_gb:.1f} GB cache ({'synthetic' if synthetic else path}), {args.batch_size}-row batches, "
          f"{args.rounds} rounds of {args.batches}:")
    for name, values in per_batch.items():
        print(f"  {name:10s} {values['wall_ms']:7.1f} ms per batch "
              f"(CPU: user {values['user_ms']:.1f} ms, kernel {values['kernel_ms']:.1f} ms)")
    print(f"  memory_map / read, wall: median {ratio['median']:.2f}x (min {ratio['min']:.2f}, max {ratio['max']:.2f})")


if __name__ == "__main__":
    main()
