"""Processes that die with their parent (Linux ``prctl(PR_SET_PDEATHSIG)``).

A gunicorn worker whose master is killed with SIGKILL would otherwise keep serving
on the inherited listening socket, holding the port so that a restart cannot bind
(issue 9). The kernel sends the signal when the parent dies, whatever killed it.
This is one system call, made through ctypes rather than a prctl package: pyprctl
and python-prctl have had no release since 2021 and 2020.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

# linux/prctl.h
PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True) \
    if sys.platform == "linux" else None


def die_with_parent(parent: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent (pid ``parent``) dies
    (Linux; elsewhere nothing). Raises ``OSError`` when the kernel refuses.

    A parent that died between the fork and this call sends no signal, so the
    parent is checked afterwards and this process ends at once if it is gone
    (prctl(2), PR_SET_PDEATHSIG). Safe between fork and exec
    (``subprocess.Popen(preexec_fn=...)``): the C library is loaded at import, so
    only the system calls run in the child.
    """
    if _LIBC is None:
        return
    if _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG) failed: errno {errno}")
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)
