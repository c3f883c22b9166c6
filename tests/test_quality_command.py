"""``steadyswap quality`` and ``run --quality-report`` on real clips."""

from __future__ import annotations

import json
from pathlib import Path

from steadyswap.cli.main import main
from tests.conftest import media_path


def test_quality_command_writes_json_csv_png(tmp_path: Path, capsys) -> None:
    clip = media_path("video/liveportrait_d0_crf20.mp4")
    report = tmp_path / "q.json"
    assert main(["quality", "-t", str(clip), "-o", str(clip), "--report", str(report), "--quiet"]) == 0
    summary = json.loads(report.read_text())["summary"]
    assert summary["frames"] == 78
    assert summary["flicker_added_face"] == 0
    assert summary["td_fidelity_face"]["min"] == 100, "a video against itself moves exactly like itself"
    assert report.with_suffix(".csv").stat().st_size > 0 and report.with_suffix(".png").stat().st_size > 1000
    assert "tPSNR face output" in capsys.readouterr().out


def test_quality_command_refuses_different_lengths(tmp_path: Path) -> None:
    code = main(["quality", "-t", str(media_path("video/liveportrait_d0_crf20.mp4")),
                 "-o", str(media_path("video/tpsmm_driving_78f.mp4")), "--quiet"])
    assert code == 3


def test_run_with_quality_report(tmp_path: Path, capsys) -> None:
    report = tmp_path / "run.json"
    code = main(["run", "-s", str(media_path("image/fr_obama_512.jpg")),
                 "-t", str(media_path("video/liveportrait_d0_crf20.mp4")),
                 "-o", str(tmp_path / "o.mp4"), "--quality-report", str(report), "--quiet"])
    assert code == 0
    data = json.loads(report.read_text())
    assert data["summary"]["frames"] == 78 and len(data["frames"]) == 78
    assert data["summary"]["jitter_raw"]["count"] > 50, "raw and smoothed landmarks are both measured"
    assert "Added flicker" in capsys.readouterr().out
