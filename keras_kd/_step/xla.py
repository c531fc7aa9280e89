"""XLA compilation of the training step: when to use it, and a safe first call."""

import logging
import re
import time
import warnings

from keras_kd._internal.backends import tf


MODES = ("auto", True, False)

logger = logging.getLogger("keras_kd")


def gpu_available():
    """Returns whether TensorFlow sees a GPU."""
    return bool(tf.config.list_physical_devices("GPU"))


def resolve_jit_compile(mode="auto"):
    """Turns an XLA mode into `jit_compile`: `"auto"` means "on a GPU only".

    On CPUs XLA is often slower for small models (see `benchmarks/xla.py`),
    so `"auto"` leaves it off there, as Keras's own `jit_compile="auto"` does.

    Args:
        mode: `"auto"`, `True` or `False`. Defaults to `"auto"`.

    Returns:
        A bool.
    """
    if mode not in MODES or mode in (0, 1) and not isinstance(mode, bool):
        raise ValueError(
            f"Argument `mode` must be one of {MODES}. Received: mode={mode!r}"
        )
    if mode == "auto":
        return gpu_available()
    return bool(mode)


def unsupported_ops(step_function, example_batch):
    """Lowers `step_function(example_batch)` to XLA HLO without running it.

    Args:
        step_function: A function of one batch, e.g. `model.train_step`.
        example_batch: A batch of the structure and dtypes the step gets.

    Returns:
        The names of the ops XLA cannot compile (an empty list when it can),
        and the compiler's message (`None` when it can).
    """
    probe = tf.function(step_function, jit_compile=True)
    try:
        probe.experimental_get_compiler_ir(example_batch)(stage="hlo")
    except (ValueError, tf.errors.OpError) as error:
        message = str(error)
        names = re.findall(r"No registered '(\w+)' OpKernel", message)
        return sorted(set(names)) or ["<unknown op>"], message
    return [], None


def example_batch(iterator):
    """A zero batch shaped like the iterator's elements, or `None`."""
    if not isinstance(iterator, tf.data.Iterator):
        return None
    specs = tf.nest.flatten(iterator.element_spec)
    if not all(isinstance(spec, tf.TensorSpec) for spec in specs):
        return None
    zeros = [
        tf.zeros([d if d is not None else 1 for d in spec.shape], spec.dtype)
        for spec in specs
    ]
    return tf.nest.pack_sequence_as(iterator.element_spec, zeros)


def guarded_function(model, function, step_function, make_function):
    """`function` guarded by `guard_first_call` when `model` compiles with XLA.

    Args:
        model: The model.
        function: The function Keras built (`model.train_function`).
        step_function: The step it runs (`model.train_step`).
        make_function: The model's `make_train_function` (or test twin).

    Returns:
        `function` itself without XLA, else the guarded function.
    """
    if not model.jit_compile or model.run_eagerly:
        return function
    return guard_first_call(
        model, function, step_function, rebuild=lambda: make_function(force=True)
    )


def guard_first_call(model, function, step_function, rebuild):
    """Wraps a jit-compiled Keras function so that XLA cannot kill training.

    On the first call, before any data is consumed, the step is lowered to
    XLA HLO on a batch of the right structure. If an op cannot be compiled,
    it warns once naming the op, sets `model.jit_compile = False`, rebuilds
    the function without XLA (`rebuild`) and runs that instead. Otherwise it
    runs the XLA function and records the first call's duration (compile and
    one step) in `model.xla_first_call_seconds`.

    Args:
        model: The model whose function this is.
        function: The jit-compiled function Keras built (`model.train_function`).
        step_function: The step it runs (`model.train_step`).
        rebuild: Called without arguments after `jit_compile` is turned off;
            returns the function without XLA.

    Returns:
        The guarded function.
    """
    checked = False

    def guarded(iterator):
        nonlocal checked
        if checked:
            return function(iterator)
        checked = True
        if not model.jit_compile:  # Another function of the model fell back.
            return rebuild()(iterator)
        strategy = model.distribute_strategy
        replicas = strategy.num_replicas_in_sync
        if replicas > 1 and not isinstance(strategy, tf.distribute.TPUStrategy):
            # Keras compiles the whole distributed step, which spans devices:
            # TensorFlow cannot XLA-compile that (Mirrored/MultiWorker).
            warnings.warn(
                f"XLA cannot compile the step of {model.name!r} across the "
                f"{replicas} replicas of {type(strategy).__name__} (Keras "
                "compiles the whole distributed step; TensorFlow's XLA needs "
                "all variables on one device). Training goes on without XLA "
                "(jit_compile=False).",
                stacklevel=2,
            )
            model.jit_compile = False
            return rebuild()(iterator)
        batch = example_batch(iterator) if replicas == 1 else None
        if batch is not None:
            names, message = unsupported_ops(step_function, batch)
            if names:
                warnings.warn(
                    f"XLA cannot compile {names} in the step of "
                    f"{model.name!r}; training goes on without XLA "
                    f"(jit_compile=False). XLA said: {message.splitlines()[0]}",
                    stacklevel=2,
                )
                model.jit_compile = False
                return rebuild()(iterator)
        start = time.perf_counter()
        outputs = function(iterator)
        model.xla_first_call_seconds = time.perf_counter() - start
        logger.info(
            "XLA: first call of %r's step (compile and one step) took %.2f s.",
            model.name,
            model.xla_first_call_seconds,
        )
        return outputs

    return guarded


def split_update(model, make_keras_train_function, update):
    """Builds `model`'s train function with the augmentation in the graph and
    the rest of the step (`update`: both passes, loss, update) under XLA.

    Keras's projective transforms (`RandomTranslation`, `RandomRotation`,
    `RandomZoom`) and the mixing layers' Gamma draws have no XLA kernel, so
    compiling the whole step would fail and fall back to no XLA.

    Args:
        model: The model, compiled with `jit_compile=True`.
        make_keras_train_function: Keras's own `make_train_function`.
        update: The step after augmentation, a function of the `StepBatch`.

    Returns:
        The XLA-compiled `update`, which the graph step calls.
    """
    model.jit_compile = False  # Keras builds the outer step as a graph...
    try:
        make_keras_train_function(force=True)
    finally:
        model.jit_compile = True
    return tf.function(update, jit_compile=True, reduce_retracing=True)


def build_train_function(model, make_keras_train_function, update, augmented, unaugmented_step):
    """Builds `model.train_function`, guarded by `guard_first_call` under XLA.

    With augmentation under `jit_compile=True`, the augmentation runs in the
    graph and `update` under XLA (`split_update`); XLA is then probed on
    `unaugmented_step`. Otherwise Keras builds the whole step.

    Args:
        model: The model.
        make_keras_train_function: Keras's own `make_train_function`.
        update: The step after augmentation, a function of the `StepBatch`.
        augmented: Whether training batches are augmented or mixed.
        unaugmented_step: `update` on a raw batch (the XLA probe).

    Returns:
        The XLA-compiled `update` of a split step, else `None`.
    """
    split = augmented and model.jit_compile and not model.run_eagerly
    xla_update = split_update(model, make_keras_train_function, update) if split else None
    if not split:
        make_keras_train_function(force=True)
    probe = unaugmented_step if split else model.train_step
    model.train_function = guarded_function(model, model.train_function, probe, model.make_train_function)
    return xla_update
