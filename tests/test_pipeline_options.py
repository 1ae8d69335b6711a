"""The option types check themselves: every adapter gets the same UsageError from one place."""

from __future__ import annotations

import pytest

from callsense.audio.types import AudioOptions
from callsense.engines.base import AsrOptions, EmotionOptions
from callsense.errors import UsageError
from callsense.pipeline import AnalyzeOptions
from callsense.service.core import AnalyzeRequest


@pytest.mark.parametrize("build,needle", [
    (lambda: AsrOptions(language="zn"), "unknown language 'zn'"),
    (lambda: EmotionOptions(granularity="word"), "granularity must be utterance or frame, not 'word'"),  # type: ignore[arg-type]
    (lambda: EmotionOptions(masked=("furious",)), "unknown emotion furious"),
    (lambda: EmotionOptions(window_ms=0), "must be > 0 ms"),
    (lambda: AudioOptions(channel_map=("agent", "caller")), "bad channel map 'agent,caller'"),  # type: ignore[arg-type]
    (lambda: AudioOptions(channel_map=()), "empty role"),
    (lambda: AudioOptions(max_duration_s=0), "duration limit must be > 0"),
    (lambda: AudioOptions(max_file_mb=-1), "size limit must be > 0"),
    (lambda: AnalyzeRequest(language="xx").validate(), "unknown language 'xx'"),
    (lambda: AnalyzeRequest(channels=("left",)).validate(), "bad channel map 'left'"),
])
def test_bad_options_raise_one_usage_error(build, needle):
    with pytest.raises(UsageError) as e:
        build()
    assert needle in str(e.value) and e.value.exit_code == 2


def test_good_options_are_normalised_once():
    audio = AudioOptions(channel_map=(" Customer", "AGENT"))  # type: ignore[arg-type]
    assert audio.channel_map == ("customer", "agent")
    options = AnalyzeOptions(audio=audio, asr=AsrOptions(language="yue"))
    assert options.replace(num_threads=1).audio.channel_map == ("customer", "agent")
    assert AnalyzeRequest(language="en", channels=("agent", "customer"), granularity="utterance").validate()


def test_the_processing_log_never_records_a_webhook_key():
    from callsense.pipeline.options import AnalyzeOptions

    opts = AnalyzeOptions(webhooks=("wecom:https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=SECRET-1",
                                    "http://user:pw@127.0.0.1:8080/hook?token=SECRET-2"))
    logged = opts.to_log()["webhooks"]
    assert logged == ["wecom:https://qyapi.weixin.qq.com/cgi-bin/webhook/send", "http://127.0.0.1:8080/hook"]
    assert "SECRET" not in str(opts.to_log())
