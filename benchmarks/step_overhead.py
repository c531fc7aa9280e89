"""Where keras_kd's training step spends time beyond the math.

Interleaved in one run, for the throughput benchmark's model pairs and
settings (`benchmarks/throughput.py`: batch 256, Adam, T=4, alpha=0.1,
`steps_per_execution=1`), every contender applying Keras's own
`keras.optimizers.Adam` (the user's optimizer, as keras_kd applies it):

- `keras_kd`: `keras_kd.Distiller.fit`;
- `keras_kd_unchecked`: the same with `skip_nonfinite_steps=False` (the
  non-finite step check off, every update applied);
- `minimal_fit`: a minimal `keras.Model` subclass doing the same math in its
  `train_step`, under Keras's `fit` (what `fit` itself costs);
- `hand_written`: the throughput benchmark's hand-written loop;
- `keras_kd_cached`, `keras_kd_cached_unchecked`: the same two on cached
  teacher logits;
- `student_alone`: the student alone under `fit` (the cached ceiling).

Prints each contender's median speed ratio to `keras_kd` (online ones) or
`keras_kd_cached` (cached ones) by process CPU time, with min-max, and writes
JSON.

    python -m benchmarks.step_overhead [--rounds 8] [--steps 40] [--pairs mlp conv]
"""

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import common  # noqa: E402
from benchmarks import throughput  # noqa: E402

ONLINE = ("keras_kd", "keras_kd_unchecked", "minimal_fit", "hand_written")
CACHED = ("keras_kd_cached", "keras_kd_cached_unchecked", "student_alone")


class _MinimalDistiller(keras.Model):
    """The benchmark's distillation step in a bare `train_step`."""

    def __init__(self, teacher, student):
        super().__init__(name="minimal_distiller")
        self.teacher, self.student = teacher, student
        teacher.trainable = False

    def call(self, x, training=False):
        return self.student(x, training=training)

    def train_step(self, data):
        x, y = data
        teacher_logits = self.teacher(x, training=False)
        with tf.GradientTape() as tape:
            logits = self.student(x, training=True)
            loss = throughput.same_math_loss(teacher_logits, logits, y, self.loss)
        variables = self.student.trainable_variables
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        return self.compute_metrics(x, y, logits)


def build(name, pair, steps):
    """Returns a function running one timed epoch of contender `name`."""
    if name == "keras_kd_cached_unchecked":
        return throughput.build("keras_kd_cached", pair, steps, skip_nonfinite_steps=False)
    if name == "minimal_fit":
        make_teacher, make_student, shape = throughput.PAIRS[pair]
        model = _MinimalDistiller(make_teacher(), make_student())
        model.compile(optimizer=throughput._adam(), loss=throughput._loss(), metrics=["accuracy"])
        return throughput._fit_runner(model, throughput._pipeline(throughput._examples(shape, steps)))
    return throughput.build(name, pair, steps)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--pairs", nargs="+", default=list(throughput.PAIRS))
    parser.add_argument("--out", default="benchmarks/step_overhead.json")
    args = parser.parse_args()

    results = {"machine": common.machine(), "rounds": args.rounds, "steps_per_epoch": args.steps, "pairs": {}}
    print(f"machine: {results['machine']}")
    for pair in args.pairs:
        runners = {name: build(name, pair, args.steps) for name in ONLINE + CACHED}
        times = common.interleave(runners, args.rounds)
        ratios = {}
        print(f"\n[{pair}] speed ratio by CPU time, median of {args.rounds} rounds (min-max):")
        for group in (ONLINE, CACHED):
            for name in group[1:]:
                ratio = common.ratio_summary(times, name, group[0], 1)
                ratios[f"{name} / {group[0]}"] = ratio
                print(
                    f"  {name + ' / ' + group[0]:48s} {ratio['median']:.3f} "
                    f"({ratio['min']:.3f}-{ratio['max']:.3f})"
                )
        results["pairs"][pair] = {"ratios": ratios, "times": times}
    common.write_json(args.out, results)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
