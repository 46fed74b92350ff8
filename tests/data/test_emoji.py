"""Emoji on tiny Unicode/CLDR files written here, rendered with matplotlib's DejaVu font."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest

from hashrepro.data import Emoji, emoji

FONT = str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")

EMOJI_TEST = """\
# emoji-test.txt (tiny)
# group: Smileys & Emotion

# subgroup: face-smiling
1F600       ; fully-qualified # 😀 E1.0 grinning face
263A FE0F   ; fully-qualified # ☺️ E0.6 smiling face
263A        ; unqualified     # ☺ E0.6 smiling face

# subgroup: heart
2764 FE0F   ; fully-qualified # ❤️ E0.6 red heart

# group: People & Body

# subgroup: hand-fingers-open
1F44B       ; fully-qualified # 👋 E0.6 waving hand
1F44B 1F3FB ; fully-qualified # 👋🏻 E1.0 waving hand: light skin tone

# group: Component

# subgroup: skin-tone
1F3FB       ; component       # 🏻 E1.0 light skin tone

# group: Animals & Nature

# subgroup: animal-mammal
1F431       ; fully-qualified # 🐱 E0.6 cat face
1F436       ; fully-qualified # 🐶 E0.6 dog face
"""

ANNOTATIONS = """<?xml version="1.0" encoding="UTF-8" ?>
<ldml><annotations>
<annotation cp="😀">face | grin | grinning face</annotation>
<annotation cp="😀" type="tts">grinning face</annotation>
<annotation cp="☺">face | outlined | smile | smiling face</annotation>
<annotation cp="❤">heart</annotation>
<annotation cp="👋">hand | wave | waving</annotation>
<annotation cp="🐱">cat | face | pet</annotation>
</annotations></ldml>
"""

DERIVED = """<?xml version="1.0" encoding="UTF-8" ?>
<ldml><annotations>
<annotation cp="🐶">dog | face | pet</annotation>
<annotation cp="🐱">should not replace the first file's keywords</annotation>
</annotations></ldml>
"""


@pytest.fixture
def unicode_dir(tmp_path: Path) -> Path:
    """The Debian packages' layout: emoji/emoji-test.txt and CLDR annotations."""
    root = tmp_path / "unicode"
    (root / "emoji").mkdir(parents=True)
    (root / "emoji" / "emoji-test.txt").write_text(EMOJI_TEST, encoding="utf-8")
    for sub, text in (("annotations", ANNOTATIONS), ("annotationsDerived", DERIVED)):
        folder = root / "cldr" / "common" / sub
        folder.mkdir(parents=True)
        (folder / "en.xml").write_text(text, encoding="utf-8")
    return root


def make(unicode_dir: Path, tmp_path: Path, **kwargs: object) -> Emoji:
    args = {"num_query": 2, "num_train": 3, "num_val": 1, "split_dir": None, "image_size": 16}
    return Emoji(
        root=str(tmp_path / "cache"), unicode_dir=str(unicode_dir), font=FONT, **{**args, **kwargs}
    )


def test_items_texts_and_labels(unicode_dir: Path, tmp_path: Path) -> None:
    dm = make(unicode_dir, tmp_path)
    data = dm.data
    # fully-qualified only, no skin-tone variant, no component
    assert [e.name for e in dm.entries] == [
        "grinning face", "smiling face", "red heart", "waving hand", "cat face", "dog face",
    ]  # fmt: skip
    assert dm.class_names == ["Smileys & Emotion", "People & Body", "Animals & Nature"]
    assert list(data.labels.argmax(1)) == [0, 0, 0, 1, 2, 2]
    assert data.sources["image"].shape == (6, 16, 16, 3)
    # keywords found without U+FE0F; the derived file only fills gaps
    assert dm.texts[1] == "smiling face: face, outlined, smile"
    assert dm.texts[4] == "cat face: cat, face, pet"
    assert dm.texts[5] == "dog face: dog, face, pet"
    # bag of words: words used by >= 2 items
    assert dm.vocabulary == ["face", "pet"]
    bow = data.sources["text"].numpy()
    assert bow.shape == (6, 2)
    assert bow[:, 0].tolist() == [1, 1, 0, 0, 1, 1] and bow[:, 1].tolist() == [0, 0, 0, 0, 1, 1]


