"""Who holds a lock: a process named by host, PID and start time, and whether it is gone.

A lock left by a process that was killed (SIGKILL, power cut, a service stopped hard) must not
block the next run: the holder writes its `ProcessOwner` beside the lock, and the next process
takes the lock over at once when that owner is gone. A PID alone is not enough, since the
operating system reuses PIDs: the process's start time (from `/proc` on Linux, the process
creation time on Windows) tells a reused PID from the owner. An owner on another host is never
judged gone from here; its lock expires by its heartbeat (the lock's own duration) instead.
"""
from __future__ import annotations

import functools
import json
import os
import socket
import sys
from dataclasses import asdict, dataclass
from typing import Optional


@dataclass(frozen=True)
class ProcessOwner:
    """One process: the host it runs on, its PID and a token of its start time ("" when unknown)."""

    host: str
    pid: int
    started: str = ""

    @classmethod
    def current(cls) -> "ProcessOwner":
        return _current(os.getpid())

    def is_gone(self) -> bool:
        """Whether this process certainly no longer runs: same host, and no process with this PID
        or one started at another time. False when it cannot be told (another host)."""
        if self.host != socket.gethostname():
            return False
        if self.pid == os.getpid():
            return False
        started = start_token(self.pid)
        if started is None:
            return True
        return bool(self.started) and bool(started) and started != self.started

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: Optional[str]) -> Optional["ProcessOwner"]:
        if not text:
            return None
        try:
            data = json.loads(text)
            return cls(host=str(data["host"]), pid=int(data["pid"]), started=str(data.get("started") or ""))
        except (ValueError, KeyError, TypeError):
            return None


@functools.lru_cache(maxsize=4)
def _current(pid: int) -> ProcessOwner:
    return ProcessOwner(socket.gethostname(), pid, start_token(pid) or "")


def start_token(pid: int) -> Optional[str]:
    """A token of when process `pid` started; "" when it runs but its start cannot be read;
    None when no process has this PID."""
    if pid <= 0:
        return None
    if sys.platform == "win32":
        return _windows_start_token(pid)
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        if fields and fields[0] == b"Z":          # a zombie: dead, only not reaped yet
            return None
        return fields[19].decode("ascii")         # starttime, the 22nd field of the line
    except FileNotFoundError:
        return None
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return ""
    return ""


def _windows_start_token(pid: int) -> Optional[str]:  # pragma: no cover - Windows only
    import ctypes
    from ctypes import wintypes

    process_query_limited_information, still_active = 0x1000, 259
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    handle = kernel32.OpenProcess(process_query_limited_information, False, pid)
    if not handle:
        return None if ctypes.get_last_error() == 87 else ""    # 87: no such process
    try:
        code = wintypes.DWORD()
        if kernel32.GetExitCodeProcess(handle, ctypes.byref(code)) and code.value != still_active:
            return None
        created, exited, kernel, user = (wintypes.FILETIME() for _ in range(4))
        if not kernel32.GetProcessTimes(handle, ctypes.byref(created), ctypes.byref(exited),
                                        ctypes.byref(kernel), ctypes.byref(user)):
            return ""
        return f"{created.dwHighDateTime}:{created.dwLowDateTime}"
    finally:
        kernel32.CloseHandle(handle)


class OwnerFile:
    """The owner of a lock held by the operating system (an open exclusive transaction), written
    beside it while the lock is held and removed on release.

    The operating system frees such a lock when its process dies, so it never blocks the next
    run; the file left behind is what tells that the previous holder was killed while holding it.
    """

    def __init__(self, path: str):
        self.path = path

    def read(self) -> Optional[ProcessOwner]:
        try:
            with open(self.path, encoding="utf-8") as file:
                return ProcessOwner.from_json(file.read())
        except OSError:
            return None

    def claim(self) -> Optional[ProcessOwner]:
        """Write this process as the owner (the lock is held); returns the previous owner when
        its file was left behind by a process that is gone (its lock is taken over)."""
        previous = self.read()
        mine = ProcessOwner.current()
        try:
            with open(self.path, "w", encoding="utf-8") as file:
                file.write(mine.to_json())
        except OSError:
            pass
        if previous is None or previous == mine:
            return None
        return previous

    def release(self) -> None:
        try:
            if self.read() == ProcessOwner.current():
                os.remove(self.path)
        except OSError:
            pass
