"""The sandbox a submission's code runs in while it is graded: bubblewrap (``bwrap``), one per grading step.

Inside it the submission sees only:

- the system (/usr, /etc and the library folders), the Python environment and the data set, read-only;
- its own copy, writable, at the path it has outside, and a private /tmp;
- the grader's helper folder, read-only, at /grader (the runner script and the checks' inputs; never the
  checks' expected values, which stay with the grader).

It has no network (its own empty network namespace), its own pid namespace (everything it started dies with
it at the time limit), runs as an unprivileged uid (as root: bwrap without a user namespace, then ``setpriv``
to a uid of its own with no capabilities, so that root's files, /etc/shadow among them, stay root's; otherwise
bwrap in a user namespace, uid 65534 inside), and its memory and number of processes are capped: by a cgroup
(pids, memory) when the grader may create one (as root), else by rlimits (``prlimit``: the number of processes
of its uid, the data size of each process). Neither the instructor's checkout nor the editable
install that points at it is visible: ``import pa3`` finds the submission's own package or nothing.

``bwrap`` comes with Debian's and Ubuntu's package ``bubblewrap`` (``apt-get install -y bubblewrap``).
"""
import itertools
import os
import shutil
import site
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

INSTALL = ("bubblewrap is not installed: grading runs each submission's code in a bubblewrap sandbox. Install it "
           "with `sudo apt-get install -y bubblewrap` (Debian, Ubuntu; `dnf install bubblewrap` on Fedora), or "
           "pass --no-sandbox to grade without one, only code you trust (grades.csv then says 'unsandboxed').")
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc")
HELPERS = "/grader"  # where the helper folder appears inside
UID = 65534  # "nobody": the uid inside a user namespace (a grader that is not root)
_cgroup_names = itertools.count()


@dataclass
class Limits:
    memory_gb: float = 8.0  # the whole sandbox (cgroup) or each of its processes (rlimit)
    processes: int = 256
    file_gb: float = 4.0  # the largest file it may write


class SandboxError(RuntimeError):
    """The sandbox cannot be set up on this machine (bwrap missing or refused)."""


def available():
    """The path of ``bwrap``, or None."""
    return shutil.which("bwrap")


