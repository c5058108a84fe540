"""Run a command under the restrictions of deploy/systemd/enroll.service that a process
can apply to itself without systemd as PID 1 (the namespace settings and DynamicUser=
are not reproduced): an empty capability bounding set (CapabilityBoundingSet=; after
the execve even uid 0 has no capability), PR_SET_NO_NEW_PRIVS (NoNewPrivileges=),
PR_SET_MDWE (MemoryDenyWriteExecute=: systemd refuses the same mappings with seccomp)
and a seccomp allow list of system calls refused with EPERM (SystemCallFilter=,
SystemCallErrorNumber=), where socket() is allowed only for the listed address families
(RestrictAddressFamilies=; systemd answers other families EAFNOSUPPORT, this EPERM),
built with libseccomp as systemd builds it.

    python unit_sandbox.py SYSCALLS_FILE FAMILIES COMMAND [ARG...]

SYSCALLS_FILE lists the allowed system call names, one a line; FAMILIES is a comma
list such as ``AF_INET,AF_INET6,AF_UNIX``."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import sys

PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1
SCMP_ACT_ALLOW = 0x7FFF0000
EPERM = 1
SCMP_CMP_EQ = 4


class ArgCmp(ctypes.Structure):
    """libseccomp's struct scmp_arg_cmp."""

    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


def scmp_act_errno(errno: int) -> int:
    return 0x00050000 | (errno & 0xFFFF)


def main(argv: list[str]) -> None:
    syscalls_file, command = argv[0], argv[2:]
    families = [int(getattr(socket, name)) for name in argv[1].split(",")]
    names = [n.strip() for n in open(syscalls_file).read().split() if n.strip()]  # noqa: SIM115
    libc = ctypes.CDLL(None, use_errno=True)
    seccomp = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2",
                          use_errno=True)
    seccomp.seccomp_init.restype = ctypes.c_void_p
    seccomp.seccomp_init.argtypes = [ctypes.c_uint32]
    seccomp.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    seccomp.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                         ctypes.c_uint]
    seccomp.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                               ctypes.c_uint, ctypes.POINTER(ArgCmp)]
    seccomp.seccomp_load.argtypes = [ctypes.c_void_p]

    last_cap = int(open("/proc/sys/kernel/cap_last_cap").read())  # noqa: SIM115
    for cap in range(last_cap + 1):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and os.getuid() == 0:
            raise SystemExit(f"PR_CAPBSET_DROP {cap}: errno {ctypes.get_errno()}")
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise SystemExit(f"PR_SET_NO_NEW_PRIVS: errno {ctypes.get_errno()}")
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        raise SystemExit(f"PR_SET_MDWE: errno {ctypes.get_errno()}")
    filt = seccomp.seccomp_init(scmp_act_errno(EPERM))
    if not filt:
        raise SystemExit("seccomp_init failed")
    for name in names:
        number = seccomp.seccomp_syscall_resolve_name(name.encode())
        if number < 0:  # not a system call on this architecture (or unknown to libseccomp)
            continue
        if name == "socket":  # only for the allowed families: one rule each
            for family in families:
                cmp = ArgCmp(0, SCMP_CMP_EQ, family, 0)
                if seccomp.seccomp_rule_add_array(filt, SCMP_ACT_ALLOW, number, 1,
                                                  ctypes.byref(cmp)) != 0:
                    raise SystemExit(f"seccomp_rule_add socket({family}) failed")
            continue
        if seccomp.seccomp_rule_add(filt, SCMP_ACT_ALLOW, number, 0) != 0:
            raise SystemExit(f"seccomp_rule_add {name} failed")
    if seccomp.seccomp_load(filt) != 0:
        raise SystemExit("seccomp_load failed")
    os.execv(command[0], command)  # noqa: S606 - exec, as systemd does after setup


if __name__ == "__main__":
    main(sys.argv[1:])
