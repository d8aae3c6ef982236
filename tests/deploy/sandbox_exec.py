"""Run a command under the seccomp part of the unit's sandbox, without systemd.

systemd 252 turns SystemCallFilter=, SystemCallErrorNumber=, SystemCallArchitectures=native,
RestrictAddressFamilies= and MemoryDenyWriteExecute= into seccomp filters (after
NoNewPrivileges=). The tests cannot start a service manager, so this builds the same rules
from the shipped unit: syscall groups expanded by the installed `systemd-analyze
syscall-filter`, numbers from the kernel headers, the memory rules as systemd writes them
(mmap with PROT_WRITE|PROT_EXEC, mprotect/pkey_mprotect adding PROT_EXEC, shmat with
SHM_EXEC: EPERM). Then it execs the command. x86_64 only.

Usage: sandbox_exec.py UNIT_FILE COMMAND [ARG...]
       sandbox_exec.py --check     exit 0 when this machine can do it
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
AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
RET_ALLOW = 0x7FFF0000
LD_W_ABS, AND_K, JEQ_K, JGE_K, JSET_K, RET_K = 0x20, 0x54, 0x15, 0x35, 0x45, 0x06
PROT_WRITE, PROT_EXEC, SHM_EXEC = 0x2, 0x4, 0o100000
NR, ARCH, ARG0, ARG2 = 0, 4, 16, 32  # offsets in struct seccomp_data (low 32 bits of args)
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


def memory_rules(numbers: dict[str, int]) -> list[tuple[int, int, int, int]]:
    """MemoryDenyWriteExecute=yes as systemd 252 writes it; each block ends with A = nr."""
    refuse = (RET_K, 0, 0, RET_ERRNO | errno.EPERM)
    reload = (LD_W_ABS, 0, 0, NR)
    wx = PROT_WRITE | PROT_EXEC
    rules = [
        (JEQ_K, 0, 5, numbers["mmap"]),
        (LD_W_ABS, 0, 0, ARG2),
        (AND_K, 0, 0, wx),
        (JEQ_K, 0, 1, wx),
        refuse,
        reload,
    ]
    for name, flag in (("mprotect", PROT_EXEC), ("pkey_mprotect", PROT_EXEC), ("shmat", SHM_EXEC)):
        rules += [(JEQ_K, 0, 4, numbers[name]), (LD_W_ABS, 0, 0, ARG2), (JSET_K, 0, 1, flag)]
        rules += [refuse, reload]
    return rules


def build_filter(settings: dict[str, list[str]]) -> list[tuple[int, int, int, int]]:
    numbers = syscall_numbers()
    allowed = sorted(
        {numbers[name] for name in allowed_syscalls(settings, syscall_groups()) if name in numbers}
    )
    error = getattr(errno, (settings.get("SystemCallErrorNumber") or ["EPERM"])[-1])
    families = [
        FAMILIES[name] for value in settings["RestrictAddressFamilies"] for name in value.split()
    ]
    program = [
        (LD_W_ABS, 0, 0, ARCH),
        (JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        (RET_K, 0, 0, RET_KILL_PROCESS),  # SystemCallArchitectures=native
        (LD_W_ABS, 0, 0, NR),
        (JGE_K, 0, 1, X32_SYSCALL_BIT),
        (RET_K, 0, 0, RET_ERRNO | error),  # x32 calls are another ABI
    ]
    if (settings.get("MemoryDenyWriteExecute") or ["no"])[-1] == "yes":
        program += memory_rules(numbers)
    program += [
        (JEQ_K, 0, len(families) + 3, numbers["socket"]),
        (LD_W_ABS, 0, 0, ARG0),  # socket()'s family
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


def install(program: list[tuple[int, int, int, int]]) -> None:
    raw = b"".join(struct.pack("HBBI", *instruction) for instruction in program)
    buffer = ctypes.create_string_buffer(raw)

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = Program(len(program), ctypes.addressof(buffer))
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    _prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog))


def supported() -> str | None:
    """Why this machine cannot run the sandbox, or None."""
    if platform.machine() != "x86_64":
        return f"{platform.machine()}: the filter is written for x86_64"
    if not HEADER.exists():
        return f"{HEADER} missing (Debian package linux-libc-dev)"
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
    install(build_filter(unit_settings(Path(argv[0]))))
    os.execv(argv[1], argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
