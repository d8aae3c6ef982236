"""Run a command with writable+executable memory refused, like MemoryDenyWriteExecute=yes.

systemd implements MemoryDenyWriteExecute= with a seccomp filter; Linux 6.3+ offers the
same rule natively as prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN), inherited across
execve. Usage: mdwe_exec.py COMMAND [ARG...], or mdwe_exec.py --check (exit 0 if supported).
"""

from __future__ import annotations

import ctypes
import os
import sys

PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1


def refuse_exec_gain() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    prctl = libc.prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    if prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_MDWE): {os.strerror(errno)}")


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        refuse_exec_gain()
    except OSError as error:
        print(error, file=sys.stderr)
        return 1
    if argv == ["--check"]:
        return 0
    os.execv(argv[0], argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
