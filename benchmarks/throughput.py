"""Training throughput: keras_kd against keras.distillation, side by side.

For each model pair (an MLP pair and a small CNN pair), every contender gets
the same teacher and student weights, the same data pipeline, Keras's
`keras.optimizers.Adam(1e-3)` (unless said otherwise), batch size 256,
steps_per_execution=1, T=4, alpha=0.1 and an accuracy metric:

- `keras_kd`: `keras_kd.Distiller.fit` (the defaults, `skip_nonfinite_steps=True`);
- `keras_kd_unchecked`: the same with `skip_nonfinite_steps=False` (the
  non-finite step check off, every update applied);
- `keras_kd_fused_adam`: `keras_kd.Distiller.fit` compiled with
  `keras_kd.optimizers.FusedAdam(1e-3)` (Keras's Adam applied with
  TensorFlow's fused kernel), chosen explicitly as a user would;
- `keras_kd_cached`: `keras_kd` on `TeacherCache`-attached data (no teacher pass);
- `keras_distillation`: `keras.distillation.Distiller.fit` with a
  `keras.losses.KLDivergence()` instance (the same loss);
- `student_alone`: `student.fit` on the labels, no teacher (the ceiling for
  anything that runs a teacher, and the one for cached keras_kd);
- `hand_written`: a minimal `tf.function` loop with exactly the same math,
  optimizer and accuracy metric (the limit proxy);
- `hand_written_fused_adam`: the same loop with `FusedAdam` (the limit proxy
  for `keras_kd_fused_adam`);
- `teacher_forward`: the teacher's inference pass alone over the same batches
  (no training): `keras_kd / teacher_forward` is the share of keras_kd's step
  spent in a teacher pass that every online contender must make.

After a warm-up epoch each, contenders run one epoch each in turn (A B C D E
A B C D E ...) for `--rounds` rounds. Printed: each contender's median
samples/s, and for the pairs that matter the median of the per-round ratios
with their min-max, by wall time and by process CPU time. Peak memory is
measured per contender in a subprocess of its own. Writes JSON.

With `--backend jax` or `--backend torch` the same pairs train on that Keras
backend from numpy arrays (what a JAX or PyTorch user feeds `fit`), with the
contenders that exist there: `keras_kd`, `keras_kd_cached` (the cached
logits as the arrays `TeacherCache.attach` yields), `keras_distillation`,
`student_alone`, and on JAX `keras_kd_unchecked`; on those backends both
distillers run Keras's own step.

    python -m benchmarks.throughput [--rounds 6] [--steps 30] [--pairs mlp conv]
    python -m benchmarks.throughput --backend jax --out benchmarks/throughput_jax.json
"""

import argparse
import json
import os
import subprocess
import sys

# The backend is chosen before Keras is imported.
if "--backend" in sys.argv:
    os.environ["KERAS_BACKEND"] = sys.argv[sys.argv.index("--backend") + 1]
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_kd  # noqa: E402
from benchmarks import common  # noqa: E402

BATCH_SIZE = 256
STEPS_PER_EXECUTION = 1
TEMPERATURE = 4.0
ALPHA = 0.1
LEARNING_RATE = 1e-3
CONTENDERS = (
    "keras_kd",
    "keras_kd_unchecked",
    "keras_kd_fused_adam",
    "keras_kd_cached",
    "keras_distillation",
    "student_alone",
    "hand_written",
    "hand_written_fused_adam",
    "teacher_forward",
)
# The contenders that exist on JAX and PyTorch (`keras_kd_unchecked` differs
# from `keras_kd` on JAX only: PyTorch has no non-finite check to turn off).
PORTABLE_CONTENDERS = ("keras_kd", "keras_kd_cached", "keras_distillation", "student_alone")
JAX_CONTENDERS = PORTABLE_CONTENDERS + ("keras_kd_unchecked",)
RATIOS = [
    ("keras_kd", "keras_distillation"),
    ("keras_kd_unchecked", "keras_distillation"),
    ("keras_kd_fused_adam", "keras_distillation"),
    ("keras_kd", "hand_written"),
    ("keras_kd_fused_adam", "hand_written_fused_adam"),
    ("keras_kd_cached", "student_alone"),
    ("keras_kd", "teacher_forward"),
    ("keras_kd", "keras_kd_unchecked"),
]


