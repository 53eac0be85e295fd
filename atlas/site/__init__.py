"""The static website: cache entries in, a folder of plain HTML, CSS and images out.

One module per job:

    views       the records templates read (model, layer, unit, render, examples)
    read        cache entries and stored examples -> those records
    figures     numbers a record shows: curve plot, ratios, common settings
    pages       page data from the records: reference tables, class index
    publish     the cache's PNGs -> web images (formats chosen by measurement)
    folder      claiming the output folder, writing pages, removing stale files
    templates   the Jinja environment and its filters
    size        what the written site weighs, against a publishing budget
    write       `write_site`: all of the above, in order
    server      `serve`: a local preview
"""

from .folder import MARKER
from .figures import common_settings, compare_to_examples, curve_plot, format_ratio
from .pages import class_index, results_tables
from .publish import FULL, THUMB, ImageFormat, publish_images
from .read import model_views
from .server import make_server, serve
from .size import DEFAULT_BUDGET, SiteSize, measure
from .templates import template_dir, template_env
from .renders import ExampleSet, ExampleView, Render
from .views import LayerView, ModelView, UnitView
from .write import write_site
from ..core.text import format_duration, safe_name

__all__ = [
    "DEFAULT_BUDGET", "ExampleSet", "ExampleView", "FULL", "ImageFormat", "LayerView", "MARKER", "ModelView",
    "Render", "SiteSize", "THUMB", "UnitView", "model_views", "class_index", "common_settings",
    "compare_to_examples", "curve_plot", "format_duration", "format_ratio", "make_server", "measure",
    "publish_images", "results_tables", "safe_name", "serve", "template_dir", "template_env", "write_site",
]
