"""What the main job trains and where it reads: the `Setting`, its default,
the selection's grid, the embedded data's paths, the caps of "phone-sized",
and the names of the job's trainings.

Nothing here trains or imports TensorFlow.
"""

import dataclasses
import os

# The embedded data, `keras_kd/demo_data/` (a folder of the package, beside
# this subpackage).
DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "demo_data")
DATA_PATH = os.path.join(DATA_DIR, "fashion_mnist_subset.npz")
# The teacher: an ensemble of these CNNs (`teacher_model`), each trained by
# `train_teacher` with its own seed.
TEACHER_PATHS = tuple(
    os.path.join(DATA_DIR, f"fashion_teacher_{seed}.weights.h5") for seed in (0, 1)
)
# The selection also tried a third teacher (seed 2) in the ensemble.
SELECTION_TEACHER_PATHS = TEACHER_PATHS + (os.path.join(DATA_DIR, "fashion_teacher_2.weights.h5"),)
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

# "Phone-sized", fixed before any search.
MAX_PARAMETERS = 20_000
MAX_LATENCY_MS = 0.3

# The job's trainings, as its table and the selection's name them.
DISTILLED = "distilled"
KERAS_DISTILLATION = "distilled by keras.distillation"
SCRATCH = {True: "scratch, augmented", False: "scratch, no augmentation"}


@dataclasses.dataclass(frozen=True)
class Setting:
    """What the demo trains. The defaults were chosen with `--select`.

    Attributes:
        student_filters: The student CNN's two convolution widths.
        epochs: Student epochs (scratch and distilled alike).
        batch_size: Student batch size.
        learning_rate: Adam's initial learning rate (cosine decay to 0) for
            the distilled student.
        scratch_learning_rate: The same for the scratch student without
            augmentation (each gets its best rate on validation).
        augmented_learning_rate: The same for the scratch student with the
            augmentation.
        temperature: The distillation temperature `T`.
        alpha: The weight of the label loss (the rest goes to `T² · KL`).
        views: `0`: the teacher's logits on the training images, cached
            (`TeacherCache`); `K > 0`: on `K` augmented views of each image
            (`ReplayCache`, consistent augmentation).
        translation: The augmented scratch student's `RandomTranslation`
            factor (with a horizontal `RandomFlip`).
        view_translation: The same for the distilled student's `views`.
        scratch_augmentation: Which scratch student the job trains: the
            augmented one (`True`) or the other; the selection chose it on
            validation, the better of the two under the same search budget.
        labeled_per_class: The student's labeled training images per class:
            the first of each class in the embedded (shuffled) training
            split, or `None` for all 1,000 (`student_training_data`). The
            teacher was trained on all of them.
    """

    student_filters: tuple = (8, 16)
    epochs: int = 150
    batch_size: int = 128
    learning_rate: float = 0.02
    scratch_learning_rate: float = 0.003
    augmented_learning_rate: float = 0.02
    temperature: float = 8.0
    alpha: float = 0.1
    views: int = 20
    translation: float = 0.1
    view_translation: float = 0.05
    scratch_augmentation: bool = True
    labeled_per_class: int = 200


DEFAULT = Setting()
# The same search budget for both: 10 settings each, every one trained for
# the same epochs at each seed on the same 2,000 labeled images, scored on
# the validation split (results/demo_selection.md).
SELECTION_GRID = {
    # (learning rate, augmentation): None, or the translation factor (with a flip).
    "scratch": (
        (0.003, None), (0.006, None), (0.01, None), (0.02, None),
        (0.003, 0.05), (0.01, 0.05), (0.02, 0.05),
        (0.003, 0.1), (0.01, 0.1), (0.02, 0.1),
    ),
    # (learning rate, T, alpha, views, translation of the views, teachers):
    # views 0 caches the logits on the training images (no augmentation).
    "distilled": (
        (0.02, 8.0, 0.5, 0, None, 2), (0.01, 8.0, 0.5, 0, None, 2), (0.03, 8.0, 0.5, 0, None, 2),
        (0.01, 4.0, 0.5, 0, None, 2), (0.02, 4.0, 0.1, 0, None, 2), (0.02, 8.0, 0.1, 0, None, 2),
        (0.02, 16.0, 0.5, 0, None, 2),
        (0.01, 4.0, 0.5, 20, 0.1, 2), (0.02, 8.0, 0.5, 20, 0.05, 2), (0.02, 8.0, 0.1, 20, 0.05, 2),
    ),
}
# Students are validated every few epochs (for the curves), not every one: it
# is cheap per epoch and not in total.
VALIDATION_FREQ = 15
TEACHER_RECIPE = dict(epochs=40, batch_size=128, learning_rate=2e-3)


def scratch_method(setting):
    """The name of the scratch student `setting` trains: the variant (with
    the augmentation or without) that the selection chose on validation,
    never on test."""
    return SCRATCH[setting.scratch_augmentation]


def validation_freq(setting):
    """`VALIDATION_FREQ` where it divides the epochs (the last epoch is then
    validated), else every epoch."""
    return VALIDATION_FREQ if setting.epochs % VALIDATION_FREQ == 0 else 1
