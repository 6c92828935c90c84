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


def test_timestamp_rules_match_transformers(whisper_tokenizer):
    """Our numpy timestamp rules (onnx engine) against transformers' WhisperTimeStampLogitsProcessor on random
    logits, for rows at the first step, after a timestamp, after a closed pair and inside text."""
    import numpy as np
    import torch
    from transformers import GenerationConfig
    from transformers.generation.logits_process import WhisperTimeStampLogitsProcessor

    from egrecho_inner.deploy.onnx_decode import timestamp_rules
    from egrecho_inner.model import whisper_generation_config

    config = whisper_generation_config(whisper_tokenizer)
    generation = config.to_dict()
    begin = generation["no_timestamps_token_id"] + 1
    prompt = [50258, 50259, 50359]
    rng = np.random.default_rng(0)
    for max_initial in (None, 50):
        config.max_initial_timestamp_index = generation["max_initial_timestamp_index"] = max_initial
        for generated in ([[]] * 3, [[begin + 5], [begin + 5, 400], [begin, 400, begin + 40, begin + 40]]):
            logits = rng.normal(size=(3, len(whisper_tokenizer))).astype(np.float32) * 4
            logits[1, begin:] += 6  # one row where the timestamps together outweigh every text token
            ours = timestamp_rules(logits.copy(), generated, generation)
            processor = WhisperTimeStampLogitsProcessor(GenerationConfig(**generation), begin_index=len(prompt))
            for row, seq in enumerate(generated):  # one row at a time: the rows' lengths differ
                theirs = processor(torch.tensor([prompt + seq]), torch.from_numpy(logits[row:row + 1].copy()))[0]
                assert np.array_equal(np.isinf(ours[row]), np.isinf(theirs.numpy()))
                assert np.allclose(ours[row][~np.isinf(ours[row])], theirs.numpy()[~np.isinf(theirs.numpy())])
