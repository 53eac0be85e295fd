"""Concept datasets: images whose pixels (or whole frames) carry human labels.

Three readers, one interface (an `atlas.dataset.Source` that also has `concepts`,
`mask_size` and `kind`): every item is the model's view of an image plus, at the mask resolution,
one map of concept indices per labelled pixel category and the concepts that
cover the whole image.

    broden   Broden's own on-disk format (index.csv, label.csv, category.csv, masks)
    folder   a plain folder of your own: images/, masks/ and labels.json
    colors   the eleven colour names of every pixel of any image folder (no labels needed)
    labels   the vocabulary (`Concepts`) and label maps they share

`open_concepts(folder, model)` picks the reader by what the folder holds.
"""

from __future__ import annotations

from pathlib import Path

from ...core.errors import AtlasError


def open_concepts(folder: Path, model, mask_size: int | None = None, option: str = "--dissect"):
    """The concept source a folder holds: Broden (index.csv), a labelled folder
    (labels.json), or else any folder of photos, dissected by colour."""
    from ..sources import view_side
    from . import broden, colors, folder as labelled

    root = Path(folder)
    if not root.is_dir():
        raise AtlasError(f"{option} {root} is not a folder")
    size = view_side(model)[0]
    mask_size = mask_size or max(1, size // 2)
    if (root / "index.csv").exists() or (root / "label.csv").exists():
        return broden.Broden.open(root, size, mask_size, option)
    if (root / "labels.json").exists():
        return labelled.LabelledFolder.open(root, model, mask_size, option)
    return colors.ColorConcepts.open(root, model, mask_size, option)
