"""torch.distributed on the CPU: two processes, gloo backend, a tiny model and tiny data.

One spawn of two ranks runs ``pa3.engine.fit`` (DistributedSampler re-seeded by ``set_epoch``, DDP from
``prepare_model``) and ``pa3.inference.evaluate`` on DistributedSampler-backed loaders; the tests then check
what the ranks left behind: identical weights, a confusion matrix equal to one process evaluating the
whole split, and a run folder written once, by rank 0. A last test runs the real command line under
torchrun (``python -m torch.distributed.run`` is torchrun's module form).

About uneven splits: ``DistributedSampler`` pads every rank to the same length by repeating the first
samples, so with ``len(dataset) % world_size != 0`` those samples are counted twice. For evaluation,
pass a strided shard ``list(range(rank, n, world_size))`` as the sampler instead (what ``python -m pa3
train`` does under torchrun); both cases are checked below.
"""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

from helpers import make_fake_cityscapes

REPO = Path(__file__).resolve().parents[1]
WORLD_SIZE = 2
NUM_CLASSES = 3
EPOCHS = 2
RUN_FILES = {"config.json", "history.csv", "history.json", "metrics.json", "last.pt", "last.prev.pt", "best.pt",
             "confusions.json", "sources.json"}


class TinyNet(nn.Module):
    def __init__(self, num_classes=NUM_CLASSES):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.classifier = nn.Conv2d(8, num_classes, 1)

    def forward(self, x):
        return self.classifier(self.features(x))


def tiny_data(n, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, size, size, generator=g)
    masks = (images[:, 0] > 0).long() + (images[:, 1] > 0.5).long()  # learnable pixel-wise, 3 classes
    masks[:, :2, :2] = 255  # a few ignored pixels
    return TensorDataset(images, masks)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def confusion(model, dataset, sampler=None):
    from pa3.inference import evaluate

    loader = DataLoader(dataset, batch_size=1, shuffle=False, sampler=sampler)  # batch 1: bitwise-equal logits
    return evaluate(model, loader, NUM_CLASSES)["confusion"]


def _worker(rank, port, out):
    """One rank: fit, then evaluate; every result goes to ``out`` (compared by the tests)."""
    torch.set_num_threads(1)
    os.environ["TQDM_DISABLE"] = "1"
    from pa3 import checkpoint, engine, files
    from pa3.config import TrainConfig
    from pa3.data import make_loader

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE)
    try:
        writes = []  # every file this rank writes (every pa3 write goes through files.write_atomically)
        write_atomically = files.write_atomically

        def logged(path, write):
            writes.append(str(path))
            return write_atomically(path, write)

        files.write_atomically = checkpoint.write_atomically = logged

        # (a) + (c): training through fit
        train_set, val_set = tiny_data(16), tiny_data(6, seed=1)
        train_sampler = DistributedSampler(train_set, shuffle=True, seed=0)
        train_loader = make_loader(train_set, 4, train=True, sampler=train_sampler)
        val_loader = make_loader(val_set, 2, train=False, sampler=DistributedSampler(val_set, shuffle=False))
        torch.manual_seed(rank)  # different initial weights on purpose: DDP must broadcast rank 0's
        model = TinyNet()
        config = TrainConfig(model="tiny", epochs=EPOCHS, batch_size=4, lr=1e-2, device="cpu")
        history = engine.fit(model, train_loader, val_loader, config, out / "run",
                             criterion=nn.CrossEntropyLoss(ignore_index=255), num_classes=NUM_CLASSES)
        torch.save(model.state_dict(), out / f"state_rank{rank}.pt")

        # (b): distributed evaluation vs one process over the whole split (same weights on every rank)
        torch.manual_seed(1)
        evaluated = TinyNet().eval()
        even, odd = tiny_data(6, seed=2), tiny_data(5, seed=3)
        result = {
            "rank": rank, "writes": writes, "history_rows": len(history), "sampler_epoch": train_sampler.epoch,
            "even_distributed": confusion(evaluated, even, DistributedSampler(even, shuffle=False)),
            "odd_padded": confusion(evaluated, odd, DistributedSampler(odd, shuffle=False)),
            "odd_sharded": confusion(evaluated, odd, list(range(rank, len(odd), WORLD_SIZE))),
        }
        if rank == 0:
            dist.destroy_process_group()  # the single-process references, outside torch.distributed
            result.update(even_single=confusion(evaluated, even), odd_single=confusion(evaluated, odd),
                          odd_first=confusion(evaluated, torch.utils.data.Subset(odd, [0])))
        (out / f"result_rank{rank}.json").write_text(json.dumps(result))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """Spawn the two ranks once; returns (output folder, [result of rank 0, result of rank 1])."""
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(free_port(), out), nprocs=WORLD_SIZE, join=True)
    return out, [json.loads((out / f"result_rank{r}.json").read_text()) for r in range(WORLD_SIZE)]


