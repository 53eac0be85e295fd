import pytest
import torch

from atlas.model.loading import load_model

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny():
    """TinyVGG with fixed random weights, loaded the way the CLI loads it."""
    return load_model("tests.tinynet:tiny_vgg", "random")


@pytest.fixture
def cpu():
    return torch.device("cpu")
