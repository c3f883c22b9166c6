"""``steadyswap batch-run``: FaceFusion's pattern flags expand to the swaps FaceFusion runs, in its order."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from steadyswap.cli.batch_run import expand_patterns
from steadyswap.cli.main import main
from steadyswap.errors import InputNotFoundError, UsageError
from steadyswap.io import media_kind, probe
from tests.conftest import media_path
from tests.helpers import decode, photo


def files(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"x")


def test_every_source_with_every_target_sources_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files(tmp_path, "faces/b.jpg", "faces/a.jpg", "faces/notes.txt", "clips/x.MP4", "clips/y.png", "clips/sub/z.png")
    monkeypatch.chdir(tmp_path)
    swaps = expand_patterns("faces/*.jpg", "clips/*", "out/{index:02d}-{source_name}-{target_name}{target_extension}")
    assert swaps == [
        ("faces/a.jpg", "clips/x.MP4", "out/00-a-x.mp4"),
        ("faces/a.jpg", "clips/y.png", "out/01-a-y.png"),
        ("faces/b.jpg", "clips/x.MP4", "out/02-b-x.mp4"),
        ("faces/b.jpg", "clips/y.png", "out/03-b-y.png"),
    ]
    assert expand_patterns(str(tmp_path / "faces/a.jpg"), "clips/y.png", "{index}{target_extension}") == [
        (str(tmp_path / "faces/a.jpg"), "clips/y.png", "0.png")]


@pytest.mark.parametrize("patterns, error, message", [
    (("faces/*.jpg", "clips/*", "out/{name}.mp4"), UsageError, "unknown placeholder {name}"),
    (("faces/*.jpg", "clips/*", "out/{index.mp4"), UsageError, "--output-pattern 'out/{index.mp4'"),
    (("faces/*.jpg", "clips/*", "out/{source_name}.mp4"), UsageError, "names out/a.mp4 for more than one swap"),
    (("faces/*.png", "clips/*", "out/{index}.mp4"), InputNotFoundError, "--source-pattern 'faces/*.png' matches no"),
    (("faces/*.jpg", "none/*", "out/{index}.mp4"), InputNotFoundError, "--target-pattern 'none/*' matches no file"),
])
def test_bad_patterns_are_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, patterns, error,
                                          message: str) -> None:
    files(tmp_path, "faces/a.jpg", "clips/x.mp4", "clips/y.mp4")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error, match=message.replace("{", r"\{").replace("*", r"\*").replace(".", r"\.")):
        expand_patterns(*patterns)


def test_batch_run_writes_one_swapped_file_per_pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, copy in (("image/liveportrait_s1_512.jpg", "faces/liveportrait_s1.jpg"),
                       ("image/fr_obama_512.jpg", "faces/fr_obama.jpg"), ("image/fr_biden_512.jpg", "targets/fr_biden.jpg"),
                       ("video/liveportrait_d14_60f.mp4", "targets/liveportrait_d14.mp4")):
        (tmp_path / copy).parent.mkdir(exist_ok=True)
        shutil.copy(media_path(name), tmp_path / copy)
    (tmp_path / "out").mkdir()
    monkeypatch.chdir(tmp_path)
    code = main(["batch-run", "-s", "faces/*.jpg", "-t", "targets/*", "-o", "out/{source_name}-{target_name}"
                 "{target_extension}", "--trim-frame-end", "6", "--output-video-fps", "15", "--quiet"])
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "fr_obama-fr_biden.jpg", "fr_obama-liveportrait_d14.mp4",
        "liveportrait_s1-fr_biden.jpg", "liveportrait_s1-liveportrait_d14.mp4"]
    for face in ("fr_obama", "liveportrait_s1"):
        video = tmp_path / "out" / f"{face}-liveportrait_d14.mp4"
        assert probe(video).frame_count == 3 and probe(video).average_rate == 15  # the run options apply
        swapped = np.stack(decode(video)).astype(np.int16)
        assert np.abs(swapped - np.stack(decode(tmp_path / "targets/liveportrait_d14.mp4", 5)[::2])).mean() > 0.5
        image = tmp_path / "out" / f"{face}-fr_biden.jpg"
        assert media_kind(image) == "image"
        assert np.abs(photo(image).astype(np.int16) - photo(tmp_path / "targets/fr_biden.jpg")).mean() > 0.5
    ours = [np.stack(decode(tmp_path / "out" / f"{face}-liveportrait_d14.mp4"))
            for face in ("fr_obama", "liveportrait_s1")]
    assert not np.array_equal(*ours)  # each output has its own source


def test_the_first_failing_swap_stops_the_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    (tmp_path / "faces").mkdir()
    shutil.copy(media_path("image/liveportrait_s33_dog_negative.jpg"), tmp_path / "faces/0-dog.jpg")
    shutil.copy(media_path("image/liveportrait_s1_512.jpg"), tmp_path / "faces/1-person.jpg")
    shutil.copy(media_path("image/fr_biden_512.jpg"), tmp_path / "target.jpg")
    monkeypatch.chdir(tmp_path)
    assert main(["batch-run", "-s", "faces/*", "-t", "target.jpg", "-o", "{source_name}-out.jpg", "--quiet"]) == 4
    assert capsys.readouterr().err.startswith("steadyswap: error: swap 1 of 2 (faces/0-dog.jpg into target.jpg): ")
    assert not list(tmp_path.glob("*-out.jpg"))  # the second swap did not run
