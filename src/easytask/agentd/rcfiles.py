"""Per-run rc files: how a command ended, for an agent that was restarted meanwhile.

Every command runs with ``BASH_ENV`` pointing at ``<agent dir>/bash_env.sh``; it makes bash write
``rc <$?>`` (EXIT trap) or ``sig <n>`` (HUP/INT/QUIT/TERM traps, after which bash re-kills itself
with the same signal) into ``<agent dir>/rc/<run id>`` when it ends. Without the signal traps a
killed bash would run its EXIT trap with a stale ``$?`` (0). A SIGKILLed bash, or a command that
``exec``s or replaces the traps, leaves no rc file: after a restart that run is FAILED
``lost control``. A user's own ``BASH_ENV`` is still sourced. The agent deletes an rc file (in
batches, off the event loop) once the run's result is journaled.

Decision on signal deaths: ``sig n`` is reported exactly as a reaped child killed by signal n
(FAILED ``killed by signal n``, return code -n); ``rc n`` with n > 128 stays ``exit code n``
(bash itself exited, e.g. after its child was killed), again as a reaped child would be.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

BASH_ENV_SCRIPT = """\
# Written by easytask-agentd. Records how the command ends, for an agent that restarts meanwhile.
__EASYTASK_RC=$EASYTASK_RC_FILE
unset EASYTASK_RC_FILE
if [ -n "${EASYTASK_BASH_ENV-}" ]; then
  BASH_ENV=$EASYTASK_BASH_ENV; unset EASYTASK_BASH_ENV; . "$BASH_ENV"
else
  unset BASH_ENV
fi
trap 'echo "rc $?" >| "$__EASYTASK_RC"' EXIT
__easytask_sig() { echo "sig $1" >| "$__EASYTASK_RC"; trap - EXIT "$1"; kill -"$1" $$; }
trap '__easytask_sig 1' 1; trap '__easytask_sig 2' 2; trap '__easytask_sig 3' 3
trap '__easytask_sig 15' 15
"""


class RcFiles:
    """The BASH_ENV script and the rc directory of one agent."""

    def __init__(self, agent_dir: Path) -> None:
        self._dir = agent_dir / "rc"
        self._dir.mkdir(parents=True, exist_ok=True)
        os.chmod(agent_dir, 0o711)  # run users must reach the script and their rc file
        os.chmod(self._dir, 0o711)
        self.script = str(agent_dir / "bash_env.sh")
        tmp = f"{self.script}.tmp"
        with open(tmp, "w") as fh:
            fh.write(BASH_ENV_SCRIPT)
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.script)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rc-cleanup")
        self._cleaning = False
        self._stale: deque[str] = deque()  # deque append/popleft are thread-safe

    def path(self, run_id: str) -> str:
        return str(self._dir / quote(run_id, safe=":"))

    def read(self, run_id: str) -> tuple[str, int] | None:
        """``("rc"|"sig", n)`` once the command ended, else None (no rc file, or still empty)."""
        try:
            with open(self.path(run_id)) as fh:
                text = fh.read().split()
        except OSError:
            return None
        if len(text) >= 2 and text[0] in ("rc", "sig") and text[1].isdigit():
            return (text[0], int(text[1]))
        return None

    def result(self, run_id: str) -> tuple[str, str, int | None]:
        """State, reason and return code of a command that ended while the agent was away."""
        status = self.read(run_id)
        if status is None:
            return ("FAILED", "lost control", None)
        kind, n = status
        return judge(n if kind == "rc" else -n)

    def forget(self, run_id: str) -> None:
        """The result is journaled: the rc file is no longer needed."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(run_id))

    def forget_later(self, run_id: str) -> None:
        """``forget`` in batches on a helper thread (an unlink on ext4 is not free)."""
        self._stale.append(self.path(run_id))
        if len(self._stale) >= 64:
            self.flush()

    def flush(self) -> None:
        """Start deleting the batch collected so far (no-op if empty or already running)."""
        if self._stale and not self._cleaning:
            self._cleaning = True
            self._pool.submit(self._unlink_stale)

    def _unlink_stale(self) -> None:
        try:
            while self._stale:
                try:
                    path = self._stale.popleft()
                except IndexError:
                    return
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        finally:
            self._cleaning = False

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._unlink_stale()


def judge(code: int | None) -> tuple[str, str, int | None]:
    """State, reason and return code for an exit code (or minus a signal number)."""
    if code == 0:
        return ("SUCCESS", "", 0)
    if code is None:
        return ("FAILED", "lost control", None)
    if code > 0:
        return ("FAILED", f"exit code {code}", code)
    return ("FAILED", f"killed by signal {-code}", code)
