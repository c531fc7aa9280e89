"""
Title: Distilling a digit classifier with keras_kd
Description: Train a teacher, then distil it into a student 70x smaller, on
scikit-learn's bundled 8x8 handwritten digits (offline, about a minute on a CPU).

Run it with `python examples/quickstart.py` once keras_kd and scikit-learn
are installed (`pip install -e ".[examples]"`).
"""

"""
## Setup
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import keras_kd

SEED = 0
TEACHER_EPOCHS = 40
STUDENT_EPOCHS = 40
BATCH_SIZE = 64
TEMPERATURE = 4.0
ALPHA = 0.5

"""
## The data: 1,797 real 8x8 digit images shipped inside scikit-learn
"""

digits = load_digits()
x = (digits.data / 16.0).astype("float32")
y = digits.target.astype("int64")
x_train, x_test, y_train, y_test = train_test_split(
    x, y, test_size=0.2, stratify=y, random_state=SEED
)

"""
## A teacher and a student, both ending in logits
"""


def mlp(hidden_units, name):
    return keras.Sequential(
        [keras.Input((64,))]
        + [keras.layers.Dense(units, activation="relu") for units in hidden_units]
        + [keras.layers.Dense(10)],
        name=name,
    )


keras.utils.set_random_seed(SEED)
teacher = mlp([256, 256], "teacher")
teacher.compile(
    optimizer="adam",
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
teacher.fit(x_train, y_train, batch_size=BATCH_SIZE, epochs=TEACHER_EPOCHS, verbose=0)

"""
## Distil: labels plus the teacher's softened outputs
"""

student = mlp([16], "student")
distiller = keras_kd.Distiller(teacher, student, temperature=TEMPERATURE, alpha=ALPHA)
distiller.compile(
    optimizer="adam",
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
).fit(
    x_train,
    y_train,
    batch_size=BATCH_SIZE,
    epochs=STUDENT_EPOCHS,
    validation_split=0.1,
    verbose=2,
)

"""
## The student is a plain Keras model
"""


def accuracy(model):
    return float(np.mean(np.argmax(model.predict(x_test, verbose=0), -1) == y_test))


print(f"teacher: {teacher.count_params():>7,} parameters, test accuracy {accuracy(teacher):.3f}")
print(f"student: {distiller.student.count_params():>7,} parameters, test accuracy {accuracy(distiller.student):.3f}")
