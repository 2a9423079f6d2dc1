"""verify: thumbnails, the DCT descriptor's invariances, nearest-neighbour candidates, and the
fitted model's decisions on real photos with edits it must accept and pairs it must refuse."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from dcgan_data.core.images import center_crop_resize
from dcgan_data.dedup import alignment, logistic, neighbours, overlay, thumbnails, tone, views
from dcgan_data.dedup.features import (
    FEATURES,
    MARGIN,
    OVERLAY_SHARE,
    SHIFT,
    _unoccluded_correlation,
    local_order,
    pair_features,
    pair_looks,
    shift_correlation,
)
from dcgan_data.dedup.options import DedupOptions
from dcgan_data.dedup.verify import Verifier
from dcgan_data.testing.neardup import TRANSFORMS, Crop, cut, stepped_crops
from dcgan_data.testing.photos import PHOTOS, load_photo


@pytest.fixture(scope="module")
def photo():
    return load_photo(PHOTOS[3])


def crop_at(photo: np.ndarray, y: int, x: int, side: int = 200) -> np.ndarray:
    return cut(photo, Crop(0, y, x, side), 256)


def small(rgb: np.ndarray) -> np.ndarray:
    return center_crop_resize(rgb, 64)


def scores(pairs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    rows = np.stack([small(p) for pair in pairs for p in pair])
    grey, colour = thumbnails.thumbnails(rows)
    model = logistic.VerifyModel.load()
    index = np.arange(0, len(rows), 2)
    features = pair_features(grey, colour, index, index + 1)
    return model.log_odds(features) - model.threshold


def test_thumbnails_shapes_and_levels():
    rows = np.zeros((3, 64, 64, 3), np.uint8)
    rows[1] = 200
    grey, colour = thumbnails.thumbnails(rows)
    assert grey.shape == (3, 32, 32) and colour.shape == (3, 8, 8, 3)
    assert grey[1].min() == 200 and colour[1].max() == 200 and grey[0].max() == 0


def test_descriptor_ignores_brightness_and_contrast(photo):
    base = small(crop_at(photo, 40, 60))
    edited = np.clip((base.astype(np.float32) - 100) * 1.4 + 120, 0, 255).astype(np.uint8)
    other = small(crop_at(photo, 300, 300))
    grey, _ = thumbnails.thumbnails(np.stack([base, edited, other]))
    d = views.descriptors(grey)
    assert np.allclose(np.linalg.norm(d, axis=1), 1, atol=1e-4)
    assert d[0] @ d[1] > 0.97 and d[0] @ d[2] < d[0] @ d[1] - 0.2


def test_neighbour_pairs_find_a_trimmed_copy_from_either_side(photo):
    rng = np.random.default_rng(0)
    originals = [crop_at(photo, y, x) for y, x in ((0, 0), (0, 250), (250, 0), (250, 250),
                                                   (120, 400), (400, 120))]
    trimmed = TRANSFORMS["border_crop"](originals[2], rng)
    rows = np.stack([small(x) for x in [*originals, trimmed]])
    grey, _ = thumbnails.thumbnails(rows)
    a, b = neighbours.neighbour_pairs(grey, k=1, min_cosine=0.5)
    assert (2, 6) in set(zip(a.tolist(), b.tolist(), strict=True))
    assert (a < b).all()


def black_cornered_perspective(rgb: np.ndarray, move: int) -> np.ndarray:
    """A perspective warp that leaves the corners it exposes black, as most tools do."""
    side = rgb.shape[0]
    corners = np.float32([[0, 0], [side, 0], [side, side], [0, side]])
    moved = corners + np.float32([[move, 0], [-move, move // 2], [0, 0], [move // 2, -move]])
    return cv2.warpPerspective(rgb, cv2.getPerspectiveTransform(corners, moved), (side, side),
                               borderMode=cv2.BORDER_CONSTANT)


def assert_found_by_no_whole_view_but_proposed(grey: np.ndarray, i: int, j: int) -> None:
    """No whole view of row i or j (as is, zoomed) meets the other's, yet dedup's neighbour
    search proposes the pair (through another of its searches)."""
    plain = views.descriptors(grey)
    for zoom in (1.0, *views.ZOOMS):
        zoomed = views.descriptors(grey, zoom)
        assert max(zoomed[i] @ plain[j], zoomed[j] @ plain[i]) < DedupOptions().min_cosine
    a, b = neighbours.neighbour_pairs(grey, k=2, min_cosine=DedupOptions().min_cosine)
    assert (i, j) in set(zip(a.tolist(), b.tolist(), strict=True))


def test_a_black_cornered_warp_is_found_by_its_centre_and_accepted():
    wood = load_photo(next(p for p in PHOTOS if p.stem == "mate_wood"))
    originals = [crop_at(wood, y, x) for y, x in ((0, 0), (0, 250), (250, 0), (250, 250),
                                                  (100, 150))]
    warped = black_cornered_perspective(originals[4], 10)
    rows = np.stack([small(x) for x in [*originals, warped]])
    grey, _ = thumbnails.thumbnails(rows)
    # the black corners count in every whole view; the centres meet
    assert_found_by_no_whole_view_but_proposed(grey, 4, 5)
    assert scores([(originals[4], warped)])[0] > 0


def test_a_sticker_on_a_sky_is_found_by_clipped_views_and_accepted_with_it_filled_in():
    rocket = load_photo(next(p for p in PHOTOS if p.stem == "skimage_rocket"))
    sky = crop_at(rocket, 120, 0)
    stickered = TRANSFORMS["sticker"](sky, np.random.default_rng(0))
    others = [crop_at(rocket, y, x) for y, x in ((0, 0), (0, 420), (180, 360), (120, 60))]
    rows = np.stack([small(x) for x in [sky, stickered, *others]])
    grey, colour = thumbnails.thumbnails(rows)
    # the bright sticker outweighs a dim sky in every whole view, not once levels are clipped
    assert_found_by_no_whole_view_but_proposed(grey, 0, 1)
    assert scores([(sky, stickered)])[0] < -1  # the images as they are: turned down
    verifier = Verifier(grey, colour, None, False, "cpu")
    first, second = np.r_[0, 1, [0] * 4, [1] * 4], np.r_[1, 0, [2, 3, 4, 5] * 2]
    looked = verifier(first, second)
    assert (looked[:2] >= verifier.threshold).all()  # the sticker filled in: accepted
    assert (looked[2:] < verifier.threshold).all()  # other crops of the sky: still refused
    assert 2 <= verifier.unoverlaid < len(first)  # the far-off pairs are not looked at again


def test_the_overlay_look_fills_one_square_where_the_images_differ(photo):
    base = small(crop_at(photo, 100, 150))
    marked = base.copy()
    marked[40:50, 8:18] = (255, 255, 0)  # a 10 px square at 64 px: 5 px in the thumbnail
    grey, colour = thumbnails.thumbnails(np.stack([base, marked]))
    one, two = np.array([0]), np.array([1])
    filled_grey, filled_colour = overlay.without_overlay(grey, colour, one, two, "cpu")
    changed = np.abs(filled_grey.astype(int) - grey.astype(int)) > 0
    rows, columns = np.nonzero(changed.any(axis=0))  # within one square holding the mark
    height, width = max(overlay.OVERLAY_SHAPES)
    assert rows.min() <= 20 and 24 <= rows.max() < rows.min() + height
    assert columns.min() <= 4 and 8 <= columns.max() < columns.min() + width
    # filled, the two thumbnails agree where the mark was, and nowhere else was touched
    assert np.abs(filled_grey[0].astype(int) - filled_grey[1].astype(int)).max() < 20
    assert np.abs(grey[0].astype(int) - grey[1].astype(int)).max() > 100
    assert (filled_grey[:, ~changed.any(axis=0)] == grey[:, ~changed.any(axis=0)]).all()
    features = overlay.unoverlaid_pair_features(grey, colour, one, two)
    plain = pair_features(grey, colour, one, two)
    index = FEATURES.index("correlation")
    assert features[0, index] > 0.99 > plain[0, index]


def test_the_overlay_look_fills_only_a_compact_difference(photo):
    base = small(crop_at(photo, 100, 150))
    marked = base.copy()
    marked[40:50, 8:18] = (255, 255, 0)
    others = [small(crop_at(photo, y, x)) for y, x in ((110, 160), (0, 0))]
    grey, colour = thumbnails.thumbnails(np.stack([base, marked, *others]))
    one, two = np.array([0, 0, 0]), np.array([1, 2, 3])
    shares = overlay.overlay_shares(grey, one, two)
    assert shares[0] > 0.9 and (shares[1:] < overlay.OVERLAY_MIN_SHARE).all()
    features = overlay.unoverlaid_pair_features(grey, colour, one, two)
    assert np.isfinite(features[0]).all() and np.isnan(features[1:]).all()
    assert overlay.overlay_shares(grey, one[:1], one[:1])[0] == 0  # no difference at all


def test_the_overlay_look_fills_a_strip_where_a_caption_was_drawn(photo):
    base = small(crop_at(photo, 100, 150))
    captioned = base.copy()
    captioned[30:38, 10:40:3] = 255  # a line of thin bright strokes, 30 px long at 64 px
    grey, colour = thumbnails.thumbnails(np.stack([base, captioned]))
    filled_grey, _ = overlay.without_overlay(grey, colour, np.array([0]), np.array([1]), "cpu")
    rows, columns = np.nonzero((filled_grey != grey).any(axis=0))
    assert columns.min() <= 5 and columns.max() >= 19  # the whole line, wider than a square
    assert rows.max() - rows.min() < min(overlay.OVERLAY_SHAPES)[0]
    assert np.abs(filled_grey[0].astype(int) - filled_grey[1].astype(int)).max() < 30


def random_crop_thumbnails(photo: np.ndarray, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    out = np.empty((count, thumbnails.GREY, thumbnails.GREY), np.uint8)
    for i in range(count):
        side = int(rng.integers(48, 200))
        y, x = (int(rng.integers(0, d - side)) for d in grey.shape)
        out[i] = cv2.resize(grey[y : y + side, x : x + side], (thumbnails.GREY, thumbnails.GREY),
                            interpolation=cv2.INTER_AREA)
    return out


def test_inverted_lists_visiting_every_list_is_the_exact_search(photo, monkeypatch):
    # every list visited: the list-by-list search must return exactly what the exact one does
    monkeypatch.setattr(neighbours, "LIST_ROWS", 60)
    monkeypatch.setattr(neighbours, "QUERY_BLOCK", 64)
    monkeypatch.setattr(neighbours, "QUERY_CHUNK", 700)
    base = views.descriptors(random_crop_thumbnails(photo, 1500, 0))
    zoomed = views.descriptors(random_crop_thumbnails(photo, 1500, 0), views.ZOOMS[0])
    lists = neighbours.InvertedLists(base)
    assert lists.centroids.ntotal == 25
    monkeypatch.setattr(neighbours, "LISTS_VISITED", 25)
    exact = neighbours.ExactSearch(base)
    for query in (base, zoomed):
        expected = set(zip(*(x.tolist() for x in exact.nearest(query, 5, 0.6)), strict=True))
        found = set(zip(*(x.tolist() for x in lists.nearest(query, 5, 0.6)), strict=True))
        assert len(expected) > 3000 and found == expected


def test_inverted_lists_find_most_of_the_nearest_visiting_few(photo, monkeypatch):
    monkeypatch.setattr(neighbours, "LIST_ROWS", 60)
    base = views.descriptors(random_crop_thumbnails(photo, 3000, 1))
    monkeypatch.setattr(neighbours, "LISTS_VISITED", 8)
    found = set(zip(*(x.tolist() for x in neighbours.InvertedLists(base).nearest(base, 5, 0.9)),
                    strict=True))
    expected = set(zip(*(x.tolist() for x in neighbours.ExactSearch(base).nearest(base, 5, 0.9)),
                       strict=True))
    assert len(found & expected) >= 0.95 * len(expected) > 400


def test_neighbour_pairs_above_the_exact_search_size(photo, monkeypatch):
    monkeypatch.setattr(neighbours, "EXACT_SEARCH_ROWS", 10)
    monkeypatch.setattr(neighbours, "LIST_ROWS", 4)
    test_neighbour_pairs_find_a_trimmed_copy_from_either_side(photo)


@pytest.mark.parametrize("edit", ["grayscale", "contrast", "saturation", "brightness",
                                  "border_crop", "rotate", "jpeg_low", "noise", "text"])
def test_model_accepts_edited_copies(photo, edit):
    rng = np.random.default_rng(1)
    base = crop_at(photo, 100, 150)
    assert scores([(base, TRANSFORMS[edit](base, rng))])[0] > 0


def test_model_refuses_other_crops_and_flat_images(photo):
    base = crop_at(photo, 100, 150)
    half_over = crop_at(photo, 100, 250)  # overlaps the first by a third
    far = crop_at(photo, 400, 500)
    flat_a = np.full((256, 256, 3), (30, 90, 200), np.uint8)
    flat_b = np.full((256, 256, 3), (200, 60, 30), np.uint8)
    assert (scores([(base, half_over), (base, far), (flat_a, flat_b)]) < 0).all()


def feature(name: str, pairs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    rows = np.stack([small(p) for pair in pairs for p in pair])
    grey, colour = thumbnails.thumbnails(rows)
    index = np.arange(0, len(rows), 2)
    return pair_features(grey, colour, index, index + 1)[:, FEATURES.index(name)]


def test_detail_correlation_tells_a_copy_from_a_same_layout_lookalike(photo):
    base = crop_at(photo, 100, 150)
    # the same coarse layout, other detail: each 32 px block's mean kept, its texture
    # replaced by another part of the photo's texture
    other = crop_at(photo, 400, 500).astype(np.float32)

    def block_means(x: np.ndarray) -> np.ndarray:
        means = cv2.resize(x, (8, 8), interpolation=cv2.INTER_AREA)
        return cv2.resize(means, (256, 256), interpolation=cv2.INTER_NEAREST)

    lookalike = np.clip(block_means(base.astype(np.float32)) + other - block_means(other),
                        0, 255).astype(np.uint8)
    copy = TRANSFORMS["jpeg_low"](base, np.random.default_rng(0))
    detail = feature("detail_correlation", [(base, copy), (base, lookalike)])
    assert detail[0] > 0.8 and detail[1] < detail[0] - 0.3
    assert scores([(base, lookalike)])[0] < 0


def test_chroma_cosine_survives_saturation_and_says_little_of_grey_copies(photo):
    base = crop_at(photo, 100, 150)
    rng = np.random.default_rng(0)
    swapped = np.ascontiguousarray(base[..., ::-1])  # same layout and greys, other colours
    pairs = [(base, TRANSFORMS["saturation"](base, rng)), (base, swapped),
             (base, TRANSFORMS["grayscale"](base, rng))]
    cosine, low = feature("chroma_cosine", pairs), feature("chroma_low", pairs)
    assert cosine[0] > 0.9 and cosine[1] < cosine[0] - 0.3
    assert low[2] < 0.5 * low[0]  # a grey copy: the cosine is to be discounted


def test_mirror_views_only_when_asked(photo):
    base = small(crop_at(photo, 100, 150))
    mirrored = np.ascontiguousarray(base[:, ::-1])
    grey, colour = thumbnails.thumbnails(np.stack([base, mirrored]))
    model = logistic.VerifyModel.load()
    a, b = np.array([0]), np.array([1])
    plain = model.log_odds(pair_features(grey, colour, a, b))[0]
    with_mirrors = model.log_odds(pair_features(grey, colour, a, b, mirrors=True))[0]
    assert plain < model.threshold < with_mirrors


@pytest.mark.parametrize("zoom, mirror", [(1.12, False), (1.25, False), (1.0, True), (1.12, True)])
def test_separable_views_equal_the_resampler(photo, zoom, mirror):
    grey, colour = thumbnails.thumbnails(np.stack([small(photo), small(photo[::-1].copy())]))
    for images in (torch.from_numpy(grey).float()[:, None],
                   torch.from_numpy(colour).float().permute(0, 3, 1, 2)):
        expected = views.resampled(images.flip(-1) if mirror else images, zoom, 0.0)
        assert torch.allclose(views.view(images, zoom, mirror=mirror), expected, atol=1e-3)


def test_shift_correlation_finds_a_one_pixel_shift(photo):
    grey, _ = thumbnails.thumbnails(small(photo)[None])
    image = torch.from_numpy(grey).float()[:, None]
    moved = torch.roll(image, shifts=(1, -1), dims=(2, 3))
    a, _ = views.standardised(image)
    b, _ = views.standardised(moved)
    assert shift_correlation(a, b).item() > 0.99
    other, _ = views.standardised(image.transpose(2, 3))
    assert shift_correlation(a, other).item() < 0.9


def test_shift_correlation_is_the_best_pearson_correlation_over_shifts():
    rng = np.random.default_rng(0)
    a, _ = views.standardised(torch.from_numpy(rng.normal(size=(5, 1, 32, 32))).float())
    b, _ = views.standardised(torch.from_numpy(rng.normal(size=(5, 1, 32, 32))).float())
    m, s = MARGIN, SHIFT
    expected = torch.full((5,), -1.0)
    for dy in range(-s, s + 1):
        for dx in range(-s, s + 1):
            x = a[:, 0, m:-m, m:-m].flatten(1)
            y = b[:, 0, m + dy : 32 - m + dy, m + dx : 32 - m + dx].flatten(1)
            x, y = x - x.mean(1, keepdim=True), y - y.mean(1, keepdim=True)
            expected = torch.maximum(expected, (x * y).sum(1) / (x.norm(dim=1) * y.norm(dim=1)))
    assert torch.allclose(shift_correlation(a, b), expected, atol=1e-5)


def test_shift_correlation_of_shared_images_equals_that_of_the_pairs_gathered():
    rng = np.random.default_rng(2)
    a, _ = views.standardised(torch.from_numpy(rng.normal(size=(4, 1, 32, 32))).float())
    b, _ = views.standardised(torch.from_numpy(rng.normal(size=(3, 1, 32, 32))).float())
    pair_a, pair_b = torch.tensor([0, 0, 3, 2, 1]), torch.tensor([2, 1, 1, 0, 2])
    assert torch.allclose(shift_correlation(a, b, pair_a, pair_b),
                          shift_correlation(a[pair_a], b[pair_b]), atol=1e-6)


def test_unoccluded_correlation_is_pearson_without_the_pixels_differing_most():
    rng = np.random.default_rng(1)
    a = torch.from_numpy(rng.normal(size=(6, 1, 32, 32))).float()
    b = a + 0.3 * torch.from_numpy(rng.normal(size=(6, 1, 32, 32))).float()
    b[0, 0, 8:16, 8:16] = 9.0  # a sticker of 64 pixels, fewer than the share left out
    b[1] = torch.from_numpy(rng.normal(size=(1, 32, 32))).float()  # unrelated
    a[2], b[2] = 0.0, 0.0  # flat
    # flat but for a few pixels that differ: what is kept is flat in both
    a[5], b[5] = 0.0, 0.0
    a[5, 0, 10, 10:15], b[5, 0, 20, 5:10] = 1.0, 1.0
    shift = torch.tensor([4, 0, 4, 8, 3, 5])
    m, s, inner = MARGIN, SHIFT, 32 - 2 * MARGIN
    expected = []
    for i in range(6):
        dy, dx = (d - s for d in divmod(int(shift[i]), 2 * s + 1))
        x = a[i, 0, m:-m, m:-m].flatten().double()
        y = b[i, 0, m + dy : 32 - m + dy, m + dx : 32 - m + dx].flatten().double()
        x, y = ((v - v.mean()) / v.std(unbiased=False).clamp_min(1e-6) for v in (x, y))
        difference = (x - y).abs()
        cut = difference.sort(descending=True).values[int(OVERLAY_SHARE * inner * inner) - 1]
        x, y = x[difference <= cut], y[difference <= cut]
        x, y = x - x.mean(), y - y.mean()
        expected.append(float((x * y).sum() / (x.norm() * y.norm()).clamp_min(1e-12)))
    got = _unoccluded_correlation(a, b, shift)
    assert np.allclose(got.numpy(), expected, atol=1e-4)
    plain = np.corrcoef(a[0, 0, m:-m, m:-m].flatten(), b[0, 0, m:-m, m:-m].flatten())[0, 1]
    assert got[0] > plain + 0.3 and abs(got[1]) < 0.35 and got[2] == 0
    assert got.abs().max() <= 1 + 1e-5


def test_pair_features_do_not_depend_on_how_pairs_are_ordered(photo):
    rows = np.stack([small(crop_at(photo, y, x)) for y, x in ((0, 0), (40, 30), (300, 200))])
    grey, colour = thumbnails.thumbnails(rows)
    a, b = np.array([0, 0, 1, 2]), np.array([1, 2, 2, 0])
    together = pair_features(grey, colour, a, b)
    apart = np.concatenate([pair_features(grey, colour, a[i : i + 1], b[i : i + 1])
                            for i in range(len(a))])
    assert np.allclose(together, apart, atol=1e-4)


def test_local_order_puts_pairs_of_one_neighbourhood_together():
    # two neighbourhoods of rows, the even and the odd ones, their pairs interleaved: in local
    # order each neighbourhood's pairs are one run, so a chunk of pairs needs few rows
    even = [(0, 2), (2, 4), (4, 6), (6, 8), (0, 8)]
    odd = [(x + 1, y + 1) for x, y in even]
    pairs = np.array([p for both in zip(odd, even, strict=True) for p in both])
    order = local_order(pairs[:, 0], pairs[:, 1], 10)
    assert sorted(order.tolist()) == list(range(len(pairs)))
    assert (pairs[order, 0] % 2).tolist() == [0] * 5 + [1] * 5


def test_exact_copies_are_compared_as_they_lie():
    # every view of an exact copy correlates ~1: the plain view is chosen, not whichever view
    # rounding puts a hair ahead
    rows = stepped_crops(6, 15, 10)
    grey, colour = thumbnails.thumbnails(np.concatenate([rows, rows]))
    features = pair_features(grey, colour, np.arange(6), np.arange(6) + 6)
    assert (features[:, FEATURES.index("aligned")] == 0).all()
    assert (features[:, 0] > 0.9999).all()


def test_verifier_scores_do_not_depend_on_how_pairs_are_ordered():
    rows = stepped_crops(12, 15, 10)
    grey, colour = thumbnails.thumbnails(rows)
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 12, 40), rng.integers(0, 12, 40)
    keep = a != b
    a, b = a[keep], b[keep]
    expected = Verifier(grey, colour, None, False, "cpu", keep_features=True)
    scores = expected(a, b)
    shuffle = rng.permutation(len(a))
    again = Verifier(grey, colour, None, False, "cpu", keep_features=True)
    assert np.allclose(again(a[shuffle], b[shuffle]), scores[shuffle], rtol=0, atol=1e-4)
    assert np.allclose(again.last_features, expected.last_features[shuffle], atol=1e-4)


def test_verifier_shows_each_look_as_progress_only_when_asked(monkeypatch, capsys):
    rows = stepped_crops(12, 15, 10)
    grey, colour = thumbnails.thumbnails(rows)
    a, b = np.triu_indices(12, 1)
    monkeypatch.setenv("DCGAN_DATA_PROGRESS_SECONDS", "0")  # a line on every update
    silent = Verifier(grey, colour, None, False, "cpu")(a, b)
    assert capsys.readouterr().err == ""
    shown = Verifier(grey, colour, None, False, "cpu", progress_desc="verify")
    assert np.array_equal(shown(a, b), silent)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith(f"verify: plain look: {len(a)}/{len(a)} pair, ")
    looked = {line.split(": ")[1]: line.split(": ")[2].split(" ")[0] for line in lines}
    counts = {"second look": shown.aligned, "tone look": shown.tone_looked}
    assert any(counts.values())
    # a look no pair needed shows nothing; the overlay look's pairs include those it did not
    # fill (no compact difference)
    overlay = looked.pop("overlay look", "0/0").split("/")
    assert overlay[0] == overlay[1] and int(overlay[0]) >= shown.unoverlaid
    assert looked == {"plain look": f"{len(a)}/{len(a)}",
                      **{look: f"{n}/{n}" for look, n in counts.items() if n}}


def test_fitted_alignment_undoes_a_small_rotation(photo):
    original = crop_at(photo, 60, 80)
    turn = cv2.getRotationMatrix2D((127.5, 127.5), 6.5, 1.05)  # beyond the fixed views
    rotated = cv2.warpAffine(original, turn, (256, 256), borderMode=cv2.BORDER_REFLECT)
    grey, colour = thumbnails.thumbnails(np.stack([small(original), small(rotated)]))
    warp = alignment.fitted_alignment(grey[0], grey[1])
    assert warp is not None
    angle = np.degrees(np.arctan2(warp[1, 0] - warp[0, 1], warp[0, 0] + warp[1, 1]))
    assert 5 < abs(angle) < 8
    features, found = alignment.aligned_pair_features(grey, colour, np.array([0]), np.array([1]))
    plain = pair_features(grey, colour, np.array([0]), np.array([1]))
    assert found[0] and features[0, 0] > max(0.95, plain[0, 0])


def test_alignment_lets_a_pad_through_but_not_a_wider_view_of_the_scene(photo):
    original = crop_at(photo, 100, 100)
    padded = cv2.resize(cv2.copyMakeBorder(original, 40, 40, 40, 40, cv2.BORDER_CONSTANT,
                                           value=(30, 160, 90)), (256, 256),
                        interpolation=cv2.INTER_AREA)
    wider = cut(photo, Crop(0, 60, 60, 280), 256)  # the same scene and more around it
    grey, colour = thumbnails.thumbnails(np.stack([small(x) for x in (original, padded, wider)]))
    pad = alignment.fitted_alignment(grey[0], grey[1])
    assert pad is not None and 0.7 < np.linalg.svd(pad[:, :2], compute_uv=False).mean() < 0.8
    assert alignment.fitted_alignment(grey[1], grey[0]) is not None  # either way round
    assert alignment.fitted_alignment(grey[0], grey[2]) is None
    features, found = alignment.aligned_pair_features(grey, colour, np.array([0]), np.array([1]))
    plain = pair_features(grey, colour, np.array([0]), np.array([1]))
    assert found[0] and features[0, 0] > max(0.95, plain[0, 0])


def test_the_chroma_look_forgives_saturation_but_not_a_hue_change_nor_a_flat_fill(photo):
    base = small(crop_at(photo, 100, 150))
    luma = cv2.cvtColor(base, cv2.COLOR_RGB2GRAY).astype(np.float32)[..., None]
    grey_copy = np.repeat(luma, 3, axis=2).astype(np.uint8)
    paler = np.clip(luma + 0.4 * (base - luma), 0, 255).astype(np.uint8)
    hue_moved = np.ascontiguousarray(base[..., ::-1])  # red and blue swapped
    flat = np.full_like(base, (200, 120, 60))
    flat_luma = cv2.cvtColor(flat, cv2.COLOR_RGB2GRAY).astype(np.float32)[..., None]
    paler_flat = np.clip(flat_luma + 0.4 * (flat - flat_luma), 0, 255).astype(np.uint8)
    rows = np.stack([base, grey_copy, base, paler, base, hue_moved, flat, paler_flat])
    grey, colour = thumbnails.thumbnails(rows)
    index = np.arange(0, len(rows), 2)
    plain, chroma = pair_looks(grey, colour, index, index + 1)
    column = FEATURES.index("colour_difference")
    assert (plain[:, column] > 5).all()
    assert (chroma[:2, column] < 0.3 * plain[:2, column]).all()  # grey and paler copies
    # no chroma look for a hue change, nor for a flat fill (its colour is all it has)
    assert chroma[2, column] == plain[2, column] and chroma[3, column] == plain[3, column]
    others = np.arange(len(FEATURES)) != column
    assert (chroma[:, others] == plain[:, others]).all()
    assert (pair_features(grey, colour, index, index + 1) == plain).all()


def test_the_verifier_takes_the_chroma_look_less_its_margin(photo):
    base = small(crop_at(photo, 100, 150))
    grey_copy = np.repeat(cv2.cvtColor(base, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    grey, colour = thumbnails.thumbnails(np.stack([base, grey_copy]))
    one, two = np.array([0]), np.array([1])
    plain, chroma = (logistic.VerifyModel.load().log_odds(x)[0]
                     for x in pair_looks(grey, colour, one, two))
    gap = chroma - plain
    assert gap > 0.1
    verifier = Verifier(grey, colour, None, False, "cpu")
    verifier.model.tone_band = 0.0  # the chroma look alone: the tone look would lift it too
    verifier.threshold = plain + gap / 2  # between the two looks
    verifier.model.chroma_margin = gap
    assert np.isclose(verifier(one, two)[0], plain, atol=1e-4)
    assert verifier.chroma_matched == 0
    verifier.model.chroma_margin = gap / 4
    assert np.isclose(verifier(one, two)[0], chroma - gap / 4, atol=1e-4)
    assert verifier.chroma_matched == 1


def equalised_per_channel(rgb: np.ndarray) -> np.ndarray:
    """Histogram equalisation of each channel (albumentations' Equalize, OpenCV's way)."""
    return np.stack([cv2.equalizeHist(np.ascontiguousarray(rgb[..., c])) for c in range(3)],
                    axis=-1)


def test_equalised_thumbnails_ignore_any_increasing_tone_curve_and_keep_flat_areas_flat(photo):
    grey, colour = thumbnails.thumbnails(small(crop_at(photo, 100, 150))[None])
    # a gamma curve on levels 0-127, steep enough (slope > 1.4) to keep them all apart
    curve = np.round(255 * (np.arange(128) / 127) ** 0.7).astype(np.uint8)
    assert len(np.unique(curve)) == 128
    for image in (grey // 2, colour // 2):
        assert (tone.equalised(curve[image]) == tone.equalised(image)).all()
        assert not (curve[image] == image).all()
    flat = np.full((1, 32, 32), 90, np.uint8)
    flat[0, :, 16:] = 30  # two flat halves: two levels, not a ramp
    out = tone.equalised(flat)
    assert len(np.unique(out[0, :, :16])) == 1 and len(np.unique(out[0, :, 16:])) == 1
    assert out[0, 0, 0] > out[0, 0, 31]


def test_the_tone_look_accepts_equalised_copies_and_refuses_other_crops():
    wood = load_photo(next(p for p in PHOTOS if p.stem == "mate_wood"))
    h, w = wood.shape[:2]
    spots = [(0, 0), (0, w - 200), (h - 200, 0), (h - 200, w - 200),
             ((h - 200) // 2, (w - 200) // 2)]
    crops = [crop_at(wood, y, x) for y, x in spots]
    rows = np.stack([small(x) for x in [*crops, *map(equalised_per_channel, crops)]])
    grey, colour = thumbnails.thumbnails(rows)
    copies = np.arange(5), np.arange(5, 10)
    others = np.array([(i, j) for i in range(5) for j in range(10) if j not in (i, i + 5)]).T
    verifier = Verifier(grey, colour, None, False, "cpu")
    verifier.model.tone_band = 0.0  # without the tone look: every equalised copy refused
    assert (verifier(*copies) < verifier.threshold).all()
    verifier = Verifier(grey, colour, None, False, "cpu")
    assert verifier.model.tone_band > 0
    assert (verifier(*copies) >= verifier.threshold).all()
    assert verifier.tone_looked == 5
    assert (verifier(*others) < verifier.threshold).all()  # other crops, equalised or not


def test_looks_in_chunks_score_as_in_one_piece(monkeypatch):
    # the looks run LOOK_CHUNK pairs at a time (bounding their memory at millions of pairs):
    # the scores must not depend on the chunk
    from dcgan_data.dedup import verify

    rows = stepped_crops(16, 15, 10)
    grey, colour = thumbnails.thumbnails(rows)
    a, b = np.repeat(np.arange(8), 2), np.arange(16)[::-1].copy()
    whole = Verifier(grey, colour, None, False, "cpu")
    expected = whole(a, b)
    monkeypatch.setattr(verify, "LOOK_CHUNK", 3)
    chunked = Verifier(grey, colour, None, False, "cpu")
    # batched matrix products may round the last bit differently for another batch size
    assert np.allclose(chunked(a, b), expected, rtol=0, atol=1e-4)
    assert chunked.tone_looked == whole.tone_looked > 3  # the tone look ran over chunks
