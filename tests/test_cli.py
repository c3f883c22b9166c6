"""The command-line layer: FaceFusion 3.5 flag compatibility, RunConfig mapping, output naming, errors, exit codes.

``steadyswap.api.swap_file`` is replaced by a recorder; real swapping is tested with the API.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import types
from dataclasses import fields
from pathlib import Path

import pytest

from steadyswap.cli import main as cli_main
from steadyswap.cli.main import main
from steadyswap.cli.run import resolve_output_path
from steadyswap.config import MEMORY_STRATEGIES, RunConfig
from steadyswap.errors import NoFaceError, UsageError
from steadyswap.flags import FACEFUSION_FLAGS, FLAGS, css_sides

NO_EFFECT = [flag for flag in FACEFUSION_FLAGS if flag.effect == "none"]
UNSUPPORTED = [flag for flag in FACEFUSION_FLAGS if flag.effect == "unsupported"]


class FakeApi:
    """Stands in for ``steadyswap.api``: records each ``swap_file`` call, reports progress, returns a result."""

    def __init__(self, frames: int = 10, error: BaseException | None = None, summary: str | None = None) -> None:
        self.calls: list[dict] = []
        self.frames = frames
        self.error = error
        self.summary = summary

    def swap_file(self, sources, target, output, config, progress=None):
        self.calls.append({"sources": sources, "target": target, "output": output, "config": config})
        if self.error is not None:
            raise self.error
        for done in range(1, self.frames + 1):
            if progress is not None:
                progress(done, self.frames)
        return types.SimpleNamespace(
            output=Path(output), frames=self.frames, seconds=0.5, fps=self.frames / 0.5, summary=self.summary
        )


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    fake = FakeApi()
    module = types.ModuleType("steadyswap.api")
    module.swap_file = fake.swap_file  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "steadyswap.api", module)
    return fake


def run(*flags: str) -> list[str]:
    """A ``steadyswap run`` command line with the required paths and ``flags``."""
    return ["run", "-s", "face.jpg", "-t", "clip.mp4", "-o", "out.mp4", *flags]


def stderr_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


# --- mapping onto RunConfig -------------------------------------------------------------------------------


def test_facefusion_command_line_gives_expected_config(api: FakeApi, tmp_path: Path) -> None:
    argv = [
        "run", "--processors", "face_swapper", "-s", "a.jpg", "b.jpg", "-s", "c.png", "-t", "talk.MP4",
        "-o", str(tmp_path), "--face-swapper-model", "hyperswap_1a_256", "--face-swapper-pixel-boost", "512x512",
        "--face-swapper-weight", "0.6", "--face-selector-mode", "reference", "--face-selector-order", "large-small",
        "--reference-face-position", "1", "--reference-face-distance", "0.4", "--reference-frame-number", "12",
        "--face-detector-model", "yolo_face", "--face-detector-size", "640x640", "--face-detector-angles", "0",
        "--face-detector-score", "0.6", "--face-landmarker-model", "2dfan4", "--face-landmarker-score", "0.5",
        "--face-mask-types", "box", "occlusion", "region", "--face-mask-regions", "skin", "nose", "mouth",
        "--face-mask-areas", "mouth", "--face-occluder-model", "many", "--face-parser-model", "bisenet_resnet_18",
        "--face-mask-blur", "0.4", "--face-mask-padding", "5", "10",
        "--trim-frame-start", "10", "--trim-frame-end", "50", "--temp-frame-format", "png", "--keep-temp",
        "--output-video-encoder", "libx264", "--output-video-quality", "80", "--output-video-preset", "fast",
        "--output-image-quality", "90", "--output-video-scale", "1.0", "--execution-providers", "cuda", "cpu",
        "--execution-thread-count", "8", "--execution-device-ids", "0", "--video-memory-strategy", "moderate",
        "--system-memory-limit", "0", "--log-level", "warn",
    ]
    assert main(argv) == 0
    (call,) = api.calls
    assert call["config"] == RunConfig(
        face_swapper_model="hyperswap_1a_256",
        face_swapper_pixel_boost="512x512",
        face_swapper_weight=0.6,
        face_selector_mode="reference",
        reference_face_position=1,
        reference_face_distance=0.4,
        reference_frame_number=12,
        face_detector_model="yolo_face",
        face_detector_score=0.6,
        face_landmarker_model="2dfan4",
        face_mask_blur=0.4,
        face_mask_padding=(5, 10, 5, 10),
        face_mask_types=("box", "occlusion", "region"),
        face_mask_regions=("skin", "nose", "mouth"),
        face_mask_areas=("mouth",),
        face_occluder_model="many",
        face_parser_model="bisenet_resnet_18",
        trim_frame_start=10,
        trim_frame_end=50,
        output_video_encoder="libx264",
        output_video_quality=80,
        output_video_preset="fast",
        output_image_quality=90,
        execution_providers=("cuda", "cpu"),
        video_memory_strategy="moderate",
    )
    assert call["sources"] == ["a.jpg", "b.jpg", "c.png"]
    assert call["target"] == "talk.MP4"
    assert call["output"].parent == tmp_path
    assert re.fullmatch(r"[0-9a-f]{8}\.mp4", call["output"].name)


def test_steadyswap_flags_and_aliases(api: FakeApi) -> None:
    argv = [
        "run", "--source", "a.jpg", "--target", "v.mkv", "--output", "o.mkv", "--face-recognizer-model",
        "arcface_w600k_r50", "--color-strength", "0.5", "--face-smoothing", "ema", "--smoothing-min-cutoff", "0.8",
        "--smoothing-beta", "0.1", "--smoothing-d-cutoff", "2", "--smoothing-ema-alpha", "0.3", "--analysis-size",
        "480", "--quality-report", "q.json", "--execution-batch-size", "16", "--models-dir", "/m", "--quiet",
        "--hand-occluder", "off",
    ]
    assert main(argv) == 0
    config = api.calls[0]["config"]
    assert (config.face_recognizer_model, config.color_strength, config.face_smoothing) == (
        "arcface_w600k_r50", 0.5, "ema")
    assert (config.smoothing_min_cutoff, config.smoothing_beta, config.smoothing_d_cutoff) == (0.8, 0.1, 2.0)
    assert (config.smoothing_ema_alpha, config.analysis_size, config.quality_report) == (0.3, 480, "q.json")
    assert (config.execution_batch_size, config.models_dir, config.hand_occluder) == (16, "/m", "off")
    assert api.calls[0]["output"] == Path("o.mkv")


def test_flags_not_given_keep_runconfig_defaults(api: FakeApi) -> None:
    assert main(run()) == 0
    assert api.calls[0]["config"] == RunConfig()


def test_every_runconfig_field_has_a_flag() -> None:
    dests = {flag.dest for flag in FLAGS}
    assert {f.name for f in fields(RunConfig)} - {"extra"} <= dests


def test_memory_strategy_is_checked_on_every_path(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI offers RunConfig's strategies, and a job file or the API (no argparse) is refused in one line too."""
    (flag,) = [flag for flag in FLAGS if flag.dest == "video_memory_strategy"]
    assert tuple(flag.choices or ()) == MEMORY_STRATEGIES
    for strategy in MEMORY_STRATEGIES:
        assert RunConfig(video_memory_strategy=strategy).validate().video_memory_strategy == strategy
    with pytest.raises(UsageError, match="^--video-memory-strategy: 'lavish' is not one of strict, moderate, tolerant$"):
        RunConfig.from_dict({"video-memory-strategy": "lavish"})
    assert main(run("--video-memory-strategy", "lavish")) == 2
    assert "--video-memory-strategy" in capsys.readouterr().err
    assert not api.calls


