"""Memory and time of a causal-LM distillation step at vocabulary scale.

A tiny GPT-2 pair (teacher: 2 blocks of width 64; student: 1 block of width 32;
both tied, so the output projection is the token embedding) with a vocabulary
of 32k, 128k or 256k tokens; batch 1, sequence 2,048; forward KL at T = 2,
alpha = 0.5, Adam. Contenders:

- `chunked`: `keras_kd.Distiller` with its default `chunk_size="auto"` (the
  loss computed chunk by chunk of positions from the final hidden states,
  never holding the logits: keras_kd/_step/chunked_terms.py);
- `full`: the same with `chunk_size=None` (both models' full logits);
- `keras_distillation`: `keras.distillation.Distiller` with
  `LogitsDistillation(temperature=2)` (its KL), `student_loss_weight=0.5`.

Each (backend and compile mode, vocabulary, contender) runs in a process of
its own: TensorFlow as a graph (`jit_compile=False`), TensorFlow under XLA
(`jit_compile=True`), JAX (always XLA). In it: one step to trace and warm up,
then `--steps` timed steps, then the resident memory (RSS) is read (glibc's
malloc told to return freed blocks over 4 MB, and what it holds freed
returned) and the kernel's peak mark reset, then one more step. Memory =
that step's peak RSS minus the RSS before it (on TensorFlow); on JAX, which keeps a compiled step's buffers
allocated from the first step on (its RSS after tracing already holds them),
XLA's own count of the step's temporary memory (`memory_analysis()` of the
compiled train step). Step time = the median step's wall time, reported as a ratio
to `full` with the same flags. A process that passes `--max-memory-gb` is
stopped and recorded as "over the cap" (as is one the system kills): a result,
not hidden.

    python -m benchmarks.lm_memory [--vocabularies 32000 128000 256000] [--steps 3]

Writes benchmarks/lm_memory.json and the table in results/lm_memory.md.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

MODES = {
    "tf_graph": ("tensorflow", False),
    "tf_xla": ("tensorflow", True),
    "jax": ("jax", None),
}
CONTENDERS = ("chunked", "full", "keras_distillation")
SEQUENCE = 2048
TEMPERATURE = 2.0
ALPHA = 0.5
OVER_CAP = 3  # A child's exit status when it passed the memory cap.


def _rss_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def _watch_memory(cap_mb):
    """Stops the process (status OVER_CAP) once its RSS passes `cap_mb`."""

    def watch():
        while True:
            if _rss_mb() > cap_mb:
                print(json.dumps({"status": "over the cap", "cap_gb": cap_mb / 1024}), flush=True)
                os._exit(OVER_CAP)
            time.sleep(0.05)

    threading.Thread(target=watch, daemon=True).start()


def _gpt2(vocabulary, layers, width, seed):
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=vocabulary, num_layers=layers, num_heads=2, hidden_dim=width,
        intermediate_dim=2 * width, max_sequence_length=SEQUENCE, dropout=0.0,
    )
    return keras_hub.models.GPT2CausalLM(backbone, None)


def _distiller(contender, vocabulary):
    import keras
    import keras_kd

    teacher, student = _gpt2(vocabulary, 2, 64, 0), _gpt2(vocabulary, 1, 32, 1)
    if contender == "keras_distillation":
        return keras.distillation.Distiller(
            teacher, student,
            distillation_losses=keras.distillation.LogitsDistillation(temperature=TEMPERATURE),
            student_loss_weight=ALPHA,
        )
    distiller = keras_kd.Distiller(
        teacher, student, temperature=TEMPERATURE, alpha=ALPHA,
        chunk_size="auto" if contender == "chunked" else None,
    )
    if contender == "chunked" and not distiller.chunked:
        raise RuntimeError("the chunked contender did not chunk")
    return distiller


def child(contender, vocabulary, mode, steps, cap_gb):
    """One configuration in this process; prints its result as JSON."""
    import keras
    import numpy as np

    from benchmarks import common

    _watch_memory(cap_gb * 1024)
    distiller = _distiller(contender, vocabulary)
    _, jit = MODES[mode]
    compile_args = {} if jit is None else {"jit_compile": jit}
    distiller.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), **compile_args,
    )
    rng = np.random.default_rng(0)
    ids = rng.integers(0, vocabulary, (1, SEQUENCE + 1)).astype("int32")
    x = {"token_ids": ids[:, :-1], "padding_mask": np.ones((1, SEQUENCE), "int32")}
    y = ids[:, 1:]
    distiller.train_on_batch(x, y)  # Traces (and compiles) the step.
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        distiller.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    after_tracing = _release_freed_memory()
    common.reset_peak_rss()
    distiller.train_on_batch(x, y)  # The step whose memory is measured.
    result = {
        "status": "ok", "after_tracing_mb": after_tracing,
        "rss_step_peak_mb": common.peak_rss_mb() - after_tracing,
        "step_seconds": statistics.median(times), "steps": times,
    }
    if mode == "jax":
        result["xla_temp_mb"] = _jax_step_temp_mb(distiller, x, y)
    result["step_peak_mb"] = result["xla_temp_mb" if mode == "jax" else "rss_step_peak_mb"]
    print(json.dumps(result))


def _release_freed_memory():
    """Makes glibc's malloc return freed blocks over 4 MB to the system from
    now on, and what it holds freed now; returns the resident memory (MB).

    By default it raises its mmap threshold after frees and keeps freed
    blocks of up to 32 MB in the process, so the resident memory would not
    fall after a step and a chunked step would reuse what the earlier steps
    left (not counted). The timed steps run before this, with the default
    allocator (with a 128 KB threshold they ran 3x slower)."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 4 << 20)
    libc.mallopt(m_trim_threshold, 4 << 20)
    libc.malloc_trim(0)
    return _rss_mb()


