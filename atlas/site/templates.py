"""The Jinja environment: where templates live, and the filters and constants they use."""

from __future__ import annotations

import functools
from pathlib import Path

import jinja2

from ..core.text import format_bytes, format_duration
from .dissection import bar_width, iou_text
from .publish import THUMB


def template_dir() -> Path:
    """The templates folder: the installed `atlas.templates` package, or, when running
    from a source checkout that is not installed, the repository's templates/."""
    try:
        from importlib.resources import files
        return Path(str(files("atlas.templates")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "templates"


@functools.cache
def template_env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        autoescape=True,                  # names come from model files and users
        undefined=jinja2.StrictUndefined,  # a template typo fails the build, not the page
        trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["duration"] = format_duration
    env.filters["bytes"] = format_bytes
    env.filters["num"] = format_number
    env.filters["iou"] = iou_text
    env.globals["bar_width"] = bar_width
    # The thumbnails' pixel size, for <img width height>: the page reserves the
    # tile's space before the image arrives, so nothing jumps as thumbnails load.
    env.globals["thumb_px"] = THUMB.side
    return env


def format_number(value) -> str:
    return "–" if value is None else f"{value:.4g}"
