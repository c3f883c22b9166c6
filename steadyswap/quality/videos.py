"""Measure any pair of videos: the target and a swap of it, decoded side by side."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from steadyswap.analysis.cuts import SceneCutDetector
from steadyswap.analysis.mediapipe_mesh import MediaPipeAnalyzer
from steadyswap.errors import InputError
from steadyswap.io import VideoReader
from steadyswap.quality.monitor import QualityMonitor
from steadyswap.tracking.tracker import FaceTracker


def compare_videos(target: str | Path, output: str | Path,
                   progress: Callable[[int, int | None], None] | None = None) -> QualityMonitor:
    """Run the quality monitor over ``output`` against ``target`` frame by frame.

    Faces are found and tracked on the output (its landmarks are what a viewer sees shake);
    scene cuts are detected on the target.

    Raises:
        InputError: the two videos differ in frame count or size.
    """
    monitor = QualityMonitor()
    with VideoReader(target, high_bit_depth=False) as before, VideoReader(output, high_bit_depth=False) as after:
        if len(before) != len(after):
            raise InputError(f"{output} has {len(after)} frames but {target} has {len(before)}")
        if (before.info.width, before.info.height) != (after.info.width, after.info.height):
            raise InputError(f"{output} and {target} differ in frame size")
        analyzer, tracker, cuts = MediaPipeAnalyzer(max_faces=8), FaceTracker(), SceneCutDetector()
        try:
            for done, (a, b) in enumerate(zip(before, after), start=1):
                cut = cuts.update(a.image)
                if cut:
                    tracker.reset()
                    analyzer.reset()
                faces = tracker.update(analyzer.analyze([b.image], video=True)[0])
                monitor.update(a.image, b.image, faces, cut)
                if progress is not None:
                    progress(done, len(before))
        finally:
            analyzer.close()
    return monitor
