"""``callsense agents``: enrolled agent voiceprints, matched against diarized speakers of mono calls.

    callsense agents enroll a17 clip1.wav clip2.wav    # mean embedding of the clips -> a17
    callsense agents list

Voiceprints are unit-norm speaker embeddings of the installed speaker-embedding model, stored as
``<CALLSENSE_HOME>/agents/<AGENT_ID>.npy``; re-enrol after changing that model.
"""

from __future__ import annotations

import re
from pathlib import Path

import typer

from callsense.errors import InputError, UsageError

agents_app = typer.Typer(help="Enrolled agent voiceprints for role inference on mono calls.", no_args_is_help=True)
AGENT_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@agents_app.command("enroll")
def enroll(agent_id: str = typer.Argument(..., help="Agent id, filled into a matched call's agent_id."),
           clips: list[Path] = typer.Argument(..., help="Recordings of this agent alone (mono or one channel).")) -> None:
    """Store the agent's voiceprint: the mean embedding of the clips."""
    import numpy as np

    from callsense.audio.decode import load_audio
    from callsense.engines.catalog import get_spec
    from callsense.engines.diarization import VoiceEmbedder
    from callsense.engines.manager import ModelManager
    from callsense.pipeline.diarize import model_file, speaker_model, voiceprint_folder

    if not AGENT_ID.match(agent_id):
        raise UsageError(f"agent id {agent_id!r}: use letters, digits, '_', '-', '.' (at most 64)")
    model = speaker_model()  # CALLSENSE_SPEAKER_MODEL: the one diarization uses
    audios = [(clip, load_audio(clip)) for clip in clips]  # a missing or broken clip is said first (exit 3)
    manager = ModelManager()
    located = manager.find(model, "onnx")
    if located is None:
        raise manager.not_found(get_spec(model), "onnx")
    embedder = VoiceEmbedder(model_file(located.path, model))
    vectors = []
    for clip, audio in audios:
        v = embedder.embed(audio.tracks[0].samples)
        if v is None:
            raise InputError("too short for a voiceprint (at least 0.3 s of speech)", source=clip,
                             hint="enrol with a few seconds of the agent speaking")
        vectors.append(v)
    mean = np.mean(vectors, axis=0)
    mean /= max(float(np.linalg.norm(mean)), 1e-9)
    folder = voiceprint_folder(manager.home, model)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"{agent_id}.npy", mean.astype(np.float32))
    typer.echo(f"enrolled {agent_id} from {len(clips)} clip(s): {folder / (agent_id + '.npy')}")


@agents_app.command("list")
def list_agents() -> None:
    """Enrolled agents."""
    from callsense.engines.manager import ModelManager
    from callsense.pipeline.diarize import voiceprint_folder

    folder = voiceprint_folder(ModelManager().home)
    for path in sorted(folder.glob("*.npy")) if folder.is_dir() else ():
        typer.echo(path.stem)


def register(app: typer.Typer) -> None:
    app.add_typer(agents_app, name="agents")


__all__ = ["register"]
