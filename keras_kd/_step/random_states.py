"""Saving the random-number states Keras leaves out of a model's weights.

Dropout and other random layers keep a seed-generator state that
`save_weights` and `.keras` files do not hold. The Distiller saves these
states with its own variables, so a run restored from a checkpoint (e.g. by
`keras.callbacks.BackupAndRestore`) draws the same dropout masks as an
uninterrupted one.
"""

PREFIX = "random_state_"


def random_states(layers):
    """The variables of `layers` that are not among their weights."""
    states = []
    for layer in layers:
        weights = {id(w) for w in layer.weights}
        states += [v for v in layer.variables if id(v) not in weights]
    return states


def add_to_store(states, store):
    """Writes `states` into a Keras variable `store`."""
    for index, state in enumerate(states):
        store[f"{PREFIX}{index}"] = state


def split(store):
    """`(store without the states, {key: value} of the states)`."""
    keys = list(store.keys())
    own = {k: store[k] for k in keys if not k.startswith(PREFIX)}
    return own, {k: store[k] for k in keys if k.startswith(PREFIX)}


def assign_saved(states, saved):
    """Assigns the saved values to `states` (files of older versions lack them)."""
    for index, state in enumerate(states):
        if f"{PREFIX}{index}" in saved:
            state.assign(saved[f"{PREFIX}{index}"])


def of_distiller(distiller):
    """A Distiller's random states: the student's and terms' seed states,
    then every variable of its augmentation layers (not tracked as its
    sublayers). In this order, so that files saved before augmentation
    existed load their states at the same indices."""
    states = random_states([distiller.student] + list(distiller.terms))
    layers = distiller._augmentation.random_layers
    return states + [v for layer in layers for v in layer.variables]
