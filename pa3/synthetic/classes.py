"""The labelIds the synthetic scenes paint, as in cityscapesscripts.helpers.labels.

Every painter labels its polygons with these constants; ``_NAMES`` maps a labelId to its class name (for
the polygons files). This module is the bottom of the package: it imports nothing else from it.
"""
from __future__ import annotations

from .. import labels


# labelIds (cityscapesscripts.helpers.labels) of the classes drawn here
EGO, BORDER, OUT_OF_ROI = 1, 2, 3
ROAD, SIDEWALK = 7, 8
BUILDING, WALL, FENCE = 11, 12, 13
POLE, LIGHT, SIGN = 17, 19, 20
VEGETATION, TERRAIN, SKY = 21, 22, 23
PERSON, RIDER, CAR, BICYCLE = 24, 25, 26, 33
_NAMES = labels.class_names("labelId")
