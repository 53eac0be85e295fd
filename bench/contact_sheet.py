"""Side-by-side contact sheets: one column per method, one row per unit.

    python bench/contact_sheet.py OUT.jpg NAME=FOLDER NAME=FOLDER ...  (every PNG the folders share)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

CELL = 160
LABEL = 110
HEADER = 22


def contact_sheet(columns: list[tuple[str, Path]], files: list[str], labels: list[str], out: Path,
                  cell: int = CELL) -> Path:
    """A JPEG grid: rows are `files` (labelled), columns are the method folders."""
    sheet = Image.new("RGB", (LABEL + cell * len(columns), HEADER + cell * len(files)), "white")
    draw = ImageDraw.Draw(sheet)
    for x, (name, _) in enumerate(columns):
        draw.text((LABEL + x * cell + 4, 4), name, fill="black")
    for y, (file, label) in enumerate(zip(files, labels)):
        draw.text((4, HEADER + y * cell + cell // 2 - 6), label[:18], fill="black")
        for x, (_, folder) in enumerate(columns):
            with Image.open(folder / file) as image:
                sheet.paste(image.convert("RGB").resize((cell, cell), Image.LANCZOS),
                            (LABEL + x * cell, HEADER + y * cell))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, quality=88)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the sheet to write (JPEG)")
    parser.add_argument("columns", nargs="+", metavar="NAME=FOLDER", help="one column per method folder")
    args = parser.parse_args(argv)
    bad = [c for c in args.columns if "=" not in c]
    if bad:
        parser.error(f"a column is NAME=FOLDER, got {bad[0]!r}")
    out, pairs = args.out, [c.split("=", 1) for c in args.columns]
    columns = [(name, Path(folder)) for name, folder in pairs]
    files = sorted(set.intersection(*(set(p.name for p in f.glob("*.png")) for _, f in columns)))
    contact_sheet(columns, files, [Path(f).stem for f in files], out)
    print(out)


if __name__ == "__main__":
    main()
