"""The main job: a phone-sized student, from scratch and distilled, side by side.

`python -m keras_kd demo` runs offline on the embedded Fashion-MNIST subset
(`keras_kd/demo_data/`: 10,000 training, 2,000 validation and 5,000 test
images) and its shipped teacher, an ensemble of two 288,682-parameter CNNs
trained on the 10,000 training images by `--train-teacher` (seeds 0 and 1).
The students get 2,000 of those images (200 per class,
`Setting.labeled_per_class`): the job a distiller is for, a user with less
labeled data than the teacher was trained on.

1. "phone-sized" is fixed before anything is trained: at most
   `MAX_PARAMETERS` parameters and `MAX_LATENCY_MS` ms per image in LiteRT
   (float32, batch 1, one thread);
2. for each seed, the student is trained from scratch (with the augmentation
   or without: whichever the selection found better on validation,
   `Setting.scratch_augmentation`) and distilled from the teachers' logits
   on replayed augmented views (their mixture is the soft target), at equal
   epochs with the same optimizer;
3. the distilled student is compared with the scratch one on the test
   split, image by image (each image's correctness averaged over the
   seeds), with McNemar's exact test (`keras_kd.mcnemar_test`);
4. the distilled student of the first seed is exported to int8 TFLite and
   evaluated in LiteRT.

It prints one line per trained model, a table, the verdict, and writes the
table (`results.md`), the validation curves (`learning_curves.png`) and the
int8 student. `--select` runs instead the validation search that chose the
setting (`SELECTION_GRID`); the test split is not read there.

The package's modules:

- `settings`: the `Setting`, `DEFAULT`, `SELECTION_GRID`, the data's paths
  and the caps of "phone-sized";
- `data`: the embedded images (`load`) and the students' share of them;
- `models`: the teacher, the student, the augmentation, `score_on`;
- `training`: the teacher's, the scratch and the distilled students'
  trainings, and keras.distillation's;
- `report`: the table, the verdict, `results.md`, the selection's table;
- `job`: `run` and `select`, the orchestrations.

No library module imports this package (`tests/test_architecture.py`);
`keras_kd/__main__.py` is its command line.
"""

from keras_kd._internal import optional as _optional

# What `pip install keras-kd[demo]` installs: TensorFlow, LiteRT, matplotlib.
# Checked before any of the modules below imports TensorFlow.
_optional.require_extra("demo", "`keras_kd.demo`")

from keras_kd.demo.data import load  # noqa: E402
from keras_kd.demo.data import student_training_data  # noqa: E402
from keras_kd.demo.data import teacher_training_data  # noqa: E402
from keras_kd.demo.job import run  # noqa: E402
from keras_kd.demo.job import select  # noqa: E402
from keras_kd.demo.models import augmentation  # noqa: E402
from keras_kd.demo.models import ensemble  # noqa: E402
from keras_kd.demo.models import load_teachers  # noqa: E402
from keras_kd.demo.models import score_on  # noqa: E402
from keras_kd.demo.models import student_model  # noqa: E402
from keras_kd.demo.models import teacher_model  # noqa: E402
from keras_kd.demo.settings import CLASSES  # noqa: E402
from keras_kd.demo.settings import DATA_DIR  # noqa: E402
from keras_kd.demo.settings import DATA_PATH  # noqa: E402
from keras_kd.demo.settings import DEFAULT  # noqa: E402
from keras_kd.demo.settings import MAX_LATENCY_MS  # noqa: E402
from keras_kd.demo.settings import MAX_PARAMETERS  # noqa: E402
from keras_kd.demo.settings import SELECTION_GRID  # noqa: E402
from keras_kd.demo.settings import SELECTION_TEACHER_PATHS  # noqa: E402
from keras_kd.demo.settings import TEACHER_PATHS  # noqa: E402
from keras_kd.demo.settings import TEACHER_RECIPE  # noqa: E402
from keras_kd.demo.settings import VALIDATION_FREQ  # noqa: E402
from keras_kd.demo.settings import Setting  # noqa: E402
from keras_kd.demo.training import teacher_outputs  # noqa: E402
from keras_kd.demo.training import train_distilled  # noqa: E402
from keras_kd.demo.training import train_scratch  # noqa: E402
from keras_kd.demo.training import train_teacher  # noqa: E402
from keras_kd.demo.training import train_with_keras_distillation  # noqa: E402

__all__ = [
    # The job and the selection.
    "run", "select", "Setting", "DEFAULT", "SELECTION_GRID",
    # The data.
    "load", "student_training_data", "teacher_training_data",
    "DATA_DIR", "DATA_PATH", "TEACHER_PATHS", "SELECTION_TEACHER_PATHS", "CLASSES",
    # The models and their trainings.
    "augmentation", "teacher_model", "student_model", "load_teachers", "ensemble", "score_on",
    "train_teacher", "train_scratch", "teacher_outputs", "train_distilled", "train_with_keras_distillation",
    # The constants.
    "MAX_PARAMETERS", "MAX_LATENCY_MS", "VALIDATION_FREQ", "TEACHER_RECIPE",
]
