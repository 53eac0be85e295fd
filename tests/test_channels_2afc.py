"""The two-photo test (atlas.two_photo, issue 28), on synthetic rankings and embeddings:
no model weights, no photos. Each test could fail: a reference that sides with the
strong queries must score 1, with the weak ones 0, a random one about 0.5; coherence
and the monosemanticity score must match sums written out by hand."""

import itertools

import numpy as np
import pytest
import torch

from atlas.two_photo import protocol as afc
from atlas.two_photo.coherence import coherence, coherence_with, monosemanticity
from atlas.two_photo.consumers import ChannelMeans, JudgeEmbeddings


def _clusters(seed=0, n=200, dim=32, noise=0.3):
    """Photos in two clusters: activation high for cluster A's photos, low for B's."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=dim), rng.normal(size=dim)
    labels = np.arange(n) % 2 == 0
    embedding = np.where(labels[:, None], a, b) + noise * rng.normal(size=(n, dim))
    values = np.where(labels, 5.0, -5.0) + rng.normal(size=n)
    return afc.unit_rows(embedding, embedding.mean(0)), values


def test_the_split_takes_nine_exemplars_ranks_ten_to_twenty_nine_and_the_twenty_weakest_in_pair_order():
    values = np.arange(100, dtype=float)[::-1].copy()      # photo i has activation 99 - i: rank i + 1
    rng = np.random.default_rng(0)
    perm = rng.permutation(100)                             # shuffled ids, so the split must sort
    shuffled = np.empty(100)
    shuffled[perm] = values
    split = afc.split_ranking(shuffled)
    assert list(split.exemplars) == list(perm[:9])
    assert list(split.strong) == list(perm[9:29])           # ranks 10..29
    assert list(split.weak) == list(perm[::-1][:20])        # the weakest first
    # Pair 0 is rank 10 against the weakest photo, pair 19 rank 29 against the 20th weakest.
    assert shuffled[split.strong[0]] == 90 and shuffled[split.weak[0]] == 0
    assert shuffled[split.strong[19]] == 71 and shuffled[split.weak[19]] == 19
    assert not set(split.exemplars) & set(split.strong) and not set(split.strong) & set(split.weak)


def test_equal_activations_keep_the_folders_order_and_too_few_photos_fail():
    split = afc.split_ranking(np.zeros(60))
    assert list(split.exemplars) == list(range(9)) and list(split.strong) == list(range(9, 29))
    assert list(split.weak) == list(range(59, 39, -1))
    with pytest.raises(ValueError):
        afc.split_ranking(np.zeros(48))


def test_a_reference_at_the_strong_queries_mean_scores_one_and_at_the_weak_queries_mean_zero():
    embedding, values = _clusters()
    split = afc.split_ranking(values)
    strong, weak = embedding[split.strong], embedding[split.weak]
    to_strong = afc.unit_rows(strong.mean(0, keepdims=True))
    to_weak = afc.unit_rows(weak.mean(0, keepdims=True))
    assert afc.pair_score(to_strong, strong, weak) == 1.0
    assert afc.pair_score(to_weak, strong, weak) == 0.0
    # The exemplars come from the strong cluster too: they predict every pair.
    assert afc.pair_score(embedding[split.exemplars], strong, weak) == 1.0


def test_a_random_reference_scores_about_half_over_many_pairs():
    rng = np.random.default_rng(1)
    dim, pairs = 64, 4000
    strong, weak = afc.unit_rows(rng.normal(size=(pairs, dim))), afc.unit_rows(rng.normal(size=(pairs, dim)))
    scores = [afc.pair_score(afc.unit_rows(rng.normal(size=(1, dim))), strong, weak) for _ in range(20)]
    assert abs(np.mean(scores) - 0.5) < 0.02


def test_the_random_photo_reference_leaves_out_the_channels_photos_and_is_seeded():
    embedding, values = _clusters(n=120)
    split = afc.split_ranking(values)
    ids = afc.random_photos(split, 120, 500, seed=3, key="layer:1")
    assert not set(ids.tolist()) & set(np.concatenate([split.exemplars, split.strong, split.weak]).tolist())
    assert len(set(ids.tolist())) == 120 - 49                 # uniform over the rest: every one drawn
    assert np.array_equal(ids, afc.random_photos(split, 120, 500, seed=3, key="layer:1"))
    assert not np.array_equal(ids, afc.random_photos(split, 120, 500, seed=4, key="layer:1"))


def test_the_random_photo_reference_is_near_half_when_photos_carry_no_signal():
    rng = np.random.default_rng(2)
    embedding = afc.unit_rows(rng.normal(size=(1000, 48)))
    scores = [afc.random_score(embedding, afc.split_ranking(rng.normal(size=1000)), 20, seed=0, key=f"c{i}")
              for i in range(60)]
    assert abs(np.mean(scores) - 0.5) < 0.05


def test_ties_count_half_and_do_not_depend_on_order():
    same = afc.unit_rows(np.array([[1.0, 0.0]] * 20))
    ref = afc.unit_rows(np.array([[0.0, 1.0]]))
    assert afc.pair_score(ref, same, same) == 0.5              # every pair a tie
    assert list(afc.picks(np.array([0.3, 0.2, 0.5]), np.array([0.3, 0.5, 0.2]))) == [0.5, 0.0, 1.0]
    zero = np.zeros((1, 2))                                     # a blank reference sees no difference
    assert afc.unit_rows(zero).tolist() == [[0.0, 0.0]]
    assert afc.pair_score(afc.unit_rows(zero), afc.unit_rows(np.eye(2)), afc.unit_rows(np.eye(2)[::-1])) == 0.5


def test_a_reference_of_several_images_votes_by_mean_similarity_unless_told_max():
    strong = afc.unit_rows(np.array([[1.0, 0.0, 0.0]]))
    weak = afc.unit_rows(np.array([[0.0, 1.0, 0.0]]))
    # One image right on the strong query, two leaning weak: the mean sides with weak, the max with strong.
    refs = afc.unit_rows(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.1], [0.0, 1.0, -0.1]]))
    assert afc.pair_score(refs, strong, weak) == 0.0
    assert afc.pair_score(refs, strong, weak, rule="max") == 1.0


def test_both_embeddings_together_give_the_mean_of_the_two_cosine_similarities():
    rng = np.random.default_rng(3)
    logits, pooled = rng.normal(size=(5, 10)), rng.normal(size=(5, 7))
    center = {"logits": logits.mean(0), "penultimate": pooled.mean(0)}
    s = afc.spaces(logits, pooled, center)
    assert np.allclose(np.linalg.norm(s["both"], axis=1), 1.0)
    assert np.allclose(s["both"] @ s["both"].T, (s["logits"] @ s["logits"].T + s["penultimate"] @ s["penultimate"].T) / 2)
    assert np.allclose(s["logits"] * np.linalg.norm(logits - center["logits"], axis=1, keepdims=True),
                       logits - center["logits"])


def test_channels_are_picked_evenly_and_deterministically():
    assert afc.pick_channels(24, 8) == afc.pick_channels(24, 8)
    picked = afc.pick_channels(1280, 8)
    assert len(picked) == 8 and picked == sorted(picked) and 0 < picked[0] and picked[-1] < 1279
    assert afc.pick_channels(4, 8) == [0, 1, 2, 3]


def test_scores_per_channel_put_each_reference_where_it_belongs():
    embedding, values = _clusters(n=300)
    splits = [afc.split_ranking(values), afc.split_ranking(-values)]   # the second channel prefers cluster B
    renders = {"penultimate": np.stack([embedding[splits[0].strong[:2]], embedding[splits[1].weak[:2]]])}
    scores = afc.score_channels({"penultimate": embedding}, splits, renders, seed=0, keys=["a", "b"], draws=10)
    rows = scores["penultimate"]
    assert rows["exemplars"] == [1.0, 1.0]
    assert rows["visualization"] == [1.0, 0.0]    # the second channel's picture shows its weak photos
    assert all(0.0 <= r <= 1.0 for r in rows["random"])


def _pairs_by_hand(weights, rows):
    """sum_{i<j} w_i w_j s_ij / sum_{i<j} w_i w_j, written out pair by pair."""
    top = bottom = 0.0
    for i, j in itertools.combinations(range(len(rows)), 2):
        s = rows[i] @ rows[j] / (np.linalg.norm(rows[i]) * np.linalg.norm(rows[j]))
        top += weights[i] * weights[j] * s
        bottom += weights[i] * weights[j]
    return top / bottom


def test_coherence_is_the_mean_cosine_similarity_over_distinct_pairs():
    # Similarities 0 ([1,0]-[0,1]), 1/sqrt(2) twice ([1,1] with each): mean sqrt(2)/3.
    rows = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert coherence(rows) == pytest.approx(np.sqrt(2) / 3)
    assert coherence(rows * np.array([[2.0], [3.0], [0.5]])) == pytest.approx(np.sqrt(2) / 3)  # lengths do not count
    assert coherence(np.array([[1.0, 2.0]] * 5)) == pytest.approx(1.0)
    assert np.isnan(coherence(rows[:1]))
    rng = np.random.default_rng(4)
    x = rng.normal(size=(7, 5))
    assert coherence(x) == pytest.approx(_pairs_by_hand(np.ones(7), x))


def test_coherence_with_is_the_mean_similarity_of_each_reference_to_each_other_row():
    assert coherence_with(np.array([[1.0, 0.0]]), np.array([[1.0, 0.0], [0.0, 1.0]])) == pytest.approx(0.5)
    assert coherence_with(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[3.0, 3.0]])) == pytest.approx(2 ** -0.5)
    rng = np.random.default_rng(5)
    refs, others = rng.normal(size=(3, 6)), rng.normal(size=(4, 6))
    by_hand = np.mean([r @ o / (np.linalg.norm(r) * np.linalg.norm(o)) for r in refs for o in others])
    assert coherence_with(refs, others) == pytest.approx(by_hand)
    assert coherence_with(refs, others) == pytest.approx(coherence_with(others, refs))


def test_the_monosemanticity_score_weights_each_pair_by_both_photos_normalised_activations():
    rng = np.random.default_rng(6)
    rows = rng.normal(size=(6, 4))
    values = np.array([3.0, -1.0, 0.5, 2.0, 7.0, -1.0])
    weights = (values - values.min()) / (values.max() - values.min())    # [0.5, 0, 0.1875, 0.375, 1, 0]
    assert monosemanticity(values, rows) == pytest.approx(_pairs_by_hand(weights, rows))
    # Min-max normalised: an affine change of the activations leaves the score alone.
    assert monosemanticity(4 * values + 9, rows) == pytest.approx(monosemanticity(values, rows))
    # Several units at once: one column each, the same numbers.
    other = rng.normal(size=6)
    both = monosemanticity(np.stack([values, other], 1), rows)
    assert both.shape == (2,) and both == pytest.approx([monosemanticity(values, rows), monosemanticity(other, rows)])


def test_the_monosemanticity_score_on_units_whose_answer_is_known():
    # Only photos 1 and 2 are above the minimum, and they look the same: the score is 1,
    # whatever photo 0 (which weighs nothing) looks like.
    rows = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 1.0]])
    assert monosemanticity(np.array([0.0, 5.0, 5.0]), rows) == pytest.approx(1.0)
    # A unit that fires alike on every photo weights every pair alike: the score is the coherence.
    x = np.random.default_rng(7).normal(size=(9, 3))
    assert monosemanticity(np.full(9, 2.0), x) == pytest.approx(coherence(x))
    # One photo above the minimum leaves no weighted pair.
    assert np.isnan(monosemanticity(np.array([0.0, 0.0, 1.0]), rows))
    with pytest.raises(ValueError):
        monosemanticity(np.zeros(4), rows)


def test_the_monosemanticity_score_of_a_thousand_photos_matches_the_full_similarity_matrix():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(1000, 48))
    a = rng.random((1000, 3)) ** 4
    units = afc.unit_rows(x)
    s = units @ units.T
    np.fill_diagonal(s, 0.0)
    w = (a - a.min(0)) / (a.max(0) - a.min(0))
    full = np.array([(w[:, c] @ s @ w[:, c]) / (w[:, c].sum() ** 2 - (w[:, c] ** 2).sum()) for c in range(3)])
    assert monosemanticity(a, x) == pytest.approx(full, rel=1e-9)


def test_the_consumers_fill_one_row_per_photo_and_leave_unread_photos_out():
    from atlas.data.stream import Batch

    maps = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    batch = Batch(ids=torch.tensor([3, 0]), images=torch.zeros(2, 3, 8, 8),
                  acts={"conv": maps, "fc": maps[:, :, 0, 0]}, model_input=torch.zeros(2, 3, 8, 8))
    means = ChannelMeans(["conv", "fc"], count=5)
    means.update(batch)
    assert np.allclose(means.means["conv"][3], maps[0].mean((1, 2)).numpy())
    assert np.allclose(means.means["conv"][0], maps[1].mean((1, 2)).numpy())
    assert np.allclose(means.means["fc"][[3, 0]], maps[:, :, 0, 0].numpy())
    assert np.isnan(means.means["conv"][[1, 2, 4]]).all()

    seen = []
    judge = JudgeEmbeddings(lambda images: (seen.append(images.shape) or (np.ones((2, 4)), np.zeros((2, 6)))), 5)
    assert judge.layers == frozenset() and not judge.read().any()
    judge.update(batch)
    assert seen == [(2, 3, 8, 8)] and judge.logits.shape == (5, 4) and judge.penultimate.shape == (5, 6)
    assert judge.read().tolist() == [True, False, False, True, False]


def test_a_unit_whose_photos_all_score_alike_is_dead_and_left_out():
    from atlas.two_photo.protocol import live_units

    values = np.array([[0.0, 1.0, 2e-7, np.nan], [0.0, 3.0, 0.0, 1.0], [0.0, 2.0, 1e-7, 5.0]])
    assert list(live_units(values)) == [False, True, False, True]


def test_picture_sets_join_disjoint_seeds_of_one_recipe_as_one_runs_pictures(tmp_path):
    """bench/channels_2afc.py --sets N: seeds 0-3 as two sets of two, each channel's
    pictures side by side in seed order (what --pictures N shows a reader)."""
    import importlib.util
    import json
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("channels_2afc", root / "bench/channels_2afc.py")
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench                       # its dataclasses look their module up
    spec.loader.exec_module(bench)
    for seed in range(4):
        images = np.full((3, 1, 2, 2, 3), seed, np.uint8)                 # 3 channels, one picture each
        np.savez(tmp_path / f"closeup-s{seed}.npz", images=images, finals=np.full(3, float(seed)),
                 meta=json.dumps({"name": "closeup", "seed": seed, "seconds": 1.5}))
    sets = bench.picture_sets(tmp_path, 2)["closeup"]
    assert [group for *_, group in sets] == [[0, 1], [2, 3]]
    images, finals, seconds, _ = sets[1]
    assert images.shape == (3, 2, 2, 2, 3) and images[:, 0].max() == 2 and images[:, 1].min() == 3
    assert finals == [2.5] * 3 and seconds == 3.0
    assert len(bench.picture_sets(tmp_path, 4)["closeup"]) == 1 and not bench.picture_sets(tmp_path, 5)["closeup"]
