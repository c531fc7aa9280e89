"""Learning without Forgetting: a new task's head, the old heads distilled.

Li & Hoiem, "Learning without Forgetting" (ECCV 2016 / TPAMI 2017). A model
trained on task A gets a new head for task B. While it trains on task B's data
alone, each old head's outputs are distilled from a frozen copy of the model
as it was before, so task A needs none of its data. In keras_kd this is a
plain `Distiller`:

- the teacher is the frozen copy, returning every old head's logits;
- the student is the model itself (its own layers, trained in place) with the
  new head added, returning `{"logits": new head, head name: logits, ...}`:
  the loss given to `compile` and the metrics read the new head (`"logits"`),
  and one `KLDivergence` term per old head reads that head in both models.

The loss of a step is

```
loss = 0.5 * CE_new(y, new head)
     + 0.5 * sum_old(weight * T² * KL(softmax(copy_old / T) ‖ softmax(old / T)))
```

that is half the paper's `CE_new + λ · L_old`: its `L_old`, the
cross-entropy of the softened outputs, equals `KL` plus the copy's entropy (a
constant for the student), and it has no `T²`, so the paper's `λ` is
`weight · T²`. The default `old_task_weight=None` is `1 / T²`: the paper's
`λ = 1` at its `T = 2`. The factor 0.5 (the Distiller's `alpha`) scales the
whole loss: Adam's steps barely change with it (only through its epsilon);
with plain SGD, double the learning rate to take the paper's steps. The temperature and each old head's
weight (`"<head>_lwf_weight"`) are live values: schedule them with
`keras_kd.callbacks.LiveValueScheduler`. The paper's warm-up (the new head
alone first) is `keras_kd.callbacks.HeadWarmup`.

Several tasks in sequence (A, then B, then C) repeat the call on the
previous result: `learn_without_forgetting(distiller_ab, head_c)`.
"""

import keras

from keras_kd._internal import keras_internals as internals
from keras_kd._internal import checks
from keras_kd.distiller import Distiller
from keras_kd.losses.kl_divergence import KLDivergence
from keras_kd._step.output_views import LOGITS_ENTRY

__all__ = [
    "learn_without_forgetting",
    "multi_head_model",
    "head_model",
]

PAPER_TEMPERATURE = 2.0
TERM_SUFFIX = "_lwf"
STUDENT_LOSS_WEIGHT = 0.5  # The Distiller's `alpha`: CE and the old terms alike.


