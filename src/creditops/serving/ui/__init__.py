"""The dashboard under ``/ui``: server-rendered pages (Jinja2) with htmx fragments and Plotly
charts, every asset served from this package, over the same library functions as the CLI and
the API. Each page is a module of :mod:`creditops.serving.ui.pages`: a few thin routes that
parse, call and render.
"""

from creditops.serving.ui.app import DASHBOARD, STATIC, add_ui

__all__ = ["DASHBOARD", "STATIC", "add_ui"]
