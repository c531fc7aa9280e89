"""Consistent augmentation: one random view of each batch, for both models.

Beyer et al. (2022, "Knowledge distillation: A good teacher is patient and
consistent") show that a student learns the teacher's function best when both
see the *same* augmented view of each image, freshly drawn at every step
("function matching"); mixing images (mixup, cutmix) makes yet more views.
`Distiller(..., augmentation=..., mixing=...)` does this with Keras's own
augmentation layers:

- each Keras image augmentation layer (`RandomTranslation`, `RandomFlip`,
  `RandomRotation`, `RandomZoom`, ...) is split into its two public halves,
  `get_random_transformation` (the draw) and `transform_images` (applying
  it), so a view can be drawn once, applied once, and replayed later from the
  drawn numbers (`keras_kd.ReplayCache`);
- under `tf.distribute`, each replica folds its replica id into the layer's
  seed, so every replica's examples get their own draws; with one device the
  draws are exactly the layer's own (`layer(x, training=True)`);
- the draws come from the layers' own `SeedGenerator`s, which the Distiller
  saves with its weights: a restored run draws the same views;
- on JAX and PyTorch the same code runs inside Keras's own step (the view is
  drawn in the Distiller's `call`); on JAX the seeds are part of the step's
  state, and under `keras.distribution.DataParallel` one step draws for the
  whole global batch, one transformation per example.

Any other callable `x -> x` (a `keras.Sequential` with other layers, a
function) is applied as it is: its randomness, and under `tf.distribute` its
per-replica draws, are its own.
"""

import collections

import keras
from keras import ops
from keras_kd._internal import backends
from keras_kd._internal.backends import tf

__all__ = [
    "ConsistentAugmentation",
    "Mix",
    "is_image_augmentation",
]

# Keras's mixing layers and the name of the argument `mixing_strength` sets.
MIXING_LAYERS = {"mixup": (keras.layers.MixUp, "alpha"), "cutmix": (keras.layers.CutMix, "factor")}
# Each replica adds `replica_id * _REPLICA_STRIDE` to the first seed word.
_REPLICA_STRIDE = 1_000_003


def is_image_augmentation(layer):
    """Whether `layer` is a Keras augmentation layer with a drawable transformation."""
    return isinstance(layer, keras.layers.Layer) and all(
        hasattr(layer, name) for name in ("get_random_transformation", "transform_images", "generator")
    )


def _is_deterministic(layer):
    """Whether `layer` draws nothing (e.g. `Rescaling`, an adapted
    `Normalization`): every variable it has is a weight, none a seed state."""
    weights = {id(w) for w in layer.weights}
    return isinstance(layer, keras.layers.Layer) and all(id(v) in weights for v in layer.variables)


def _augmentation_layers(augmentation):
    """The layers `augmentation` consists of, when each is a Keras augmentation
    layer or draws nothing; else `None` (an opaque callable)."""
    if is_image_augmentation(augmentation):
        return [augmentation]
    if isinstance(augmentation, keras.Sequential):
        layers = augmentation.layers
        if any(is_image_augmentation(layer) for layer in layers) and all(
            is_image_augmentation(layer) or _is_deterministic(layer) for layer in layers
        ):
            return list(layers)
    return None


def _mixing_layer(mixing, strength):
    """`mixing` (a name or a Keras MixUp/CutMix layer) as a layer, or `None`."""
    if mixing is None:
        if strength is not None:
            raise ValueError(
                "Argument `mixing_strength` needs `mixing` ('mixup' or "
                f"'cutmix'). Received: mixing=None, mixing_strength={strength!r}"
            )
        return None
    layer_types = tuple(layer for layer, _ in MIXING_LAYERS.values())
    if isinstance(mixing, layer_types):
        if strength is not None:
            raise ValueError(
                "Argument `mixing_strength` is for mixing='mixup'/'cutmix'; "
                f"the layer {mixing.name!r} has its own. Received: "
                f"mixing_strength={strength!r}"
            )
        return mixing
    if mixing not in MIXING_LAYERS:
        raise ValueError(
            f"Argument `mixing` must be one of {tuple(MIXING_LAYERS)}, a "
            "keras.layers.MixUp or a keras.layers.CutMix. Received: "
            f"mixing={mixing!r}"
        )
    layer, argument = MIXING_LAYERS[mixing]
    if strength is None:
        return layer()
    top = 1.0 if mixing == "cutmix" else float("inf")
    if not isinstance(strength, (int, float)) or isinstance(strength, bool) or not 0 < strength <= top:
        bound = "in (0, 1] for 'cutmix' (Keras's CutMix `factor`)" if mixing == "cutmix" else "> 0"
        raise ValueError(
            f"Argument `mixing_strength` must be {bound}. Received: mixing_strength={strength!r}"
        )
    return layer(**{argument: float(strength)})


class _ReplicaSeed(keras.random.SeedGenerator):
    """A layer's `SeedGenerator`, with the replica id folded into its seeds.

    Draws advance the layer's own generator (whose state is saved); replica
    `r` adds `r * _REPLICA_STRIDE` to the first seed word. Builds no variable.
    """

    def __init__(self, generator, replica_id):  # pylint: disable=super-init-not-called
        self.generator = generator
        self.replica_id = replica_id
        self.name = generator.name
        self.backend = generator.backend
        self.state = generator.state

    def next(self, ordered=True):
        seed = self.generator.next(ordered=ordered)
        if isinstance(self.replica_id, int) and self.replica_id == 0:
            return seed
        offset = ops.cast(self.replica_id, seed.dtype) * _REPLICA_STRIDE
        return seed + ops.stack([offset, ops.zeros_like(offset)])


