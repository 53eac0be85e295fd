"""The activation atlas (Carter, Armstrong, Schubert, Johnson and Olah, Distill 2019): a map of
what a whole layer sees, from a folder of photos.

    sampling   activation vectors and their attributions at seeded positions of real photos
    grid       layout (UMAP or PCA), grids of cells, cell means and icon directions
    job        sample -> lay out -> bin -> render icons -> store, one atlas per layer (and class)

Icons are units of the "icon" kind (`atlas.kinds`), rendered and cached like every
unit; atlases are stored by `atlas.store.activation_atlas`; the site draws them
(`atlas.site.atlas`).
"""
