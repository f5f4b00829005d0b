"""The daemon's TOML config: per-folder settings, defaults, overrides, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from videoqa.errors import ConfigError
from videoqa.watch.config import load_config

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "videoqa.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "videoqa.toml"
    path.write_text(text)
    return path


def test_folders_get_their_own_settings_over_the_defaults(tmp_path):
    (tmp_path / "news").mkdir()
    (tmp_path / "sport").mkdir()
    config = load_config(write(tmp_path, """
jobstore = "state/jobs.sqlite"
settle = 2
[defaults]
questions = ["what is happening?"]
captions = false
[[folders]]
path = "./elsewhere/../news"
captions = true
output_dir = "out"
[[folders]]
path = "sport"
questions = ["what sport is this?", "how many players are there?"]
[adapters.webhook]
url = "http://127.0.0.1:9/hook"
"""))  # fmt: skip
    news, sport = config.folders
    assert config.jobstore == tmp_path / "state" / "jobs.sqlite"
    assert config.settle == 2.0 and isinstance(config.settle, float)
    assert news.folder == tmp_path / "news" and news.captions is True
    assert news.questions == ("what is happening?",)
    assert news.output_dir == tmp_path / "out"
    assert news.output_dir_for(tmp_path / "news" / "a" / "b.mp4") == tmp_path / "out" / "a"
    assert sport.captions is False and len(sport.questions) == 2
    assert sport.adapter_options["webhook"]["url"] == "http://127.0.0.1:9/hook"
    # The event log defaults to the job store's folder.
    assert sport.adapter_options["jsonl"]["path"] == str(tmp_path / "state" / "events.jsonl")
    assert config.settings_for(tmp_path / "sport" / "x.mp4") is sport
    with pytest.raises(ConfigError, match="not inside a watched folder"):
        config.settings_for(tmp_path / "elsewhere.mp4")


def test_command_line_folders_and_overrides_win(tmp_path):
    (tmp_path / "in").mkdir()
    config = load_config(
        write(tmp_path, 'settle = 9\n[defaults]\nquestions = ["q?"]\n'),
        folders=[tmp_path / "in"], settle=0.5, poll=True, jobstore=str(tmp_path / "j.sqlite"),
    )  # fmt: skip
    assert [s.folder for s in config.folders] == [tmp_path / "in"]
    assert config.folders[0].questions == ("q?",)
    assert (config.settle, config.poll, config.jobstore) == (0.5, True, tmp_path / "j.sqlite")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("setle = 3", "unknown setting"),
        ("settle = -1", "must be positive"),
        ("settle = 'soon'", "'settle' must be float"),
        ("[defaults]\nquestion = ['typo?']", "unknown setting 'question'"),
        ("[defaults]\nformats = ['json', 'docx']", "unknown sidecar format"),
        ("[defaults]\ncaptions = false", "nothing to do"),
        ("[[folders]]\ncaptions = true", "needs a 'path'"),
        ("[[folders]]\npath = 'missing'", "watched folder does not exist"),
        ("settle = [", "cannot read TOML"),
    ],
)
def test_mistakes_are_one_line_config_errors(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(write(tmp_path, text))
    assert "\n" not in str(caught.value)


def test_a_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.toml")


def test_the_sample_config_in_the_repository_loads(tmp_path, monkeypatch):
    text = EXAMPLE.read_text()
    for folder in ("/srv/media/incoming", "/srv/media/news"):
        local = tmp_path / folder.lstrip("/")
        local.mkdir(parents=True)
        text = text.replace(f'"{folder}"', f'"{local}"')
    config = load_config(write(tmp_path, text))
    assert len(config.folders) == 2
    assert all(s.questions or s.captions for s in config.folders)


def test_deinterlace_is_a_folder_setting(tmp_path):
    (tmp_path / "tapes").mkdir()
    text = f"[defaults]\ncaptions = true\n\n[[folders]]\npath = '{tmp_path / 'tapes'}'\n"
    config = load_config(write(tmp_path, text + "deinterlace = 'on'\n"))
    assert config.folders[0].deinterlace == "on"
    assert load_config(write(tmp_path, text)).folders[0].deinterlace == "auto"
    with pytest.raises(ConfigError, match="'deinterlace' must be auto, on or off, got 'yes'"):
        load_config(write(tmp_path, text + "deinterlace = 'yes'\n"))


def test_a_folder_may_ask_for_every_sidecar_format_the_cli_writes(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    config = load_config(write(tmp_path, """
[[folders]]
path = "a"
formats = ["txt", "json"]
[[folders]]
path = "b"
formats = ["all"]
"""))  # fmt: skip
    first, second = config.folders
    assert first.formats == ("txt", "json")
    assert set(second.formats) == {"json", "srt", "vtt", "txt", "otio", "xmp", "ttml", "ebutt",
                                   "descriptions"}
