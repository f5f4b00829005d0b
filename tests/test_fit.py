"""``fit``: how a widescreen or vertical frame goes into the model's square.

``crop`` is the checkpoint's own processor (short side resized, centre cropped: the sides of a
16:9 frame never reach the model); ``pad`` letterboxes the whole frame on black. A marker at
the left edge of a 16:9 video shows the difference through the real sampler, the pipeline's
report, the command line and the daemon's config and worker.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner
from tiny_git import save_tiny_git, tiny_image_git, tiny_video_git  # noqa: F401 (fixtures)

pytest.importorskip("torch", reason="fitting frames into the model is part of the engine")

from videoqa.cli import cli
from videoqa.engine import GitEngine
from videoqa.errors import ConfigError, ModelError
from videoqa.media import FrameSampler
from videoqa.pipeline import VideoQA
from videoqa.report import Report
from videoqa.watch import config as watch_config
from videoqa.watch.config import load_config
from videoqa.watch.worker import process_file

WIDTH, HEIGHT = 320, 180  # 16:9
MARKER = (255, 0, 0)
#: The marker: the left eighth of the frame, in pure red on mid grey.
MARKER_WIDTH = WIDTH // 8


def marked_frame() -> np.ndarray:
    rgb = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    rgb[:, :MARKER_WIDTH] = MARKER
    return rgb


@pytest.fixture(scope="module")
def marked_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two seconds of a 16:9 video with the marker at its left edge."""
    path = tmp_path_factory.mktemp("fit") / "wide.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for _ in range(20):
            frame = av.VideoFrame.from_ndarray(marked_frame(), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def engine(tiny_image_git: Path) -> GitEngine:  # noqa: F811
    return GitEngine.load(str(tiny_image_git), device="cpu")


def red_columns(engine: GitEngine, rgb: np.ndarray, fit: str) -> list[int]:
    """Columns of the model input where the red marker is, read back from the pixel values."""
    pixels = engine.pixel_values([[rgb]], fit=fit)[0]  # (3, H, W), normalised
    mean = np.array(engine.preprocessing.mean).reshape(3, 1, 1)
    std = np.array(engine.preprocessing.std).reshape(3, 1, 1)
    image = (pixels.numpy() * std + mean) * 255  # back to 0-255
    red = (image[0] > 200) & (image[1] < 60) & (image[2] < 60)
    return [int(column) for column in np.nonzero(red.any(axis=0))[0]]


def test_pad_keeps_the_left_edge_of_a_16_9_video_that_crop_cuts(engine, marked_video):
    side = engine.image_size
    assert engine.default_fit == "crop"  # a checkpoint without videoqa_fit keeps its processor
    crop_size = engine.frame_size(WIDTH, HEIGHT, fit="crop")
    pad_size = engine.frame_size(WIDTH, HEIGHT, fit="pad")
    assert crop_size == (int(side * WIDTH / HEIGHT), side)  # short side to the model's side
    assert pad_size == (side, round(side * HEIGHT / WIDTH))  # the whole frame, aspect kept
    seen = {}
    for fit, size in (("crop", crop_size), ("pad", pad_size)):
        with FrameSampler(marked_video, size=size) as sampler:
            frame = next(iter(sampler.sample([0.5])))
        assert frame.rgb.shape[:2] == (size[1], size[0])
        seen[fit] = red_columns(engine, frame.rgb, fit)
    assert seen["crop"] == []  # the centre crop starts past the marker
    # Letterboxed: the marker spans the left eighth of the model input's width.
    assert seen["pad"][0] == 0 and abs(len(seen["pad"]) - side / 8) <= 1


def test_pad_letterboxes_on_black_centred_in_the_square(engine):
    side = engine.image_size
    pixels = engine.pixel_values([[marked_frame()]], fit="pad")[0].numpy()
    mean = np.array(engine.preprocessing.mean).reshape(3, 1, 1)
    std = np.array(engine.preprocessing.std).reshape(3, 1, 1)
    image = np.rint((pixels * std + mean) * 255)
    content = round(side * HEIGHT / WIDTH)
    top = (side - content) // 2
    assert image.shape == (3, side, side)
    assert (image[:, :top] == 0).all() and (image[:, top + content :] == 0).all()
    assert image[:, top : top + content].any(axis=0).all()  # grey and red: the whole frame
    # A vertical (9:16) frame is letterboxed left and right instead.
    tall = np.full((WIDTH, HEIGHT, 3), 128, np.uint8)
    columns = np.rint(
        (engine.pixel_values([[tall]], fit="pad")[0].numpy() * std + mean) * 255
    ).any(axis=(0, 1))
    assert columns.sum() == content and not columns[0] and not columns[-1]


def test_a_frame_of_another_size_is_resized_to_the_letterbox_first(engine):
    """A frame the caller passes at full size gives what the sampler's small one gives."""
    small = engine.frame_size(WIDTH, HEIGHT, fit="pad")
    import cv2

    resized = cv2.resize(marked_frame(), small, interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(
        engine.pixel_values([[marked_frame()]], fit="pad"),
        engine.pixel_values([[resized]], fit="pad"),
    )


def test_the_report_records_the_fit_of_each_model(marked_video, tiny_image_git, tiny_video_git):  # noqa: F811
    qa = VideoQA(str(tiny_image_git), caption_model=str(tiny_video_git), device="cpu")
    default = qa.run(marked_video, questions=["what?"], clip_length=1.0)
    assert default.model.fit == default.caption_model.fit == "crop"
    padded = qa.run(marked_video, questions=["what?"], clip_length=1.0, fit="pad")
    side = qa.answer_engine.image_size
    assert padded.model.fit == padded.caption_model.fit == "pad"
    assert padded.model.frame_size == (side, round(side * HEIGHT / WIDTH))
    data = json.loads(padded.to_json())
    assert tuple(map(int, data["schema_version"].split("."))) >= (1, 1)  # fit came in 1.1
    assert data["model"]["fit"] == data["caption_model"]["fit"] == "pad"
    assert Report.from_dict(data).model.fit == "pad"
    # The VideoQA's own fit is the default of its calls; a call's fit wins.
    boxed = VideoQA(str(tiny_image_git), caption_model=str(tiny_video_git), device="cpu",
                    fit="pad")
    results, _ = boxed.ask(marked_video, ["what?"], clip_length=1.0)
    assert boxed.run(marked_video, captions=False, questions=["what?"]).model.fit == "pad"
    assert boxed.run(marked_video, questions=["what?"], fit="crop").model.fit == "crop"
    assert len(list(results)) == 2


@pytest.mark.parametrize("where", ["constructor", "call"])
def test_an_unknown_fit_is_a_config_error_naming_the_setting(marked_video, tiny_image_git,  # noqa: F811
                                                             where):
    with pytest.raises(ConfigError) as error:
        if where == "constructor":
            VideoQA(str(tiny_image_git), fit="squeeze")
        else:
            VideoQA(str(tiny_image_git), device="cpu").ask(marked_video, ["what?"], fit="stretch")
    assert error.value.setting == "fit" and "is not one of crop, pad" in str(error.value)


def test_a_checkpoint_names_its_own_default_fit(tmp_path):
    folder = save_tiny_git(tmp_path / "padded")
    config_path = folder / "preprocessor_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "videoqa_fit": "pad"}))
    engine = GitEngine.load(str(folder), device="cpu")
    assert engine.default_fit == "pad" == engine.resolve_fit(None)
    assert engine.frame_size(WIDTH, HEIGHT) == engine.frame_size(WIDTH, HEIGHT, fit="pad")
    assert engine.resolve_fit("crop") == "crop"
    config_path.write_text(json.dumps({**config, "videoqa_fit": "stretch"}))
    with pytest.raises(ModelError, match="videoqa_fit 'stretch'"):
        GitEngine.load(str(folder), device="cpu")


def test_cli_fit_reaches_the_report_and_a_bad_one_is_one_line(tmp_path, marked_video,
                                                              tiny_video_git):  # noqa: F811
    video = tmp_path / "wide.mp4"
    video.symlink_to(marked_video)
    runner = CliRunner()
    result = runner.invoke(cli, ["caption", str(video), "--model", str(tiny_video_git),
                                 "--fit", "pad", "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert Report.load(tmp_path / "wide.videoqa.json").model.fit == "pad"
    result = runner.invoke(cli, ["ask", str(video), "-q", "what?", "--model",
                                 str(tiny_video_git), "--fit", "stretch", "--overwrite"],
                           catch_exceptions=False)
    assert result.exit_code == 1
    assert result.stderr.strip() == "videoqa: error: --fit: 'stretch' is not one of crop, pad"
    assert not (tmp_path / "wide.srt").exists()


def test_daemon_config_takes_fit_in_defaults_and_folders(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    path = tmp_path / "videoqa.toml"
    path.write_text('[defaults]\nfit = "pad"\n[[folders]]\npath = "a"\n'
                    '[[folders]]\npath = "b"\nfit = "crop"\n')
    config = load_config(path)
    assert [s.fit for s in config.folders] == ["pad", "crop"]
    path.write_text('[[folders]]\npath = "a"\nfit = "squeeze"\n')
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == f"{path} {tmp_path / 'a'}: 'fit' must be 'crop' or 'pad', " \
                               "got 'squeeze'"


def test_the_daemons_worker_uses_the_folders_fit(tmp_path, marked_video, tiny_video_git):  # noqa: F811
    folder = tmp_path / "watched"
    folder.mkdir()
    video = folder / "wide.mp4"
    video.symlink_to(marked_video)
    settings = watch_config.FolderSettings(
        folder=folder, model=str(tiny_video_git), caption_model=str(tiny_video_git), fit="pad",
        adapters=(),
    )
    assert process_file(video, settings).model.fit == "pad"