def learn_without_forgetting(
    old_model,
    new_head,
    temperature=PAPER_TEMPERATURE,
    old_task_weight=None,
    features=None,
    old_heads=None,
    name="learning_without_forgetting",
    **kwargs,
):
    """Returns a `Distiller` that learns a new task and keeps the old heads.

    Args:
        old_model: The trained model: a Functional or Sequential
            `keras.Model` whose output is one task's logits, or a dict of
            them by head name (`multi_head_model`'s), or the `Distiller` an
            earlier call returned (its tasks are the old ones).
        new_head: A `keras.layers.Layer` (or a `keras.Model`) from the
            features to the new task's logits, e.g.
            `keras.layers.Dense(5, name="task_b")`. Its name names the task.
        temperature: Positive float, `T` of the old heads' terms (a live
            value). Defaults to `2.0`, the paper's.
        old_task_weight: Non-negative float, each old head's term weight in
            keras_kd's `T² · KL` convention (live values
            `"<head>_lwf_weight"`). Defaults to `None`: `1 / T²`, the
            paper's `λ = 1`.
        features: Name of the layer whose output the new head takes.
            Defaults to `None`: the input that the old heads share.
        old_heads: Names of the old heads to keep (each gets a term), or a
            dict `{new name: head name}` that also renames them (a head
            named `"logits"` must be renamed: that key is the new head's).
            Defaults to `None`: all of them.
        name: String, the Distiller's name.
        **kwargs: Other `Distiller` arguments (e.g. `augmentation`,
            `skip_nonfinite_steps`); not `teacher`, `student`, `alpha` or
            `terms`.

    Returns:
        A `keras_kd.Distiller` to `compile` with the new task's loss and
        `fit` on the new task's data. Its student is `old_model`'s own
        layers plus the new head (so `old_model` trains too, as in Keras's
        transfer-learning guide); `multi_head_model(distiller)` returns every
        head by name, for evaluation and export.

    Example:

    ```python
    lwf = keras_kd.learn_without_forgetting(
        model_a, keras.layers.Dense(5, name="task_b")
    )
    lwf.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    lwf.fit(task_b_train, epochs=10,
            callbacks=[keras_kd.callbacks.HeadWarmup(epochs=2)])
    both = keras_kd.multi_head_model(lwf)  # {"task_a": ..., "task_b": ...}
    ```
    """
    for argument in ("teacher", "student", "alpha", "terms"):
        if argument in kwargs:
            raise ValueError(
                f"Argument `{argument}` is set by learn_without_forgetting "
                "(the teacher is the frozen copy, the student the model with "
                "the new head, one term per old head). Received: "
                f"{argument}={kwargs[argument]!r}"
            )
    temperature = checks.check_temperature(temperature)
    if isinstance(old_model, Distiller):
        old_model = multi_head_model(old_model)
    names = _old_heads(old_model, old_heads)  # {head name: name in old_model}
    heads = {name: _as_dict(old_model)[old] for name, old in names.items()}
    features_tensor = _features(old_model, heads, features)
    new_name = _check_new_head(new_head, heads)
    try:
        new_logits = new_head(features_tensor)
    except Exception as error:  # Keras raises several types for a misfit.
        raise ValueError(
            f"Argument `new_head` ({new_name!r}) cannot take the features "
            f"it is given, of shape {tuple(features_tensor.shape)} (the "
            f"output of {_producer(features_tensor).name!r}). Pass a head "
            "that takes that shape, or choose another layer with "
            f"`features=`. The error was: {error}"
        ) from error
    if old_task_weight is None:
        old_task_weight = 1.0 / temperature**2
    inputs = _inputs(old_model)
    student = keras.Model(
        inputs, {LOGITS_ENTRY: new_logits, **heads, new_name: new_logits},
        name=f"{old_model.name}_with_{new_name}",
    )
    copy = keras.models.clone_model(old_model)
    copy.set_weights(old_model.get_weights())
    copied = {name: _as_dict(copy)[old] for name, old in names.items()}
    first = next(iter(copied.values()))
    teacher = keras.Model(
        _inputs(copy), {LOGITS_ENTRY: first, **copied}, name=f"{old_model.name}_frozen_copy"
    )
    terms = [
        KLDivergence(
            weight=old_task_weight, teacher_layer=head, student_layer=head,
            name=f"{head}{TERM_SUFFIX}",
        )
        for head in heads
    ]
    return Distiller(
        teacher, student, temperature=temperature, alpha=STUDENT_LOSS_WEIGHT,
        terms=terms, name=name, **kwargs,
    )


def multi_head_model(distiller, name=None):
    """Every head of a `learn_without_forgetting` student, by name.

    Args:
        distiller: The `Distiller` `learn_without_forgetting` returned (or
            its `student`).
        name: Optional name of the model. Defaults to the student's.

    Returns:
        A Functional `keras.Model` sharing the student's layers, whose output
        is `{head name: logits}` for the old heads and the new one (no
        `"logits"` alias). Export one head with `head_model`.
    """
    student = distiller.student if isinstance(distiller, Distiller) else distiller
    outputs = getattr(student, "output", None)
    if not isinstance(outputs, dict) or LOGITS_ENTRY not in outputs:
        raise ValueError(
            "Argument `distiller` must be a Distiller returned by "
            "learn_without_forgetting, or its student. Received a model whose "
            f"output is {type(outputs).__name__}."
        )
    heads = {k: v for k, v in outputs.items() if k != LOGITS_ENTRY}
    return keras.Model(_inputs(student), heads, name=name or student.name)


