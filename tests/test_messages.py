"""What a user reads: errors name the user's own paths, and ``--log-level debug`` shows steadyswap's decisions."""

from __future__ import annotations

from pathlib import Path

import pytest

from steadyswap.api import swap_file
from steadyswap.cli.main import main
from steadyswap.errors import UsageError
from tests.conftest import gpu_engine_config, media_path

SOURCE = "image/liveportrait_s1_512.jpg"


@pytest.mark.parametrize(("target", "output"), [("video/liveportrait_d0_crf20.mp4", "out.webp"),
                                                 ("image/fr_obama_512.jpg", "out.mp4")])
def test_a_wrong_output_extension_names_the_users_path(target: str, output: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError) as error:
        swap_file([media_path(SOURCE)], media_path(target), tmp_path / output)
    assert str(error.value).startswith(f"{tmp_path / output}: ")
    assert "steadyswap-tmp" not in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_the_gpu_engine_names_the_users_path_too(gpu_models_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from steadyswap.engine.gpu.engine import run_file

    with pytest.raises(UsageError, match=f"^{tmp_path / 'out.avi'}: video extension"):
        run_file([media_path(SOURCE)], media_path("video/liveportrait_d0_crf20.mp4"), tmp_path / "out.avi",
                 gpu_engine_config(gpu_models_dir), "video")


def test_debug_log_shows_steadyswaps_decisions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", "-s", str(media_path(SOURCE)), "-t", str(media_path("video/fr_hamilton_180f.mp4")),
            "-o", str(tmp_path / "out.mp4"), "--trim-frame-end", "30", "-q"]
    assert main(argv) == 0
    assert "debug:" not in capsys.readouterr().err
    assert main([*argv, "--log-level", "debug"]) == 0
    lines = capsys.readouterr().err.splitlines()
    debug = [line for line in lines if ": debug: " in line]
    assert all(line.startswith("steadyswap.") for line in debug)  # each names its module
    text = "\n".join(debug)
    assert "analyser mediapipe, swapper classic, recognizer none, selector one" in text
    assert f"source identity from {media_path(SOURCE)}" in text
    assert "scene cut at frame 20" in text  # the clip's first cut
    assert "encoder libx264, crf 10, preset veryfast" in text
    assert "time by stage" in debug[-1] and all(f"{stage} " in debug[-1] for stage in ("decode", "analyse", "swap",
                                                                                       "encode"))
