"""SenseVoice's rich-transcription tags: parsing, validation, emoji display and FunASR's text format.

SenseVoice decodes four tags before the text: language, emotion, audio event and ITN mode, e.g.
``<|en|><|ANGRY|><|Speech|><|withitn|>I want a refund.``. Both runtimes' outputs go through
:func:`parse_rich` so that they agree on what a segment says. Raw tags are what callsense stores;
emoji are rendered only for display (:func:`render_emoji`), and :func:`funasr_format` reproduces
FunASR's lossy ``rich_transcription_postprocess`` exactly, for users migrating scripts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from callsense.errors import UsageError
from callsense.labels import LANGUAGES, SENSEVOICE_EMOTIONS, SENSEVOICE_EVENTS, TAG_EMOJI

TAG_RE = re.compile(r"<\|([^|<>]*)\|>")

# Query ids of the four prepended embeddings (model-formats.md): index into a 16-row table.
LANGUAGE_QUERY: dict[str, int] = {"auto": 0, "zh": 3, "en": 4, "yue": 7, "ja": 11, "ko": 12, "nospeech": 13}
WITH_ITN_QUERY = 14
WITHOUT_ITN_QUERY = 15

# Output vocabulary ids that are verified against FunASR's source (model-formats.md).
VOCAB_SIZE = 25055
BLANK_ID = 0
KNOWN_TOKEN_IDS: dict[str, int] = {
    "<|zh|>": 24884,
    "<|en|>": 24885,
    "<|yue|>": 24888,
    "<|ja|>": 24892,
    "<|ko|>": 24896,
    "<|nospeech|>": 24992,
    "<|HAPPY|>": 25001,
    "<|SAD|>": 25002,
    "<|ANGRY|>": 25003,
    "<|NEUTRAL|>": 25004,
    "<|EMO_UNKNOWN|>": 25009,
    "<|withitn|>": 25016,
    "<|woitn|>": 25017,
}

ITN_TAGS = {"withitn": True, "woitn": False}
EMOTION_TAGS = frozenset(SENSEVOICE_EMOTIONS)
EVENT_TAGS = frozenset(SENSEVOICE_EVENTS)
_LANG_RE = re.compile(r"^[a-z]{2,3}(_[a-z]+)?$|^nospeech$")

MIN_SAMPLES = 400 + 6 * 160
"""Shortest input both runtimes decode: 7 fbank frames (25 ms window, 10 ms shift) = one LFR frame.
sherpa-onnx computes ``(frames - 7) // 6 + 1`` LFR frames without padding; fewer than 7 fbank frames
would give none, so shorter segments are reported as ``too_short`` instead of decoded."""

MAX_SEGMENT_S = 30.0
"""SenseVoice decodes segments of up to about 30 s directly; the pipeline splits longer speech."""

MS_PER_FRAME = 60  # one LFR frame: 6 fbank frames of 10 ms


def validate_language(code: str | None) -> str:
    """Return the normalised language code or raise :class:`UsageError` listing the valid ones.

    FunASR silently falls back to ``auto`` for an unknown code (the README once said ``zn``), so a
    typo would go unnoticed; callsense refuses it.
    """
    value = "auto" if code is None else str(code).strip().lower()
    if value in LANGUAGES:
        return value
    hint = " (Mandarin Chinese is 'zh', not 'zn')" if value == "zn" else ""
    raise UsageError(
        f"unknown SenseVoice language {code!r}{hint}",
        hint=f"valid codes: {', '.join(LANGUAGES)}",
    )


@dataclass(frozen=True)
class RichText:
    """One decoded SenseVoice string, split into its parts."""

    text: str  # without any tag, stripped
    language: str | None  # "zh", "en", ...; None for nospeech or when no language tag was decoded
    emotion: str | None  # "ANGRY", ... as emitted (EMO_UNKNOWN kept)
    events: tuple[str, ...]  # event tags in order of appearance, "Speech" included
    itn: bool | None  # from the ITN tag; None when absent
    raw_tags: str  # the leading tags, verbatim


def split_tags(raw: str) -> tuple[list[str], str]:
    """Leading ``<|x|>`` tags (names) and the rest of the string."""
    names: list[str] = []
    pos = 0
    while True:
        m = TAG_RE.match(raw, pos)
        if not m:
            break
        names.append(m.group(1))
        pos = m.end()
    return names, raw[pos:]


def _classify(name: str) -> str | None:
    if name in EMOTION_TAGS:
        return "emotion"
    if name in EVENT_TAGS:
        return "event"
    if name in ITN_TAGS:
        return "itn"
    if _LANG_RE.match(name):
        return "language"
    return None


def parse_rich(raw: str) -> RichText:
    """Parse a raw SenseVoice string (FunASR's output, or tags rebuilt from sherpa-onnx's fields).

    Tags are classified by name, not position, so a tag the model skipped (a blank at a query
    frame) shifts nothing. Tags inside the text (concatenated outputs) are removed from the text;
    their events are kept, the first language/emotion wins.
    """
    lead, _ = split_tags(raw)
    raw_tags = "".join(f"<|{n}|>" for n in lead)
    language: str | None = None
    emotion: str | None = None
    itn: bool | None = None
    events: list[str] = []
    seen_language = False
    for m in TAG_RE.finditer(raw):
        name = m.group(1)
        kind = _classify(name)
        if kind == "language" and not seen_language:
            seen_language = True
            language = None if name == "nospeech" else name
        elif kind == "emotion" and emotion is None:
            emotion = name
        elif kind == "event" and name not in events:
            events.append(name)
        elif kind == "itn" and itn is None:
            itn = ITN_TAGS[name]
    text = TAG_RE.sub("", raw)
    text = re.sub(r"\s+", " ", text.replace("\u2581", " ")).strip()
    return RichText(text=text, language=language, emotion=emotion, events=tuple(events), itn=itn,
                    raw_tags=raw_tags)


def rebuild_raw(lang: str, emotion: str, event: str, itn: bool, text: str) -> str:
    """A FunASR-style raw string from sherpa-onnx's separate fields.

    sherpa-onnx returns the first three decoded tags but drops the fourth (the ITN tag); it is
    rebuilt from the ITN mode that was requested, so ``raw_tags`` reads the same on both runtimes.
    """
    if not (lang or emotion or event):  # fewer than three tokens decoded: no tags at all
        return text
    itn_tag = "<|withitn|>" if itn else "<|woitn|>"
    return f"{lang}{emotion}{event}{itn_tag}{text}"


def merge_pieces(pieces: Sequence[str], starts_ms: Sequence[int]) -> list[tuple[str, int]]:
    """Group sentencepiece pieces into words with start times, the rule FunASR uses for timestamps.

    A piece starting with the word marker (``▁`` or, from sherpa-onnx, a space) starts a new word;
    an ASCII-letter piece following an ASCII-letter word continues it; anything else (a CJK
    character, punctuation) is its own unit. Tag pieces and bare markers are dropped.
    """
    words: list[tuple[str, int]] = []
    prev: str | None = None
    for piece, start in zip(pieces, starts_ms):
        if TAG_RE.fullmatch(piece):
            continue
        new_word = piece[:1] in ("\u2581", " ")
        word = piece.lstrip("\u2581 ")
        if not word:
            continue
        if (not new_word and words and prev is not None and prev.isascii() and prev.isalpha()
                and word.isascii() and word.isalpha()):
            words[-1] = (words[-1][0] + word, words[-1][1])
            prev = word
            continue
        words.append((word, int(start)))
        prev = word
    return words


# ---- display --------------------------------------------------------------------------------

def render_emoji(emotion: str | None, events: Sequence[str] = ()) -> str:
    """Emoji for display (model-formats.md convention: cough 😷, sneeze 🤧; neutral/speech none)."""
    out = "".join(TAG_EMOJI.get(e, "") for e in events)
    if emotion:
        out += TAG_EMOJI.get(emotion, "")
    return out


def display_text(rich: RichText) -> str:
    """``🎼 text 😡``-style line: events before, emotion after, like FunASR shows them, without loss."""
    before = "".join(TAG_EMOJI.get(e, "") for e in rich.events)
    after = TAG_EMOJI.get(rich.emotion or "", "")
    return " ".join(p for p in (before, rich.text, after) if p)


# ---- FunASR's rich_transcription_postprocess, reproduced for `--format funasr` -----------------
# The tables and steps below reproduce FunASR's behaviour exactly, including its losses (cough and
# sneeze both 🤧 in front, neutral/unknown vanish, repeated neighbouring emoji merged). Never used
# on stored data.

_F_EMO = {"<|HAPPY|>": "😊", "<|SAD|>": "😔", "<|ANGRY|>": "😡", "<|NEUTRAL|>": "", "<|FEARFUL|>": "😰",
          "<|DISGUSTED|>": "🤢", "<|SURPRISED|>": "😮"}
_F_EVENT = {"<|BGM|>": "🎼", "<|Speech|>": "", "<|Applause|>": "👏", "<|Laughter|>": "😀", "<|Cry|>": "😭",
            "<|Sneeze|>": "🤧", "<|Breath|>": "", "<|Cough|>": "🤧"}
_F_LANGS = ("<|zh|>", "<|en|>", "<|yue|>", "<|ja|>", "<|ko|>", "<|nospeech|>")
# Order matters: FunASR counts and removes these in this order (the two-tag entry first).
_F_ALL_TAGS = (
    ("<|nospeech|><|Event_UNK|>", "❓"), ("<|zh|>", ""), ("<|en|>", ""), ("<|yue|>", ""), ("<|ja|>", ""),
    ("<|ko|>", ""), ("<|nospeech|>", ""), ("<|HAPPY|>", "😊"), ("<|SAD|>", "😔"), ("<|ANGRY|>", "😡"),
    ("<|NEUTRAL|>", ""), ("<|BGM|>", "🎼"), ("<|Speech|>", ""), ("<|Applause|>", "👏"), ("<|Laughter|>", "😀"),
    ("<|FEARFUL|>", "😰"), ("<|DISGUSTED|>", "🤢"), ("<|SURPRISED|>", "😮"), ("<|Cry|>", "😭"),
    ("<|EMO_UNKNOWN|>", ""), ("<|Sneeze|>", "🤧"), ("<|Breath|>", ""), ("<|Cough|>", "😷"), ("<|Sing|>", ""),
    ("<|Speech_Noise|>", ""), ("<|withitn|>", ""), ("<|woitn|>", ""), ("<|GBG|>", ""), ("<|Event_UNK|>", ""),
)
_F_EMO_SET = {"😊", "😔", "😡", "😰", "🤢", "😮"}
_F_EVENT_SET = {"🎼", "👏", "😀", "😭", "🤧", "😷"}


def _funasr_piece(s: str) -> str:
    counts: dict[str, int] = {}
    for tag, _ in _F_ALL_TAGS:
        counts[tag] = s.count(tag)
        s = s.replace(tag, "")
    emo = "<|NEUTRAL|>"
    for tag in _F_EMO:
        if counts[tag] > counts[emo]:
            emo = tag
    for tag, emoji in _F_EVENT.items():
        if counts[tag] > 0:
            s = emoji + s
    s = s + _F_EMO[emo]
    for emoji in _F_EMO_SET | _F_EVENT_SET:
        s = s.replace(" " + emoji, emoji).replace(emoji + " ", emoji)
    return s.strip()


def funasr_format(raw: str) -> str:
    """The text FunASR's ``rich_transcription_postprocess(raw)`` returns, for ``--format funasr``."""

    def emo_of(s: str) -> str | None:
        return s[-1] if s[-1] in _F_EMO_SET else None

    def event_of(s: str) -> str | None:
        return s[0] if s[0] in _F_EVENT_SET else None

    s = raw.replace("<|nospeech|><|Event_UNK|>", "❓")
    for lang in _F_LANGS:
        s = s.replace(lang, "<|lang|>")
    parts = [_funasr_piece(p).strip(" ") for p in s.split("<|lang|>")]
    out = " " + parts[0]
    current_event = event_of(out)
    for part in parts[1:]:
        if not part:
            continue
        if event_of(part) == current_event and event_of(part) is not None:
            part = part[1:]
        if not part:
            continue
        current_event = event_of(part)
        if emo_of(part) is not None and emo_of(part) == emo_of(out):
            out = out[:-1]
        out += part.strip().lstrip()
    out = out.replace("The.", " ")
    return out.strip()
