"""torch.distributed for torchrun: set up, ask who we are, agree on a value, wrap and unwrap models.

Without torchrun (WORLD_SIZE unset or 1) every function here is a no-op on one process, so the training
code calls them unconditionally. docs/distributed.md shows how to launch.
"""
import os

import torch
import torch.distributed as dist

from pa3.device import resolve_device


def is_dist():
    return dist.is_available() and dist.is_initialized()


def rank():
    return dist.get_rank() if is_dist() else 0


def world_size():
    return dist.get_world_size() if is_dist() else 1


def is_main_process():
    """True on rank 0 (or without torch.distributed): the process that prints and writes files."""
    return rank() == 0


def setup(device="auto"):
    """Initialise torch.distributed when launched by torchrun (WORLD_SIZE > 1).

    Args:
        device: "auto" (one GPU per process when CUDA is available), "cpu" (gloo), or "cuda".
    Returns:
        (rank, world_size, local_rank, device); (0, 1, 0, resolve_device(device)) for a single process.
    """
    size = int(os.environ.get("WORLD_SIZE", 1))
    if size <= 1:
        return 0, 1, 0, resolve_device(device)
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if torch.cuda.is_available() and str(device) != "cpu":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if not is_dist():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), local_rank, device


def cleanup():
    if is_dist():
        dist.destroy_process_group()


def barrier():
    if is_dist():
        dist.barrier()


def unwrap(model):
    """The plain nn.Module inside a DistributedDataParallel and/or torch.compile wrapper."""
    while True:
        if hasattr(model, "_orig_mod"):  # torch.compile
            model = model._orig_mod
        elif isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def any_process(flag):
    """True if ``flag`` is true in any process (so that every process stops at the same step)."""
    if not is_dist():
        return flag
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    value = torch.tensor(float(flag), device=device)
    dist.all_reduce(value)
    return value.item() > 0


def mean_loss_and_stop(loss, stop):
    """(mean of ``loss`` over processes as a float, whether any process asked to stop): one all_reduce."""
    if not is_dist():
        return loss.item(), stop
    values = torch.stack([loss.float(), torch.tensor(float(stop), device=loss.device)])
    dist.all_reduce(values)
    return values[0].item() / dist.get_world_size(), values[1].item() > 0


def all_reduce_sum(*tensors):
    """Sum each tensor over processes, in place."""
    if is_dist():
        for tensor in tensors:
            dist.all_reduce(tensor)


def gather(obj):
    """Every process's ``obj`` in rank order (a list of one without torchrun); every process must call."""
    if not is_dist():
        return [obj]
    objects = [None] * dist.get_world_size()
    dist.all_gather_object(objects, obj)
    return objects
