"""Dictionary features: a sparse autoencoder per layer, learned from a photo folder, and every
feature shown as a unit beside the layer's channels.

    sae       the dictionary itself (TopK, BatchTopK, archetypal)
    train     training it, resumable epoch by epoch
    metrics   R², L0, dead share and stability (Hungarian-matched atoms of two seeds)
    collect   the activation vectors a dataset pass samples, and the held-out split
    learn     one layer: split, train each seed, measure
    features  the features as units: top photos, pictures, strongest channels
    job       the build's feature on the dataset pass (`atlas.data.passes`)
"""
