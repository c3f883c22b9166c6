"""Reference selection and face maps on real photos and clips (watermark off where a test needs the people left
alone to stay bit-exact: the watermark touches every pixel by about 2 levels)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from steadyswap import RunConfig
from steadyswap.analysis.face_map import load_face_map
from steadyswap.analysis.selection import APPEARANCE_SCALE, appearance_descriptors, distances
from steadyswap.api import swap_file
from steadyswap.errors import InputNotFoundError, UsageError
from tests.conftest import media_path
from tests.helpers import decode, photo, still_analyzer


def test_appearance_separates_people_and_keeps_one_person_together() -> None:
    """The claim behind APPEARANCE_SCALE, measured on clips of four different people."""
    vectors = {}
    for clip in ("video/liveportrait_d0_crf20.mp4", "video/liveportrait_d3_93f.mp4", "video/liveportrait_d19_60f.mp4",
                 "video/liveportrait_d11_61f.mp4"):
        frames = decode(media_path(clip), 60)[::15]
        vectors[clip] = np.concatenate([appearance_descriptors(f, still_analyzer().analyze([f])[0][:1]) for f in frames])
    names = list(vectors)
    for i, a in enumerate(names):
        within = distances(vectors[a], vectors[a], embedded=False)
        assert within.max() < 0.2, a
        for b in names[i + 1:]:
            assert distances(vectors[a], vectors[b], embedded=False).min() > 0.3, (a, b)
    assert APPEARANCE_SCALE == 6.0


def two_people() -> tuple[Path, np.ndarray, np.ndarray]:
    path = media_path("image/fr_two_people_640.jpg")
    image = photo(path)
    faces = still_analyzer().analyze([image])[0]
    assert len(faces) == 2
    return path, image, faces.boxes[np.argsort(faces.boxes[:, 0])]


def changed(before: np.ndarray, after: np.ndarray, box: np.ndarray) -> float:
    x0, y0, x1, y1 = box.astype(int)
    return float(np.abs(after[y0:y1, x0:x1].astype(int) - before[y0:y1, x0:x1]).mean())


def test_reference_position_picks_the_second_face(tmp_path: Path) -> None:
    path, image, boxes = two_people()
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    smaller = boxes[int(np.argmin(areas))]
    larger = boxes[int(np.argmax(areas))]
    out = tmp_path / "o.png"
    swap_file([media_path("image/liveportrait_s1_512.jpg")], path, out,
              RunConfig(face_selector_mode="reference", reference_face_position=1, watermark=False))
    result = photo(out)
    assert changed(image, result, smaller) > 3
    assert changed(image, result, larger) == 0, "the other person is left bit-exact"


def test_face_map_swaps_one_person_and_leaves_the_other(tmp_path: Path) -> None:
    path, image, boxes = two_people()
    face_map = tmp_path / "map.json"
    face_map.write_text(json.dumps({
        "sources": {"s1": str(media_path("image/liveportrait_s1_512.jpg"))},
        "people": [{"frame": 0, "box": boxes[0].tolist(), "source": None},
                   {"frame": 0, "box": boxes[1].tolist(), "source": "s1"}],
    }))
    out = tmp_path / "o.png"
    swap_file([media_path("image/fr_obama_512.jpg")], path, out, RunConfig(face_map=str(face_map), watermark=False))
    result = photo(out)
    assert changed(image, result, boxes[0]) == 0
    assert changed(image, result, boxes[1]) > 3


def test_face_map_errors(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError):
        load_face_map(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    for text in ("{", '{"people": []}', '{"people": [{"frame": 0, "box": [1, 2], "source": null}]}',
                 '{"people": [{"frame": 0, "box": [0, 0, 5, 5], "source": "nobody"}]}'):
        bad.write_text(text)
        with pytest.raises(UsageError):
            load_face_map(bad)
    bad.write_text('{"sources": {"x": "nope.jpg"}, "people": [{"frame": 0, "box": [0, 0, 5, 5], "source": "x"}]}')
    with pytest.raises(InputNotFoundError):
        load_face_map(bad)


def test_face_map_on_a_video_keeps_everyone_else(tmp_path: Path) -> None:
    clip = media_path("video/liveportrait_d0_crf20.mp4")
    first = decode(clip, 1)[0]
    box = still_analyzer().analyze([first])[0].boxes[0]
    face_map = tmp_path / "map.json"
    face_map.write_text(json.dumps({"people": [{"frame": 5, "box": box.tolist(), "source": None}]}))
    result = swap_file([media_path("image/fr_obama_512.jpg")], clip, tmp_path / "o.mp4",
                       RunConfig(face_map=str(face_map), trim_frame_end=20, watermark=False))
    assert result.frames == 20
    out = decode(tmp_path / "o.mp4")
    assert np.mean([np.abs(o.astype(int) - f).mean() for o, f in zip(out, decode(clip, 20))]) < 1.5, \
        "the only person maps to none: nothing is swapped, only codec noise remains"
