"""The error of a rollout worker that fails the trainer; free of torch at import, so the command
line can name it without importing the engines."""


class RolloutWorkerError(RuntimeError):
    """The rollout worker is gone, silent or refused a request; the message names it."""
