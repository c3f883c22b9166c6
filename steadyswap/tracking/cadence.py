"""Detection cadence: detect faces on keyframes only and carry them between (``--face-detector-interval``).

A file run delays its frames anyway (the smoother's lookahead), so the faces of the frames between two keyframes
can be interpolated from the detections on both sides rather than guessed from the past: each face's box, five
points, landmarks and score move linearly from one keyframe to the next. That holds only where the two keyframes
show the same faces, steadily: ``carry`` says when to detect the frames between after all (a face that appeared,
left or changed places, a detection of low confidence, a face that moved far, where motion need not be straight).
A scene cut is always a keyframe, and the frames before it are detected (nothing after the cut tells where they
were). The decisions use only detections, never pixels, so the GPU engine (whose deciders see thumbnails) decides
exactly as the CPU path does.
"""

from __future__ import annotations

import numpy as np

from steadyswap.tracking.tracker import box_iou, kps_distance, match
from steadyswap.types import Faces

MAX_MOTION = 0.25
"""Most a face's five points may move between two keyframes, on average, in eye distances, for the frames between
to be carried; beyond it they are detected (docs/benchmarks.md, "Detection cadence")."""
MAX_COST = 1.0
"""The tracker's pairing cost (box overlap and five-point distance) above which two keyframes' faces are not the
same face."""


def confident(score_threshold: float) -> float:
    """The detection score a keyframe's faces need for the frames around them to be carried: halfway from
    ``--face-detector-score`` to 1, so a face the detector barely keeps is looked for again on every frame.

    >>> confident(0.5)
    0.75
    """
    return (1 + score_threshold) / 2


def pairs(before: Faces, after: Faces, min_score: float, max_motion: float = MAX_MOTION) -> list[int] | None:
    """For each face of ``after``, the row of ``before`` it continues, when the frames between two keyframes can be
    carried; None when they must be detected: a different number of faces, a face without a partner, a score
    below ``min_score``, or five points that moved more than ``max_motion`` eye distances on average.

    >>> a = Faces(np.array([[0, 0, 10, 10]], np.float32), np.array([0.9], np.float32), np.zeros((1, 5, 2), np.float32),
    ...           np.array([[[2, 3], [8, 3], [5, 5], [3, 8], [7, 8]]], np.float32))
    >>> pairs(a, a.with_(kps=a.kps + 1), 0.75), pairs(a, a.with_(kps=a.kps + 3), 0.75), pairs(a, Faces.empty(), 0.75)
    ([0], None, None)
    """
    if len(before) != len(after):
        return None
    if len(after) == 0:
        return []
    if min(before.scores.min(), after.scores.min()) < min_score:
        return None
    cost = (1 - box_iou(before.boxes, after.boxes)) + 0.5 * kps_distance(before.kps, after.kps)
    matched = match(cost, MAX_COST)
    if len(matched) != len(after):
        return None
    rows = [0] * len(after)
    for row, column in matched:
        if kps_distance(before.kps[row:row + 1], after.kps[column:column + 1])[0, 0] > max_motion:
            return None
        rows[column] = row
    return rows


def carry(before: Faces, after: Faces, rows: list[int], count: int) -> list[Faces]:
    """The faces of the ``count`` frames between two keyframes, each face of ``after`` moving linearly from its
    row of ``before`` (``pairs``); untracked (the tracker numbers them frame by frame, as detections).

    >>> a = Faces(np.array([[0, 0, 10, 10]], np.float32), np.array([0.8], np.float32), np.zeros((1, 5, 2), np.float32),
    ...           np.zeros((1, 5, 2), np.float32))
    >>> [float(f.boxes[0, 0]) for f in carry(a, a.with_(boxes=a.boxes + 4), [0], 3)]
    [1.0, 2.0, 3.0]
    """
    start = before[rows]
    found = []
    for step in range(1, count + 1):
        t = np.float32(step / (count + 1))
        found.append(Faces(
            boxes=start.boxes + t * (after.boxes - start.boxes),
            scores=start.scores + t * (after.scores - start.scores),
            landmarks=start.landmarks + t * (after.landmarks - start.landmarks),
            kps=start.kps + t * (after.kps - start.kps),
            embeddings=None if after.embeddings is None else after.embeddings.copy(),
        ))
    return found
