"""Start the studio: `python app.py` (a Hugging Face Space runs this file too).

The page is served at once; the shared sample corpus is prepared in a background thread started
right after launch (its progress shows in the page, in `/status` and in this log).
"""

from __future__ import annotations

import logging
import os

from pplx_demo.config import Settings
from pplx_demo.ui import build_app, launch_options
from pplx_demo.ui.studio import Studio


def main() -> None:
    logging.basicConfig(level=os.environ.get("PPLX_DEMO_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    # Gradio's queue rebuilds a pandas table of its last 10,000 events after every event, for its monitoring
    # page (gradio/queueing.py, compute_analytics_summary): under load that cost more than a search itself.
    # Recompute it every 500 events over the last 2,000 instead, unless the operator chose otherwise.
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "500")
    os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "2000")
    studio = Studio(settings)
    demo = build_app(settings, studio)
    # Listen on every interface only where that is the point (a Space, a container that asks for it).
    on_space = bool(os.environ.get("SPACE_ID"))
    host = os.environ.get("GRADIO_SERVER_NAME") or ("0.0.0.0" if on_space else "127.0.0.1")
    port = int(os.environ.get("GRADIO_SERVER_PORT") or 7860)
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=True, **launch_options(settings))
    studio.start_background()
    demo.block_thread()


if __name__ == "__main__":
    main()
