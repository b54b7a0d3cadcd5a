"""The first code the sandboxed interpreter runs (passed with ``-c``; never imported by qwenkit).

It confines itself before it reads the program: resource limits (CPU seconds, address space, file
size, processes, no core files), a new network namespace when the kernel allows one, then a
``sys.addaudithook`` hook that refuses processes, sockets, native code loading and any file access
outside the working directory (reads of the interpreter's own library stay allowed, for imports).
The program comes on stdin; the verdict, tagged with a nonce the parent chose, goes to a pipe.
Anything the program writes to stdout/stderr goes to /dev/null.
"""

import ctypes
import json
import os
import resource
import sys

CLONE_NEWNET = 0x40000000
BLOCKED = frozenset({
    "os.system", "os.exec", "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.kill",
    "os.killpg", "os.setsid", "subprocess.Popen", "pty.spawn", "socket.__new__", "socket.connect",
    "socket.bind", "socket.getaddrinfo", "socket.gethostbyname", "socket.sendto", "ctypes.dlopen",
    "ctypes.dlsym", "ctypes.call_function", "ctypes.cdata", "ctypes.addressof", "sys.addaudithook",
    "os.chroot", "os.setuid", "os.setgid", "webbrowser.open", "urllib.Request",
})
WRITE_EVENTS = frozenset({
    "os.remove", "os.rmdir", "os.rename", "os.mkdir", "os.chmod", "os.chown", "os.truncate",
    "os.link", "os.symlink", "os.utime", "shutil.rmtree", "shutil.move", "shutil.copyfile",
    "os.chdir", "os.chflags", "os.lchflags", "os.mknod", "os.mkfifo",
})
READ_EVENTS = frozenset({"os.listdir", "os.scandir", "glob.glob", "os.walk"})
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def limit(limits):
    cpu, memory, fsize, nproc = limits
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def isolate_network():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.unshare(CLONE_NEWNET) == 0
    except (OSError, AttributeError):
        return False


def main():
    fd, nonce, limits = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
    source = sys.stdin.read()
    verdict_pipe = os.fdopen(fd, "w")
    netns = isolate_network()
    limit(limits)
    home = os.path.realpath(os.getcwd())
    libs = tuple(os.path.realpath(p) for p in sys.path if p and os.path.isdir(p))
    refused = []
    path_events = {**dict.fromkeys(WRITE_EVENTS, (home,)), **dict.fromkeys(READ_EVENTS, (home, *libs))}

    def inside(path, roots):
        if isinstance(path, int):
            return True  # an fd already open: the process could only have opened it through here
        try:
            real = os.path.realpath(os.path.join(home, os.fsdecode(path)))
        except (TypeError, ValueError):
            return False
        return any(real == r or real.startswith(r + os.sep) for r in roots)

    def refuse(what):
        refused.append(what)
        raise PermissionError(f"sandbox: {what} is refused")

    def hook(event, args):
        if event in BLOCKED:
            refuse(event)
        elif event == "open":
            path, mode, flags = args
            writing = any(c in (mode or "") for c in "wax+") or bool((flags or 0) & WRITE_FLAGS)
            if not inside(path, (home,) if writing else (home, *libs, "/dev/null", "/dev/urandom")):
                refuse(f"{'writing' if writing else 'reading'} {os.fsdecode(path)}")
        elif args and event in path_events and not inside(args[0], path_events[event]):
            refuse(f"{event} {args[0]!r}")

    sys.addaudithook(hook)
    ok, reason = True, "passed"
    try:
        exec(compile(source, "solution.py", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
    except BaseException as exc:  # the program's failure is the verdict
        ok, reason = False, f"{type(exc).__name__}: {exc}"[:400]
    if refused:
        ok, reason = False, f"sandbox refused {refused[0]}"[:400]
    verdict_pipe.write(json.dumps({"nonce": nonce, "ok": ok, "reason": reason, "netns": netns}) + "\n")
    verdict_pipe.flush()
    os._exit(0)


main()
