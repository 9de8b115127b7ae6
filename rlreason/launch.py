"""How the processes were launched, checked before any model loads.

Free of torch, so the command line can name ``LaunchError`` without importing it."""

from __future__ import annotations


class LaunchError(RuntimeError):
    """The processes were launched in a way rlreason cannot run as asked."""


def refuse_single_process_cpu_launch(env) -> None:
    """``accelerate launch --cpu --num_processes N`` starts one process (accelerate's CPU
    multi-process mode goes through MPI): fail rather than quietly train on one."""
    asked_for_several = env.get("ACCELERATE_USE_CPU", "").lower() == "true" and "MASTER_ADDR" in env
    launched = any(name in env for name in ("RANK", "LOCAL_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE",
                                            "MV2_COMM_WORLD_SIZE"))
    if asked_for_several and not launched:
        raise LaunchError(
            "accelerate launch --cpu with several processes started only one (accelerate runs "
            "several CPU processes through MPI). Leave out --cpu: accelerate launch --config_file "
            "recipes/accelerate/ddp.yaml --num_processes N ... runs N processes on CPU (gloo) when "
            "there is no GPU")