def _mlp(units, seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((784,))]
        + [keras.layers.Dense(u, activation="relu") for u in units]
        + [keras.layers.Dense(10)]
    )


def _cnn(filters, dense, seed):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((28, 28, 1))]
    for f in filters:
        layers += [keras.layers.Conv2D(f, 3, activation="relu"), keras.layers.MaxPooling2D()]
    return keras.Sequential(
        layers + [keras.layers.Flatten(), keras.layers.Dense(dense, activation="relu"), keras.layers.Dense(10)]
    )


PAIRS = {
    "mlp": (lambda: _mlp([1200, 1200], 1), lambda: _mlp([800, 800], 2), (784,)),
    "conv": (lambda: _cnn([32, 64], 128, 1), lambda: _cnn([8, 16], 32, 2), (28, 28, 1)),
}


def _examples(shape, steps):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH_SIZE * steps,) + shape).astype("float32")
    y = rng.integers(0, 10, len(x)).astype("int64")
    return tf.data.Dataset.from_tensor_slices((x, y))


def _pipeline(examples):
    return examples.batch(BATCH_SIZE).cache().prefetch(tf.data.AUTOTUNE)


def _loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _fit_runner(model, data):
    model.fit(data, epochs=1, shuffle=False, verbose=0)  # Warm-up.
    return lambda: model.fit(data, epochs=1, shuffle=False, verbose=0)


def _adam():
    """Keras's Adam, the optimizer every contender gets unless said otherwise."""
    return keras.optimizers.Adam(LEARNING_RATE)


def _fused_adam():
    """keras_kd's opt-in `FusedAdam`, with the same settings as `_adam()`."""
    return keras_kd.optimizers.FusedAdam(LEARNING_RATE)


