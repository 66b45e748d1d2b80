"""The assignment's tasks: what the students of the report's course wrote, where, for how many points.

The report says the course handed out "a baseline CNN model and some code for the training process"; the
students built the rest. Each task below is one part of that rest. Its code sits between solution markers
in ``pa3/`` (see ``pa3.assignment.regions``); its checks are ``checks/public/test_task<N>.py`` (shipped in
the student edition) and ``checks/hidden/task<N>.py`` (grading only, judged outside the sandbox); its trained runs are held to
the grading profile's calibrated bands (``pa3/expected/grading.json``); the notebook cells that exercise it
carry ``{"pa3": {"task": N}}`` in their metadata.

Everything else (the FCN baseline, data, training loop, figures, DeepLabv3 from torchvision) is provided.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    number: int
    title: str
    points: int
    files: tuple  # where its solution regions are
    instruction: str  # what the stub says (one sentence; the students' README has the rest)
    runs: tuple = ()  # experiments (pa3.experiments.EXPERIMENTS) whose trained numbers it answers for


TASKS = {t.number: t for t in [
    Task(1, "IoU metrics", 10, ("pa3/metrics.py",),
         "return the IoU of every class, TP / (TP + FP + FN), from a (C, C) confusion matrix (rows = ground "
         "truth), NaN where a class is absent from both"),  # graded by its checks: the grader rescores every run
    Task(2, "Weighted cross-entropy", 10, ("pa3/losses.py",),
         "compute median-frequency class weights (and the 'inverse' and 'enet' rules) from pixel counts, and "
         "divide the weighted loss sum by the summed weights of the valid pixels", runs=("weighted",)),
    Task(3, "Dice loss", 10, ("pa3/losses.py",),
         "return the soft multiclass Dice loss 1 - mean_c dice_c over the classes present, ignored pixels "
         "removed", runs=("dice",)),
    Task(4, "Data augmentation", 10, ("pa3/transforms.py",),
         "randomly scale, crop (pad the mask with 255), flip, rotate and colour-jitter an (image, mask) pair "
         "with the same geometry for both", runs=("augmented",)),
    Task(5, "Modified U-Net (Table 2)", 15, ("pa3/models/unet.py",),
         "build the U-Net of report Table 2: blocks 1-9, bilinear up-convolutions, skip connections, 1x1 "
         "classifier", runs=("unet",)),
    Task(6, "ResNet-50 + transposed convolutions (Table 3)", 10, ("pa3/models/resnet50_deconv.py",),
         "build the ResNet-50 trunk with the five ConvTranspose2d + BN + ReLU layers of report Table 3 and a 1x1 "
         "classifier", runs=("resnet50",)),
    Task(7, "ASPP and ResNet-101 + ASPP (Table 4, 'Ours')", 10, ("pa3/models/aspp.py",),
         "build the ASPP block of report Table 4 and the ResNet-101 (output stride 8) + ASPP model", runs=("ours",)),
    Task(8, "U-Net + ASPP", 10, ("pa3/models/aspp.py",),
         "replace the U-Net's deconv4 and classifier by two ASPP blocks (needs Tasks 5 and 7)", runs=("unet_aspp",)),
]}

# The notebooks: points for running through with the stored outputs (nbval), cells not marked with a task.
# Runs of provided code (the FCN baseline with cross-entropy, DeepLabv3) count here too. Every run's metrics are
# recomputed by the grader from its confusion matrices, so no run depends on the student's IoU (Task 1).
NOTEBOOK_POINTS = {"00_data": 2, "01_baseline": 3, "02_losses": 2, "03_augmentation": 2,
                   "04_deeper_models": 3, "05_comparison": 3}
PROVIDED_RUNS = {"baseline": "01_baseline", "deeplab": "04_deeper_models"}  # run -> the notebook it counts for
REQUIRES = {8: (5, 7)}  # Task 8 builds on the U-Net (5) and the ASPP (7)
TOTAL_POINTS = sum(t.points for t in TASKS.values()) + sum(NOTEBOOK_POINTS.values())


def task_of_run(name):
    """The task number answering for experiment ``name``, or None for a provided model's run."""
    return next((t.number for t in TASKS.values() if name in t.runs), None)


def stub_message(number):
    task = TASKS[number]
    return f"Task {number} ({task.title}): {task.instruction}. Replace this line with your code."
