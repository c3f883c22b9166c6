"""Look at the swap: target | output montages with boundary close-ups, one JPEG per clip, in docs/gallery/.

Each clip gives three rows: the first frame with a face, the middle frame, and the frame where the swap adds the
most flicker (face temporal PSNR of the target minus the output's, from the quality monitor). A row shows the
face region of the target and of the output, then the target/output pair zoomed 3x at the left cheek edge and at
the jaw, where the paste mask ends, so seams, halos and colour steps are visible at a glance.

    python scripts/gallery.py                                  # the shared talking heads, default options
    python scripts/gallery.py --clips liveportrait_d3 --frames 120 -- --color-strength 1.0
    python scripts/gallery.py --out /tmp/gallery -- --face-swapper-model hyperswap_1a_256 --models-dir DIR

Flags after ``--`` are ``steadyswap run`` flags. Prints, per clip, the frames shown and the monitor's summary.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from steadyswap.cli.main import build_parser  # noqa: E402
from steadyswap.cli.run import build_config  # noqa: E402
from steadyswap.engine.frame_swapper import FaceSwapper  # noqa: E402
from steadyswap.engine.stream import prepare_references, swap_stream  # noqa: E402
from steadyswap.io import VideoReader, read_image  # noqa: E402
from steadyswap.quality import QualityMonitor  # noqa: E402
from steadyswap.quality.monitor import TPSNR_FACE_OUT, TPSNR_FACE_TGT  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"
CLIPS = ("liveportrait_d0", "liveportrait_d3", "liveportrait_d6", "liveportrait_d10", "liveportrait_d11",
         "liveportrait_d14", "liveportrait_d19", "tpsmm_driving", "liveportrait_s32_1280x720")
SOURCE = MEDIA / "image" / "liveportrait_s1.jpg"
FACE_HEIGHT = 256
ZOOM = 3
CROP = 64
"""Side of a boundary close-up before zooming, in pixels of a face scaled to FACE_HEIGHT."""


@dataclass
class Shot:
    """One frame kept for the montage: both pictures and the face's landmarks."""

    label: str
    index: int
    target: np.ndarray
    output: np.ndarray
    landmarks: np.ndarray


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", nargs="+", default=list(CLIPS), help="clip names in ../shared/media/video")
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--frames", type=int, default=None, help="only the first N frames of each clip")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "gallery")
    parser.add_argument("run_flags", nargs="*", help="steadyswap run flags (after --)")
    args = parser.parse_args()
    config = _config(args)
    args.out.mkdir(parents=True, exist_ok=True)
    source = read_image(args.source)
    for name in args.clips:
        clip = MEDIA / "video" / f"{name}.mp4"
        shots, summary = _swap(clip, source, config, args.frames)
        if not shots:
            print(f"{name}: no face swapped")
            continue
        path = args.out / f"{name}.jpg"
        cv2.imwrite(str(path), cv2.cvtColor(_montage(shots), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 82])
        frames = ", ".join(f"{s.label} {s.index}" for s in shots)
        added = summary.get("flicker_added_face", math.nan)
        sharp = summary.get("sharpness_face", {}).get("mean", math.nan)
        print(f"{name}: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} ({frames}); "
              f"added flicker {added:.2f} dB, sharpness out/target {sharp:.2f}")
    return 0


def _config(args: argparse.Namespace):
    """The RunConfig of the ``steadyswap run`` flags given after ``--``."""
    parser, _ = build_parser()
    placeholder = ["-s", "x.jpg", "-t", "x.mp4", "-o", "y.mp4"]
    return build_config(parser.parse_args(["run", *placeholder, *args.run_flags]))