@pytest.mark.parametrize(
    ("given", "expected"),
    [([7], (7, 7, 7, 7)), ([1, 2], (1, 2, 1, 2)), ([1, 2, 3], (1, 2, 3, 2)), ([1, 2, 3, 4], (1, 2, 3, 4))],
)
def test_padding_expands_like_css(given: list[int], expected: tuple[int, int, int, int]) -> None:
    assert css_sides(given) == expected


def test_headless_run_word_is_tolerated(api: FakeApi) -> None:
    assert main(["run", "headless-run", "-s", "a.jpg", "-t", "v.mp4", "-o", "o.mp4"]) == 0
    assert main(["headless-run", "-s", "a.jpg", "-t", "v.mp4", "-o", "o.mp4"]) == 0
    assert len(api.calls) == 2


# --- help ---------------------------------------------------------------------------------------------------


def test_run_help_lists_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--help"]) == 0
    text = capsys.readouterr().out
    for flag in FLAGS:
        for name in flag.names:
            assert re.search(rf"(^|[\s,]){re.escape(name)}\b", text), name
    for flag in FACEFUSION_FLAGS:
        assert (flag.family or flag.name) in text, flag.name
    for group in ("paths", "face swapper", "mask", "smoothing & colour", "output video/image", "execution", "misc"):
        assert f"\n{group}:" in text


