"""The terminal as a keyboard: keys one by one, unechoed (the program echoes what it reads)."""
from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def raw_terminal(stream):
    """cbreak mode without echo while the block runs, when `stream` is a terminal."""
    if stream is None or not os.isatty(stream.fileno()):
        yield
        return
    import termios
    import tty

    fd = stream.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        mode = termios.tcgetattr(fd)
        mode[3] &= ~termios.ECHO
        termios.tcsetattr(fd, termios.TCSADRAIN, mode)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        sys.stdout.flush()
