"""Messages from callbacks, routed as Keras's own callbacks route theirs.

Keras's callbacks print through `keras.src.utils.io_utils.print_msg`: to
stdout while interactive logging is enabled
(`keras.config.is_interactive_logging_enabled()`, the default), else to the
log. `print_msg` does the same with public APIs; its log is the standard
library logger `"keras_kd"` (level INFO), which a user can silence or route.
Library code never calls `print`.
"""

import logging
import sys

import keras

logger = logging.getLogger("keras_kd")


def print_msg(message, line_break=True):
    """Writes `message` to stdout, or logs it at INFO level to `"keras_kd"`
    when Keras's interactive logging is disabled.

    Args:
        message: The message (any object; `str` is taken).
        line_break: Bool, whether a newline ends the message on stdout.
            Defaults to `True`.
    """
    message = str(message)
    if keras.config.is_interactive_logging_enabled():
        text = message + "\n" if line_break else message
        try:
            sys.stdout.write(text)
        except UnicodeEncodeError:
            sys.stdout.write(text.encode("ascii", errors="replace").decode("ascii"))
        sys.stdout.flush()
    else:
        # The leading newline ends a progress bar's line on stdout only.
        logger.info(message.lstrip("\n"))
