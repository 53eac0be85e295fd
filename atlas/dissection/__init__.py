"""Network dissection (Bau, Zhou, Khosla, Oliva and Torralba, CVPR 2017): a human concept
for every unit, measured on labelled pixels.

    sketch   per-unit quantiles of activations in fixed memory (the threshold T)
    counts   the dataset-pass consumers: quantile sketches, then IoU counts under T
    job      one model's layers against one concept dataset, pass by pass, shard by shard

Concept datasets are `atlas.concepts`; results are stored by `atlas.store.dissection`.
"""
