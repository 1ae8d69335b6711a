"""The application service shared by the REST API, the web UI and ``callsense serve``.

    from callsense.service import Service, ServiceSettings, AnalyzeRequest
    service = Service(ServiceSettings(data_dir=Path("srv"))).start()
    upload = service.save_path("call.wav")
    outcome = service.analyze(upload, AnalyzeRequest(language="zh"), {"agent_id": "a17"})
"""

from callsense.service.core import AnalyzeOutcome, AnalyzeRequest, Service, Upload, safe_filename
from callsense.service.settings import ServiceSettings, is_loopback

__all__ = ["AnalyzeOutcome", "AnalyzeRequest", "Service", "ServiceSettings", "Upload", "is_loopback",
           "safe_filename"]
