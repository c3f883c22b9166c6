"""Provenance: the C2PA manifest of real outputs reads back through ``c2pa.Reader`` and fails once tampered with;
the watermark survives what uploads do (made here with PyAV and OpenCV) and is not found in frames never marked;
``steadyswap verify`` says which.

Outputs come from real runs on the committed test media (CPU path, default quality, this session's own signing
credentials in a temporary folder: see conftest).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

c2pa = pytest.importorskip("c2pa")

from steadyswap.api import swap_file  # noqa: E402
from steadyswap.cli.main import main  # noqa: E402
from steadyswap.config import RunConfig  # noqa: E402
from steadyswap.engine.frame_swapper import FaceSwapper  # noqa: E402
from steadyswap.engine.segment_runner import run_segment  # noqa: E402
from steadyswap.errors import InputError, OutputError, UsageError  # noqa: E402
from steadyswap.io import atomic_output, probe  # noqa: E402
from steadyswap.io.segments import join, plan_segments  # noqa: E402
from steadyswap.provenance import Watermark, detect, run_id, seal_for  # noqa: E402
from steadyswap.provenance.credentials import make_local_credentials  # noqa: E402
from steadyswap.provenance.manifest import HASH_KEY, SOURCE_TYPE  # noqa: E402
from steadyswap.provenance.verify import FOUND, NOT_FOUND, TAMPERED, verify  # noqa: E402
from tests.conftest import media_path  # noqa: E402
from tests.helpers import decode, photo  # noqa: E402

FRAMES = 45
UNMARKED_CLIPS = ("liveportrait_d0_crf20", "liveportrait_d11_61f", "liveportrait_d14_60f", "liveportrait_d19_60f",
                  "liveportrait_d3_93f", "tpsmm_driving_78f", "fr_hamilton_180f", "liveportrait_s32_1280x720_30f")
"""Cuts of the shared clips committed in tests/data, never marked: 25 frames of each make the 200."""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A video run (45 frames of a clip, default quality) and a photo run, both on the CPU path."""
    tmp = tmp_path_factory.mktemp("provenance")
    source = media_path("image/liveportrait_s1_512.jpg")
    video, image = media_path("video/liveportrait_d3_93f.mp4"), media_path("image/liveportrait_s42.jpg")
    config = RunConfig(trim_frame_end=FRAMES)
    swap_file(source, video, tmp / "out.mp4", config)
    swap_file(source, image, tmp / "out.jpg", RunConfig())
    return {"tmp": tmp, "source": source, "video": video, "image": image, "config": config,
            "mp4": tmp / "out.mp4", "jpg": tmp / "out.jpg"}


def active(path: Path) -> tuple[str, list[str], dict]:
    with c2pa.Reader(str(path)) as reader:
        failures = [f["code"] for f in reader.get_validation_results()["activeManifest"].get("failure", [])]
        return reader.get_validation_state(), failures, reader.get_active_manifest()


@pytest.mark.parametrize("kind", ["mp4", "jpg"])
def test_manifest_reads_back_with_the_expected_assertions(runs: dict, kind: str) -> None:
    target = runs["video"] if kind == "mp4" else runs["image"]
    config = runs["config"] if kind == "mp4" else RunConfig()
    state, failures, manifest = active(runs[kind])
    assert state == "Valid" and failures == ["signingCredential.untrusted"]  # this install's own certificate
    assert manifest["claim_generator_info"][0]["name"] == "steadyswap"
    assert manifest["signature_info"]["common_name"] == "steadyswap signer"
    actions = next(a["data"]["actions"] for a in manifest["assertions"] if a["label"] == "c2pa.actions.v2")
    assert [a["action"] for a in actions] == ["c2pa.opened", "c2pa.edited"]
    edited = actions[1]
    assert edited["digitalSourceType"] == SOURCE_TYPE and edited["softwareAgent"]["name"] == "steadyswap"
    assert [(m["name"], m["task"]) for m in edited["parameters"]["models"]] == [("mediapipe", "detector"),
                                                                                 ("classic", "swapper")]
    ingredients = {i["relationship"]: i for i in manifest["ingredients"]}
    assert ingredients["parentOf"]["title"] == target.name
    assert ingredients["parentOf"]["metadata"][HASH_KEY] == sha256(target)
    assert ingredients["componentOf"]["metadata"][HASH_KEY] == sha256(runs["source"])
    assert not any("thumbnail" in i for i in manifest["ingredients"])  # hashes, not the pictures
    binding = next(a["data"] for a in manifest["assertions"] if a["label"] == "c2pa.soft-binding")
    declared = int.from_bytes(__import__("base64").b64decode(binding["blocks"][0]["value"]), "big")
    assert declared == run_id(target, config)
    with av.open(str(runs["mp4"])) as container:  # the container's disclosure tags stay beside the manifest
        assert container.metadata["synthetic"] == "true"


