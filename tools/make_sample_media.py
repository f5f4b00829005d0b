"""Write the clips of ``sample_media/`` from the shapes-world scenes in ``videoqa.demo``.

    python tools/make_sample_media.py            # writes sample_media/*.mp4, *.webm
    python tools/make_sample_media.py --output /tmp/media

The scenes (and so what the demo model should say when) are defined in
``videoqa.demo.video.SAMPLE_SCENES``; this script only encodes them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from videoqa.demo import SAMPLE_SCENES, write_scene_video

#: Encoder options: small files, deterministic output for a given FFmpeg build.
CODEC_OPTIONS = {
    "libx264": {"crf": "26", "preset": "slow", "threads": "1"},
    "libvpx-vp9": {"crf": "36", "b": "0", "threads": "1", "row-mt": "0"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("sample_media"))
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    for name, sample in SAMPLE_SCENES.items():
        path = args.output / name
        write_scene_video(
            path,
            sample.scene,
            duration=sample.duration,
            width=sample.width,
            height=sample.height,
            codec=sample.codec,
            options=CODEC_OPTIONS[sample.codec],
        )
        print(f"{path}  {path.stat().st_size / 1024:.0f} KiB  {sample.description}")


if __name__ == "__main__":
    main()
