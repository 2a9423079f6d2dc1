"""ImageFolder: root/<class>/<image> files, decoded with PIL and converted to RGB."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


class ImageFolder:
    def __init__(self, root: str, transform=None):
        classes = sorted(p.name for p in Path(root).iterdir() if p.is_dir())
        self.samples = [(str(f), index) for index, name in enumerate(classes)
                        for f in sorted((Path(root) / name).rglob("*"))
                        if f.suffix.lower() in EXTENSIONS]
        self.classes, self.transform = classes, transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, target = self.samples[index]
        with open(path, "rb") as f:
            image = Image.open(f).convert("RGB")
        return (self.transform(image) if self.transform else image), target