def test_subgroup_labels_and_sentence_text(unicode_dir: Path, tmp_path: Path) -> None:
    dm = make(unicode_dir, tmp_path, labels="subgroup", text="sentence", min_count=1)
    data = dm.data
    assert dm.class_names == ["face-smiling", "heart", "hand-fingers-open", "animal-mammal"]
    assert dm.protocol == "subgroup"
    assert data.sources["text"][0] == "grinning face: face, grin"
    assert len(dm.vocabulary) > 2
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert isinstance(batch["text"], list) and all(isinstance(t, str) for t in batch["text"])
    assert batch["image"].shape == (3, 3, 16, 16)


def test_renders_are_cached_under_root(
    unicode_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = make(unicode_dir, tmp_path).data.sources["image"]
    assert first.dtype == np.uint8
    assert (first[1] < 128).any() and (first[2] < 128).any()  # DejaVu has U+263A and U+2764
    assert len(list((tmp_path / "cache").glob("emoji_16px_*.npy"))) == 1

    def no_render(*args: object) -> None:
        raise AssertionError("rendered again instead of reading the cache")

    monkeypatch.setattr(emoji, "render", no_render)
    again = make(unicode_dir, tmp_path).data.sources["image"]
    assert np.array_equal(first, again)
    monkeypatch.undo()
    bigger = make(unicode_dir, tmp_path, image_size=24).data.sources["image"]
    assert bigger.shape[1:] == (24, 24, 3)


def test_split_is_random_and_disjoint(unicode_dir: Path, tmp_path: Path) -> None:
    dm = make(unicode_dir, tmp_path)
    assert dm.sampling == "random"
    split = dm.split
    assert not set(split["query"]) & set(split["database"])
    assert set(split["train"]) <= set(split["database"])
    assert not set(split["val_query"]) & (set(split["query"]) | set(split["train"]))
    assert dm.directions == [("i2t", "image", "text"), ("t2i", "text", "image")]


def test_missing_unicode_files(tmp_path: Path) -> None:
    dm = Emoji(unicode_dir=str(tmp_path / "nothing"), split_dir=None)
    with pytest.raises(FileNotFoundError) as info:
        _ = dm.data
    assert "\n" not in str(info.value)
    assert "emoji-test.txt" in str(info.value) and "unicode-data" in str(info.value)


def test_malformed_emoji_test_line(unicode_dir: Path, tmp_path: Path) -> None:
    path = unicode_dir / "emoji" / "emoji-test.txt"
    path.write_text(EMOJI_TEST + "1F600 fully-qualified grinning\n", encoding="utf-8")
    line = len(EMOJI_TEST.splitlines()) + 1
    with pytest.raises(ValueError, match=f"line {line} is not"):
        _ = make(unicode_dir, tmp_path).data


def test_preview_and_summary(unicode_dir: Path, tmp_path: Path) -> None:
    dm = make(unicode_dir, tmp_path)
    summary = dm.summary()
    assert summary.startswith("6 emoji, 3 groups (Smileys & Emotion 3, ")
    out = tmp_path / "preview.png"
    emoji.preview(dm, out, count=4)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_command_line(
    unicode_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    monkeypatch.setattr(emoji, "openmoji_font", lambda: Path(FONT))
    out = tmp_path / "p.png"
    args = ["--root", str(tmp_path / "c"), "--unicode-dir", str(unicode_dir)]
    emoji.main([*args, "--preview", str(out), "--count", "3"])
    printed = capsys.readouterr().out
    assert "6 emoji, 3 groups" in printed and out.is_file()
