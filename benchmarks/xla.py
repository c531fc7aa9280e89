"""XLA vs no XLA for the Distiller's training step, on this machine.

Interleaved in one run: for an MLP pair and a small conv pair, the same
Distiller (same weights, data, batch size, optimizer) is compiled with and
without `jit_compile`, warmed up, then timed epoch by epoch in turn. Prints,
per model pair, the median ratio of no-XLA time to XLA time (above 1: XLA is
faster) with its min-max, by wall time and by process CPU time, and writes
JSON.

    python benchmarks/xla.py [--rounds 5] [--steps 40] [--out benchmarks/xla.json]
"""

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_kd  # noqa: E402
from benchmarks import common  # noqa: E402
from benchmarks import throughput  # noqa: E402

BATCH_SIZE = 128


# The same model pairs as the throughput benchmark.
PAIRS = throughput.PAIRS


def dataset(shape, steps):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH_SIZE * steps,) + shape).astype("float32")
    y = rng.integers(0, 10, len(x))
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH_SIZE).cache()


def contender(make_teacher, make_student, data, jit_compile):
    distiller = keras_kd.Distiller(make_teacher(), make_student(), temperature=4.0, alpha=0.1)
    distiller.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )
    distiller.fit(data, epochs=1, shuffle=False, verbose=0)  # Warm-up: trace, compile.
    return lambda: distiller.fit(data, epochs=1, shuffle=False, verbose=0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--out", default="benchmarks/xla.json")
    args = parser.parse_args()

    results = {"machine": common.machine(), "batch_size": BATCH_SIZE, "steps": args.steps, "pairs": {}}
    print(f"machine: {results['machine']}")
    for name, (make_teacher, make_student, shape) in PAIRS.items():
        data = dataset(shape, args.steps)
        times = common.interleave(
            {
                "no_xla": contender(make_teacher, make_student, data, False),
                "xla": contender(make_teacher, make_student, data, True),
            },
            args.rounds,
        )
        wall = common.ratio_summary(times, "xla", "no_xla", 0)
        cpu = common.ratio_summary(times, "xla", "no_xla", 1)
        results["pairs"][name] = {"wall": wall, "cpu": cpu, "times": times}
        print(
            f"{name}: no-XLA time / XLA time, median over {args.rounds} interleaved pairs: "
            f"wall {wall['median']:.2f} ({wall['min']:.2f}-{wall['max']:.2f}), "
            f"CPU {cpu['median']:.2f} ({cpu['min']:.2f}-{cpu['max']:.2f})"
        )
    common.write_json(args.out, results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
