"""Per-batch resume of the SR jobs (partial.PartialImages): a run stopped after some batches is finished by the next
one without computing them again, into outputs identical to an uninterrupted run's; other inputs start over."""

import pytest
import torch

from threedsr.imaging import upsample
from threedsr.methods.supergaussian import make_frames
from threedsr.partial import PartialImages
from threedsr.sr.base import SRModel
from threedsr.sr.run import super_resolve_scene
from threedsr.sr.sampling import SamplerConfig


class Stop(Exception):
    pass


STOP_AT = {}  # instance id -> the call that raises Stop (the job is killed); not a setting of the model


class CountingUpsampler(SRModel):
    """×4 bicubic times a setting (`gain`, part of the model's fingerprint)."""

    name = "counting"

    def __init__(self, gain: float = 1.0, stop_at: int | None = None):
        self.gain, self.calls = gain, 0
        STOP_AT[id(self)] = stop_at

    def super_resolve(self, lr, sampler, seeds):
        self.calls += 1
        if self.calls == STOP_AT[id(self)]:
            raise Stop
        return upsample(lr, 4) * self.gain


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def _super_resolve(scene, model, out):
    return super_resolve_scene(scene.root, model, SamplerConfig(), out, batch_size=3)


def _frames(scene_and_ckpt, model, out):
    scene_dir, ckpt = scene_and_ckpt
    return make_frames(scene_dir, ckpt, out, 1, model, SamplerConfig(), 3, torch.device("cpu"))


@pytest.mark.parametrize("job", ["super_resolve", "supergaussian_frames"])
def test_a_stopped_job_computes_only_the_batches_it_had_not_finished(job, tiny_scene, small_scene_and_lr_model, tmp_path, caplog):
    run = (
        (lambda m, out: _super_resolve(tiny_scene, m, out))
        if job == "super_resolve"
        else (lambda m, out: _frames(small_scene_and_lr_model, m, out))
    )
    caplog.set_level("INFO")
    whole = CountingUpsampler()
    run(whole, tmp_path / "whole")
    assert whole.calls >= 3
    with pytest.raises(Stop):
        run(CountingUpsampler(stop_at=3), tmp_path / "out")  # two batches finished
    assert not (tmp_path / "out").exists() and len(list((tmp_path / ".out.partial").glob("*.png"))) == 6
    again = CountingUpsampler()
    run(again, tmp_path / "out")
    assert again.calls == whole.calls - 2 and "resuming: 6 images finished" in caplog.text
    assert _files(tmp_path / "out") == _files(tmp_path / "whole")
    assert not (tmp_path / ".out.partial").exists()


def test_images_made_by_another_model_are_not_reused(tiny_scene, tmp_path, caplog):
    caplog.set_level("INFO")
    with pytest.raises(Stop):
        _super_resolve(tiny_scene, CountingUpsampler(stop_at=2), tmp_path / "out")
    other = CountingUpsampler(gain=0.5)  # another setting: another fingerprint
    _super_resolve(tiny_scene, other, tmp_path / "out")
    _super_resolve(tiny_scene, CountingUpsampler(gain=0.5), tmp_path / "whole")
    assert "with other inputs" in caplog.text and _files(tmp_path / "out") == _files(tmp_path / "whole")


def test_the_fingerprint_of_a_model_follows_its_weights_and_settings():
    net = torch.nn.Linear(2, 2)

    class Model(CountingUpsampler):
        def __init__(self, gain=1.0):
            super().__init__(gain)
            self.net = net

    a = Model().fingerprint()
    assert Model().fingerprint() == a and Model(gain=2.0).fingerprint() != a
    with torch.no_grad():
        net.weight[0, 0] += 1e-6
    assert Model().fingerprint() != a


def test_a_batch_counts_only_when_all_its_images_are_there(tmp_path):
    partial = PartialImages(tmp_path / "out", "key", fault="sr:batch-saved")
    partial.save({"a": torch.zeros(4, 4, 3, dtype=torch.uint8).numpy()})
    assert partial.finished(["a"]) and not partial.finished(["a", "b"])
    assert PartialImages(tmp_path / "out", "key", fault="x").finished(["a"])
    assert not PartialImages(tmp_path / "out", "other", fault="x").finished(["a"])


def test_a_damaged_finished_image_is_computed_again(tiny_scene, tmp_path, caplog):
    whole = CountingUpsampler()
    _super_resolve(tiny_scene, whole, tmp_path / "whole")
    with pytest.raises(Stop):
        _super_resolve(tiny_scene, CountingUpsampler(stop_at=3), tmp_path / "out")
    damaged = sorted((tmp_path / ".out.partial").glob("*.png"))[4]  # in the second batch
    damaged.write_bytes(damaged.read_bytes()[:-20])
    again = CountingUpsampler()
    _super_resolve(tiny_scene, again, tmp_path / "out")
    assert again.calls == whole.calls - 2 + 1 and f"{damaged}: damaged" in caplog.text  # one finished batch redone
    assert _files(tmp_path / "out") == _files(tmp_path / "whole")
