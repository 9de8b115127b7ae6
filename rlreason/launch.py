"""How the processes were launched, checked before any model loads.

Free of torch at import, so the command line can name ``LaunchError`` without importing it."""

from __future__ import annotations

import os
import sys
from pathlib import Path


class LaunchError(RuntimeError):
    """The processes were launched in a way rlreason cannot run as asked."""


CPU_LAUNCH_HINT = ("accelerate launch --config_file recipes/accelerate/ddp.yaml --num_processes N ... runs "
                   "N processes on CPU (gloo) when there is no GPU")


def single_process_cpu_launch(env) -> bool:
    """Whether this is the one process ``accelerate launch --cpu --num_processes N`` (N > 1)
    started: accelerate runs several CPU processes only through MPI (``--mpirun_hostfile``), and
    otherwise starts one process with the multi-process rendezvous address set."""
    asked_for_several = env.get("ACCELERATE_USE_CPU", "").lower() == "true" and "MASTER_ADDR" in env
    launched = any(name in env for name in ("RANK", "LOCAL_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE",
                                            "MV2_COMM_WORLD_SIZE"))
    return asked_for_several and not launched


def accelerate_launch_arguments(command_line: list[str]):
    """``accelerate launch``'s own reading of its command line (``None`` if it is not one)."""
    for at, word in enumerate(command_line):
        if word == "launch" or word.endswith(("accelerate.commands.launch", "accelerate/commands/launch.py")):
            from accelerate.commands.launch import launch_command_parser
            return launch_command_parser().parse_args(command_line[at + 1:])
    return None


def parent_command_line() -> list[str]:
    try:
        raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
    except OSError:  # not Linux
        return []
    return [word.decode() for word in raw.split(b"\0") if word]


def relaunch_cpu_processes(env=os.environ) -> None:
    """Make ``accelerate launch --cpu --num_processes N`` run N processes: its single process
    replaces itself with ``torch.distributed.run`` starting N copies of this same command at
    accelerate's rendezvous address (the children keep accelerate's environment, so they run on
    CPU over gloo). Anything else is left alone; a launch that cannot be read is refused."""
    if not single_process_cpu_launch(env):
        return
    asked = accelerate_launch_arguments(parent_command_line())
    if asked is None or not asked.num_processes or (asked.num_machines or 1) > 1:
        raise LaunchError("accelerate launch --cpu with several processes started only one (accelerate "
                          "runs several CPU processes through MPI). Leave out --cpu: " + CPU_LAUNCH_HINT)
    from accelerate.utils.other import get_free_port
    port = env["MASTER_PORT"] if env["MASTER_PORT"] != "0" else str(get_free_port())  # as its launchers do
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(asked.num_processes),
               "--master_addr", env["MASTER_ADDR"], "--master_port", port,
               "--no-python", sys.executable, *sys.orig_argv[1:]]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, command, dict(env))
