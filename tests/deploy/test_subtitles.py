"""SRT, WebVTT and JSON rendering of timed segments, against hand-written files."""

from __future__ import annotations

import json

from egrecho_inner.deploy.subtitles import render

SEGMENTS = [(0.0, 2.72, " The quick brown fox."), (3661.5, 3663.004, "Hai ba.")]


def test_srt_vtt_json():
    assert render("srt", "a", SEGMENTS) == (
        "1\n00:00:00,000 --> 00:00:02,720\nThe quick brown fox.\n\n"
        "2\n01:01:01,500 --> 01:01:03,004\nHai ba.\n")
    assert render("vtt", "a", SEGMENTS) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:02.720\nThe quick brown fox.\n\n"
        "01:01:01.500 --> 01:01:03.004\nHai ba.\n")
    assert json.loads(render("json", "a", SEGMENTS)) == {
        "id": "a", "text": "The quick brown fox. Hai ba.",
        "segments": [{"start": 0.0, "end": 2.72, "text": "The quick brown fox."},
                     {"start": 3661.5, "end": 3663.004, "text": "Hai ba."}]}