def build(name, pair, steps, skip_nonfinite_steps=True):
    """Returns a function running one timed epoch of contender `name`.

    `skip_nonfinite_steps` is passed to the keras_kd Distillers
    (`keras_kd_unchecked` always gets False).
    """
    if keras.backend.backend() != "tensorflow":
        return build_from_arrays(name, pair, steps)
    make_teacher, make_student, shape = PAIRS[pair]
    teacher, student = make_teacher(), make_student()
    examples = _examples(shape, steps)
    data = _pipeline(examples)
    compile_args = dict(
        optimizer=_fused_adam() if name == "keras_kd_fused_adam" else _adam(),
        loss=_loss(),
        metrics=["accuracy"],
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    if name in ("keras_kd", "keras_kd_unchecked", "keras_kd_fused_adam", "keras_kd_cached"):
        if name == "keras_kd_cached":
            cache = keras_kd.TeacherCache.compute(teacher, examples, verbose=0)
            data = _pipeline(cache.attach(examples))
        distiller = keras_kd.Distiller(
            teacher,
            student,
            temperature=TEMPERATURE,
            alpha=ALPHA,
            skip_nonfinite_steps=skip_nonfinite_steps and name != "keras_kd_unchecked",
        )
        return _fit_runner(distiller.compile(**compile_args), data)
    if name == "keras_distillation":
        distiller = keras.distillation.Distiller(
            teacher,
            student,
            distillation_losses=keras.distillation.LogitsDistillation(
                temperature=TEMPERATURE, loss=keras.losses.KLDivergence()
            ),
            student_loss_weight=ALPHA,
        )
        distiller.compile(**compile_args)
        return _fit_runner(distiller, data)
    if name == "student_alone":
        student.compile(**compile_args)
        return _fit_runner(student, data)
    if name == "hand_written":
        return _hand_written_runner(teacher, student, data, _adam())
    if name == "hand_written_fused_adam":
        return _hand_written_runner(teacher, student, data, _fused_adam())
    if name == "teacher_forward":
        return _teacher_forward_runner(teacher, data)
    raise ValueError(f"Unknown contender: {name!r}")


def build_from_arrays(name, pair, steps):
    """`build` on JAX or PyTorch: the same models and settings, numpy data."""
    make_teacher, make_student, shape = PAIRS[pair]
    teacher, student = make_teacher(), make_student()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH_SIZE * steps,) + shape).astype("float32")
    y = rng.integers(0, 10, len(x)).astype("int32")
    compile_args = dict(optimizer=_adam(), loss=_loss(), metrics=["accuracy"])
    if name in ("keras_kd", "keras_kd_cached", "keras_kd_unchecked"):
        model = keras_kd.Distiller(
            teacher, student, temperature=TEMPERATURE, alpha=ALPHA,
            skip_nonfinite_steps=False if name == "keras_kd_unchecked" else None,
        )
        if name == "keras_kd_cached":
            logits = keras.ops.convert_to_numpy(teacher.predict(x, batch_size=BATCH_SIZE, verbose=0))
            x = {keras_kd.cache.INPUTS_KEY: x, keras_kd.cache.LOGITS_KEY: logits}
    elif name == "keras_distillation":
        model = keras.distillation.Distiller(
            teacher, student,
            distillation_losses=keras.distillation.LogitsDistillation(
                temperature=TEMPERATURE, loss=keras.losses.KLDivergence()
            ),
            student_loss_weight=ALPHA,
        )
    elif name == "student_alone":
        model = student
    else:
        raise ValueError(f"{name!r} runs on TensorFlow only; on {keras.backend.backend()!r}: {PORTABLE_CONTENDERS}")
    model.compile(**compile_args)

    def epoch():
        model.fit(x, y, batch_size=BATCH_SIZE, epochs=1, shuffle=False, verbose=0)

    epoch()  # Warm-up (and compilation).
    return epoch


def same_math_loss(teacher_logits, logits, y, loss_fn):
    """The benchmark's loss written out: alpha * CE + (1 - alpha) * T² * KL."""
    teacher_log_probs = tf.nn.log_softmax(teacher_logits / TEMPERATURE)
    student_log_probs = tf.nn.log_softmax(logits / TEMPERATURE)
    kl = tf.reduce_mean(
        tf.reduce_sum(tf.exp(teacher_log_probs) * (teacher_log_probs - student_log_probs), -1)
    )
    return ALPHA * loss_fn(y, logits) + (1 - ALPHA) * TEMPERATURE**2 * kl


def _hand_written_runner(teacher, student, data, optimizer):
    optimizer.build(student.trainable_variables)
    accuracy = keras.metrics.SparseCategoricalAccuracy()
    loss_fn = _loss()

    @tf.function
    def step(x, y):
        teacher_logits = teacher(x, training=False)
        with tf.GradientTape() as tape:
            logits = student(x, training=True)
            loss = same_math_loss(teacher_logits, logits, y, loss_fn)
        variables = student.trainable_variables
        gradients = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(gradients, variables))
        accuracy.update_state(y, logits)
        return loss

    def epoch():
        accuracy.reset_state()
        for x, y in data:
            step(x, y)
        accuracy.result().numpy()

    epoch()  # Warm-up.
    return epoch


def _teacher_forward_runner(teacher, data):
    forward = tf.function(lambda x: teacher(x, training=False))

    def epoch():
        for x, _ in data:
            logits = forward(x)
        logits.numpy()

    epoch()  # Warm-up.
    return epoch


