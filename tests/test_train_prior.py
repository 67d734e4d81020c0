"""Training the tiny prior on a folder of photos: the folder loader, the hold-out split, zooms and LR degradations."""

import numpy as np
import pytest
import torch
from PIL import Image

from threedsr.data.photos import holdout_split, load_photo_folder, photo_folder_ids
from threedsr.errors import DataError
from threedsr.imaging import resize
from threedsr.sr.tiny_config import TinyTrainConfig
from threedsr.sr.train_tiny import PatchSampler, degrade, gaussian_blur, jpeg


def _photo(seed: int, h: int = 70, w: int = 90) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = np.kron(rng.integers(0, 256, (h // 10 + 1, w // 10 + 1, 3)), np.ones((10, 10, 1)))[:h, :w]
    return np.clip(smooth + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8)


def _folder(tmp_path):
    root = tmp_path / "photos"
    (root / "b" / "deep").mkdir(parents=True)
    Image.fromarray(_photo(0)).save(root / "z.png")
    Image.fromarray(_photo(1)).save(root / "b" / "one.JPG", quality=95)
    Image.fromarray(_photo(2)[..., 0]).save(root / "b" / "deep" / "grey.png")  # greyscale: loaded as RGB
    (root / "notes.txt").write_text("not an image")
    return root


def test_folder_loads_every_image_recursively_by_relative_path(tmp_path):
    root = _folder(tmp_path)
    assert photo_folder_ids(root) == ["b/deep/grey.png", "b/one.JPG", "z.png"]
    photos = load_photo_folder(root)
    assert list(photos) == ["b/deep/grey.png", "b/one.JPG", "z.png"]
    assert all(im.shape == (70, 90, 3) and im.dtype == np.uint8 for im in photos.values())
    assert np.array_equal(photos["z.png"], _photo(0))
    assert list(load_photo_folder(root, ["z.png"])) == ["z.png"]


def test_folder_errors_name_the_folder(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        photo_folder_ids(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image files"):
        photo_folder_ids(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="x.png: not a readable image"):
        load_photo_folder(tmp_path / "bad")


def test_holdout_split_takes_every_nth_of_the_sorted_ids():
    ids = [f"{i:03d}.png" for i in range(33)][::-1]
    train, held = holdout_split(ids, 16)
    assert held == ["000.png", "016.png", "032.png"]
    assert len(train) == 30 and not set(train) & set(held) and train == sorted(train)


def test_gaussian_blur_keeps_constants_and_smooths():
    flat = torch.full((1, 3, 20, 20), 0.3)
    assert torch.allclose(gaussian_blur(flat, 1.0), flat, atol=1e-6)
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    y = gaussian_blur(x, 1.5)
    assert y.shape == x.shape and y.std() < 0.5 * x.std()
    assert gaussian_blur(x, 0.5).std() > y.std()  # more blur, less variance


def test_jpeg_round_trip_is_close_and_lossy():
    x = torch.from_numpy(_photo(3, 32, 32)).permute(2, 0, 1).float() / 255
    y95, y30 = jpeg(x, 95), jpeg(x, 30)
    assert y95.shape == x.shape and 0 < (y95 - x).abs().mean() < (y30 - x).abs().mean() < 0.1


def test_degrade_is_seeded_and_differs_from_the_clean_lr():
    cfg = TinyTrainConfig(patch=8)
    hr = torch.from_numpy(_photo(4, 32, 32)[..., :1]).permute(2, 0, 1).float().expand(3, -1, -1) / 255  # grey: no chroma
    a = degrade(hr, 8, cfg, torch.Generator().manual_seed(1))
    b = degrade(hr, 8, cfg, torch.Generator().manual_seed(1))
    clean = resize(hr[None], 8, 8)[0].clamp(0, 1)
    assert a.shape == (3, 8, 8) and torch.equal(a, b)
    assert 0 < (a - clean).abs().mean() < 0.1  # mild: still the same picture
    none = TinyTrainConfig(patch=8, blur_sigma=(1e-3, 1e-3), noise_sigma=(0.0, 0.0), jpeg_quality=(100, 100))
    off = (degrade(hr, 8, none, torch.Generator().manual_seed(1)) - clean).abs().mean()
    assert off < 0.01 < (a - clean).abs().mean()  # without blur and noise, JPEG at quality 100 is close to lossless


@pytest.mark.parametrize("zoom_mode", ["pyramid", "random"])
def test_patch_sampler_mixes_clean_and_degraded_pairs(zoom_mode):
    images = [_photo(5), _photo(6, 40, 50)]
    cfg = TinyTrainConfig(patch=8, zoom_mode=zoom_mode, degrade=0.5)
    hr, lr = PatchSampler(images, cfg, torch.Generator().manual_seed(0))(64)
    assert hr.shape == (64, 3, 32, 32) and lr.shape == (64, 3, 8, 8)
    assert hr.min() >= 0 and hr.max() <= 1
    clean = (lr - resize(hr, 8, 8).clamp(0, 1)).abs().flatten(1).max(1).values < 1e-6
    assert 16 < int(clean.sum()) < 48  # about half the pairs clean, the rest degraded
    hr2, lr2 = PatchSampler(images, cfg, torch.Generator().manual_seed(0))(64)
    assert torch.equal(hr, hr2) and torch.equal(lr, lr2)  # deterministic given the seed


def _old_draws(pyramid, weights, cfg, g, n):
    """PatchSampler.__call__ before zoom_mode and degradations (commit 125f759), for comparison."""
    hr_size = cfg.patch * cfg.scale
    out = []
    for i in torch.multinomial(weights, n, replacement=True, generator=g).tolist():
        im = pyramid[i]
        y = int(torch.randint(0, im.shape[1] - hr_size + 1, (1,), generator=g))
        x = int(torch.randint(0, im.shape[2] - hr_size + 1, (1,), generator=g))
        p = im[:, y : y + hr_size, x : x + hr_size]
        if torch.rand(1, generator=g) < 0.5:
            p = p.flip(2)
        out.append(torch.rot90(p, int(torch.randint(0, 4, (1,), generator=g)), dims=(1, 2)))
    hr = torch.stack(out)
    return hr, resize(hr, cfg.patch, cfg.patch).clamp(0, 1)


def test_clean_only_training_pairs_are_unchanged_by_the_new_fields():
    """degrade=0 with the pyramid zooms draws exactly the pairs the sampler drew before degradations existed."""
    cfg = TinyTrainConfig(patch=8, zoom_mode="pyramid")
    sampler = PatchSampler([_photo(7), _photo(8, 50, 60)], cfg, torch.Generator().manual_seed(0))
    old = _old_draws(sampler.pyramid, sampler.weights, cfg, torch.Generator().manual_seed(0), 8)
    new = sampler(8)
    assert torch.equal(new[0], old[0]) and torch.equal(new[1], old[1])


def test_config_rejects_unknown_zoom_mode_and_fractions():
    with pytest.raises(ValueError, match="zoom_mode"):
        TinyTrainConfig(zoom_mode="crop")
    with pytest.raises(ValueError, match="degrade"):
        TinyTrainConfig(degrade=1.5)


def test_training_on_a_folder_with_degradations(tmp_path):
    from threedsr.sr.tiny import TinySR
    from threedsr.sr.train_tiny import train

    photos = load_photo_folder(_folder(tmp_path))
    cfg = TinyTrainConfig(iterations=6, batch_size=4, patch=8, block_out_channels=(16, 32), warmup=2, zoom_mode="random", degrade=0.5)
    summary = train(photos, cfg, tmp_path / "prior")
    model = TinySR.from_pretrained(tmp_path / "prior")
    assert model.meta["training"]["photos"] == sorted(photos) == summary["photos"]
    assert model.meta["training"]["config"]["degrade"] == 0.5
