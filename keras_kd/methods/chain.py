"""Teacher-assistant chains: distil stage by stage, resumable."""

import dataclasses
import json
import os

import keras

from keras_kd.deployment import evaluation
from keras_kd._internal import files
from keras_kd.distiller import Distiller

__all__ = [
    "ChainResult",
    "distill_chain",
]


@dataclasses.dataclass
class ChainResult:
    """What `distill_chain` returns.

    Attributes:
        histories: One History dict per stage (stage 1 distils `models[1]`
            from `models[0]`, ...), read back from disk for stages finished
            by an earlier run.
        report: The `EvaluationReport` of every model of the chain on the
            test data (`None` without test data).
    """

    histories: list
    report: object = None


def distill_chain(
    models,
    train_data,
    workdir,
    epochs,
    compile_kwargs=None,
    distiller_kwargs=None,
    callbacks=None,
    validation_data=None,
    test_data=None,
    verbose=0,
):
    """Distils a chain teacher → assistant(s) → student, one stage at a time.

    Multi-level distillation (teacher assistants, Mirzadeh et al. 2020):
    stage `i` trains `models[i]` as the student of `models[i - 1]`, which is
    frozen for that stage; every stage uses the same `Distiller` arguments,
    compile settings, callbacks and number of epochs. After each stage the
    student's weights and its History are saved in `workdir` (atomically);
    running the same call again — after an interruption, say — loads the
    finished stages and resumes at the first unfinished one.

    Args:
        models: List of at least two `keras.Model`s that output logits: the
            trained teacher first, then the assistants, the final student last.
            Their names must be unique (the saved files are named after them).
        train_data: The training data: a `tf.data.Dataset` of batches, or a
            `(x, y)` tuple of arrays.
        workdir: Folder for the finished stages (created if missing).
        epochs: Int, epochs per stage.
        compile_kwargs: Dict for `Distiller.compile` (`optimizer`, `loss`,
            `metrics`, ...). An optimizer *object* is cloned from its config
            for each stage. Defaults to `None` (Adam, no student loss).
        distiller_kwargs: Dict for `Distiller` (`temperature`, `alpha`,
            `terms`, ...). Terms are cloned per stage. Defaults to `None`.
        callbacks: A list of callbacks, or a function `stage -> list`
            (stages count from 1), used at every stage. Defaults to `None`.
        validation_data: Optional, as in `fit`. Defaults to `None`.
        test_data: Optional `(x, y)` arrays: every model of the chain is then
            evaluated (`keras_kd.evaluate_models`). Defaults to `None`.
        verbose: As in `fit`. Defaults to `0`.

    Returns:
        A `ChainResult`.

    Example:

    ```python
    result = keras_kd.distill_chain(
        [teacher, assistant, student], train_ds, "chain_run", epochs=10,
        compile_kwargs={"optimizer": "adam", "loss": sparse_ce},
        distiller_kwargs={"temperature": 4.0, "alpha": 0.3},
        test_data=(x_test, y_test),
    )
    print(result.report)
    ```
    """
    models = list(models)
    if len(models) < 2:
        raise ValueError(
            "Argument `models` needs a teacher and at least one student. "
            f"Received {len(models)} model(s)."
        )
    names = [model.name for model in models]
    if len(set(names)) != len(names):
        raise ValueError(
            f"The models of a chain need unique names (files are named after "
            f"them). Received: {names}"
        )
    os.makedirs(workdir, exist_ok=True)
    compile_kwargs = dict(compile_kwargs or {})
    distiller_kwargs = dict(distiller_kwargs or {})
    histories = []
    for stage in range(1, len(models)):
        teacher, student = models[stage - 1], models[stage]
        weights_path = os.path.join(workdir, f"stage{stage}_{student.name}.weights.h5")
        history_path = os.path.join(workdir, f"stage{stage}_{student.name}.history.json")
        if os.path.exists(weights_path) and os.path.exists(history_path):
            student.load_weights(weights_path)
            with open(history_path) as f:
                histories.append(json.load(f))
            continue
        distiller = Distiller(teacher, student, **_fresh(distiller_kwargs))
        distiller.compile(**_fresh(compile_kwargs))
        stage_callbacks = callbacks(stage) if callable(callbacks) else list(callbacks or [])
        history = distiller.fit(
            *(train_data if isinstance(train_data, tuple) else (train_data,)),
            epochs=epochs,
            validation_data=validation_data,
            callbacks=stage_callbacks,
            verbose=verbose,
        ).history
        history = {key: [float(v) for v in values] for key, values in history.items()}
        # Weights first, History last: a stage counts as done only with both.
        with files.atomic_write(weights_path, suffix=".weights.h5") as temporary:
            student.save_weights(temporary)
        files.write_json(history_path, history)
        histories.append(history)
    report = None
    if test_data is not None:
        report = evaluation.evaluate_models({model.name: model for model in models}, test_data)
    return ChainResult(histories, report)


def _fresh(kwargs):
    """Clones optimizers and terms so that no stage reuses another's state."""
    fresh = {}
    for key, value in kwargs.items():
        if isinstance(value, keras.optimizers.Optimizer):
            value = keras.optimizers.deserialize(keras.optimizers.serialize(value))
        elif key == "terms":
            items = value if isinstance(value, (list, tuple)) else [value]
            value = [type(t).from_config(t.get_config()) for t in items]
        fresh[key] = value
    return fresh
