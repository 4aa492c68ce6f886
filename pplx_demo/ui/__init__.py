"""The Gradio studio: `build_app(settings)` returns the Blocks; `launch_options()` its theme and CSS."""

from pplx_demo.ui.app import build_app, launch_options

__all__ = ["build_app", "launch_options"]
