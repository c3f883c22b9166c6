"""FaceFusion's output flags: frame rate, scale, audio volume/encoder/quality, the container's default encoder,
on every path (writer, CLI run, segments and their join, the GPU engine, the batch's tasks).

Outputs are probed with PyAV as ffprobe would (rate, size, codecs, timestamps) and decoded (markers, audio RMS).
The frame-rate change is checked against FFmpeg's own fps filter, run through PyAV's filter graph.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from steadyswap.cli.main import main
from steadyswap.config import RunConfig
from steadyswap.engine.output import output_settings
from steadyswap.errors import UsageError
from steadyswap.io import VideoReader, VideoWriter, probe
from steadyswap.io.probe import packet_stamps
from steadyswap.io.audio import AudioSettings, encoder_codec
from steadyswap.io.retime import copies, output_rate
from steadyswap.io.segments import join, plan_segments
from steadyswap.io.writer import OutputSettings, scaled_size
from tests.conftest import media_path
from tests.test_segments import make_clip, pictures, stream_facts

SOURCE = "image/liveportrait_s1_512.jpg"
TALK = "video/liveportrait_d14_60f.mp4"  # 60 frames, 30 frames/s, speech
"""512×512, 30 frames/s, AAC stereo audio."""


def markers_clip(path: Path, stamps: list[int], time_base: Fraction, rate: Fraction) -> Path:
    """A 32×32 clip whose frame ``i`` is grey level ``6 * i`` at pts ``stamps[i]`` (lossless, no audio)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate, options={"crf": "0", "bf": "0"})
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv444p"
        stream.time_base = stream.codec_context.time_base = time_base
        for i, pts in enumerate(stamps):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 6 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = pts, time_base
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def markers(path: Path) -> list[int]:
    return [round(float(picture.mean()) / 6) for picture in pictures(path)]


def ffmpeg_fps(stamps: list[int], time_base: Fraction, fps: Fraction, last_duration: int) -> list[int]:
    """Which input frame FFmpeg's fps filter shows in each output frame (each input lasting until the next)."""
    graph = av.filter.Graph()
    source = graph.add_buffer(width=16, height=16, format="gray", time_base=time_base)
    rate, sink = graph.add("fps", f"fps={fps.numerator}/{fps.denominator}"), graph.add("buffersink")
    source.link_to(rate)
    rate.link_to(sink)
    graph.configure()
    shown: list[int] = []

    def pull() -> None:
        while True:
            try:
                shown.append(int(sink.pull().to_ndarray()[0, 0]))
            except (av.error.BlockingIOError, av.error.EOFError):
                return

    durations = [b - a for a, b in zip(stamps, stamps[1:])] + [last_duration]
    for i, (pts, duration) in enumerate(zip(stamps, durations)):
        frame = av.VideoFrame.from_ndarray(np.full((16, 16), i, np.uint8), format="gray")
        frame.pts, frame.time_base, frame.duration = pts, time_base, duration
        source.push(frame)
        pull()
    source.push(None)
    pull()
    return shown


def video_facts(path: Path) -> dict:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        times = sorted(p.pts * p.time_base for p in container.demux(video) if p.size)
        return {"codec": video.codec_context.name, "size": (video.codec_context.width, video.codec_context.height),
                "rate": video.average_rate, "times": times,
                "audio": [a.codec_context.codec.canonical_name for a in container.streams.audio]}


def audio_samples(path: Path, start: float = 0.0, end: float = math.inf) -> np.ndarray:
    """The first audio stream decoded to float, channels averaged, samples whose time is in [start, end)."""
    chunks = []
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler("fltp", "mono", stream.codec_context.sample_rate)
        for frame in container.decode(stream):
            for mono in resampler.resample(frame):
                t0 = float(mono.pts * mono.time_base)
                samples = mono.to_ndarray()[0]
                times = t0 + np.arange(len(samples)) / mono.sample_rate
                chunks.append(samples[(times >= start) & (times < end)])
    return np.concatenate(chunks)


