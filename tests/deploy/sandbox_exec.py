"""Run a command under the kernel-enforced parts of the unit's sandbox, without systemd.

systemd turns SystemCallFilter=, SystemCallErrorNumber=, SystemCallArchitectures=native,
RestrictAddressFamilies= and NoNewPrivileges= into a seccomp filter, and
MemoryDenyWriteExecute= into more seccomp rules. The tests cannot start a service
manager, so this builds the same filter from the shipped unit (its syscall groups expanded
by `systemd-analyze syscall-filter`, numbers from the kernel headers), refuses
writable+executable memory with the kernel's native prctl(PR_SET_MDWE) (Linux 6.3+), and
execs the command. x86_64 only.

Usage: sandbox_exec.py UNIT_FILE COMMAND [ARG...]
       sandbox_exec.py --check     exit 0 when this kernel and machine can do all of it
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import re
import socket
import struct
import subprocess
import sys
from pathlib import Path

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1
AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
RET_ALLOW = 0x7FFF0000
LD_W_ABS, JEQ_K, JGE_K, RET_K = 0x20, 0x15, 0x35, 0x06
HEADER = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
FAMILIES = {name: int(getattr(socket, name)) for name in dir(socket) if name.startswith("AF_")}


def syscall_numbers() -> dict[str, int]:
    text = HEADER.read_text()
    return {name: int(nr) for name, nr in re.findall(r"#define __NR_(\w+)\s+(\d+)", text)}


def syscall_groups() -> dict[str, list[str]]:
    """Every @group of the installed systemd, as listed by `systemd-analyze syscall-filter`."""
    listing = subprocess.run(
        ["systemd-analyze", "syscall-filter", "--no-pager"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    groups: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in listing.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif line.startswith(" ") and current is not None and not line.strip().startswith("#"):
            current.append(line.strip())
        elif not line.startswith(" "):
            current = None
    return groups


def expand(items: list[str], groups: dict[str, list[str]]) -> set[str]:
    names: set[str] = set()
    for item in items:
        if item.startswith("@"):
            names |= expand(groups[item], groups)
        else:
            names.add(item)
    return names


def unit_settings(unit: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def allowed_syscalls(settings: dict[str, list[str]], groups: dict[str, list[str]]) -> set[str]:
    """SystemCallFilter= semantics: the first line decides allow- or deny-list mode."""
    allowed: set[str] | None = None
    for value in settings.get("SystemCallFilter", []):
        deny = value.startswith("~")
        names = expand(value.lstrip("~").split(), groups)
        if allowed is None:
            allowed = expand(["@known"], groups) - names if deny else names
        elif deny:
            allowed -= names
        else:
            allowed |= names
    if allowed is None:
        raise SystemExit("the unit has no SystemCallFilter=")
    return allowed


def build_filter(settings: dict[str, list[str]]) -> list[tuple[int, int, int, int]]:
    numbers = syscall_numbers()
    allowed = sorted(
        {numbers[name] for name in allowed_syscalls(settings, syscall_groups()) if name in numbers}
    )
    error = getattr(errno, (settings.get("SystemCallErrorNumber") or ["EPERM"])[-1])
    families = [
        FAMILIES[name] for value in settings["RestrictAddressFamilies"] for name in value.split()
    ]
    socket_nr = numbers["socket"]
    program = [
        (LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        (JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        (RET_K, 0, 0, RET_KILL_PROCESS),  # SystemCallArchitectures=native
        (LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
        (JGE_K, 0, 1, X32_SYSCALL_BIT),
        (RET_K, 0, 0, RET_ERRNO | error),  # x32 calls are another ABI
        (JEQ_K, 0, len(families) + 3, socket_nr),
        (LD_W_ABS, 0, 0, 16),  # low half of socket()'s first argument, the family
    ]
    for index, family in enumerate(families):
        program.append((JEQ_K, len(families) - index, 0, family))
    program += [(RET_K, 0, 0, RET_ERRNO | errno.EAFNOSUPPORT), (RET_K, 0, 0, RET_ALLOW)]
    for nr in allowed:
        program += [(JEQ_K, 0, 1, nr), (RET_K, 0, 0, RET_ALLOW)]
    program.append((RET_K, 0, 0, RET_ERRNO | error))
    return program


def _prctl(*args: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [
        ctypes.c_int,
        ctypes.c_ulong,
        ctypes.c_ulong,
        ctypes.c_ulong,
        ctypes.c_ulong,
    ]
    padded = [*args, 0, 0, 0, 0][:5]
    if libc.prctl(*padded) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"prctl{args[:2]}: {os.strerror(code)}")


def install(program: list[tuple[int, int, int, int]], mdwe: bool) -> None:
    raw = b"".join(struct.pack("HBBI", *instruction) for instruction in program)
    buffer = ctypes.create_string_buffer(raw)

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = Program(len(program), ctypes.addressof(buffer))
    if mdwe:
        _prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN)
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    _prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog))


def supported() -> str | None:
    """Why this machine cannot run the sandbox, or None."""
    if platform.machine() != "x86_64":
        return f"{platform.machine()}: the filter is written for x86_64"
    if not HEADER.exists():
        return f"{HEADER} missing (Debian package linux-libc-dev)"
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import ctypes, sys; libc = ctypes.CDLL(None); "
            f"sys.exit(libc.prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0))",
        ],
        check=False,
    )
    if probe.returncode != 0:
        return "no prctl(PR_SET_MDWE) (Linux < 6.3)"
    return None


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        reason = supported()
        if reason:
            print(reason, file=sys.stderr)
        return 0 if reason is None else 1
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    settings = unit_settings(Path(argv[0]))
    mdwe = (settings.get("MemoryDenyWriteExecute") or ["no"])[-1] == "yes"
    install(build_filter(settings), mdwe)
    os.execv(argv[1], argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
