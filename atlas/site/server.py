"""The preview server: the site folder over HTTP on localhost (`atlas serve`)."""

from __future__ import annotations

import functools
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ..core.errors import AtlasError


class _Handler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".webp": "image/webp", ".avif": "image/avif"}


class _QuietHandler(_Handler):
    def log_message(self, *args) -> None:
        pass


def make_server(site_dir: Path, host: str = "127.0.0.1", port: int = 8000,
                quiet: bool = False) -> ThreadingHTTPServer:
    """An HTTP server for the site folder (port 0 picks a free port); not yet serving."""
    handler = functools.partial(_QuietHandler if quiet else _Handler, directory=str(site_dir))
    try:
        return ThreadingHTTPServer((host, port), handler)
    except OSError as err:
        raise AtlasError(f"cannot serve on {host}:{port}: {err.strerror or err}") from err


def serve(site_dir: Path, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Preview the site at http://host:port/ until interrupted."""
    site_dir = Path(site_dir)
    if not (site_dir / "index.html").is_file():
        raise AtlasError(f"no site in {site_dir}; build one first (atlas build MODEL)")
    with make_server(site_dir, host, port) as server:
        print(f"Serving {site_dir} at http://{host}:{server.server_address[1]}/ (Ctrl-C stops)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