def _replica_id():
    """This replica's id: a Python 0 outside `tf.distribute` replicas (on
    JAX, `keras.distribution` runs one step over the global batch, whose
    examples each get their own draw)."""
    if not backends.is_tensorflow():
        return 0
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return 0
    return context.replica_id_in_sync_group


def _seed(layer):
    replica_id = _replica_id()
    return layer.generator if isinstance(replica_id, int) and replica_id == 0 else _ReplicaSeed(
        layer.generator, replica_id
    )


class Mix(collections.namedtuple("Mix", ["weight", "partner"])):
    """How a batch was mixed: example `i` is `weight[i]` of itself and
    `1 - weight[i]` of example `partner[i]` (a named tuple, so it passes
    through `tf.function`s).

    Attributes:
        weight: Float32 tensor of shape `(batch,)`.
        partner: Int tensor of shape `(batch,)`.
    """


class ConsistentAugmentation:
    """The user's augmentation (and mixing), drawn once per batch.

    Args:
        augmentation: Keras augmentation layers (one, or a `keras.Sequential`
            of them), any callable `x -> x`, or `None`.
        mixing: `None`, `"mixup"`, `"cutmix"`, or a `keras.layers.MixUp` /
            `keras.layers.CutMix` layer.
        mixing_strength: Optional float, how strongly images are mixed
            (named so as not to be confused with the Distiller's `alpha`):
            for mixup, the concentration `a > 0` of the `Beta(a, a)`
            distribution of the mixing weight (Keras's MixUp `alpha`); for
            cutmix, a value in (0, 1]: each batch draws the concentration
            uniformly from `[0, mixing_strength]` (Keras's CutMix `factor`).
            Defaults to `None` (Keras's defaults, 0.2 and 1.0).
    """

    def __init__(self, augmentation=None, mixing=None, mixing_strength=None):
        if augmentation is not None and not callable(augmentation):
            raise ValueError(
                "Argument `augmentation` must be Keras augmentation layers "
                "(e.g. keras.Sequential([keras.layers.RandomTranslation(0.1, "
                "0.1), keras.layers.RandomFlip('horizontal')])) or a callable "
                "x -> x. Received: "
                f"augmentation={augmentation!r} of type {type(augmentation).__name__}"
            )
        self.augmentation = augmentation
        self.layers = _augmentation_layers(augmentation) if augmentation is not None else []
        for layer in self.layers or []:
            _refuse_mixing_inside(layer)
        if isinstance(augmentation, keras.Sequential) and self.layers is None:
            for layer in augmentation.layers:
                _refuse_mixing_inside(layer)
        self.mixing = _mixing_layer(mixing, mixing_strength)

    @property
    def enabled(self):
        """Whether training batches are augmented or mixed at all."""
        return self.augmentation is not None or self.mixing is not None

    @property
    def random_layers(self):
        """The layers the Distiller saves every variable of (they are not
        tracked as its sublayers): their seed states, and the weights of
        layers that draw nothing (e.g. an adapted `Normalization`)."""
        layers = []
        if isinstance(self.augmentation, keras.layers.Layer):
            layers.append(self.augmentation)
        if self.mixing is not None:
            layers.append(self.mixing)
        return layers

    def view(self, x):
        """Augments the batch `x` once.

        Args:
            x: The batch of images.

        Returns:
            `(view, transformations)`: the augmented batch, and the list of
            what each layer drew (`None` for a layer that draws nothing), or
            `None` for another callable.
        """
        if self.layers is None:
            if isinstance(self.augmentation, keras.layers.Layer):
                return self.augmentation(x, training=True), None
            return self.augmentation(x), None
        transformations = []
        for layer in self.layers:
            if not is_image_augmentation(layer):  # Draws nothing: applied as it is.
                transformations.append(None)
                x = layer(x)
                continue
            transformation = layer.get_random_transformation(x, training=True, seed=_seed(layer))
            transformations.append(transformation)
            x = layer.transform_images(x, transformation, training=True)
        return x, transformations

    def mix(self, x):
        """Mixes the batch `x` with a permutation of itself.

        Args:
            x: The (augmented) batch of images.

        Returns:
            `(mixed images, Mix)`, or `(x, None)` without mixing.
        """
        if self.mixing is None:
            return x, None
        transformation = self.mixing.get_random_transformation(
            x, training=True, seed=_seed(self.mixing)
        )
        mixed = self.mixing.transform_images(x, transformation, training=True)
        if "batch_masks" in transformation:
            # CutMix: the share of pixels kept, counted on the mask (Keras's
            # own weight comes from the box before it is cut to whole pixels).
            pasted = ops.cast(transformation["batch_masks"], "float32")
            weight = 1.0 - ops.mean(ops.reshape(pasted, (ops.shape(pasted)[0], -1)), axis=-1)
        else:
            weight = ops.reshape(ops.cast(transformation["mix_weight"], "float32"), (-1,))
        return ops.cast(mixed, x.dtype), Mix(weight, transformation["permutation_order"])

    def get_config(self):
        serialize = keras.saving.serialize_keras_object
        return {
            "augmentation": None if self.augmentation is None else serialize(self.augmentation),
            "mixing": None if self.mixing is None else serialize(self.mixing),
        }


def _refuse_mixing_inside(layer):
    if isinstance(layer, tuple(layer_type for layer_type, _ in MIXING_LAYERS.values())):
        raise ValueError(
            f"Argument `augmentation` holds the mixing layer {layer.name!r}: "
            "alone it would mix the images but not the labels. Pass it as "
            "`mixing=` (or mixing='mixup'/'cutmix') instead: the student loss "
            "then mixes the labels' losses with the same weights."
        )

