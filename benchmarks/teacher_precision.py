"""The teacher's pass in bfloat16 / float16: speed where it pays, and the student it gives.

Speed (both model pairs of `benchmarks.throughput`, the same weights, data,
Keras's Adam, batch 256, T = 4, alpha = 0.1): one epoch each in turn of
keras_kd with `teacher_precision="float32"`, `"bfloat16"` and `"float16"`,
keras.distillation, and the teacher's forward pass alone in float32 and in
bfloat16, for `--rounds` rounds; printed as medians of the per-round ratios
(min–max) by process CPU time.

Accuracy: on scikit-learn's digits (80/20 stratified split, seed 0, 15% of
the training part held out; the earlier main job's split and models), one
teacher, then a student distilled
for `--epochs` epochs with each precision, 3 seeds each;
printed as test accuracy mean ± standard deviation, and the teacher copy's
top-1 agreement with the float32 teacher on the first batch.

    python -m benchmarks.teacher_precision [--rounds 8] [--steps 30] [--epochs 40]
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
from keras_kd._internal import teacher_precision  # noqa: E402

PRECISIONS = ("float32", "bfloat16", "float16")
RATIOS = [
    ("keras_kd_bfloat16", "keras_kd_float32"),
    ("keras_kd_float16", "keras_kd_float32"),
    ("keras_kd_bfloat16", "keras_distillation"),
    ("keras_kd_float32", "keras_distillation"),
    ("teacher_bfloat16", "teacher_float32"),
]


def _speed_contenders(pair, steps):
    make_teacher, make_student, shape = throughput.PAIRS[pair]
    data = throughput._pipeline(throughput._examples(shape, steps))
    contenders = {}
    for precision in PRECISIONS:
        distiller = keras_kd.Distiller(
            make_teacher(), make_student(), temperature=throughput.TEMPERATURE,
            alpha=throughput.ALPHA, teacher_precision=precision,
        )
        distiller.compile(optimizer=throughput._adam(), loss=throughput._loss(), metrics=["accuracy"])
        contenders[f"keras_kd_{precision}"] = throughput._fit_runner(distiller, data)
    contenders["keras_distillation"] = throughput.build("keras_distillation", pair, steps)
    teacher = make_teacher()
    cheap = teacher_precision.inference_copy(teacher, "bfloat16")
    for name, model in (("teacher_float32", teacher), ("teacher_bfloat16", cheap)):
        forward = tf.function(lambda x, model=model: keras.ops.cast(model(x, training=False), "float32"))
        contenders[name] = _forward_runner(forward, data)
    return contenders


def _forward_runner(forward, data):
    def run():
        for x, _ in data:
            forward(x).numpy()

    run()  # Warm-up.
    return run


def speed(pair, rounds, steps):
    times = common.interleave(_speed_contenders(pair, steps), rounds)
    ratios = {}
    print(f"[{pair}] ratio by CPU time, median of {rounds} rounds (min-max):")
    for numerator, denominator in RATIOS:
        summary = common.ratio_summary(times, numerator, denominator, 1)
        ratios[f"{numerator} / {denominator}"] = summary
        print(f"  {numerator} / {denominator}".ljust(48)
              + f"{summary['median']:.3f} ({summary['min']:.3f}-{summary['max']:.3f})")
    return ratios


# The earlier digits main job's teacher, student and training settings.
DIGITS = dict(teacher_units=(256, 256), teacher_epochs=60, student_units=32, temperature=8.0,
              alpha=0.5, batch_size=64, learning_rate=3e-3)


def _digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=0.2, stratify=digits.target, random_state=0
    )
    # 15% of the training split held out (unused here), as the main job did.
    x_fit, _, y_fit, _ = train_test_split(
        x_train, y_train, test_size=0.15, stratify=y_train, random_state=0
    )
    return (x_fit, y_fit), (x_test, y_test)


def _mlp(units, name, dropout=0.0):
    layers = [keras.Input((64,))]
    for width in units:
        layers.append(keras.layers.Dense(width, activation="relu"))
        if dropout:
            layers.append(keras.layers.Dropout(dropout))
    return keras.Sequential(layers + [keras.layers.Dense(10)], name=name)


def _compile_args():
    return dict(
        optimizer=keras.optimizers.Adam(DIGITS["learning_rate"]),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def accuracy(epochs, seeds=3):
    (x_train, y_train), (x_test, y_test) = _digits()
    train = (x_train, y_train)
    keras.utils.set_random_seed(0)
    teacher = _mlp(DIGITS["teacher_units"], "teacher", dropout=0.2)
    teacher.compile(**_compile_args())
    teacher.fit(*train, epochs=DIGITS["teacher_epochs"], batch_size=DIGITS["batch_size"], verbose=0)
    results = {}
    for precision in PRECISIONS:
        scores, agreements = [], []
        for seed in range(seeds):
            keras.utils.set_random_seed(seed)
            student = _mlp((DIGITS["student_units"],), "student")
            distiller = keras_kd.Distiller(
                teacher, student, temperature=DIGITS["temperature"], alpha=DIGITS["alpha"],
                teacher_precision=precision,
            )
            distiller.compile(**_compile_args())
            data = tf.data.Dataset.from_tensor_slices(train).shuffle(len(train[0]), seed=seed)
            distiller.fit(data.batch(DIGITS["batch_size"]), epochs=epochs, verbose=0)
            scores.append(float(np.mean(np.argmax(student.predict(x_test, verbose=0), -1) == y_test)))
            report = distiller.teacher_precision_report
            if report is not None:
                agreements.append(report["top1_agreement"])
        results[precision] = {
            "test_accuracy": scores,
            "mean": float(np.mean(scores)),
            "std": float(np.std(scores)),
            "first_batch_top1_agreement": agreements,
        }
        agreement = f"{min(agreements):.1%}" if agreements else "n/a (the float32 teacher itself)"
        print(f"[digits] {precision:9s} test accuracy {np.mean(scores):.2%} ± {np.std(scores):.2%} "
              f"(seeds {', '.join(f'{s:.2%}' for s in scores)}); first-batch teacher agreement {agreement}")
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--pairs", nargs="+", default=list(throughput.PAIRS))
    args = parser.parse_args()
    machine = common.machine()
    with open("/proc/cpuinfo") as f:
        flags = next((line for line in f if line.startswith("flags")), "").split()
    machine["bf16_instructions"] = [f for f in flags if "bf16" in f or f.startswith("amx")]
    print("machine:", machine)
    payload = {"machine": machine, "args": vars(args), "speed": {}, "accuracy": None}
    for pair in args.pairs:
        payload["speed"][pair] = speed(pair, args.rounds, args.steps)
    payload["accuracy"] = accuracy(args.epochs)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "teacher_precision.json")
    common.write_json(path, payload)
    print(f"wrote {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
