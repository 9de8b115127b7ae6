"""Ctrl-C and SIGTERM during a run: the step in progress finishes, a checkpoint is written, the
run exits. Acted on between steps so the checkpoint is a consistent one that ``--resume``
continues exactly; every process stops after the same step (the request is summed over them,
as a signal may reach them a step apart). A second Ctrl-C, pressed at least ``REPEAT_AFTER_S``
after the first, interrupts at once (sooner it is the same Ctrl-C: in a terminal every process
gets it, and torchrun forwards it to each process once more)."""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType
from typing import Callable

log = logging.getLogger(__name__)

HANDLED = (signal.SIGINT, signal.SIGTERM)
REPEAT_AFTER_S = 2.0


class RunInterrupted(Exception):
    """A run stopped on a signal after saving ``checkpoint`` at ``step``."""

    def __init__(self, signal_number: int, step: int, checkpoint) -> None:
        super().__init__(f"stopped by {signal.Signals(signal_number).name} after step {step}; "
                         f"checkpoint: {checkpoint} (continue with --resume)")
        self.signal_number, self.step, self.checkpoint = signal_number, step, checkpoint


class StopRequests:
    """Notes SIGINT/SIGTERM while installed (a context manager) instead of dying mid-step;
    ``on_request`` is told of the first (e.g. so a stuck reward call is abandoned)."""

    def __init__(self, on_request: Callable[[], None] | None = None) -> None:
        self.signal_number: int | None = None
        self.noted_at = 0.0
        self.previous: dict[int, object] = {}
        self.on_request = on_request

    def note(self, signal_number: int, frame: FrameType | None) -> None:
        if self.signal_number is not None:
            if signal_number == signal.SIGINT and time.monotonic() - self.noted_at >= REPEAT_AFTER_S:
                raise KeyboardInterrupt  # the second Ctrl-C: stop now, without a checkpoint
            return
        self.signal_number, self.noted_at = signal_number, time.monotonic()
        log.warning("%s: finishing this step, then saving a checkpoint%s", signal.Signals(signal_number).name,
                    " (Ctrl-C again to stop now)" if signal_number == signal.SIGINT else "")
        if self.on_request is not None:
            self.on_request()

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is not threading.main_thread():
            return self  # Python takes signals in the main thread only: leave them as they are
        for number in HANDLED:
            self.previous[number] = signal.signal(number, self.note)
        return self

    def __exit__(self, *exc) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)
