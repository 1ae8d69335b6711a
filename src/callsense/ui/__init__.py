"""The web UI (Gradio), mounted at ``/`` of the API application."""


def mount_ui(app, service):
    from callsense.ui.app import mount_ui as _mount

    return _mount(app, service)


__all__ = ["mount_ui"]
