"""pplx-embed search studio."""

__version__ = "0.1.0"  # recorded in exports (pplx_demo.export); bump with releases
