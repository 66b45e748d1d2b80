"""pa3: CNNs for semantic segmentation of Cityscapes street scenes (a course report, reproduced)."""
__version__ = "0.1.0"