def head_model(model, head):
    """One head of a multi-head model, as a single-output model (to export).

    Args:
        model: A model whose output is a dict of heads (`multi_head_model`).
        head: The head's name.

    Returns:
        A Functional `keras.Model` sharing `model`'s layers, whose output is
        that head's logits.
    """
    outputs = model.output
    if not isinstance(outputs, dict) or head not in outputs:
        names = sorted(outputs) if isinstance(outputs, dict) else []
        raise ValueError(
            f"Argument `head` must name one of the model's heads {names}. "
            f"Received: head={head!r}"
        )
    return keras.Model(_inputs(model), outputs[head], name=head)


def _inputs(model):
    inputs = model.inputs
    return inputs[0] if len(inputs) == 1 else inputs


def _as_dict(model):
    """The model's outputs as `{head name: KerasTensor}`."""
    if isinstance(model, keras.Sequential):
        return {model.layers[-1].name: model.outputs[0]}
    output = model.output
    if isinstance(output, dict):
        aliased = any(output.get(LOGITS_ENTRY) is v for k, v in output.items() if k != LOGITS_ENTRY)
        if aliased:  # A `learn_without_forgetting` student: "logits" repeats a head.
            output = {k: v for k, v in output.items() if k != LOGITS_ENTRY}
        return dict(output)
    if isinstance(output, (list, tuple)):
        return dict(zip(model.output_names, output))
    return {_producer(output).name: output}


def _old_heads(model, wanted):
    if not isinstance(model, keras.Model) or not getattr(model, "inputs", None):
        raise ValueError(
            "Argument `old_model` must be a Functional or Sequential "
            "keras.Model (the new head is attached to its graph). Received: "
            f"old_model={model!r}. Rebuild a subclassed model functionally."
        )
    heads = _as_dict(model)
    given = wanted
    if wanted is None:
        wanted = {name: name for name in heads}
    elif isinstance(wanted, str):
        wanted = {wanted: wanted}
    elif not isinstance(wanted, dict):
        wanted = {name: name for name in wanted}
    unknown = [name for name in wanted.values() if name not in heads]
    if unknown or not wanted:
        raise ValueError(
            f"Argument `old_heads` must name heads of `old_model`: "
            f"{sorted(heads)}. Received: old_heads={given!r}"
        )
    if LOGITS_ENTRY in wanted:
        raise ValueError(
            f"The old head is named {LOGITS_ENTRY!r}, which keras_kd keeps for "
            "the head trained on labels. Name it after its task with "
            f"old_heads={{'task_a': {LOGITS_ENTRY!r}}} (a new name for each "
            "head it keeps)."
        )
    return wanted


def _features(model, heads, features):
    if features is not None:
        try:
            return model.get_layer(features).output
        except ValueError as error:
            raise ValueError(
                "Argument `features` must name a layer of `old_model`. "
                f"Received: features={features!r}"
            ) from error
    inputs = {id(_producer(t).input): _producer(t).input for t in heads.values()}
    if len(inputs) != 1:
        raise ValueError(
            "The old heads take different inputs, so the new head's input is "
            "ambiguous: pass `features=` (the name of the layer whose output "
            f"the new head takes). Old heads: {sorted(heads)}"
        )
    return next(iter(inputs.values()))


def _check_new_head(head, old_heads):
    if not isinstance(head, keras.layers.Layer):
        raise ValueError(
            "Argument `new_head` must be a keras.layers.Layer (or a "
            "keras.Model) from the features to the new task's logits, e.g. "
            f"keras.layers.Dense(5, name='task_b'). Received: new_head={head!r}"
        )
    if head.name in old_heads or head.name == LOGITS_ENTRY:
        raise ValueError(
            f"Argument `new_head` must have a name of its own: {head.name!r} is "
            f"taken (old heads: {sorted(old_heads)}; {LOGITS_ENTRY!r} is "
            "reserved). Name it after its task, e.g. name='task_b'."
        )
    return head.name


def _producer(tensor):
    """The layer (or nested model) that produced a KerasTensor."""
    return internals.keras_history(tensor).operation
