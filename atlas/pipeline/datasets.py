"""The features that read photos: one registry line each.

Each entry names a field of `BuildRequest` holding the feature's own request (None:
not asked) and the function that turns it into a job of the dataset side's protocol
(`atlas.data.passes`). The jobs are made when the build starts, after the model is
loaded and before any unit renders: every folder is opened and every option checked
then, so bad input costs the user no time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..activation_atlas import job as activation_atlas
from ..data.passes import DatasetContext, DatasetJob
from ..dictionary import job as dictionary
from ..dissection import job as dissection
from ..dissection.features import feature_dissection
from ..examples import job as examples
from .request import BuildRequest


@dataclass(frozen=True)
class DatasetFeature:
    field: str                                               # the BuildRequest field holding its request
    job: Callable[[DatasetContext, object], DatasetJob]


FEATURES: tuple[DatasetFeature, ...] = (
    DatasetFeature("examples", examples.job_for_build),
    DatasetFeature("dissection", dissection.job_for_build),
    # Before the activation atlas: its cells are named by the features of a layer's
    # dictionary, which the dictionary job stores when it finishes.
    DatasetFeature("dictionary", dictionary.job_for_build),
    DatasetFeature("activation_atlas", activation_atlas.job_for_build),
)


def dataset_jobs(context: DatasetContext, request: BuildRequest) -> list[DatasetJob]:
    """A job for every feature the request asks for, each made (and its input checked) now;
    with both a dissection and dictionary features, the features are dissected too."""
    jobs = {feature.field: feature.job(context, getattr(request, feature.field)) for feature in FEATURES
            if getattr(request, feature.field) is not None}
    if "dissection" in jobs and "dictionary" in jobs and context.lead:
        jobs["feature dissection"] = feature_dissection(jobs["dissection"], jobs["dictionary"].dictionaries)
    return list(jobs.values())