def _jax_step_temp_mb(model, x, y):
    """The temporary memory of `model`'s compiled JAX train step (XLA's
    buffer assignment; JAX keeps the step's buffers between steps, so the
    resident memory after the first step already holds them)."""
    import jax

    state = model._get_jax_state(  # Keras's own (private) state of a JAX fit.
        trainable_variables=True, non_trainable_variables=True, optimizer_variables=True,
        metrics_variables=True,
    )
    compiled = jax.jit(model.train_step).lower(state, (x, y)).compile()
    return compiled.memory_analysis().temp_size_in_bytes / 2**20


def run_child(contender, vocabulary, mode, steps, cap_gb):
    backend, _ = MODES[mode]
    command = [sys.executable, "-m", "benchmarks.lm_memory", "--child", contender, "--mode", mode,
               "--vocabularies", str(vocabulary), "--steps", str(steps), "--max-memory-gb", str(cap_gb)]
    env = dict(os.environ, KERAS_BACKEND=backend)
    output = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = [line for line in output.stdout.splitlines() if line.startswith("{")]
    if lines:
        return json.loads(lines[-1])
    if output.returncode in (-9, 137):
        return {"status": "killed by the system (out of memory)"}
    return {"status": f"failed (exit {output.returncode}): {output.stderr.strip().splitlines()[-1:]}"}


def _cell(result, reference):
    if result.get("status") != "ok":
        return result["status"], "—", "—"
    memory = f"{result['step_peak_mb']:,.0f} MB"
    ratio = "—"
    if reference.get("status") == "ok":
        memory += f" ({result['step_peak_mb'] / reference['step_peak_mb']:.2f}×)"
        ratio = f"{result['step_seconds'] / reference['step_seconds']:.2f}×"
    return memory, f"{result['step_seconds']:.2f} s", ratio


def table(results):
    """The results as a markdown table: memory and time against `full`."""
    lines = [
        "| mode | vocabulary | contender | step memory (× full) | step time | time × full |",
        "|---|---|---|---|---|---|",
    ]
    for mode, by_vocabulary in results.items():
        for vocabulary, by_contender in by_vocabulary.items():
            for contender, result in by_contender.items():
                cells = _cell(result, by_contender.get("full", {}))
                lines.append(f"| {mode} | {int(vocabulary):,} | {contender} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocabularies", nargs="+", type=int, default=[32_000, 128_000, 256_000])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--contenders", nargs="+", default=list(CONTENDERS), choices=list(CONTENDERS))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--max-memory-gb", type=float, default=18.0)
    parser.add_argument("--out", default="benchmarks/lm_memory.json")
    parser.add_argument("--table", default="results/lm_memory.md")
    parser.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=list(MODES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.vocabularies[0], args.mode, args.steps, args.max_memory_gb)

    from benchmarks import common

    machine = common.machine()
    print(f"machine: {machine}")
    print(f"GPT-2 pair (teacher 2x64, student 1x32), batch 1 x {SEQUENCE} positions, forward KL, "
          f"Adam; {args.steps} timed steps after one traced; memory cap {args.max_memory_gb} GB per process")
    results = {}
    for mode in args.modes:
        for vocabulary in args.vocabularies:
            for contender in args.contenders:
                result = run_child(contender, vocabulary, mode, args.steps, args.max_memory_gb)
                results.setdefault(mode, {}).setdefault(str(vocabulary), {})[contender] = result
                print(f"{mode:9s} {vocabulary:>7,} {contender:19s} {json.dumps(result)}", flush=True)
                common.write_json(args.out, {"machine": machine, "sequence": SEQUENCE, "steps": args.steps,
                                             "max_memory_gb": args.max_memory_gb, "results": results})
    print(table(results))
    _write_table(args.table, machine, args, table(results))


def _write_table(path, machine, args, markdown):
    from keras_kd._internal import files

    header = (
        "# Memory and time of the LM distillation step at vocabulary scale\n\n"
        f"Command: `python -m benchmarks.lm_memory --vocabularies "
        f"{' '.join(map(str, args.vocabularies))} --steps {args.steps}` "
        f"(benchmarks/lm_memory.py; its docstring says what runs). Machine: {machine['cores']} cores, "
        f"{machine['cpu']}, TF {machine['tensorflow']}, Keras {machine['keras']}, no GPU. Memory: peak "
        "resident memory of one step minus the resident memory before it, after the traced and the "
        "timed steps, with freed blocks over 4 MB returned to the system, on TensorFlow; on JAX, XLA's temporary memory of the compiled step (JAX keeps it allocated "
        f"after the first step). Each configuration in its own process, stopped past {args.max_memory_gb} GB.\n\n"
    )
    with files.atomic_write(path, suffix=".md") as temporary:
        with open(temporary, "w") as f:
            f.write(header + markdown + "\n")


if __name__ == "__main__":
    main()
