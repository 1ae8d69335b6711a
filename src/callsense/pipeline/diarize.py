"""The diarization stage of the pipeline: mono track → speaker-labelled speech pieces → roles.

Runs only on mono input and only when both diarization models are installed (``callsense models pull
pyannote-segmentation-3-0`` and ``eres2net-base-3dspeaker``); otherwise the call keeps one ``unknown``
track as before, and QA rules scoped to a party run on the unknown speaker (rules/evaluate.py).

Two steps around ASR, because roles need the text:

1. :func:`plan` (before ASR): diarize, then cut each VAD span at the speaker changes inside it;
2. :func:`assign` (after ASR): infer roles (analysis/roles.py) from the lexicon, the turn order and
   enrolled agent voiceprints, or take ``--roles`` as given, and build :class:`Separation`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from callsense.analysis.roles import AGENT_LEXICON, RoleInference, RoleOptions, SpeakerTurnText, infer_roles
from callsense.engines.catalog import DEFAULT_EMBEDDING_MODEL, DEFAULT_SEGMENTATION_MODEL, get_spec
from callsense.engines.diarization.sherpa import DEFAULT_STEP, Diarization, Diarizer, SpeakerTurn
from callsense.result.model import ModelInfo, Separation, SpeakerInfo, SpeakerOverlap

log = logging.getLogger("callsense")

MIN_PIECE_MS = 250  # a speaker change that leaves less than this on one side is not cut


@dataclass(frozen=True)
class Piece:
    start_ms: int
    end_ms: int
    speaker: int | None


@dataclass(frozen=True)
class DiarizationPlan:
    diarization: Diarization
    pieces: tuple[Piece, ...]
    info: ModelInfo


def model_file(directory: Path, name: str) -> Path:
    """The ONNX file of a located model directory (the catalogue's first alternative that exists)."""
    spec = get_spec(name)
    for alt in spec.formats["onnx"].required[0].split("|"):
        if (directory / alt).is_file():
            return directory / alt
    return directory / spec.formats["onnx"].required[0].split("|")[0]


def speaker_model() -> str:
    """The speaker-embedding model diarization and voiceprints use: ``CALLSENSE_SPEAKER_MODEL`` (a
    catalogue name or alias of a speaker-embedding model, e.g. ``campplus``), else ERes2Net-base."""
    from callsense.errors import UsageError

    raw = os.environ.get("CALLSENSE_SPEAKER_MODEL", "").strip()
    if not raw:
        return DEFAULT_EMBEDDING_MODEL
    try:
        spec = get_spec(raw)
    except Exception:  # noqa: BLE001 - the catalogue's own error names the known models
        spec = None
    if spec is None or spec.task != "speaker-embedding":
        from callsense.engines.catalog import CATALOG

        known = ", ".join(n for n, sp in CATALOG.items() if sp.task == "speaker-embedding")
        raise UsageError(f"CALLSENSE_SPEAKER_MODEL={raw!r} is not a speaker-embedding model",
                         hint=f"use one of: {known}")
    return spec.name


def voiceprint_folder(home: Path, model: str | None = None) -> Path:
    """Where enrolled agents' voiceprints of ``model`` live: ``<home>/agents`` for the default model,
    ``<home>/agents/<model>`` for another — voiceprints of two models are never compared."""
    model = model or speaker_model()
    return home / "agents" if model == DEFAULT_EMBEDDING_MODEL else home / "agents" / model


@dataclass(frozen=True)
class CallDiarizer:
    """The loaded Diarizer and where enrolled agents live: per-speaker voiceprints (one more embedding
    pass) are computed only when some agent is enrolled, since nothing else uses them."""

    diarizer: Diarizer
    agents: Path
    speaker_model: str = DEFAULT_EMBEDDING_MODEL

    def wants_voiceprints(self) -> bool:
        return self.agents.is_dir() and any(self.agents.glob("*.npy"))


def load_diarizer(manager, *, num_threads: int = 1) -> CallDiarizer | None:
    """The Diarizer when both models are installed, else None (mono calls then stay ``unknown``).

    ``CALLSENSE_DIARIZATION_THRESHOLD`` (clustering cut, 0.5) and ``CALLSENSE_DIARIZATION_STEP`` (window
    advance as a fraction of the 10 s window, 1.0; sherpa-onnx's 0.1 costs ~10x) tune it."""
    speaker = speaker_model()
    seg = manager.find(DEFAULT_SEGMENTATION_MODEL, "onnx")
    emb = manager.find(speaker, "onnx")
    if seg is None or emb is None:
        return None
    threshold = _env_float("CALLSENSE_DIARIZATION_THRESHOLD", 0.5, 0.0, 2.0)
    step = _env_float("CALLSENSE_DIARIZATION_STEP", DEFAULT_STEP, 0.05, 1.0)
    diarizer = Diarizer(model_file(seg.path, DEFAULT_SEGMENTATION_MODEL),
                        model_file(emb.path, speaker), num_threads=num_threads,
                        threshold=threshold, step=step)
    return CallDiarizer(diarizer, voiceprint_folder(manager.home, speaker), speaker)


def _env_float(name: str, default: float, lo: float, hi: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not lo <= value <= hi:
        from callsense.errors import UsageError

        raise UsageError(f"{name}={raw!r}: expected a number from {lo} to {hi} (unset it for {default})")
    return value


def split_spans(spans: Sequence[tuple[int, int]], diarization: Diarization) -> list[Piece]:
    """Each VAD span cut where the diarized speaker changes; a span no turn covers keeps speaker None."""
    out: list[Piece] = []
    turns = diarization.turns
    for a, b in spans:
        parts = sorted((max(a, t.start_ms), min(b, t.end_ms), t.speaker) for t in turns
                       if min(b, t.end_ms) - max(a, t.start_ms) > 0)
        if not parts:
            out.append(Piece(a, b, None))
            continue
        cuts: list[list] = []
        for s, e, spk in parts:  # overlapped speech goes to the speaker already talking
            if cuts and s < cuts[-1][1]:
                if e > cuts[-1][1] and spk != cuts[-1][2]:
                    s = cuts[-1][1]
                elif spk == cuts[-1][2] or e <= cuts[-1][1]:
                    cuts[-1][1] = max(cuts[-1][1], e)
                    continue
            if cuts and cuts[-1][2] == spk:
                cuts[-1][1] = e
            else:
                cuts.append([s, e, spk])
        merged: list[list] = []
        for c in cuts:
            if merged and c[1] - c[0] < MIN_PIECE_MS:
                merged[-1][1] = c[1]
            else:
                merged.append(c)
        if len(merged) > 1 and merged[0][1] - merged[0][0] < MIN_PIECE_MS:
            merged[1][0] = merged[0][0]
            merged.pop(0)
        merged[0][0], merged[-1][1] = a, b  # the VAD's outer edges stand
        for i in range(1, len(merged)):
            merged[i][0] = merged[i - 1][1]
        out += [Piece(s, e, spk) for s, e, spk in merged if e > s]
    return out


def speaker_overlaps(turns: Sequence[SpeakerTurn]) -> tuple[SpeakerOverlap, ...]:
    """Where two speakers' turns overlap (sherpa-onnx emits overlapping turns from the segmentation's
    two-speaker frames): the one whose turn started later talked over the other; on equal starts the
    higher speaker number is taken as the interrupter."""
    out = []
    ordered = sorted(turns, key=lambda t: (t.start_ms, t.speaker))
    for i, a in enumerate(ordered):
        for b in ordered[i + 1:]:
            if b.start_ms >= a.end_ms:
                break
            lo, hi = b.start_ms, min(a.end_ms, b.end_ms)
            if a.speaker != b.speaker and hi > lo:
                out.append(SpeakerOverlap(lo, hi, b.speaker, a.speaker))
    return tuple(sorted(out, key=lambda o: (o.start_ms, o.end_ms, o.speaker)))


def plan(diarizer: Diarizer | CallDiarizer, samples: np.ndarray, spans: Sequence[tuple[int, int]]) -> DiarizationPlan:
    voiceprints, speaker = True, DEFAULT_EMBEDDING_MODEL
    if isinstance(diarizer, CallDiarizer):
        voiceprints, speaker, diarizer = diarizer.wants_voiceprints(), diarizer.speaker_model, diarizer.diarizer
    info = ModelInfo("diarization", f"{DEFAULT_SEGMENTATION_MODEL}+{speaker}", "onnx",
                     path=str(diarizer.segmentation_format.path.parent), options=dict(diarizer.options))
    if not spans:  # the VAD heard no speech (silence, music, tones): no speaker, whatever the segmentation says
        return DiarizationPlan(Diarization((), (), {}), (), info)
    diarization = diarizer.process(samples, voiceprints=voiceprints)
    pieces = tuple(split_spans(spans, diarization)) if diarization.turns else ()
    diarization, pieces = _heard_only(diarization, pieces)
    return DiarizationPlan(diarization, pieces, info)


def _heard_only(d: Diarization, pieces: tuple[Piece, ...]) -> tuple[Diarization, tuple[Piece, ...]]:
    """Only the speakers the VAD heard speak (a "speaker" of music between the speech goes), renumbered
    0, 1, ... in order of first speech."""
    heard = {p.speaker for p in pieces if p.speaker is not None}
    if heard == set(d.speakers):
        return d, pieces
    order: dict[int, int] = {}
    for t in d.turns:
        if t.speaker in heard:
            order.setdefault(t.speaker, len(order))
    turns = tuple(SpeakerTurn(order[t.speaker], t.start_ms, t.end_ms) for t in d.turns if t.speaker in order)
    from callsense.engines.diarization.sherpa import overlapped

    kept = Diarization(turns, overlapped(turns), {order[s]: v for s, v in d.embeddings.items() if s in order})
    return kept, tuple(Piece(p.start_ms, p.end_ms, order.get(p.speaker) if p.speaker is not None else None)
                       for p in pieces)


def load_voiceprints(home: Path, model: str | None = None) -> dict[str, np.ndarray]:
    """Enrolled agents: ``<CALLSENSE_HOME>/agents/<AGENT_ID>.npy`` (``callsense agents enroll``; another
    speaker model's under ``agents/<model>/``, see :func:`voiceprint_folder`)."""
    folder = voiceprint_folder(home, model)
    out = {}
    for path in sorted(folder.glob("*.npy")) if folder.is_dir() else ():
        try:
            out[path.stem] = np.load(path).astype(np.float32).reshape(-1)
        except (OSError, ValueError) as e:
            log.warning("voiceprint %s unreadable, ignored: %s", path, e)
    return out


LEXICON_ENV = "CALLSENSE_AGENT_LEXICON"


def read_lexicon(path: str | Path | None = None) -> tuple[str, ...] | None:
    """The agent lexicon of ``path`` (``--agent-lexicon``), else of ``$CALLSENSE_AGENT_LEXICON``; None when
    neither is given (the built-in :data:`~callsense.analysis.roles.AGENT_LEXICON` applies).

    UTF-8 text, one phrase per line, matched case-insensitively in each speaker's first turns: a line adds
    its phrase to the built-in ones, ``-phrase`` removes a built-in phrase, ``#`` starts a comment line."""
    from callsense.errors import UsageError

    where = "--agent-lexicon"
    if path is None:
        raw = os.environ.get(LEXICON_ENV, "").strip()
        if not raw:
            return None
        path, where = raw, LEXICON_ENV
    path = Path(path).expanduser()
    try:
        text = path.read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        reason = "not found" if isinstance(e, FileNotFoundError) else f"unreadable ({e})"
        raise UsageError(f"{where}: agent lexicon {path} {reason}",
                         hint="a UTF-8 text file, one phrase per line (docs/diarization.md, \"Roles\")") from e
    phrases = [p.lower() for p in AGENT_LEXICON]
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            drop = line[1:].strip().lower()
            if drop not in phrases:
                raise UsageError(f"{path}:{n}: {line!r} removes a phrase that is not in the lexicon",
                                 hint="built-in phrases: " + ", ".join(AGENT_LEXICON))
            phrases.remove(drop)
        elif line.lower() not in phrases:
            phrases.append(line.lower())
    if not phrases:
        raise UsageError(f"{path}: the agent lexicon is empty (every phrase removed)",
                         hint="keep at least one phrase, or use --roles to set the roles")
    return tuple(phrases)


def assign(p: DiarizationPlan, texts: Sequence[tuple[int | None, int, str]], *, direction: str | None,
           override: Sequence[str] = (), voiceprints: Mapping[str, np.ndarray] | None = None,
           lexicon: Sequence[str] | None = None,
           ) -> tuple[dict[int, str], Separation, RoleInference | None]:
    """Roles per speaker and the call's Separation. ``texts``: (speaker, start_ms, text) per segment."""
    speakers = p.diarization.speakers
    talk = {s: sum(t.end_ms - t.start_ms for t in p.diarization.turns if t.speaker == s) for s in speakers}
    overlaps = speaker_overlaps(p.diarization.turns)
    if override:
        roles = {s: (override[i] if i < len(override) else "unknown") for i, s in enumerate(speakers)}
        infos = tuple(SpeakerInfo(s, roles[s], 1.0, ("--roles override",), talk[s]) for s in speakers)
        return roles, Separation("diarization+roles", ("unknown",), 1.0, infos, "override", overlaps), None
    inference = infer_roles([SpeakerTurnText(s, a, t) for s, a, t in texts if s is not None],
                            RoleOptions(direction=direction, lexicon=tuple(lexicon or AGENT_LEXICON)),
                            embeddings=p.diarization.embeddings,
                            voiceprints=voiceprints)
    roles = {s: inference.role_of(s) for s in speakers}
    infos = tuple(SpeakerInfo(d.speaker, d.role, d.confidence, d.evidence, talk.get(d.speaker, 0), d.agent_id)
                  for d in inference.decisions)
    infos += tuple(SpeakerInfo(s, "unknown", None, ("no transcribed speech",), talk[s]) for s in speakers
                   if all(i.speaker != s for i in infos))
    decided = any(r != "unknown" for r in roles.values())
    confidence = min((i.confidence for i in infos if i.confidence is not None), default=None)
    return roles, Separation("diarization+roles" if decided else "diarization", ("unknown",), confidence,
                             tuple(sorted(infos, key=lambda i: i.speaker)),
                             inference.method if decided else None, overlaps), inference


def apply_roles(p: DiarizationPlan, seg_audio: Sequence, transcripts: Sequence, options, metadata, manager):
    """The segments' audio with the inferred roles, and the call's Separation (the analyzer's hook)."""
    from dataclasses import replace

    texts = [(p.pieces[i].speaker, sa.start_ms, (tr.text if tr is not None else ""))
             for i, (sa, tr) in enumerate(zip(seg_audio, transcripts))]
    direction = str((metadata or {}).get("direction") or "") or None
    roles, separation, _ = assign(p, texts, direction=direction, override=tuple(options.roles),
                                  voiceprints=load_voiceprints(manager.home),
                                  lexicon=getattr(options, "agent_lexicon", None))
    out = [replace(sa, role=roles.get(p.pieces[i].speaker, "unknown")) for i, sa in enumerate(seg_audio)]
    return out, separation
