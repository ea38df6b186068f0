"""Exit codes the `rollout` command promises, and the one error type that carries them."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    # The release (or deployment) ended, but not as a success: rolled back, failed, rejected, superseded.
    RELEASE_FAILED = 1
    # Bad input: unknown option, missing or invalid file, unknown deployment config (click uses 2 too).
    USAGE = 2
    # Something named does not exist: function, stack, deployment, release, alarm.
    NOT_FOUND = 3
    # AWS or the endpoint failed us: unreachable, no credentials, access denied, throttled.
    AWS_ERROR = 4
    # --timeout passed while the release or deployment was still running.
    TIMED_OUT = 5
    # Nothing to do: abort of a deployment that has already completed.
    CONFLICT = 6
    # --wait met a release held by a freeze: it starts only when the freeze ends, so waiting is pointless.
    HELD = 7
    # Ctrl-C while following a release (the release itself goes on).
    INTERRUPTED = 130


class CliError(Exception):
    """A failure to report in one clear sentence, with an exit code and an optional hint."""

    def __init__(self, message: str, code: ExitCode, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.hint = hint
