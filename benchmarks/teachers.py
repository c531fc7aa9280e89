"""Several teachers: what a 3-teacher distillation epoch costs, cached and not.

Interleaved (A B C D A B C D ...), the same student, data, optimizer and
batch size for every contender; prints the median of the per-round time
ratios (min-max) and writes JSON. Contenders: one teacher and three teachers,
each with the teachers run every step and with cached logits.

    python -m benchmarks.teachers --rounds 7
"""

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_kd  # noqa: E402
from benchmarks import common  # noqa: E402

EXAMPLES = 8192
BATCH_SIZE = 256


def mlp(widths, seed):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((784,))] + [keras.layers.Dense(w, activation="relu") for w in widths]
    return keras.Sequential(layers + [keras.layers.Dense(10)])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "teachers.json"))
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.random((EXAMPLES, 784), dtype=np.float32)
    y = rng.integers(0, 10, EXAMPLES)
    examples = tf.data.Dataset.from_tensor_slices((x, y))
    teachers = [mlp([1200, 1200], 1), mlp([1000, 1000], 2), mlp([800, 800], 3)]
    caches = {1: keras_kd.TeacherCache.compute(teachers[0], examples, verbose=0),
              3: keras_kd.TeacherCache.compute(teachers, examples, verbose=0)}

    def contender(count, cached):
        distiller = keras_kd.Distiller(teachers[0] if count == 1 else teachers, mlp([64], 9), alpha=0.1)
        distiller.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        data = (caches[count].attach(examples) if cached else examples).batch(BATCH_SIZE).prefetch(2)
        distiller.fit(data, epochs=1, verbose=0)  # Warm-up: trace.
        return lambda: distiller.fit(data, epochs=1, verbose=0)

    contenders = {
        "1 teacher": contender(1, False),
        "3 teachers": contender(3, False),
        "1 teacher, cached": contender(1, True),
        "3 teachers, cached": contender(3, True),
    }
    times = common.interleave(contenders, args.rounds)
    results = {"machine": common.machine(), "examples": EXAMPLES, "batch_size": BATCH_SIZE,
               "rounds": args.rounds, "ratios": {}}
    pairs = [("3 teachers, cached", "1 teacher, cached"), ("3 teachers, cached", "3 teachers"),
             ("1 teacher", "3 teachers")]
    for faster, slower in pairs:
        wall = common.ratio_summary(times, faster, slower, 0)
        results["ratios"][f"{faster} vs {slower}"] = wall
        print(f"time({slower}) / time({faster}): median {wall['median']:.3f} "
              f"(min {wall['min']:.3f}, max {wall['max']:.3f})")
    common.write_json(args.out, results)


if __name__ == "__main__":
    main()
