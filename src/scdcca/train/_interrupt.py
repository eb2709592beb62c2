"""Ctrl+C during training: recognising it and giving the key its handler back."""

from __future__ import annotations

import signal
import threading


def is_interruption(exception: BaseException) -> bool:
    """A Ctrl+C: a KeyboardInterrupt, or the SystemExit(1) Lightning raises while handling one."""
    if isinstance(exception, KeyboardInterrupt):
        return True
    return (
        isinstance(exception, SystemExit)
        and exception.code in (0, 1)
        and isinstance(exception.__context__, KeyboardInterrupt)
    )


def restore_sigint(handler) -> None:
    """Give Ctrl+C back its handler from before training (Lightning sets it to ignore)."""
    if handler is None or threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, handler)