def test_help_shows_runconfig_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    defaults = RunConfig()
    assert f"(default: {defaults.face_swapper_model})" in text
    assert f"(default: {defaults.color_strength})" in text
    assert f"(default: {defaults.output_video_quality})" in text


def test_top_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "run" in text
    for code in ("0", "1", "2", "3", "4", "5", "6", "130"):
        assert re.search(rf"^\s+{code}\s+\w", text, re.MULTILINE), code


def test_help_and_run_help_as_processes() -> None:
    script = Path(sys.executable).with_name("steadyswap")
    commands = [[sys.executable, "-m", "steadyswap", "--help"], [sys.executable, "-m", "steadyswap", "run", "--help"]]
    if script.exists():
        commands.append([str(script), "run", "--help"])
    for command in commands:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "usage: steadyswap" in done.stdout


# --- FaceFusion flags without effect or not supported -------------------------------------------------------


@pytest.mark.parametrize("flag", NO_EFFECT, ids=lambda flag: flag.name)
def test_flag_without_effect_prints_one_info_line(
    flag, api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(run("--quiet", flag.name, "x")) == 0
    notes = [line for line in stderr_lines(capsys) if "has no effect" in line]
    assert notes == [f"steadyswap: warning: {flag.name} has no effect ({flag.reason})"]


def test_several_flags_without_effect_print_one_line_each(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    argv = run("--quiet", "--temp-frame-format", "png", "--keep-temp", "--execution-thread-count", "8",
               "--temp-path", "/tmp")
    assert main(argv) == 0
    notes = [line for line in stderr_lines(capsys) if "has no effect" in line]
    assert len(notes) == 4


@pytest.mark.parametrize("flag", UNSUPPORTED, ids=lambda flag: flag.name)
def test_unsupported_flag_is_one_line_and_exit_2(flag, api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(run(flag.name, "42")) == 2
    lines = stderr_lines(capsys)
    assert len(lines) == 1
    assert lines[0].startswith(f"steadyswap: error: {flag.name}")  # the prefix every other error carries
    assert "is not supported yet" in lines[0]
    assert "Traceback" not in lines[0]
    assert api.calls == []


@pytest.mark.parametrize(
    "flags",
    [("--processors", "face_swapper"), ("--face-detector-angles", "0"), ("--face-detector-margin", "0", "0"),
     ("--output-video-scale", "1.0"), ("--output-audio-volume", "100"), ("--execution-device-ids", "0"),
     ("--face-selector-order", "large-small")],
)
def test_values_steadyswap_honours_pass_quietly(flags, api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(run("--quiet", *flags)) == 0
    assert not [line for line in stderr_lines(capsys) if flags[0] in line]


def test_mask_flags_are_steadyswaps_own(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    """FaceFusion's masker flags take effect: no warning, and values outside FaceFusion's choices are refused."""
    assert main(run("--quiet", "--face-mask-types", "box", "area", "--face-mask-areas", "upper-face")) == 0
    assert stderr_lines(capsys) == []
    assert main(run("--face-mask-regions", "hair")) == 2
    assert "--face-mask-regions" in capsys.readouterr().err


def test_other_processor_names_the_processor(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(run("--processors", "face_swapper", "face_enhancer", "frame_enhancer")) == 2
    (line,) = stderr_lines(capsys)
    assert line.startswith("steadyswap: error: --processors frame_enhancer is not supported yet")


def test_unsupported_flag_wins_over_notes(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(run("--keep-temp", "--face-selector-gender", "female")) == 2
    assert len(stderr_lines(capsys)) == 1


# --- bad input ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        run("--no-such-flag"),
        run("--face-selector-mode", "nope"),
        run("--output-video-quality", "101"),
        run("--output-video-quality", "high"),
        run("--face-mask-padding", "1", "2", "3", "4", "5"),
        run("--face-mask-padding", "120"),
        run("--face-swapper-pixel-boost", "big"),
        run("--execution-providers", "rocm"),
        run("--trim-frame-start", "50", "--trim-frame-end", "10"),
        ["run", "-t", "clip.mp4", "-o", "out.mp4"],
        ["frobnicate"],
        [],
    ],
    ids=lambda argv: " ".join(argv[7:] or argv[:2]) or "no command",
)
def test_bad_command_line_is_one_line_and_exit_2(argv, api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    lines = stderr_lines(capsys)
    assert len(lines) == 1
    assert lines[0].startswith("steadyswap: error: ")
    assert api.calls == []


def test_quality_out_of_range_names_the_flag(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    main(run("--output-video-quality", "101"))
    assert "--output-video-quality" in capsys.readouterr().err


# --- output naming ------------------------------------------------------------------------------------------


def test_output_file_is_kept() -> None:
    assert resolve_output_path(["a.jpg"], "v.mp4", "out/result.mp4") == Path("out/result.mp4")


def test_output_folder_gets_facefusion_style_name(tmp_path: Path) -> None:
    path = resolve_output_path(["a.jpg"], "clips/Talk.MOV", tmp_path)
    assert path.parent == tmp_path
    assert re.fullmatch(r"[0-9a-f]{8}\.mov", path.name)
    assert resolve_output_path(["a.jpg"], "clips/Talk.MOV", str(tmp_path)) == path


def test_output_folder_name_follows_inputs_and_settings(tmp_path: Path) -> None:
    base = resolve_output_path(["a.jpg"], "v.mp4", tmp_path, RunConfig())
    assert resolve_output_path(["a.jpg"], "v.mp4", tmp_path, RunConfig()) == base
    assert resolve_output_path(["b.jpg"], "v.mp4", tmp_path, RunConfig()) != base
    assert resolve_output_path(["a.jpg"], "v.mp4", tmp_path, RunConfig(color_strength=0.2)) != base


def test_trailing_separator_means_folder(tmp_path: Path) -> None:
    path = resolve_output_path(["a.jpg"], "photo.png", f"{tmp_path}/new/")
    assert path.parent == tmp_path / "new"
    assert path.suffix == ".png"


# --- errors, progress, logging ------------------------------------------------------------------------------


def test_library_error_gives_its_exit_code(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.error = NoFaceError("no face found in face.jpg")
    assert main(run()) == 4
    assert stderr_lines(capsys) == ["steadyswap: error: no face found in face.jpg"]


def test_ctrl_c_gives_130(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.error = KeyboardInterrupt()
    assert main(run("--quiet")) == 130
    assert stderr_lines(capsys) == ["steadyswap: interrupted"]


def test_bug_is_one_line_and_traceback_only_in_debug(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.error = RuntimeError("boom")
    assert main(run("--quiet")) == 1
    assert stderr_lines(capsys) == ["steadyswap: internal error: RuntimeError: boom (please report it)"]
    assert main(run("--quiet", "--log-level", "debug")) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: boom" in err


def test_progress_bar_and_quiet(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(run()) == 0
    err = capsys.readouterr().err
    assert "10/10" in err and "frames/s" in err
    assert "wrote out.mp4: 10 frames" in err
    assert main(run("--quiet")) == 0
    err = capsys.readouterr().err
    assert "10/10" not in err and "wrote out.mp4" not in err, "--quiet hides the bar and info lines"
    assert main(run("--quiet", "--log-level", "debug")) == 0
    assert "wrote out.mp4" in capsys.readouterr().err, "an explicit --log-level wins over --quiet"


def test_log_level_error_hides_info(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(run("--quiet", "--log-level", "error")) == 0
    assert capsys.readouterr().err == ""


def test_quality_summary_is_printed(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.summary = "face tPSNR 41.2 dB"
    assert main(run("--quiet", "--quality-report", "q.json")) == 0
    assert "face tPSNR 41.2 dB" in capsys.readouterr().out


def test_cli_imports_without_the_engine() -> None:
    code = "import sys, steadyswap.cli.main; print(any(m.startswith(('numpy', 'av', 'cv2')) for m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False"


# --- optional commands --------------------------------------------------------------------------------------


def test_optional_command_is_added_when_its_module_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("steadyswap.cli.quality")
    seen = []

    def add_quality_parser(subparsers):
        parser = subparsers.add_parser("quality", help="measure a result")
        parser.add_argument("--report")

    def run_quality(args) -> int:
        seen.append(args.report)
        return 0

    module.add_quality_parser = add_quality_parser  # type: ignore[attr-defined]
    module.run_quality = run_quality  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "steadyswap.cli.quality", module)
    assert main(["quality", "--report", "r.json"]) == 0
    assert seen == ["r.json"]


def test_optional_command_with_missing_dependency_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.import_module

    def import_module(name: str, package: str | None = None):
        if name == "steadyswap.cli.models":
            raise ModuleNotFoundError("No module named 'fancy_dep'", name="fancy_dep")
        return real(name, package)

    monkeypatch.setattr(cli_main.importlib, "import_module", import_module)
    assert main(["models"]) == 1
    assert stderr_lines(capsys) == [
        "steadyswap: error: the models command is unavailable: No module named 'fancy_dep'"
    ]
    assert main(["--help"]) == 0


def _entry_ending(monkeypatch: pytest.MonkeyPatch, code: int, compiled: bool) -> tuple[str, int]:
    """How ``entry`` ended for a ``main`` returning ``code``: ("_exit", code) or ("exit", code)."""
    from steadyswap.engine.gpu import onnx_module

    class Ended(Exception):
        pass

    def hard_exit(status: int) -> None:
        raise Ended("_exit", status)

    monkeypatch.setattr(cli_main, "main", lambda: code)
    monkeypatch.setattr(onnx_module, "compiled_on_cuda", lambda: compiled)
    monkeypatch.setattr(cli_main.os, "_exit", hard_exit)
    try:
        cli_main.entry()
    except Ended as ended:
        return ended.args
    except SystemExit as ended:
        return "exit", ended.code
    raise AssertionError("entry returned")


def test_the_command_skips_the_teardown_only_after_graphs_ran_on_cuda_and_with_no_child_left(
        monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    assert _entry_ending(monkeypatch, 0, compiled=False) == ("exit", 0)
    assert _entry_ending(monkeypatch, 3, compiled=False) == ("exit", 3)
    assert _entry_ending(monkeypatch, 0, compiled=True) == ("_exit", 0)
    assert _entry_ending(monkeypatch, 130, compiled=True) == ("_exit", 130)
    import multiprocessing

    child = multiprocessing.get_context("spawn").Process(target=time_sleep, args=(30,))
    child.start()
    try:
        assert _entry_ending(monkeypatch, 0, compiled=True) == ("exit", 0)  # the interpreter ends the child
    finally:
        child.terminate()
        child.join()


def time_sleep(seconds: float) -> None:
    """A child process's work for the test above (module level, so a spawned child can import it)."""
    import time

    time.sleep(seconds)

