"""Torch-free readers and writers of what a build leaves in its cache.

    files      atomic writes, temp names, the one loop that scans a folder of records
    examples   dataset examples per layer (the top images of every channel)
    circuits   expanded weights per layer pair (connections)
    photos     the photos caricatures imitate
    keys       cache keys that carry a store's version

The cache's rendered entries and model cards are `atlas.cache`. The build writes
through these modules and the site reads through them, so `atlas render` of a
finished cache never imports torch.
"""
