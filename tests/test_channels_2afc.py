"""The scoring of bench/channels_2afc.py (issue 28), on synthetic rankings and embeddings:
no model weights, no photos. Each test could fail: a reference that sides with the
strong queries must score 1, with the weak ones 0, a random one about 0.5."""

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import channels_2afc as afc  # noqa: E402


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
    scores = [afc.random_score(embedding, afc.split_ranking(rng.normal(size=1000)), 20, 0, f"c{i}")
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
