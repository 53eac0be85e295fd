"""One build as one call: `run_build(BuildRequest(...))` is `atlas build`.

    request   what is asked, and what it means once a preset fills the gaps
    datasets  the features that read photos, one registry line each
    run       the build in order: runtime, model, plan, render, dataset passes, steps, site
    report    where messages and progress go
"""

from .report import PrintReporter, Reporter
from .request import BuildRequest
from .run import BuildResult, publish, run_build

__all__ = ["BuildRequest", "BuildResult", "PrintReporter", "Reporter", "publish", "run_build"]
