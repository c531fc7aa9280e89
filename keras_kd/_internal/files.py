"""Writing files atomically: a temporary file in the same folder, then a rename.

Every file keras_kd writes goes through `atomic_write`: a reader sees the
previous file or the new one, whole, never a part of one, and a writer that
fails (or is interrupted) leaves the folder as it was.
"""

import contextlib
import json
import os
import re
import tempfile


@contextlib.contextmanager
def atomic_write(path, suffix=""):
    """Writes `path` atomically: yields a temporary path to write to.

    The temporary file is created empty in the folder of `path` (a rename
    within one file system is atomic), named
    `.{name}.{pid}.{random}.tmp{suffix}`. Temporaries that dead processes
    left for the same `path` and `suffix` (a process killed mid-write cannot
    remove its own) are removed first.

    When the body finishes, the temporary gets the permissions of a file
    created normally (0o666 minus the process umask, like one written with
    `open(path, "w")`, not `mkstemp`'s 0o600) and replaces `path`. When the
    body raises (any exception, also `KeyboardInterrupt`), the temporary is
    removed, `path` is left untouched and the exception propagates.

    The body writes to the yielded path itself: `open(temporary, "w")`,
    `np.lib.format.open_memmap(temporary, ...)`, `figure.savefig(temporary)`,
    `model.save_weights(temporary)`... Writers that choose the format from
    the file name need `suffix`: the temporary's name ends with it.

    Reading the umask sets it for an instant (POSIX has no other way), so a
    file another thread creates at that very moment could get mode 0o666.

    Example:

    ```python
    with files.atomic_write("student.weights.h5", suffix=".weights.h5") as temporary:
        student.save_weights(temporary)
    ```

    Args:
        path: The final path. Its folder must exist.
        suffix: The end of the temporary's name, e.g. `".tflite"`.

    Yields:
        The temporary path, in the folder of `path`.
    """
    path = os.path.abspath(os.fspath(path))
    folder, name = os.path.split(path)
    remove_dead_temporaries(path, suffix)
    handle, temporary = tempfile.mkstemp(
        dir=folder, prefix=f".{name}.{os.getpid()}.", suffix=f".tmp{suffix}"
    )
    os.close(handle)
    try:
        yield temporary
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise


def write_json(path, content):
    """Writes `content` as JSON to `path`, atomically (see `atomic_write`)."""
    with atomic_write(path, suffix=".json") as temporary:
        with open(temporary, "w") as f:
            json.dump(content, f)


def remove_dead_temporaries(path, suffix=""):
    """Removes temporaries of `atomic_write(path, suffix)` whose process is gone.

    A process killed mid-write (SIGKILL, power loss) cannot remove its
    temporary file; the final file is never partial, and the next
    `atomic_write` to the same path clears what the dead process left.
    Temporaries of live processes (other writers of the same path) are kept.

    Args:
        path: The final path.
        suffix: The `suffix` the writes were given.
    """
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    pattern = re.compile(
        rf"^\.{re.escape(name)}\.(\d+)\.\w+\.tmp{re.escape(suffix)}$"
    )
    for entry in os.listdir(folder):
        match = pattern.match(entry)
        if match and not _process_alive(int(match.group(1))):
            with contextlib.suppress(FileNotFoundError):  # Another process cleared it.
                os.remove(os.path.join(folder, entry))


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # Alive, owned by another user.
    return True