def peak_memory(name, pair, steps, rounds):
    """Peak RSS (MiB) of a fresh process running contender `name` alone."""
    command = [
        sys.executable, "-m", "benchmarks.throughput", "--memory-of", name,
        "--pairs", pair, "--steps", str(steps), "--rounds", str(rounds),
        "--backend", keras.backend.backend(),
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])["peak_rss_mb"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--pairs", nargs="+", default=list(PAIRS))
    parser.add_argument("--out", default="benchmarks/throughput.json")
    parser.add_argument("--contenders", nargs="+", default=None,
                        help="time only these contenders (default: all on the backend)")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the per-contender peak-memory processes")
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="tensorflow", choices=("tensorflow", "jax", "torch"),
                        help="the Keras backend (default: tensorflow)")
    args = parser.parse_args()

    if args.memory_of:  # Child process: run one contender, report peak memory.
        # The peak is taken from after start-up (imports, data, models),
        # over the warm-up and the timed epochs of this contender alone.
        common.reset_peak_rss()
        run = build(args.memory_of, args.pairs[0], args.steps)
        for _ in range(args.rounds):
            run()
        print(json.dumps({"peak_rss_mb": common.peak_rss_mb()}))
        return

    samples = BATCH_SIZE * args.steps
    contenders = {"tensorflow": CONTENDERS, "jax": JAX_CONTENDERS}.get(args.backend, PORTABLE_CONTENDERS)
    if args.contenders:
        unknown = sorted(set(args.contenders) - set(contenders))
        if unknown:
            parser.error(f"--contenders {unknown} do not run on {args.backend}; choose from {list(contenders)}")
        contenders = tuple(name for name in contenders if name in args.contenders)
    ratio_pairs = [(a, b) for a, b in RATIOS if a in contenders and b in contenders]
    results = {
        "backend": args.backend,
        "machine": common.machine(),
        "batch_size": BATCH_SIZE,
        "steps_per_execution": STEPS_PER_EXECUTION,
        "steps_per_epoch": args.steps,
        "rounds": args.rounds,
        "pairs": {},
    }
    print(f"machine: {results['machine']}, Keras backend {args.backend}")
    print(f"batch {BATCH_SIZE}, steps_per_execution {STEPS_PER_EXECUTION}, "
          f"{args.steps} steps per timed epoch, {args.rounds} interleaved rounds")
    for pair in args.pairs:
        runners = {name: build(name, pair, args.steps) for name in contenders}
        times = common.interleave(runners, args.rounds)
        speeds = {
            name: float(np.median([samples / wall for wall, _ in times[name]])) for name in contenders
        }
        ratios = {
            f"{a} / {b}": {
                "wall": common.ratio_summary(times, a, b, 0),
                "cpu": common.ratio_summary(times, a, b, 1),
            }
            for a, b in ratio_pairs
        }
        memory = {} if args.no_memory else {name: peak_memory(name, pair, args.steps, 2) for name in contenders}
        results["pairs"][pair] = {"samples_per_s": speeds, "ratios": ratios, "peak_rss_mb": memory, "times": times}
        print(f"\n[{pair}] median samples/s (peak RSS of a process running it alone):")
        for name in contenders:
            peak = f"   ({memory[name]:,.1f} MiB)" if name in memory else ""
            print(f"  {name:24s} {speeds[name]:9,.0f}{peak}")
        print(f"[{pair}] speed ratios, median of per-round ratios (min-max):")
        for label, ratio in ratios.items():
            wall, cpu = ratio["wall"], ratio["cpu"]
            print(
                f"  {label:46s} wall {wall['median']:.3f} ({wall['min']:.3f}-{wall['max']:.3f})"
                f"   CPU {cpu['median']:.3f} ({cpu['min']:.3f}-{cpu['max']:.3f})"
            )
        if "keras_kd" not in memory or "keras_distillation" not in memory:
            continue
        peer_memory = memory["keras_distillation"]
        print(f"[{pair}] peak memory keras_kd / keras_distillation: {memory['keras_kd'] / peer_memory:.3f}")
    common.write_json(args.out, results)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
