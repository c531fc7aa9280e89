"""Writing files atomically: a temporary file in the same folder, then a rename."""

import os


def publish(temporary, path):
    """Renames a finished `temporary` file to `path`, atomically.

    `tempfile.mkstemp` creates files readable by their owner only; the
    published file gets the permissions of a file created normally (0o666
    minus the process umask), like one written with `open(path, "w")`.

    Reading the umask sets it for an instant (POSIX has no other way), so a
    file another thread creates at that very moment could get mode 0o666.

    Args:
        temporary: The finished temporary file, in the folder of `path`.
        path: The final path.
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)
    os.replace(temporary, path)