def rms_db(samples: np.ndarray) -> float:
    return 20 * math.log10(float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))))


def audio_end(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return max(float((p.pts + p.duration) * p.time_base) for p in container.demux(stream) if p.size)


def passthrough(target: Path, output: Path, config: RunConfig, end: int) -> Path:
    """Frames ``[0, end)`` of ``target`` written unchanged with ``config``'s output settings."""
    with VideoReader(target, None, end) as reader, VideoWriter(
            output, reader.info, output_settings(config, reader.info, output), trim=(None, end)) as writer:
        for frame in reader:
            writer.write(frame)
    return output


# --- pure rules ----------------------------------------------------------------------------------------------


def test_scaled_size_follows_facefusion() -> None:
    assert scaled_size(1920, 1080, 0.5) == (960, 540)
    assert scaled_size(641, 359, 1.5) == (960, 538)  # int(961.5)=961 and int(538.5)=538, then even
    assert scaled_size(512, 512, 0.25) == (128, 128)
    assert all(side % 2 == 0 for w in range(100, 140) for side in scaled_size(w, w + 1, 0.75))


def test_plan_of_copies_matches_ffmpegs_fps_filter() -> None:
    time_base = Fraction(1, 15360)
    rng = np.random.default_rng(3)
    for stamps in ([512 * i for i in range(40)], [int(x) for x in np.cumsum(rng.integers(200, 900, 40))]):
        for fps in (Fraction(15), Fraction(50), Fraction(2997, 100), Fraction(1)):
            plan = copies([s * time_base for s in stamps], (stamps[-1] + 512) * time_base, fps)
            assert [i for i, n in enumerate(plan) for _ in range(n)] == ffmpeg_fps(stamps, time_base, fps, 512)


# --- the writer ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fps", [15.0, 50.0, 29.97])
@pytest.mark.parametrize("kind", ["constant", "variable, trimmed"])
def test_writer_retimes_as_ffmpegs_fps_filter(tmp_path: Path, fps: float, kind: str) -> None:
    time_base, rate = Fraction(1, 11988), Fraction(2997, 100)  # 400 ticks a frame
    if kind == "constant":
        stamps, trim = [10214 + 400 * i for i in range(40)], (None, None)
    else:
        steps = np.random.default_rng(5).integers(150, 900, 40)
        stamps, trim = [int(x) for x in 10214 + np.cumsum(steps)], (3, 33)
    clip = markers_clip(tmp_path / "clip.mp4", stamps, time_base, rate)
    info = probe(clip)
    stamps = [pts for pts, _ in packet_stamps(clip)]  # as the file holds them (an MP4 edit list may shift them)
    settings = OutputSettings(crf=0, fps=output_rate(fps))
    out = tmp_path / "out.mp4"
    with VideoReader(clip, *trim) as reader, VideoWriter(out, info, settings, trim=trim) as writer:
        for frame in reader:
            writer.write(frame)
    first, end = trim[0] or 0, trim[1] or len(stamps)
    last = round(1 / info.average_rate / time_base) if end == len(stamps) else stamps[end] - stamps[end - 1]
    expected = [first + i for i in ffmpeg_fps(stamps[first:end], time_base, settings.fps, last)]
    assert markers(out) == expected
    facts = video_facts(out)
    assert facts["rate"] == settings.fps
    shown = [t - facts["times"][0] for t in facts["times"]]
    assert shown == [n / settings.fps for n in range(len(expected))]
    source_span = (stamps[end - 1] - stamps[first]) * time_base + last * time_base
    assert abs(len(expected) / settings.fps - source_span) < 1 / settings.fps  # each end rounds to the grid


def test_writer_scales_to_even_sizes_bicubically(tmp_path: Path) -> None:
    target = media_path(TALK)
    out = passthrough(target, tmp_path / "half.mp4", RunConfig(output_video_scale=0.5, output_video_quality=100), 5)
    assert video_facts(out)["size"] == (256, 256)
    odd = passthrough(target, tmp_path / "odd.mp4", RunConfig(output_video_scale=0.37), 2)
    assert video_facts(odd)["size"] == scaled_size(512, 512, 0.37) == (188, 188)
    import cv2

    with av.open(str(target)) as container:
        source = next(container.decode(video=0)).to_ndarray(format="rgb24")
    reference = cv2.resize(source, (256, 256), interpolation=cv2.INTER_CUBIC).astype(np.float64)
    error = np.mean((pictures(out)[0] - reference) ** 2)
    assert 10 * math.log10(255**2 / error) > 35


def test_half_volume_is_six_decibels_lower(tmp_path: Path) -> None:
    target = media_path(TALK)
    out = passthrough(target, tmp_path / "quiet.mp4", RunConfig(output_audio_volume=50), 45)
    drop = rms_db(audio_samples(out, 0.1, 1.4)) - rms_db(audio_samples(target, 0.1, 1.4))
    assert drop == pytest.approx(20 * math.log10(0.5), abs=0.2)
    assert video_facts(out)["audio"] == ["aac"]


@pytest.mark.parametrize("encoder, suffix, codec", [
    ("aac", ".mp4", "aac"), ("libmp3lame", ".mp4", "mp3"), ("libopus", ".mkv", "opus"),
    ("flac", ".mkv", "flac"), ("pcm_s16le", ".mov", "pcm_s16le"),
])
def test_audio_encoder_reencodes_the_audio(tmp_path: Path, encoder: str, suffix: str, codec: str) -> None:
    target = media_path(TALK)
    out = passthrough(target, tmp_path / f"a{suffix}", RunConfig(output_audio_encoder=encoder), 45)
    assert video_facts(out)["audio"] == [codec]
    level = rms_db(audio_samples(out, 0.2, 1.3)) - rms_db(audio_samples(target, 0.2, 1.3))
    assert abs(level) < 0.3  # the same sound (MP3's encoder delay moves the window a little)
    assert abs(audio_end(out) - 45 / probe(target).fps) < 0.05  # cut where the 45 frames end


def test_audio_quality_sets_the_bit_rate(tmp_path: Path) -> None:
    target = media_path(TALK)
    sizes = {}
    for quality in (0, 100):
        out = passthrough(target, tmp_path / f"q{quality}.mp4", RunConfig(output_audio_quality=quality), 60)
        with av.open(str(out)) as container:
            sizes[quality] = sum(p.size for p in container.demux(audio=0))
        assert video_facts(out)["audio"] == ["aac"]  # the target's own codec, re-encoded
    assert sizes[100] / sizes[0] > 2.5  # 256 against 64 kbit/s


def test_audio_encoder_missing_from_the_build_is_refused(tmp_path: Path) -> None:
    if encoder_codec("libvorbis") is not None:
        pytest.skip("this PyAV build has libvorbis")
    info = probe(media_path(TALK))
    with pytest.raises(UsageError, match="libvorbis"):
        output_settings(RunConfig(output_audio_encoder="libvorbis"), info, tmp_path / "out.mkv")


# --- joined segments -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
@pytest.mark.parametrize("trim", [(None, None), (10, 80)])
def test_joined_segments_equal_one_writer_run(tmp_path: Path, suffix: str, trim: tuple[int | None, int | None]) -> None:
    clip = make_clip(tmp_path / "clip.mp4")  # 29.97 frames/s from pts 10214, AAC audio
    info = probe(clip)
    settings = OutputSettings(crf=0, size=(32, 24), fps=Fraction(12), audio=AudioSettings(volume=0.5))
    whole = tmp_path / f"whole{suffix}"
    with VideoReader(clip, *trim) as reader, VideoWriter(whole, info, settings, trim=trim) as writer:
        for frame in reader:
            writer.write(frame)
    files = []
    for segment in plan_segments(info, 3, warmup_frames=4, start=trim[0] or 0, end=trim[1]):
        path = tmp_path / f"{segment.name}{suffix}"
        with VideoReader(clip, segment.start, segment.end) as reader, \
                VideoWriter(path, info, settings, audio_source=None) as writer:
            for frame in reader:
                writer.write(frame)
        files.append(path)
    joined = join(files, tmp_path / f"joined{suffix}", clip, info, trim, settings)
    ours, theirs = video_facts(joined), video_facts(whole)
    assert [t - ours["times"][0] for t in ours["times"]] == [t - theirs["times"][0] for t in theirs["times"]]
    # VideoWriter's MP4 rounds a stream's start offset to the 1 ms movie timescale; join keeps it exact
    assert abs(ours["times"][0] - theirs["times"][0]) < Fraction(1, 1000)
    assert (ours["rate"], ours["size"]) == (theirs["rate"], theirs["size"]) == (12, (32, 24))
    audio, whole_audio = stream_facts(joined)[1], stream_facts(whole)[1]
    assert [a for _, a in audio] == [a for _, a in whole_audio]  # the same re-encoded packets
    assert max(abs(p - q) for (p, _), (q, _) in zip(audio, whole_audio)) <= 44
    assert all(np.array_equal(a, b) for a, b in zip(pictures(joined), pictures(whole), strict=True))


# --- whole runs ----------------------------------------------------------------------------------------------


FACEFUSION_FLAGS = ["--output-video-fps", "15", "--output-video-scale", "0.5", "--output-audio-volume", "50"]


def check_half_rate_half_size_half_volume(target: Path, output: Path, frames: int) -> None:
    """``output``: frames ``[0, frames)`` of the 30 frames/s ``target`` at 15 frames/s, half size, audio at 50%."""
    facts = video_facts(output)
    assert facts["rate"] == 15 and facts["size"] == (256, 256) and facts["codec"] == "h264"
    assert facts["times"] == [Fraction(n, 15) for n in range(frames // 2)]
    assert facts["audio"] == ["aac"]
    duration = frames / 30
    assert abs(audio_end(output) - duration) < 0.03  # audio and video end together
    drop = rms_db(audio_samples(output, 0.1, duration - 0.1)) - rms_db(audio_samples(target, 0.1, duration - 0.1))
    assert drop == pytest.approx(20 * math.log10(0.5), abs=0.2)


def test_facefusion_output_flags_through_the_cli(tmp_path: Path) -> None:
    target, output = media_path(TALK), tmp_path / "out.mp4"
    code = main(["run", "-s", str(media_path(SOURCE)), "-t", str(target), "-o", str(output),
                 "--trim-frame-end", "30", *FACEFUSION_FLAGS, "--quiet"])
    assert code == 0
    check_half_rate_half_size_half_volume(target, output, 30)


def test_webm_output_picks_vp9_and_opus(tmp_path: Path) -> None:
    output = tmp_path / "out.webm"
    code = main(["run", "-s", str(media_path(SOURCE)), "-t", str(media_path(TALK)), "-o", str(output),
                 "--trim-frame-end", "6", "--quiet"])
    assert code == 0
    facts = video_facts(output)
    assert (facts["codec"], facts["audio"], len(facts["times"])) == ("vp9", ["opus"], 6)


@pytest.mark.parametrize("flags", [["--output-video-encoder", "libx264"], ["--output-audio-encoder", "aac"]])
def test_explicit_encoder_the_container_cannot_hold_is_one_line(tmp_path: Path, flags: list[str], capsys) -> None:
    output = tmp_path / "out.webm"
    code = main(["run", "-s", str(media_path(SOURCE)), "-t", str(media_path(TALK)), "-o", str(output), *flags])
    assert code == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert line.startswith(f"steadyswap: error: {output}: {flags[1]}") and "cannot be stored in .webm" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flags, message", [
    (["--output-video-fps", "120"], "--output-video-fps: 120.0 is outside 1.0..60.0"),
    (["--output-video-scale", "0.1"], "--output-video-scale: 0.1 is outside 0.25..8.0"),
    (["--output-audio-volume", "-5"], "--output-audio-volume: -5 is outside 0..400"),
    (["--output-audio-quality", "101"], "--output-audio-quality: 101 is outside 0..100"),
])
def test_output_flags_out_of_range(flags: list[str], message: str, capsys) -> None:
    assert main(["run", "-s", "a.jpg", "-t", "b.mp4", "-o", "c.mp4", *flags]) == 2
    assert message in capsys.readouterr().err


def test_gpu_engine_segments_give_the_cpu_paths_output(gpu_models_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from steadyswap.engine.frame_swapper import FaceSwapper
    from steadyswap.engine.gpu.engine import GpuEngine, GpuOptions
    from steadyswap.engine.pipeline import run_video
    from tests.conftest import gpu_engine_config
    from tests.helpers import photo

    target, source = media_path(TALK), photo(media_path(SOURCE))
    config = gpu_engine_config(gpu_models_dir, trim_frame_end=40, output_video_fps=15.0, output_video_scale=0.5,
                               output_audio_volume=50)
    cpu, gpu = tmp_path / "cpu.mp4", tmp_path / "gpu.mp4"
    run_video(lambda fps: FaceSwapper([source], config, fps), target, cpu, config)
    options = GpuOptions(device="cpu", half=False, segments=2, warmup_frames=5, frames_per_step=6)
    with GpuEngine([source], config, options) as engine:
        assert engine.run_video(target, gpu).frames == 40
    check_half_rate_half_size_half_volume(target, gpu, 40)
    assert video_facts(gpu) == video_facts(cpu)
    assert stream_facts(gpu)[1] == stream_facts(cpu)[1]  # the same re-encoded audio
    diff = np.abs(np.stack(pictures(gpu)).astype(np.int16) - np.stack(pictures(cpu)))
    assert diff.mean() < 2.0  # 4:2:0 made on the device then scaled, against swscale's scale-and-convert


def test_batch_tasks_give_the_single_runs_output(tmp_path: Path) -> None:
    """The batch's own tasks (prepare, segments, join), run in this process as a worker runs them."""
    from steadyswap.api import swap_file
    from steadyswap.distributed import Batch, BatchSettings, Job
    from steadyswap.distributed.executor import Executor, Outcome, WorkerContext
    from steadyswap.engine.swapper_pool import SwapperPool

    class Here(WorkerContext):
        def __init__(self) -> None:
            self.pool = SwapperPool()

        def report(self, frames: int) -> None:
            pass

    class InProcess(Executor):
        workers = 1

        def __init__(self) -> None:
            self.context, self.outcomes = Here(), []

        def submit(self, key, task, *args):
            try:
                self.outcomes.append(Outcome(key, task(self.context, *args)))
            except Exception as error:  # noqa: BLE001 - handed back as a worker would
                self.outcomes.append(Outcome(key, error=error))

        def wait(self, timeout):
            done, self.outcomes = self.outcomes, []
            return done, []

        def cancel(self, keys):
            pass

        def close(self):
            self.context.pool.close()

    options = {"trim-frame-end": 60, "output-video-fps": 15, "output-video-scale": 0.5, "output-audio-volume": 50}
    target, batched, single = media_path(TALK), tmp_path / "batch.mkv", tmp_path / "single.mkv"
    with InProcess() as executor:
        result = Batch([Job((str(media_path(SOURCE)),), str(target), str(batched), options)], executor,
                       BatchSettings(segment_frames=20, warmup_frames=5)).run()
    assert [(job.status, job.segments, job.message) for job in result.jobs] == [("done", 3, "")]
    swap_file(media_path(SOURCE), target, single, RunConfig.from_dict(options))
    assert video_facts(batched) == video_facts(single)
    assert video_facts(batched)["rate"] == 15 and len(video_facts(batched)["times"]) == 30
    assert stream_facts(batched)[1] == stream_facts(single)[1]
