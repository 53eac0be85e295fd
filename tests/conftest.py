import pytest
import torch

from atlas.model.loading import load_model
from atlas.model.runtime import resolve_runtime

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny():
    """TinyVGG with fixed random weights, loaded the way the CLI loads it."""
    return load_model("tests.tinynet:tiny_vgg", "random")


@pytest.fixture
def cpu():
    """The runtime of a CPU build in fp32, as the pipeline resolves it."""
    return resolve_runtime("cpu", "fp32")