@pytest.mark.parametrize("kind", ["mp4", "jpg"])
def test_a_tampered_file_fails_validation(runs: dict, kind: str, tmp_path: Path, capsys) -> None:
    data = bytearray(runs[kind].read_bytes())
    data[int(len(data) * 0.8)] ^= 0x5A  # in the picture data, far from the manifest
    tampered = tmp_path / f"tampered.{kind}"
    tampered.write_bytes(bytes(data))
    state, failures, _ = active(tampered)
    assert state == "Invalid"
    assert {"assertion.bmffHash.mismatch", "assertion.dataHash.mismatch"} & set(failures)
    assert main(["verify", "--no-watermark", str(tampered)]) == TAMPERED
    assert "TAMPERED" in capsys.readouterr().out.splitlines()[0]


def transformed(marked: Path, tmp: Path) -> dict[str, list[np.ndarray]]:
    """The marked clip as uploads and viewers change it (PyAV re-encodes, OpenCV resizes, crops, PNGs)."""
    frames = decode(marked)

    def reencode(images: list[np.ndarray], name: str, crf: int) -> list[np.ndarray]:
        path = tmp / f"{name}.mp4"
        with av.open(str(path), "w") as out:
            stream = out.add_stream("libx264", rate=30, options={"crf": str(crf), "preset": "veryfast"})
            stream.height, stream.width = (s - s % 2 for s in images[0].shape[:2])
            stream.pix_fmt = "yuv420p"
            for image in images:
                cut = np.ascontiguousarray(image[:stream.height, :stream.width])
                out.mux(stream.encode(av.VideoFrame.from_ndarray(cut, format="rgb24")))
            out.mux(stream.encode(None))
        return decode(path)[::5]

    def png(image: np.ndarray) -> np.ndarray:
        return cv2.imdecode(cv2.imencode(".png", image)[1], cv2.IMREAD_UNCHANGED)

    height, width = frames[0].shape[:2]
    return {
        "lower quality (crf 32)": reencode(frames, "crf32", 32),
        "half size": reencode([cv2.resize(f, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
                               for f in frames], "half", 23),
        "10% crop": reencode([f[int(height * 0.07):int(height * 0.97), int(width * 0.07):int(width * 0.97)]
                              for f in frames], "crop", 23),
        "PNG screenshot": [png(frames[20])],
        "the face alone": [png(frames[20][120:380, 130:390])],
    }


@pytest.mark.slow
def test_the_watermark_survives_what_uploads_do(runs: dict, tmp_path: Path) -> None:
    expected = run_id(runs["video"], runs["config"])
    for name, pictures in transformed(runs["mp4"], tmp_path).items():
        found = detect(pictures)  # the frames together, as `steadyswap verify` searches a file
        assert found.found and found.run_id == expected, (name, found)
        assert found.pictures_found >= 1, (name, found)  # frames alone: docs/provenance.md gives the rates
    assert not detect(decode(runs["video"], limit=FRAMES)[::5]).found  # the untouched target
    assert not detect([photo(runs["image"])]).found


@pytest.mark.slow
def test_false_positives_on_200_frames_never_marked_at_most_1_percent() -> None:
    found = []
    for name in UNMARKED_CLIPS:
        frames = decode(media_path(f"video/{name}.mp4"))
        found += [detect([frame]).found for frame in frames[::max(1, len(frames) // 25)][:25]]
    assert len(found) == 200 and sum(found) <= 2


def test_verify_command_verdicts_and_exit_codes(runs: dict, capsys) -> None:
    assert main(["verify", str(runs["mp4"]), "--frames", "4"]) == FOUND
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith(f"{runs['mp4']}: MARKED: C2PA manifest valid") and "watermark found (4/4" in line
    assert main(["verify", str(runs["video"]), "--frames", "4"]) == NOT_FOUND
    assert capsys.readouterr().out.splitlines()[0].startswith(f"{runs['video']}: NOT MARKED: no C2PA manifest")
    assert main(["verify", "--json", str(runs["jpg"])]) == FOUND
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"] == "marked" and report["manifest"]["local_signer"] and report["watermark"]["found"]
    assert report["manifest"]["synthetic"] and report["manifest"]["models"] == ["mediapipe", "classic"]
    assert report["manifest"]["run_id"] == report["watermark"]["run_id"]
    assert main(["verify", str(runs["tmp"] / "missing.mp4")]) == 3


def test_no_watermark_keeps_the_manifest_and_untouched_pixels(runs: dict, tmp_path: Path) -> None:
    marked, plain = tmp_path / "marked.png", tmp_path / "plain.png"
    swap_file(runs["source"], runs["image"], marked)
    swap_file(runs["source"], runs["image"], plain, RunConfig(watermark=False))
    target = photo(runs["image"]).astype(np.int16)
    far = np.zeros(target.shape[:2], bool)
    far[:40] = True  # the top rows, far from the face
    assert np.array_equal(photo(plain)[far], target[far])
    change = np.abs(photo(marked).astype(np.int16) - target)[far]
    assert 0.2 < change.mean() < 4.5 and change.max() <= 24  # small, most in fine texture (hair here)
    verdict = verify(plain)
    assert verdict.manifest.valid and verdict.manifest.run_id is None and not verdict.watermark.found
    assert verify(marked).watermark.found


def test_user_certificate_signs_and_trust_anchor_makes_it_trusted(runs: dict, tmp_path: Path) -> None:
    pem = make_local_credentials().decode()
    blocks = pem.split("-----END")
    key = blocks[0] + "-----END" + blocks[1].split("\n")[0] + "\n"
    chain = pem[len(key):]
    (tmp_path / "key.pem").write_text(key)
    (tmp_path / "chain.pem").write_text(chain)
    root = chain[chain.index("-----BEGIN CERTIFICATE-----", 1):].encode()
    output = tmp_path / "signed.jpg"
    swap_file(runs["source"], runs["image"], output,
              RunConfig(c2pa_cert=str(tmp_path / "chain.pem"), c2pa_key=str(tmp_path / "key.pem")))
    untrusted, trusted = verify(output, watermark=False), verify(output, trust=[root], watermark=False)
    assert untrusted.manifest.valid and not untrusted.manifest.trusted and not untrusted.manifest.local_signer
    assert trusted.manifest.trusted and trusted.manifest.state == "Trusted"
    with pytest.raises(UsageError):
        RunConfig(c2pa_cert=str(tmp_path / "chain.pem")).validate()


def test_signing_happens_inside_the_atomic_step(runs: dict, tmp_path: Path, capsys) -> None:
    def broken(written: Path, sealed: Path) -> None:
        sealed.write_bytes(written.read_bytes()[:10])
        raise OutputError("signing failed")

    with pytest.raises(OutputError), atomic_output(tmp_path / "out.jpg", seal=broken) as temporary:
        shutil.copy(runs["jpg"], temporary)
    assert list(tmp_path.iterdir()) == []  # neither the unsigned nor the half-signed file
    (tmp_path / "key.pem").write_text("not a key")
    code = main(["run", "-s", str(runs["source"]), "-t", str(runs["image"]), "-o", str(tmp_path / "o.jpg"),
                 "--c2pa-cert", str(runs["source"]), "--c2pa-key", str(tmp_path / "key.pem"), "-q"])
    assert code == InputError.exit_code and not (tmp_path / "o.jpg").exists()
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_matroska_output_carries_the_watermark_without_a_manifest(runs: dict, tmp_path: Path) -> None:
    output = tmp_path / "out.mkv"
    swap_file(runs["source"], runs["video"], output, RunConfig(trim_frame_end=12))
    verdict = verify(output, frames=4)
    assert not verdict.manifest.present and verdict.watermark.found and verdict.exit_code == FOUND


def test_segments_joined_with_a_seal_equal_a_single_run(runs: dict, tmp_path: Path) -> None:
    """The batch's path: segment files (each watermarked) joined and signed in one atomic step."""
    config, target = runs["config"], runs["video"]
    info = probe(target)
    segments = plan_segments(info, count=2, warmup_frames=5, end=FRAMES, keyframes=[])
    files = [tmp_path / f"{s.name}.mp4" for s in segments]
    with FaceSwapper([runs["source"]], config, info.fps) as swapper:
        for segment, file in zip(segments, files):
            run_segment(swapper, segment, file, config)
    output = tmp_path / "joined.mp4"
    join(files, output, target, info, (None, FRAMES), seal=seal_for(output, target, [runs["source"]], config))
    verdict = verify(output, frames=6)
    assert verdict.manifest.valid and verdict.watermark.found
    assert verdict.manifest.run_id == verdict.watermark.run_id == run_id(target, config)


def test_watermark_ids_depths_and_limits() -> None:
    image = photo(media_path("image/fr_obama_512.jpg"))
    for ident in (0, 417, 799):
        assert detect([Watermark(ident).embed_rgb(image)]).run_id == ident
    frame = av.VideoFrame.from_ndarray(image[: image.shape[0] // 2 * 2, : image.shape[1] // 2 * 2],
                                       format="rgb24").reformat(format="yuv420p10le")
    Watermark(5).embed_frame(frame)  # 10-bit luma
    assert detect([frame.reformat(format="rgb24").to_ndarray()]).run_id == 5
    with pytest.raises(UsageError):
        Watermark(800)
    assert run_id("a.mp4", RunConfig()) != run_id("a.mp4", RunConfig(color_strength=0.5))


@pytest.mark.slow
def test_gpu_engine_output_is_signed_and_marked(gpu_models_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from steadyswap.engine.gpu.engine import GpuEngine, GpuOptions
    from tests.conftest import gpu_engine_config

    target, source = media_path("video/liveportrait_d3_93f.mp4"), media_path("image/liveportrait_s1_512.jpg")
    config = gpu_engine_config(gpu_models_dir, trim_frame_end=30)
    options = GpuOptions(device="cpu", half=False, segments=2, warmup_frames=5)
    with GpuEngine([source], config, options) as engine:
        engine.run_video(target, tmp_path / "gpu.mp4")
    verdict = verify(tmp_path / "gpu.mp4", frames=6)
    assert verdict.manifest.valid and "hyperswap_1a_256" in verdict.manifest.models
    assert verdict.watermark.found and verdict.watermark.run_id == verdict.manifest.run_id == run_id(target, config)