def _swap(clip: Path, source: np.ndarray, config, frames: int | None) -> tuple[list[Shot], dict]:
    """Run the swap over ``clip``, keeping the first face frame, the middle frame and the worst-flicker frame."""
    end = frames if frames is None else (config.trim_frame_start or 0) + frames
    reader = VideoReader(clip, config.trim_frame_start, end or config.trim_frame_end, high_bit_depth=False)
    middle = len(reader) // 2
    monitor = QualityMonitor()
    first: Shot | None = None
    centre: Shot | None = None
    worst: tuple[float, Shot | None] = (-math.inf, None)
    with reader, FaceSwapper([source], config, reader.info.fps) as swapper:
        prepare_references(swapper, clip)
        for frame, result in swap_stream(swapper, reader):
            stats = monitor.update(frame.image, result.image, result.faces, result.scene_cut,
                                   raw_landmarks=result.raw_faces)
            if len(result.faces) == 0:
                continue
            def shot(label: str) -> Shot:
                return Shot(label, frame.index, frame.image.copy(), result.image.copy(),
                            result.faces.landmarks[0].copy())
            if first is None:
                first = shot("first")
            if centre is None and frame.index >= middle:
                centre = shot("middle")
            added = stats.values[TPSNR_FACE_TGT] - stats.values[TPSNR_FACE_OUT]
            if math.isfinite(added) and added > worst[0]:
                worst = (added, shot(f"worst (+{added:.1f} dB)"))
    shots = [s for s in (first, centre, worst[1]) if s is not None]
    return shots, monitor.summary()


def _montage(shots: list[Shot]) -> np.ndarray:
    rows = [_row(shot) for shot in shots]
    width = max(row.shape[1] for row in rows)
    return np.concatenate([np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows])


def _row(shot: Shot) -> np.ndarray:
    """Target face | output face | cheek edge target, output | jaw edge target, output."""
    x0, y0 = shot.landmarks.min(0)
    x1, y1 = shot.landmarks.max(0)
    margin = 0.35 * max(x1 - x0, y1 - y0)
    box = np.array([x0 - margin, y0 - margin, x1 + margin, y1 + margin])
    scale = FACE_HEIGHT / (box[3] - box[1])
    faces = [_face_crop(image, box, scale) for image in (shot.target, shot.output)]
    cheek = shot.landmarks[np.argmin(shot.landmarks[:, 0])]
    jaw = shot.landmarks[np.argmax(shot.landmarks[:, 1])]
    closeups = []
    for point in (cheek, jaw):
        centre = (point - box[:2]) * scale
        for face in faces:
            closeups.append(_zoom(face, centre))
    tiles = [_label(faces[0], f"target {shot.label} #{shot.index}"), _label(faces[1], "output"),
             _label(closeups[0], "cheek: target"), _label(closeups[1], "output"),
             _label(closeups[2], "jaw: target"), _label(closeups[3], "output")]
    gap = np.full((FACE_HEIGHT, 4, 3), 255, np.uint8)
    return np.concatenate([part for tile in tiles for part in (tile, gap)][:-1], axis=1)


def _face_crop(image: np.ndarray, box: np.ndarray, scale: float) -> np.ndarray:
    """The face box of ``image`` scaled to FACE_HEIGHT rows (grey outside the frame)."""
    matrix = np.array([[scale, 0, -box[0] * scale], [0, scale, -box[1] * scale]], np.float32)
    size = (int(round((box[2] - box[0]) * scale)), FACE_HEIGHT)
    return cv2.warpAffine(image, matrix, size, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_CONSTANT, borderValue=(128, 128, 128))


def _zoom(face: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """A CROP-pixel square of ``face`` around ``centre``, ZOOM times larger (nearest: pixels stay visible)."""
    half = CROP / 2
    x, y = np.clip(centre, half, [face.shape[1] - half, face.shape[0] - half])
    crop = face[int(y - half):int(y + half), int(x - half):int(x + half)]
    zoomed = cv2.resize(crop, (FACE_HEIGHT, FACE_HEIGHT), interpolation=cv2.INTER_NEAREST)
    return zoomed


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    tile = tile.copy()
    cv2.putText(tile, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(tile, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


if __name__ == "__main__":
    sys.exit(main())
