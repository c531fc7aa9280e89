"""Shared helpers for the benchmarks: interleaved timing and ratio summaries.

Absolute speeds on shared machines are noisy; only ratios measured within one
interleaved run (A B A B ...) are claims.
"""

import json
import os
import platform
import resource
import statistics
import time

import tensorflow as tf


def machine():
    """A description of the machine: cores, CPU model, TF and Keras versions."""
    import keras

    model = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def timed(function):
    """Runs `function()`; returns (wall seconds, process CPU seconds)."""
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - wall, time.process_time() - cpu


def interleave(contenders, rounds):
    """Times each contender once per round, in turn (A B C A B C ...).

    Args:
        contenders: Dict name -> function running one timed unit of work.
        rounds: Int, how many rounds.

    Returns:
        Dict name -> list of (wall, cpu) seconds, one per round.
    """
    times = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, function in contenders.items():
            times[name].append(timed(function))
    return times


def ratio_summary(times, numerator, denominator, index):
    """Median and min-max of the per-round ratios times[denominator] / times[numerator].

    A ratio above 1 means `numerator` is faster (it took less time).
    """
    ratios = [d[index] / n[index] for n, d in zip(times[numerator], times[denominator])]
    return {
        "median": statistics.median(ratios),
        "min": min(ratios),
        "max": max(ratios),
    }


def peak_rss_mb():
    """Peak resident memory of this process, in MiB (Linux), since the last
    `reset_peak_rss()` (or since the process started)."""
    try:
        with open("/proc/self/status") as f:
            line = next(line for line in f if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss():
    """Resets the kernel's peak-RSS mark to the current RSS (Linux >= 4.0).

    Returns:
        Whether the reset worked (if not, `peak_rss_mb` counts from start-up,
        which includes TensorFlow's own import-time peak).
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def write_json(path, payload):
    """Writes `payload` as JSON atomically (`keras_kd._internal.files.atomic_write`)."""
    from keras_kd._internal import files  # Here: before_after.py runs older keras_kd.

    with files.atomic_write(path, suffix=".json") as temporary:
        with open(temporary, "w") as f:
            json.dump(payload, f, indent=2)
