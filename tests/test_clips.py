"""Clip planning: windows over the timeline and evenly spread frame times."""

from __future__ import annotations

import pytest

from videoqa.clips import frame_times_in, plan_clips


def test_back_to_back_clips_cover_the_video_and_keep_a_long_enough_last_clip():
    clips = plan_clips(12.0, frames_per_clip=6)
    assert [(c.start, c.end) for c in clips] == [(0.0, 5.0), (5.0, 10.0), (10.0, 12.0)]
    assert [c.index for c in clips] == [0, 1, 2]


def test_a_last_clip_too_short_to_matter_is_dropped():
    clips = plan_clips(10.5, frames_per_clip=6)
    assert [(c.start, c.end) for c in clips] == [(0.0, 5.0), (5.0, 10.0)]


def test_a_video_shorter_than_one_clip_still_gets_one_clip():
    clips = plan_clips(0.4, frames_per_clip=3)
    assert len(clips) == 1
    assert clips[0].end == pytest.approx(0.4)


def test_frame_times_are_the_centres_of_equal_parts():
    assert frame_times_in(10.0, 16.0, 6) == (10.5, 11.5, 12.5, 13.5, 14.5, 15.5)
    clip = plan_clips(30.0, frames_per_clip=4, clip_length=8.0)[1]
    assert clip.frame_times == (9.0, 11.0, 13.0, 15.0)
    for c in plan_clips(30.0, frames_per_clip=5, clip_length=7.0):
        assert all(c.start < t < c.end for t in c.frame_times)


def test_stride_overlaps_or_leaves_gaps_and_start_end_bound_the_plan():
    overlapping = plan_clips(10.0, frames_per_clip=1, clip_length=4.0, stride=2.0)
    # The clip starting at 6 s reaches the end; one at 8 s would add nothing new.
    assert [c.start for c in overlapping] == [0.0, 2.0, 4.0, 6.0]
    assert overlapping[-1].end == 10.0
    gaps = plan_clips(20.0, frames_per_clip=1, clip_length=2.0, stride=5.0)
    assert [(c.start, c.end) for c in gaps] == [(0, 2), (5, 7), (10, 12), (15, 17)]
    bounded = plan_clips(60.0, frames_per_clip=2, start=12.0, end=22.0)
    assert [(c.start, c.end) for c in bounded] == [(12.0, 17.0), (17.0, 22.0)]
    assert bounded[0].frame_times == (13.25, 15.75)


def test_end_past_the_video_is_clamped_to_its_duration():
    clips = plan_clips(7.0, frames_per_clip=1, end=100.0)
    assert clips[-1].end == 7.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"clip_length": 0},
        {"stride": -1.0},
        {"start": -2.0},
        {"start": 8.0, "end": 8.0},
        {"start": 20.0},
        {"frames_per_clip": 0},
    ],
)
def test_impossible_plans_raise_value_error(kwargs):
    options = {"frames_per_clip": 3, **kwargs}
    with pytest.raises(ValueError):
        plan_clips(10.0, **options)
