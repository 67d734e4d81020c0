"""What was prepared: a table of scenes and a contact sheet of LR vs HR views per scene."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from ..io import atomic_path, read_image, read_json, write_png

SHEET_VIEWS = 4


def summary_table(scene_dirs: list[Path]) -> pd.DataFrame:
    rows = []
    for d in scene_dirs:
        m = read_json(Path(d) / "scene.json")
        rows.append(
            {
                "dataset": m["dataset"],
                "scene": m["scene"],
                "views": m["num_views"],
                "train": m["num_train"],
                "test": m["num_test"],
                "lr_size": "x".join(map(str, m["lr_size"])),
                "hr_size": "x".join(map(str, m["hr_size"])),
                "scale": m["scale"],
                "points": m["num_points"],
                "poses": m["pose_source"],
                "source": m["source_dir"],
            }
        )
    return pd.DataFrame(rows)


def contact_sheet(scene_dir: Path) -> np.ndarray:
    """Rows of (LR shown with nearest-neighbour upsampling | HR) for a few views, labelled with name and split."""
    scene_dir = Path(scene_dir)
    meta = read_json(scene_dir / "scene.json")
    views = meta["views"]
    picks = [views[i] for i in np.linspace(0, len(views) - 1, min(SHEET_VIEWS, len(views))).round().astype(int)]
    rows = []
    for v in picks:
        hr = read_image(scene_dir / "hr" / f"{v['name']}.png")
        lr = Image.fromarray(read_image(scene_dir / "lr" / f"{v['name']}.png"))
        lr_up = np.asarray(lr.resize((hr.shape[1], hr.shape[0]), Image.NEAREST))
        row = np.concatenate([lr_up, np.full((hr.shape[0], 4, 3), 255, np.uint8), hr], axis=1)
        label = Image.fromarray(row)
        draw = ImageDraw.Draw(label)
        for x, text in ((2, f"{v['name']} ({v['split']}) LR {lr.width}x{lr.height}"), (hr.shape[1] + 6, f"HR {hr.shape[1]}x{hr.shape[0]}")):
            draw.rectangle((x, 2, x + 6 * len(text) + 4, 14), fill=(0, 0, 0))
            draw.text((x + 2, 2), text, fill=(255, 255, 255))
        rows.append(np.asarray(label))
        rows.append(np.full((4, row.shape[1], 3), 255, np.uint8))
    return np.concatenate(rows[:-1], axis=0)


def write_data_report(scene_dirs: list[Path], out_dir: Path) -> pd.DataFrame:
    out_dir = Path(out_dir)
    table = summary_table(scene_dirs)
    for d, (_, r) in zip(scene_dirs, table.iterrows()):
        write_png(out_dir / f"contact_{r['dataset']}_{r['scene']}.png", contact_sheet(d))
    with atomic_path(out_dir / "summary.csv") as tmp:
        table.to_csv(tmp, index=False)
    lines = ["# Prepared scenes", "", "| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(str(x) for x in r) + " |" for r in table.itertuples(index=False)]
    lines += ["", "Contact sheets (LR upsampled with nearest neighbour | HR):", ""]
    lines += [f"![{r.dataset}/{r.scene}](contact_{r.dataset}_{r.scene}.png)" for r in table.itertuples(index=False)]
    with atomic_path(out_dir / "summary.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return table