def python_dirs():
    """The folders the running Python needs: its environment (a venv) and the installation it comes from."""
    dirs = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).parent}
    dirs |= {Path(p) for p in (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"])}
    return sorted({d.resolve() for d in dirs if d.exists()})


def editable_hooks():
    """Files of the environment through which ``import pa3`` would reach an instructor's checkout: the editable
    install's .pth file and its finder (masked with an empty file in the sandbox)."""
    hooks = []
    for folder in {*site.getsitepackages(), sysconfig.get_paths()["purelib"]}:
        for path in Path(folder).glob("__editable__*"):
            hooks.append(path)
        for path in Path(folder).glob("*.pth"):
            text = path.read_text(errors="replace")
            if "pa3" in text or any(line.strip().startswith("/") for line in text.splitlines()):
                hooks.append(path)  # a legacy editable install (a path in a .pth file)
    return sorted(set(hooks))


def command(argv, writable, readable=(), helpers=None, env=None, limits=None, cgroup=None, uid=UID):
    """The argv that runs ``argv`` in a sandbox: ``writable`` (the submission's copy) bound read-write at its own
    path and made the working folder, ``readable`` (data) read-only at theirs, ``helpers`` read-only at /grader,
    a clean environment ``env``. ``cgroup``: folders (``make_cgroups``) the sandbox joins before it starts.

    As root, bwrap sets the sandbox up and ``setpriv`` then drops to ``uid`` (no user namespace, so the uid is
    unprivileged outside too: root's files stay root's, and the rlimit on processes holds); ``writable`` must
    belong to ``uid`` (``hand_over``). Otherwise bwrap runs unprivileged in a user namespace, as uid 65534 inside
    and this user outside."""
    bwrap = available()
    if bwrap is None:
        raise SandboxError(INSTALL)
    limits = limits or Limits()
    if os.geteuid() == 0:
        namespaces = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
                      "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        argv = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
                "--bounding-set=-all", "--", *argv]
    else:
        namespaces = ["--unshare-all", "--uid", str(UID), "--gid", str(UID)]
    binds = []  # (option, source, target)
    for folder in SYSTEM:
        if os.path.lexists(folder):
            target = os.readlink(folder) if os.path.islink(folder) else None
            binds.append(("--symlink", target, folder) if target and not target.startswith("/") else
                         ("--ro-bind", folder, folder))
    binds += [("--ro-bind", str(folder), str(folder)) for folder in python_dirs()]
    binds += [("--ro-bind", "/dev/null", str(path)) for path in editable_hooks()]
    binds += [("--ro-bind", str(Path(folder).resolve()), str(Path(folder).resolve())) for folder in readable]
    if helpers is not None:
        binds.append(("--ro-bind", str(Path(helpers).resolve()), HELPERS))
    writable = Path(writable).resolve()
    binds.append(("--bind", str(writable), str(writable)))
    args = [bwrap, *namespaces, "--die-with-parent", "--new-session", "--hostname", "sandbox", "--proc", "/proc",
            "--dev", "/dev", "--perms", "1777", "--tmpfs", "/dev/shm",  # POSIX semaphores (DataLoader workers)
            "--perms", "1777", "--tmpfs", "/tmp", "--clearenv"]
    for folder in _folders_above([target for _, _, target in binds]):  # bwrap would make them 0700
        args += ["--perms", "0755", "--dir", folder]
    for option, source, target in sorted(binds, key=lambda bind: bind[2].count("/")):
        args += [option, source, target]
    args += ["--chdir", str(writable)]
    for name, value in inside_env(env).items():
        args += ["--setenv", name, str(value)]
    rlimits = ["prlimit", "--core=0", f"--fsize={int(limits.file_gb * 2**30)}"]
    if cgroup is None:  # no cgroup: cap each process's data and the uid's number of processes
        rlimits += [f"--data={int(limits.memory_gb * 2**30)}", f"--nproc={_processes_of(uid) + limits.processes}"]
    inner = [*rlimits, "--", *args, "--", *argv]
    if not cgroup:
        return inner
    joins = "; ".join(f"echo $$ > {Path(folder) / 'cgroup.procs'}" for folder in cgroup)
    return ["/bin/sh", "-c", f"{joins}; exec \"$@\"", "sandbox", *inner]


def inside_env(env=None):
    """The whole environment of a sandbox's process: this Python's folder on PATH, HOME and matplotlib's config
    folder in its private /tmp, plus ``env``."""
    return {"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp",
            "LANG": "C.UTF-8", "MPLCONFIGDIR": "/tmp/matplotlib", **(env or {})}


def _folders_above(targets):
    """The folders above the bind targets that no bind provides (and not /tmp, a tmpfs), shallowest first."""
    bound = set(targets)
    above = set()
    for target in targets:
        for parent in Path(target).parents:
            text = str(parent)
            if text in ("/", "/tmp") or text in bound or any(text.startswith(b + "/") for b in bound):
                continue
            above.add(text)
    return sorted(above, key=lambda folder: (folder.count("/"), folder))


def hand_over(folder, uid):
    """Make ``folder`` (the submission's copy) belong to the sandbox's ``uid`` (as root; else nothing to do)."""
    if os.geteuid() != 0:
        return
    for path in [Path(folder), *Path(folder).rglob("*")]:
        os.chown(path, uid, uid, follow_symlinks=False)


_uids = itertools.count()


def next_uid():
    """A uid of its own for each sandbox a root grader starts (61000-61999), so that concurrent sandboxes never
    share the rlimit on processes; 65534 when not root (the uid inside a user namespace)."""
    return 61000 + next(_uids) % 1000 if os.geteuid() == 0 else UID


def _processes_of(uid):
    count = 0
    for entry in Path("/proc").iterdir():
        try:
            count += entry.name.isdigit() and entry.stat().st_uid == uid
        except OSError:
            pass
    return count


def _own_cgroup(controller):
    """(mount point, this process's cgroup path) of cgroup v1 ``controller`` or v2 (controller None)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        number, controllers, path = line.split(":", 2)
        if (controller is None and number == "0") or controller in controllers.split(","):
            return path
    return None


def make_cgroups(limits=None):
    """Folders of new cgroups capping memory and processes (v2, or v1 memory + pids), or None when this
    process may not create them (not root, or no such controllers). Remove them with ``remove_cgroups``."""
    limits = limits or Limits()
    if os.geteuid() != 0:
        return None
    name = f"pa3-sandbox-{os.getpid()}-{next(_cgroup_names)}"
    memory = str(int(limits.memory_gb * 2**30))
    root = Path("/sys/fs/cgroup")
    made = []
    try:
        v1 = {c: root / c for c in ("memory", "pids")}
        if all((v1[c] / "cgroup.procs").exists() for c in v1):
            for controller, mount in v1.items():
                folder = mount / (_own_cgroup(controller) or "/").lstrip("/") / name
                _remove_stale(folder.parent)
                folder.mkdir()
                made.append(folder)
            (made[0] / "memory.limit_in_bytes").write_text(memory)
            if (made[0] / "memory.memsw.limit_in_bytes").exists():
                (made[0] / "memory.memsw.limit_in_bytes").write_text(memory)
            (made[1] / "pids.max").write_text(str(limits.processes))
            return made
        own = _own_cgroup(None)
        if own is not None and {"memory", "pids"} <= set((root / "cgroup.controllers").read_text().split()):
            folder = root / own.lstrip("/") / name
            _remove_stale(folder.parent)
            folder.mkdir()
            made.append(folder)
            (folder / "memory.max").write_text(memory)
            (folder / "memory.swap.max").write_text("0")
            (folder / "pids.max").write_text(str(limits.processes))
            return made
    except OSError:
        remove_cgroups(made)
    return None


def limits_hit(folders, limits):
    """Sentences on the caps of the cgroups ``folders`` that were reached (the kernel's counts), for feedback."""
    said = []
    for folder in folders or ():
        for name in ("memory.oom_control", "memory.events", "pids.events"):
            try:
                counts = dict(line.split()[:2] for line in (folder / name).read_text().splitlines() if " " in line)
            except OSError:
                continue
            if int(counts.get("oom_kill", 0)) > 0:
                said.append(f"it used more memory than the sandbox allows ({limits.memory_gb:g} GiB): the kernel "
                            f"killed {counts['oom_kill']} of its processes")
            if name == "pids.events" and int(counts.get("max", 0)) > 0:
                said.append(f"it tried to run more than {limits.processes} processes at once: {counts['max']} "
                            f"of its forks failed")
    return said


def _remove_stale(parent):
    """Remove the cgroups left by graders that were killed (their pid, in the name, is gone)."""
    for folder in parent.glob("pa3-sandbox-*"):
        pid = folder.name.split("-")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            remove_cgroups([folder])


def remove_cgroups(folders):
    """Kill what is left in the cgroups ``folders`` and remove them."""
    for folder in folders or ():
        for _ in range(50):
            try:
                for pid in (folder / "cgroup.procs").read_text().split():
                    try:
                        os.kill(int(pid), 9)
                    except ProcessLookupError:
                        pass
                folder.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                import time
                time.sleep(0.1)
