"""Do a unit's pictures predict real photos? Two-photo tests with a judge model as the person.

The automated two-alternative forced choice (2AFC) of Borowski et al. (ICLR 2021) and
Zimmermann et al. (NeurIPS 2021): a reference (a unit's rendered picture, its top
photos, a random photo) is shown with two query photos, one that excites the unit
strongly and one that barely does, and "picks" the query a judge model's embedding
puts closer to it. A picture that shows what the unit responds to picks the strong
query more often than chance.

    protocol    the pure test over rankings and embeddings: which photos are
                exemplars and queries, how a reference picks, how picks become scores
    coherence   how alike a set of photos is to a judge: mean pairwise similarity, and
                the activation-weighted monosemanticity score of Pach et al. (2025)
    consumers   what a dataset pass (`atlas.data.stream`) collects for the test: every
                photo's channel means, and its embeddings from a judge the caller supplies

The judge itself is not part of atlas: the consumers take an `embed` callable, so a
benchmark (`bench/channels_2afc.py`) brings whichever model it trusts.
"""
