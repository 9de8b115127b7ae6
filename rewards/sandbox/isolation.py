"""Linux isolation layers for one execution, through the kernel's own interfaces.

- a minimal read-only root (``enter_minimal_root``): the interpreter's prefix, ``/usr`` and a
  few device nodes, nothing of the project, datasets, home directories or sockets;
- fresh pid (with its own ``/proc``), mount, ipc, uts and net namespaces per execution;
- a cgroup per execution (memory, pids, CPU), v1 or v2 (``Cgroups``);
- a seccomp filter (libseccomp) refusing new namespaces, ptrace, mounts and the like;
- a uid per execution: ``UID_BASE`` + the host pid of the execution's supervisor, unique
  while any of its processes lives, so no two executions share a quota.

Everything here runs inside the zygote processes (``zygote.py``), never in the trainer. Each
layer that cannot be had is reported by name, and the sandbox starts without it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import os
import signal
import sys
import time

UID_BASE = 1 << 30  # far above any account's or subordinate range's uid
JUDGE_UID = UID_BASE - 1  # the unprivileged user the (trusted) tests run as
JUDGES = "judges"  # the cgroup of a sandbox's judges, beside its executions' slots

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWCGROUP = 0x00020000, 0x04000000, 0x08000000, 0x02000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
EXECUTION_NAMESPACES = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x20, 0x1000, 0x4000, 0x40000
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 36, 38
DEVICES = ("null", "zero", "full", "random", "urandom")
DEVICE_LINKS = {"stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2",
                "fd": "/proc/self/fd"}

libc = ctypes.CDLL(None, use_errno=True)


def checked(result: int, what: str) -> int:
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")
    return result


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    encode = lambda text: None if text is None else text.encode()
    checked(libc.mount(encode(source), encode(target), encode(fstype), flags, encode(data)), f"mount {target}")


def bind_read_only(source: str, target: str) -> None:
    mount(source, target, None, MS_BIND | MS_REC)
    mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def die_with_parent() -> None:
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def become_subreaper() -> None:
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def no_new_privileges() -> None:
    checked(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def become(uid: int) -> None:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


def read_only_sources() -> list[str]:
    """What the minimal root shows: the interpreter (its prefix) and the system's libraries."""
    sources = ["/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        if os.path.isdir(top) and not os.path.islink(top):
            sources.append(top)  # no merged /usr here: the real directory
    for prefix in {os.path.realpath(sys.base_prefix), os.path.realpath(sys.exec_prefix)}:
        if not any(prefix == s or prefix.startswith(s + "/") for s in sources):
            sources.append(prefix)
    return sources


def installed_packages() -> list[str]:
    """The directories of installed packages under what the minimal root shows (the interpreter's
    ``site-packages``, Debian's ``dist-packages``)."""
    import glob

    found = set()
    for source in read_only_sources():
        for pattern in ("lib/python3*/site-packages", "lib/python3*/dist-packages", "lib/python3/dist-packages",
                        "local/lib/python3*/site-packages", "local/lib/python3*/dist-packages"):
            found.update(p for p in glob.glob(os.path.join(source, pattern)) if os.path.isdir(p) and not os.path.islink(p))
    return sorted(found)


def enter_minimal_root(stage: str = "/tmp", writable_tmp: bool = False) -> None:
    """Move this process into a new mount namespace whose root holds only what Python needs.

    A tmpfs mounted over ``stage`` (in the new namespace only) becomes the root: read-only
    binds of ``read_only_sources()`` at their own paths, the top-level symlinks of a merged
    ``/usr``, ``/etc/ld.so.cache`` (so C extensions find their libraries), the device nodes
    in ``DEVICES`` and links in ``DEVICE_LINKS``, and empty ``/proc``, ``/tmp`` and ``/dev/shm``
    for each execution to mount its own (or,
    ``writable_tmp``, one shared tmpfs at ``/tmp`` for executions without mount namespaces).
    """
    checked(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("tmpfs", stage, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        if os.path.islink(top):
            os.symlink(os.readlink(top), stage + top)
    for source in read_only_sources():
        os.makedirs(stage + source, mode=0o755)
        bind_read_only(source, stage + source)
    for packages in installed_packages():  # the standard library only: an empty directory over each
        mount("tmpfs", stage + packages, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=755")
    os.makedirs(stage + "/etc", mode=0o755)
    if os.path.isfile("/etc/ld.so.cache"):
        open(stage + "/etc/ld.so.cache", "w").close()
        bind_read_only("/etc/ld.so.cache", stage + "/etc/ld.so.cache")
    os.mkdir(stage + "/dev", 0o755)
    for device in DEVICES:
        if os.path.exists("/dev/" + device):
            open(f"{stage}/dev/{device}", "w").close()
            mount("/dev/" + device, f"{stage}/dev/{device}", None, MS_BIND)
    for name, target in DEVICE_LINKS.items():  # each execution's own descriptors, through its /proc
        os.symlink(target, f"{stage}/dev/{name}")
    os.mkdir(stage + "/dev/shm", 0o755)  # each execution mounts its own
    for directory in ("proc", "tmp", ".old"):
        os.mkdir(f"{stage}/{directory}", 0o755)
    if writable_tmp:
        mount("tmpfs", stage + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=1g,mode=1777")
    os.chdir(stage)
    try:
        number = syscall_number("pivot_root")
    except OSError:  # no libseccomp to name it: a chroot (the sandbox user cannot leave it)
        os.chroot(".")
    else:
        checked(libc.syscall(number, b".", b".old"), "pivot_root")
        checked(libc.umount2(b"/.old", MNT_DETACH), "umount old root")
        os.rmdir("/.old")
    os.chdir("/")
    mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def enter_execution_namespaces(flags: int) -> int:
    """Unshare ``flags`` and fork: returns 0 in the child (pid 1 of a new pid namespace), the
    child's pid in the caller."""
    if flags:
        checked(libc.unshare(flags), "unshare")
    return os.fork()


def mount_execution_filesystems(uid: int, disk_bytes: int, files: int, pid_namespace: bool) -> None:
    """A private, size-capped ``/tmp`` owned by ``uid`` (the working directory) and ``/dev/shm``,
    and a ``/proc`` that shows only this execution's processes."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing mounted here reaches the host
    mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV,
          f"size={disk_bytes},nr_inodes={files},mode=700,uid={uid},gid={uid}")
    if os.path.isdir("/dev/shm"):  # POSIX shared memory and semaphores (multiprocessing), private
        mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              f"size={disk_bytes},nr_inodes={files},mode=700,uid={uid},gid={uid}")
    if pid_namespace:
        # only the processes' directories: none of the host's /proc/cmdline, config, kallsyms...
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2,subset=pid")


class Cgroups:
    """A cgroup for each execution under ``rlreason-<pid>`` of this process's own cgroup (v1: in
    each of the memory, pids and cpu hierarchies; v2: in the unified one).

    ``acquire`` gives an execution a cgroup no other execution is in: one of ``slots`` made at
    start (held through a lock on its byte of a shared memfd, released when the holder exits),
    else a new one. Making and removing cgroups costs the kernel far more than the execution
    itself, so the slots are reused, one execution at a time, and emptied in between.
    ``limit`` sets its limits, ``join`` moves the calling process in, ``release`` kills every
    process in it (and removes an extra one).
    """

    CONTROLLERS = ("memory", "pids", "cpu")

    def __init__(self, slots: int = 8):
        self.name = f"rlreason-{os.getpid()}"
        self.parents: dict[str, int] = {}  # controller ("" in v2) -> its parent cgroup, open
        self.bases: dict[str, int] = {}  # controller -> rlreason-<pid>, open
        self.slots, self.locks = slots, os.memfd_create("rlreason-cgroup-slots")
        try:
            self.version = self.open_bases()
            for k in range(slots):
                self.make(f"slot{k}")
        except BaseException:
            self.close()
            raise

    @staticmethod
    def own_paths() -> dict[str, str]:
        paths = {}
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                for controller in controllers.split(",") if controllers else [""]:
                    paths[controller] = path
        return paths

    def open_bases(self) -> int:
        own = self.own_paths()
        if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
            # v2: a cgroup with processes may not hand controllers to children, so the
            # executions' parent hangs off the hierarchy's root, which is exempt
            write_setting(os.open("/sys/fs/cgroup", os.O_DIRECTORY), "cgroup.subtree_control",
                          " ".join("+" + c for c in self.CONTROLLERS), close_base=True)
            self.open_base("", "/sys/fs/cgroup")
            write_setting(self.bases[""], "cgroup.subtree_control", " ".join("+" + c for c in self.CONTROLLERS))
            return 2
        opened = set()
        for controller in (*self.CONTROLLERS, "cpuacct"):  # cpuacct: the CPU time an execution used
            parent = f"/sys/fs/cgroup/{controller}{own.get(controller, '/').rstrip('/')}"
            if not os.path.isdir(parent):
                continue
            if os.path.realpath(parent) in opened:  # co-mounted (cpu,cpuacct): one hierarchy
                self.bases[controller] = self.bases["cpu"]
                continue
            opened.add(os.path.realpath(parent))
            self.open_base(controller, parent)
        return 1

    def open_base(self, controller: str, parent: str) -> None:
        self.parents[controller] = os.open(parent, os.O_DIRECTORY)
        remove_stale(self.parents[controller])
        os.mkdir(self.name, 0o755, dir_fd=self.parents[controller])
        self.bases[controller] = os.open(self.name, os.O_DIRECTORY, dir_fd=self.parents[controller])

    def close(self) -> None:
        """Remove this process's cgroups (the slots and the judges', then their parents)."""
        for k in range(self.slots):
            self.remove(f"slot{k}")
        self.remove(JUDGES)  # (its zygote leaves at the same time; if late, the next start removes it)
        for controller, parent in self.parents.items():
            if controller in self.bases:
                os.close(self.bases[controller])
            try:
                os.rmdir(self.name, dir_fd=parent)
            except OSError:
                pass
            os.close(parent)
        self.parents, self.bases = {}, {}

    def make(self, name: str) -> None:
        for base in set(self.bases.values()):  # (co-mounted controllers share one)
            os.mkdir(name, 0o755, dir_fd=base)

    def acquire(self) -> str:
        for k in range(self.slots):
            try:
                fcntl.lockf(self.locks, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, k)
            except OSError:
                continue
            self.kill(f"slot{k}")  # empty already, unless the last holder died half-way
            return f"slot{k}"
        name = f"extra{os.getpid()}"
        self.make(name)
        return name

    def release(self, name: str) -> None:
        """Empty the execution's cgroup, its CPU limit lifted first: the teardown of its
        processes (unmapping their memory) is the sandbox's work, not the program's quota's."""
        self.unthrottle(name)
        self.kill(name)
        if not name.startswith("slot"):
            self.remove(name)

    def limit(self, name: str, memory_bytes: int, processes: int, cpus: float) -> None:
        period = 100_000
        settings = {
            1: {"pids": {"pids.max": processes},
                "cpu": {"cpu.cfs_period_us": period, "cpu.cfs_quota_us": int(period * cpus)}},
            2: {"": {"memory.max": memory_bytes, "memory.swap.max": 0, "pids.max": processes,
                     "cpu.max": f"{int(period * cpus)} {period}"}},
        }[self.version]
        if self.version == 1:
            # memory+swap may never be below memory: raise the larger first, lower the smaller first
            keys = ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
            current = read_setting(self.bases["memory"], f"{name}/memory.limit_in_bytes")
            settings["memory"] = {key: memory_bytes for key in (keys if memory_bytes < current else keys[::-1])}
        for controller, values in settings.items():
            for key, value in values.items():
                write_setting(self.bases[controller], f"{name}/{key}", value)

    def cpu_seconds(self, name: str) -> float:
        """CPU time the processes of the execution's cgroup have used, the dead ones included."""
        try:
            if self.version == 1:
                return read_setting(self.bases["cpuacct"], f"{name}/cpuacct.usage") / 1e9
            fd = os.open(f"{name}/cpu.stat", os.O_RDONLY, dir_fd=self.bases[""])
            with os.fdopen(fd) as f:
                return next(int(line.split()[1]) for line in f if line.startswith("usage_usec")) / 1e6
        except (OSError, KeyError, StopIteration, ValueError):
            return 0.0

    def unthrottle(self, name: str) -> None:
        try:
            if self.version == 1:
                write_setting(self.bases["cpu"], f"{name}/cpu.cfs_quota_us", -1)
            else:
                write_setting(self.bases[""], f"{name}/cpu.max", "max 100000")
        except OSError:
            pass  # an extra cgroup already gone

    def join(self, name: str) -> None:
        """Move the calling process into the execution's cgroup, and into a cgroup namespace
        rooted there (its ``/proc/self/cgroup`` shows ``/``, not the host's path)."""
        for base in set(self.bases.values()):  # (co-mounted controllers share one)
            write_setting(base, f"{name}/cgroup.procs", 0)
        libc.unshare(CLONE_NEWCGROUP)  # (a kernel without cgroup namespaces shows the path: no harm done)

    def kill(self, name: str) -> None:
        """SIGKILL everything in the execution's cgroup until it is empty (at most ~2 s)."""
        base = self.bases["pids" if self.version == 1 else ""]
        for attempt in range(400):
            try:
                fd = os.open(f"{name}/cgroup.procs", os.O_RDONLY, dir_fd=base)
            except FileNotFoundError:
                return
            with os.fdopen(fd) as f:
                pids = [int(p) for p in f.read().split()]
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.0002 if attempt < 50 else 0.005)

    def make_judges(self, memory_bytes: int) -> None:
        """The cgroup the judge zygote and its judges share: their memory together is capped."""
        base = self.bases["memory" if self.version == 1 else ""]
        os.mkdir(JUDGES, 0o755, dir_fd=base)
        if self.version == 1:
            write_setting(base, f"{JUDGES}/memory.limit_in_bytes", memory_bytes)
        else:
            write_setting(base, f"{JUDGES}/memory.max", memory_bytes)
            write_setting(base, f"{JUDGES}/memory.swap.max", 0)

    def remove(self, name: str, tries: int = 250) -> None:
        for base in set(self.bases.values()):  # (co-mounted controllers share one)
            for attempt in range(tries):  # a process killed a moment ago may still be leaving
                try:
                    os.rmdir(name, dir_fd=base)
                    break
                except FileNotFoundError:
                    break
                except OSError as err:
                    if err.errno != errno.EBUSY:
                        raise
                    time.sleep(0.0002 if attempt < 50 else 0.005)


def join_judges_cgroup(candidate_zygote: int) -> None:
    """Move the calling process (the judge zygote, still root) into the judges' cgroup that the
    candidate zygote ``candidate_zygote`` made (``Cgroups.make_judges``)."""
    own = Cgroups.own_paths()
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        path = f"/sys/fs/cgroup/rlreason-{candidate_zygote}/{JUDGES}"
    else:
        path = f"/sys/fs/cgroup/memory{own.get('memory', '/').rstrip('/')}/rlreason-{candidate_zygote}/{JUDGES}"
    write_setting(os.open(path, os.O_DIRECTORY), "cgroup.procs", 0, close_base=True)


def remove_stale(parent: int) -> None:
    """Remove the empty cgroups of zygotes that died without cleaning up (killed, say)."""
    for entry in os.listdir(parent):
        owner = entry.removeprefix("rlreason-")
        if owner == entry or not owner.isdigit() or process_alive(int(owner)):
            continue
        try:
            stale = os.open(entry, os.O_DIRECTORY, dir_fd=parent)
            for child in os.listdir(stale):
                if os.path.isdir(f"/proc/self/fd/{stale}/{child}"):
                    os.rmdir(child, dir_fd=stale)
            os.close(stale)
            os.rmdir(entry, dir_fd=parent)
        except OSError:
            pass  # still in use after all: leave it


def process_alive(pid: int) -> bool:
    """Running (not gone, not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def read_setting(base: int, path: str) -> int:
    fd = os.open(path, os.O_RDONLY, dir_fd=base)
    try:
        return int(os.read(fd, 64))
    finally:
        os.close(fd)


def write_setting(base: int, path: str, value, close_base: bool = False) -> None:
    try:
        fd = os.open(path, os.O_WRONLY, dir_fd=base)
    except FileNotFoundError:
        if path.endswith("memsw.limit_in_bytes"):
            return  # no swap accounting: there is no swap to limit
        raise
    try:
        os.write(fd, str(value).encode())
    finally:
        os.close(fd)
        if close_base:
            os.close(base)


class SeccompFilter:
    """A libseccomp filter, built once and loaded into each execution before its program runs.

    Refused with EPERM: ptrace and reading/writing other processes' memory, new namespaces
    (``unshare``, ``setns``, ``clone`` with CLONE_NEWUSER), mounts, kernel keyrings, BPF, perf,
    userfaultfd, io_uring (its operations bypass seccomp), module and kexec loading,
    file-handle opens, and what reaches the host through the read-only binds it shares:
    ``flock`` and inotify on the host's files, and the page cache's state (``posix_fadvise``,
    ``readahead``, ``mincore``, ``cachestat``; ``preadv2``/``pwritev2`` with RWF_NOWAIT answer
    EOPNOTSUPP), through which one execution could signal the next. Durable syncs (``sync``,
    ``syncfs``, ``fsync``, ``fdatasync``, ``sync_file_range``) answer success without reaching
    the host's disks (executions write only tmpfs). Sockets of families other than AF_UNIX,
    AF_INET and AF_INET6 (``AF_VSOCK`` would reach the host VM) answer EAFNOSUPPORT. ``clone3``
    answers ENOSYS (its flags are out of seccomp's reach), so the C library falls back to
    ``clone``, whose flags are checked.
    """

    # what a page-cache probe needs (hints, residency, non-blocking reads that fail on a miss)
    CACHE_PROBES = ("fadvise64", "readahead", "mincore", "cachestat")
    # durable syncs reach the host's disks through the read-only binds; executions write tmpfs only
    SYNCS = ("sync", "syncfs", "fsync", "fdatasync", "sync_file_range", "sync_file_range2")
    SOCKET_FAMILIES = (1, 2, 10)  # AF_UNIX, AF_INET, AF_INET6 (the namespace's own loopback)
    RWF_NOWAIT = 0x8
    DENIED = ("ptrace", "process_vm_readv", "process_vm_writev", "unshare", "setns", "mount", "umount2",
              "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsmount", "fspick",
              "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
              "io_uring_setup", "io_uring_enter", "io_uring_register", "kexec_load", "kexec_file_load",
              "init_module", "finit_module", "delete_module", "open_by_handle_at", "name_to_handle_at",
              "swapon", "swapoff", "syslog", "reboot", "acct", "quotactl", "fanotify_init",
              "lookup_dcookie", "personality", "iopl", "ioperm", "flock", "inotify_init", "inotify_init1")
    ALLOW, ERRNO = 0x7FFF0000, 0x00050000
    EQ, GT, MASKED_EQ = 4, 6, 7  # libseccomp's SCMP_CMP_* operators

    class ArgCmp(ctypes.Structure):
        _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                    ("datum_b", ctypes.c_uint64)]

    def __init__(self):
        path = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
        self.lib = ctypes.CDLL(path, use_errno=True)
        self.lib.seccomp_init.restype = ctypes.c_void_p
        self.lib.seccomp_init.argtypes = [ctypes.c_uint32]
        self.lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                                    ctypes.c_uint, ctypes.POINTER(self.ArgCmp)]
        self.lib.seccomp_load.argtypes = [ctypes.c_void_p]
        self.lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        self.context = self.lib.seccomp_init(self.ALLOW)
        if not self.context:
            raise OSError("seccomp_init failed")
        deny = self.ERRNO | errno.EPERM
        for name in self.DENIED:
            self.add(deny, name)
        self.add(deny, "clone", self.ArgCmp(0, self.MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER))
        self.add(self.ERRNO | errno.ENOSYS, "clone3")
        for name in self.CACHE_PROBES:
            self.add(deny, name)
        for name in ("preadv2", "pwritev2"):
            self.add(self.ERRNO | errno.EOPNOTSUPP, name, self.ArgCmp(5, self.MASKED_EQ, self.RWF_NOWAIT, self.RWF_NOWAIT))
        for name in self.SYNCS:
            self.add(self.ERRNO | 0, name)  # answered as done
        refused = self.ERRNO | errno.EAFNOSUPPORT
        highest = max(self.SOCKET_FAMILIES)
        for family in range(highest):
            if family not in self.SOCKET_FAMILIES:
                self.add(refused, "socket", self.ArgCmp(0, self.EQ, family, 0))
        self.add(refused, "socket", self.ArgCmp(0, self.GT, highest, 0))

    def add(self, action: int, name: str, *conditions: ArgCmp) -> None:
        number = self.lib.seccomp_syscall_resolve_name(name.encode())
        if number < 0:
            return  # not a system call on this architecture
        array = (self.ArgCmp * len(conditions))(*conditions) if conditions else None
        if self.lib.seccomp_rule_add_array(self.context, action, number, len(conditions), array) != 0:
            raise OSError(f"seccomp rule for {name} refused")

    def load(self) -> None:
        if self.lib.seccomp_load(self.context) != 0:
            raise OSError("seccomp_load failed")


def syscall_number(name: str) -> int:
    """The system call's number on this machine, from libseccomp (no per-architecture table)."""
    path = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(path)
    except OSError as err:
        raise OSError(f"no libseccomp: {err}") from None
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    number = lib.seccomp_syscall_resolve_name(name.encode())
    if number < 0:
        raise OSError(f"no system call {name} here")
    return number
