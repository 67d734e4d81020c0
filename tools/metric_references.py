"""The reference values that tests/test_metric_references.py pins the project's metrics to, computed by the reference
implementations on the inputs of tests/metric_inputs.py. They cannot be dependencies of the project (they need
torchvision), so this runs in an environment of its own, e.g.

    python3 -m venv /tmp/refenv && /tmp/refenv/bin/pip install torch==2.5.1 torchvision==0.20.1 lpips==0.1.4 \
        pytorch-fid==0.3.0 pyiqa==0.1.13 scikit-image==0.26.0
    /tmp/refenv/bin/python tools/metric_references.py --niqe-npz niqe_pris_params.npz \
        --alexnet ../shared/weights/lpips/alexnet_features.pth

--niqe-npz: basicsr 1.4.2's niqe_pris_params.npz (what the project fetches; threedsr's cache has it); --alexnet:
torchvision's ImageNet AlexNet `features` (../shared's copy; lpips would download it). Prints the values as JSON.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import scipy.io
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import metric_inputs  # noqa: E402


def niqe_references(npz: Path) -> dict:
    import pyiqa

    params = np.load(npz)
    with tempfile.TemporaryDirectory() as tmp:
        mat = Path(tmp) / "niqe_modelparameters.mat"  # the layout pyiqa reads
        scipy.io.savemat(mat, {"mu_prisparam": params["mu_pris_param"], "cov_prisparam": params["cov_pris_param"]})
        metric = pyiqa.create_metric("niqe", device="cpu", pretrained_model_path=str(mat))
        out = {}
        for name, img in metric_inputs.niqe_images().items():
            x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255  # as pyiqa reads an image file
            out[name] = round(float(metric(x)), 6)
    return out


def lpips_references(alexnet: Path) -> dict:
    import lpips

    model = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False).eval()
    features = torch.load(alexnet, map_location="cpu", weights_only=True)
    slices = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}  # torchvision's features index -> lpips's slice holding that layer
    state = {f"slice{slices[int(k.split('.')[1])]}.{k.split('.', 1)[1]}": v for k, v in features.items()}
    model.net.load_state_dict(state, strict=True)
    out = {}
    with torch.no_grad():
        for name, (a, b) in metric_inputs.lpips_pairs().items():
            ta, tb = (torch.from_numpy(x).permute(2, 0, 1)[None].float() / 255 for x in (a, b))
            out[name] = round(float(model(ta, tb, normalize=True)), 7)
    return out


def fid_reference() -> float:
    from pytorch_fid.fid_score import calculate_frechet_distance

    a, b = metric_inputs.fid_features()
    return float(calculate_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--niqe-npz", type=Path, required=True)
    ap.add_argument("--alexnet", type=Path, required=True)
    a = ap.parse_args()
    from importlib.metadata import version

    versions = {p: version(p) for p in ("torch", "pyiqa", "lpips", "pytorch-fid", "scikit-image", "numpy")}
    refs = {
        "versions": versions,
        "niqe": niqe_references(a.niqe_npz),
        "lpips": lpips_references(a.alexnet),
        "frechet_distance": fid_reference(),
    }
    print(json.dumps(refs, indent=1))


if __name__ == "__main__":
    main()
