"""Throughput of function matching: online augmentation vs the replay cache.

Three contenders train the same CNN student (batch 256, Keras's Adam) on
28×28 images with the same Keras augmentation (random translation and flip),
timed epoch by epoch in interleaved rounds (A B C A B C ...):

- `online`: `Distiller(teacher, student, augmentation=...)`: each step draws a
  view, runs the teacher and the student on it;
- `replay`: the same Distiller on a `ReplayCache` (the teacher ran once,
  before the timing, on stored views; each step replays a view);
- `student_alone`: `keras.Sequential([augmentation, student])` fitted on the
  labels, Keras's own way to augment in training: the floor for any
  distillation with this augmentation.

It also times the teacher's forward pass alone on the same batches, to give
the teacher's share of the online step. Prints the per-round ratios (median,
min-max) and writes them to `benchmarks/augmentation.json`.

    python -m benchmarks.augmentation --rounds 8 --steps 20

Target: replay >= 0.9 x student_alone.
"""

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_kd  # noqa: E402
from benchmarks import common  # noqa: E402
from benchmarks.throughput import PAIRS  # noqa: E402

BATCH_SIZE = 256
CONTENDERS = ("online", "replay", "student_alone", "teacher_forward")
RATIOS = [
    ("replay", "student_alone"),
    ("replay", "online"),
    ("online", "student_alone"),
]


def _augmentation():
    return keras.Sequential([
        keras.layers.RandomTranslation(0.1, 0.1, seed=1),
        keras.layers.RandomFlip("horizontal", seed=2),
    ])


def _loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def build(name, steps):
    """Returns a function running one timed epoch of contender `name`."""
    make_teacher, make_student, shape = PAIRS["conv"]
    rng = np.random.default_rng(0)
    x = rng.random((BATCH_SIZE * steps,) + shape).astype("float32")
    y = rng.integers(0, 10, len(x)).astype("int64")
    examples = tf.data.Dataset.from_tensor_slices((x, y))
    teacher, student = make_teacher(), make_student()
    if name == "student_alone":
        model = keras.Sequential([_augmentation(), student])
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=_loss())
        data = examples.batch(BATCH_SIZE).cache().prefetch(tf.data.AUTOTUNE)
    elif name == "teacher_forward":
        forward = tf.function(lambda images: teacher(images, training=False))
        data = examples.batch(BATCH_SIZE).cache()

        def epoch():
            for images, _ in data:
                logits = forward(images)
            logits.numpy()

        epoch()
        return epoch
    else:
        augmentation = _augmentation()
        model = keras_kd.Distiller(teacher, student, augmentation=augmentation)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=_loss())
        if name == "replay":
            # The teacher's one pass over the stored views is not timed: it
            # is paid once for many epochs (one view per example here).
            cache = keras_kd.ReplayCache.compute(teacher, examples, augmentation, views=1, verbose=0)
            data = cache.attach(examples).batch(BATCH_SIZE).cache().prefetch(tf.data.AUTOTUNE)
        else:
            data = examples.batch(BATCH_SIZE).cache().prefetch(tf.data.AUTOTUNE)
    model.fit(data, epochs=1, verbose=0)  # Warm-up: tracing.
    return lambda: model.fit(data, epochs=1, verbose=0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", default="benchmarks/augmentation.json")
    args = parser.parse_args()
    runners = {name: build(name, args.steps) for name in CONTENDERS}
    times = common.interleave(runners, args.rounds)
    samples = BATCH_SIZE * args.steps
    speeds = {name: float(np.median([samples / wall for wall, _ in times[name]])) for name in CONTENDERS}
    ratios = {
        f"{a} / {b}": {"wall": common.ratio_summary(times, a, b, 0), "cpu": common.ratio_summary(times, a, b, 1)}
        for a, b in RATIOS
    }
    teacher_share = [t[0] / o[0] for t, o in zip(times["teacher_forward"], times["online"])]
    results = {
        "machine": common.machine(), "batch_size": BATCH_SIZE, "steps_per_epoch": args.steps,
        "rounds": args.rounds, "samples_per_s": speeds, "ratios": ratios,
        "teacher_share_of_online_step": float(np.median(teacher_share)), "times": times,
    }
    print(f"machine: {results['machine']}")
    print(f"CNN pair (teacher {PAIRS['conv'][0]().count_params():,} parameters, student "
          f"{PAIRS['conv'][1]().count_params():,}), batch {BATCH_SIZE}, {args.steps} steps per "
          f"timed epoch, {args.rounds} interleaved rounds")
    for name in CONTENDERS:
        print(f"  {name:16s} {speeds[name]:9,.0f} samples/s")
    print("speed ratios, median of per-round ratios (min-max):")
    for label, ratio in ratios.items():
        wall, cpu = ratio["wall"], ratio["cpu"]
        print(f"  {label:28s} wall {wall['median']:.3f} ({wall['min']:.3f}-{wall['max']:.3f})"
              f"   CPU {cpu['median']:.3f} ({cpu['min']:.3f}-{cpu['max']:.3f})")
    print(f"teacher forward pass / online step (wall): {results['teacher_share_of_online_step']:.3f}")
    common.write_json(args.out, results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