def test_weights_are_identical_on_every_rank_after_training(ranks):
    out, results = ranks
    states = [torch.load(out / f"state_rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]
    assert states[0].keys() == states[1].keys()
    for key in states[0]:  # parameters and BatchNorm buffers (synced by DDP at the next forward)
        assert torch.equal(states[0][key], states[1][key]), key
    assert all(r["history_rows"] == EPOCHS for r in results)
    # fit re-seeds the DistributedSampler every epoch (set_epoch), so each epoch is shuffled differently
    assert all(r["sampler_epoch"] == EPOCHS - 1 for r in results)
    # the weights trained are rank 0's initial weights (broadcast by DDP), saved in last.pt by rank 0
    last = torch.load(out / "run" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(last[k], states[0][k]) for k in last)


def test_distributed_confusion_equals_one_process_over_the_whole_split(ranks):
    _, (rank0, rank1) = ranks
    assert rank0["even_distributed"] == rank1["even_distributed"] == rank0["even_single"]
    assert np.sum(rank0["even_single"]) > 0
    # an odd split: DistributedSampler repeats sample 0 to even out the ranks, so it is counted twice ...
    padded, single, first = (np.array(rank0[k]) for k in ("odd_padded", "odd_single", "odd_first"))
    assert np.array_equal(padded, single + first)
    # ... while a strided shard (no padding) counts every pixel exactly once
    assert rank0["odd_sharded"] == rank1["odd_sharded"] == rank0["odd_single"]


def test_run_folder_is_written_once_by_rank_0(ranks):
    out, (rank0, rank1) = ranks
    run = out / "run"
    assert {p.name for p in run.iterdir()} == RUN_FILES  # nothing else: no tmp file, no per-rank copy
    assert rank1["writes"] == []
    assert rank0["writes"] and all(Path(w).parent == run and Path(w).name in RUN_FILES for w in rank0["writes"])
    assert len(json.loads((run / "history.json").read_text())) == EPOCHS
    assert len((run / "history.csv").read_text().splitlines()) == EPOCHS + 1  # header + one row per epoch
    assert json.loads((run / "metrics.json").read_text())["status"] == "complete"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["run"] + [f"{k}_rank{r}.{e}" for r in range(WORLD_SIZE) for k, e in (("state", "pt"), ("result", "json"))])


def test_torchrun_cli_smoke(tmp_path):
    """``torchrun --nproc_per_node=2 -m pa3 train`` on tiny fake data: exit 0, one run folder, exact metrics."""
    # 3 val images at batch size 1: 2 batches on rank 0, 1 on rank 1; padding would count one image twice
    root = make_fake_cityscapes(tmp_path / "data", {"train": 4, "val": 3}, size=(64, 128))
    run = tmp_path / "run"
    env = {**os.environ, "PA3_CACHE": str(tmp_path / "cache"), "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env.pop("PA3_DATA", None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "pa3", "train", "--model", "fcn", "--data", str(root), "--height", "64", "--width", "128",
               "--epochs", "1", "--batch-size", "1", "--device", "cpu", "--run-dir", str(run)]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "on 2 processes" in result.stdout and result.stdout.count("training fcn on") == 1  # rank 0 prints
    assert {p.name for p in run.iterdir()} == RUN_FILES - {"last.prev.pt"}  # one epoch: no earlier last.pt
    assert len(json.loads((run / "history.json").read_text())) == 1
    # every labelled val pixel counted exactly once across the two ranks
    from pa3.data import CityscapesSegmentation

    val = CityscapesSegmentation(root, "val", size=(64, 128), cache=False)
    labelled = sum(int((val[i][1] != 255).sum()) for i in range(len(val)))
    assert np.sum(json.loads((run / "metrics.json").read_text())["confusion"]) == labelled
