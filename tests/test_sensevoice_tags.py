"""SenseVoice tags: parsing, language validation, emoji display, FunASR's text format."""

from __future__ import annotations

import random

import pytest

from callsense.engines.sensevoice.tags import (
    funasr_format,
    merge_pieces,
    parse_rich,
    render_emoji,
    validate_language,
)
from callsense.errors import UsageError
from callsense.labels import LANGUAGES, SENSEVOICE_EMOTIONS, SENSEVOICE_EVENTS


@pytest.mark.parametrize("emotion", SENSEVOICE_EMOTIONS)
def test_every_emotion_tag_is_parsed(emotion):
    rich = parse_rich(f"<|en|><|{emotion}|><|Speech|><|withitn|>I want a refund.")
    assert rich.emotion == emotion
    assert rich.language == "en"
    assert rich.events == ("Speech",)
    assert rich.itn is True
    assert rich.text == "I want a refund."
    assert rich.raw_tags == f"<|en|><|{emotion}|><|Speech|><|withitn|>"


@pytest.mark.parametrize("event", SENSEVOICE_EVENTS)
def test_every_event_tag_is_parsed(event):
    rich = parse_rich(f"<|zh|><|NEUTRAL|><|{event}|><|woitn|>你好")
    assert rich.events == (event,)
    assert rich.emotion == "NEUTRAL"
    assert rich.itn is False
    assert rich.text == "你好"


def test_nospeech_has_no_language_and_no_text():
    rich = parse_rich("<|nospeech|><|EMO_UNKNOWN|><|Event_UNK|><|woitn|>")
    assert rich.language is None
    assert rich.text == ""
    assert rich.events == ("Event_UNK",)


def test_skipped_tag_shifts_nothing():
    # a blank at the emotion query: the event must not be read as the emotion
    rich = parse_rich("<|ko|><|Cough|><|withitn|>네")
    assert (rich.language, rich.emotion, rich.events, rich.text) == ("ko", None, ("Cough",), "네")


def test_tags_inside_text_are_removed_and_events_kept():
    rich = parse_rich("<|en|><|ANGRY|><|Speech|><|withitn|>no <|Laughter|>way")
    assert rich.text == "no way"
    assert rich.events == ("Speech", "Laughter")
    assert rich.raw_tags == "<|en|><|ANGRY|><|Speech|><|withitn|>"


@pytest.mark.parametrize("code", LANGUAGES)
def test_valid_languages_pass(code):
    assert validate_language(code.upper()) == code


@pytest.mark.parametrize("bad", ["zn", "fr", "", "chinese"])
def test_bad_language_is_a_usage_error_listing_valid_codes(bad):
    with pytest.raises(UsageError) as err:
        validate_language(bad)
    for code in LANGUAGES:
        assert code in str(err.value)
    if bad == "zn":
        assert "'zh'" in str(err.value)


def test_emoji_convention_cough_is_not_sneeze():
    assert render_emoji(None, ("Cough",)) == "😷"
    assert render_emoji(None, ("Sneeze",)) == "🤧"
    assert render_emoji("NEUTRAL", ("Speech",)) == ""
    assert render_emoji("ANGRY", ("BGM", "Breath")) == "🎼😡"


def test_merge_pieces_groups_words_like_funasr():
    pieces = ["\u2581hel", "lo", " world", "你", "好", ",", "<|en|>"]
    starts = [0, 60, 120, 180, 240, 300, 360]
    assert merge_pieces(pieces, starts) == [("hello", 0), ("world", 120), ("你", 180), ("好", 240), (",", 300)]


def _random_raws(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    langs = ["<|zh|>", "<|en|>", "<|yue|>", "<|ja|>", "<|ko|>", "<|nospeech|>"]
    emos = [f"<|{e}|>" for e in SENSEVOICE_EMOTIONS]
    events = [f"<|{e}|>" for e in SENSEVOICE_EVENTS]
    itn = ["<|withitn|>", "<|woitn|>"]
    texts = ["", "hello world", "The. end", "你好。", " spaced out ", "😊 already", "a", "Thank you."]
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 3)):
            parts.append(rng.choice(langs) + rng.choice(emos) + rng.choice(events) + rng.choice(itn)
                         + rng.choice(texts))
            if rng.random() < 0.2:
                parts.append(rng.choice(events + emos))
        out.append("".join(parts))
    out += ["<|nospeech|><|Event_UNK|>", "plain text", ("<|en|><|HAPPY|><|Cough|><|withitn|>hi<|en|><|HAPPY|>"
            "<|Cough|><|withitn|>there")]
    return out


@pytest.mark.torch
def test_funasr_format_matches_funasr_postprocess():
    from funasr.utils.postprocess_utils import rich_transcription_postprocess

    raws = _random_raws(1500)
    mismatches = [(r, funasr_format(r), rich_transcription_postprocess(r)) for r in raws
                  if funasr_format(r) != rich_transcription_postprocess(r)]
    assert not mismatches, mismatches[:3]


def test_display_text_keeps_cough_and_sneeze_apart():
    from callsense.engines.sensevoice.tags import display_text

    assert display_text(parse_rich("<|en|><|ANGRY|><|Cough|><|withitn|>stop")) == "😷 stop 😡"
    assert display_text(parse_rich("<|en|><|NEUTRAL|><|Sneeze|><|withitn|>ok")) == "🤧 ok"


def test_rebuilt_raw_from_sherpa_fields():
    from callsense.engines.sensevoice.tags import rebuild_raw

    raw = rebuild_raw("<|zh|>", "<|SAD|>", "<|Cry|>", False, "不行")
    assert parse_rich(raw) == parse_rich("<|zh|><|SAD|><|Cry|><|woitn|>不行")
    # fewer than three decoded tokens: sherpa-onnx reports no tags, nothing is invented
    assert rebuild_raw("", "", "", True, "x") == "x"
