"""A vision transformer through the whole pipeline: `atlas build` of a small ViT
(torchvision's VisionTransformer class, random weights) writes a site whose model
page lists its blocks as layers, each with its own layer and unit pages."""

import re

from click.testing import CliRunner

from atlas.cli import main

BLOCK_LAYERS = ["encoder.layers.encoder_layer_0.mlp.1", "encoder.layers.encoder_layer_0",
                "encoder.layers.encoder_layer_1.mlp.1", "encoder.layers.encoder_layer_1"]


def test_vit_site_has_its_blocks_as_layers(tmp_path):
    site = tmp_path / "site"
    # 24 px pictures: the model sees them resampled to the exactly-32 px it takes.
    result = CliRunner().invoke(main, ["build", "tests.tinytransformers:tiny_vit", "--weights", "random",
                                       "--channels", "2", "--classes", "0-1", "--size", "24", "--steps", "3",
                                       "--precision", "fp32", "--cache-dir", str(tmp_path / "cache"),
                                       "--out", str(site)])
    assert result.exit_code == 0, result.output
    (model_dir,) = (site / "models").iterdir()
    page = (model_dir / "index.html").read_text()
    listed = re.findall(r'href="layers/([^/"]+)/index.html"', page)
    for layer in BLOCK_LAYERS:
        assert layer in listed, (layer, listed)
        layer_page = (model_dir / "layers" / layer / "index.html").read_text()
        units = sorted(set(re.findall(r'href="(\d+)\.html"', layer_page)))
        assert units == ["0", "1"], (layer, units)
        unit_page = (model_dir / "layers" / layer / "0.html").read_text()
        assert layer in unit_page and re.search(r'src="[^"]+\.webp"', unit_page)
        # Expanded weights need a linear path between conv maps: token layers say why they have none.
        assert "No connections: connections are computed for convnets only" in unit_page
    # The patch embedding is a layer of the model but no default: nothing rendered there.
    assert not (model_dir / "layers" / "conv_proj").exists()
    assert (model_dir / "layers" / "heads.head" / "1.html").exists()
