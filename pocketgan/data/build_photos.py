"""Maintainer tool: (re)write pocketgan/data/photos.toml and the shipped validation/test photos.

Run once when the photo list changes (needs the three wallpaper packages: `make data`); users never need it.
Each validation/test photo ships under pocketgan/data/photos/: files up to SHIP_LONG_SIDE px are copied byte
for byte, larger ones are downscaled (Pillow LANCZOS) to SHIP_LONG_SIDE px on the long side and saved as
JPEG quality SHIP_QUALITY. Training photos are not shipped: they are read where their package installed them.

Example: python -m pocketgan.data.build_photos
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from PIL import Image

from pocketgan.data.photos import MANIFEST, PHOTOS_DIR, SHIP_LONG_SIDE, SHIP_QUALITY, source_path

PLASMA = ("plasma-workspace-wallpapers", "LGPL-3.0 (wallpaper metadata.json; package: GPL-2+)")
LOMIRI = ("lomiri-wallpapers-20.04", "CC-BY-SA-3.0")
# Ubuntu Touch 16.04's photos (licences per file in the package's copyright file). Added in stop 30 to grow
# validation from 4 to 9 photos and train from 10 to 18; which five went to validation was drawn with
# numpy.random.default_rng(20).permutation over the 13 photos' file names sorted case-insensitively.
LOMIRI16 = "lomiri-wallpapers-16.04"
# Stop 32: three more Debian packages of photographs (lxqt-themes' wallpapers, licence in the folder's
# License file; tuxpaint-data's templates, all by Bill Kendrick per its AUTHORS.txt; palapeli-data's puzzle
# photos, licence per file in their .desktop files). Train 18 -> 43, validation 9 -> 19, test unchanged. Which
# ten went to validation was drawn with numpy.random.default_rng(31).permutation over the 35 "package:file"
# names sorted case-insensitively (first ten).
LXQT = ("lxqt-themes", "CC-BY-SA-3.0 (the wallpapers' License file)")
TUXPAINT = ("tuxpaint-data", "GPL-2+", "Bill Kendrick")
PALAPELI = "palapeli-data"
# Stop 34: gcompris-qt-data's photographs of four activities (erase: animal close-ups at 1920 px; explore
# monuments, world animals and farm animals: 1024 px), 105 photos, every one a training photo (validation and
# test unchanged, so earlier validation figures stay comparable). Licence, author and source of each come
# from the README in its activity's resource folder (all CC0, public domain, CC-BY or CC-BY-SA); the rows
# are derived from those READMEs by `gcompris_rows`, not listed here.
GCOMPRIS = "gcompris-qt-data"
GCOMPRIS_FOLDERS = {  # activity/folder (under resource/) -> (name prefix, kind)
    "erase/": ("erase", "animal close-up"),
    "explore_monuments/": ("monument", "monument, architecture"),
    "explore_world_animals/animals/": ("world_animal", "wild animal"),
    "explore_farm_animals/animals/": ("farm_animal", "farm animal"),
}
SKIMAGE = "scikit-image"
SKLEARN = "scikit-learn"

# name, split, kind, source package, file, licence, author. Only photographs (and one digital painting,
# for the test split); the wallpapers' illustrations are left out.
PHOTOS = [
    # test: the two portraits and ten photos of other kinds, plus a painting
    ("astronaut", "test", "portrait", SKIMAGE, "skimage:astronaut.png", "public domain (NASA)", "NASA"),
    (
        "grace_hopper",
        "test",
        "portrait",
        "Debian facedetect (examples), committed here",
        "pocketgan:photos/grace_hopper.jpg",
        "public domain (US Navy)",
        "US Navy",
    ),
    ("evening_glow", "test", "landscape at sunset", *PLASMA[:1], "plasma:EveningGlow", PLASMA[1], "Ian Hex"),
    ("kite", "test", "sky", *PLASMA[:1], "plasma:Kite", PLASMA[1], "Risto Saukonpää"),
    (
        "fallen_leaf",
        "test",
        "foliage close-up",
        *PLASMA[:1],
        "plasma:FallenLeaf",
        PLASMA[1],
        "Martin Klapetek",
    ),
    (
        "darkest_hour",
        "test",
        "low light (lake at dusk)",
        *PLASMA[:1],
        "plasma:DarkestHour",
        PLASMA[1],
        "Risto Saukonpää",
    ),
    ("grey", "test", "architecture, black and white", *PLASMA[:1], "plasma:Grey", PLASMA[1], "Sigi Sagi"),
    (
        "kleiber",
        "test",
        "close-up, bird on a tree",
        *LOMIRI[:1],
        "lomiri:Kleiber_by_Lukas_Baubkus.jpg",
        LOMIRI[1],
        "Lukas Baubkus",
    ),
    ("coffee", "test", "indoor close-up", SKIMAGE, "skimage:coffee.png", "CC0", "Rachel Michetti"),
    ("chelsea", "test", "animal, indoor", SKIMAGE, "skimage:chelsea.png", "CC0", "Stefan van der Walt"),
    (
        "china",
        "test",
        "architecture in a landscape",
        SKLEARN,
        "sklearn:china.jpg",
        "CC-BY-2.0",
        "danielbuechele (Flickr)",
    ),
    ("flower", "test", "flower close-up", SKLEARN, "sklearn:flower.jpg", "CC-BY-2.0", "vultilion (Flickr)"),
    ("autumn", "test", "digital painting", *PLASMA[:1], "plasma:Autumn", PLASMA[1], "RJ Quiralta"),
    # validation: chooses best.pt and the recipe
    (
        "summer_1am",
        "validation",
        "lake at dusk",
        *PLASMA[:1],
        "plasma:summer_1am",
        PLASMA[1],
        "Risto Saukonpää",
    ),
    (
        "one_stands_out",
        "validation",
        "moss close-up",
        *PLASMA[:1],
        "plasma:OneStandsOut",
        PLASMA[1],
        "Risto Saukonpää",
    ),
    (
        "colorful_cups",
        "validation",
        "indoor close-up, saturated",
        *PLASMA[:1],
        "plasma:ColorfulCups",
        PLASMA[1],
        "Dmitri Popov",
    ),
    (
        "rocket",
        "validation",
        "outdoor, sky",
        SKIMAGE,
        "skimage:rocket.jpg",
        "public domain (SpaceX)",
        "SpaceX",
    ),
    # validation, from lomiri-wallpapers-16.04 (the seeded draw above)
    (
        "brushes",
        "validation",
        "close-up, saturated colours",
        LOMIRI16,
        "lomiri:Picture_1A_by_freespace.jpg",
        "CC-BY-4.0",
        'Trevor "Freespace"',
    ),
    (
        "fig",
        "validation",
        "food close-up, indoor",
        LOMIRI16,
        "lomiri:Picture_0B_by_freespace.jpg",
        "CC-BY-4.0",
        'Trevor "Freespace"',
    ),
    (
        "friends",
        "validation",
        "animals (two dogs)",
        LOMIRI16,
        "lomiri:friends_by_Aitzol_Berasategi.jpg",
        "CC-BY-4.0",
        "Aitzol Berasategi",
    ),
    (
        "aitzgorri",
        "validation",
        "landscape, autumn",
        LOMIRI16,
        "lomiri:aitzgorri_by_Aitzol_Berasategi.jpg",
        "CC-BY-4.0",
        "Aitzol Berasategi",
    ),
    (
        "life",
        "validation",
        "forest stream",
        LOMIRI16,
        "lomiri:life_by_Aitzol_Berasategi.jpg",
        "CC-BY-4.0",
        "Aitzol Berasategi",
    ),
    # train
    (
        "by_the_water",
        "train",
        "pier, shallow depth of field",
        *PLASMA[:1],
        "plasma:BytheWater",
        PLASMA[1],
        "Maciej Wiklo",
    ),
    (
        "cold_ripple",
        "train",
        "foggy pier, near grayscale",
        *PLASMA[:1],
        "plasma:ColdRipple",
        PLASMA[1],
        "Risto Saukonpää",
    ),
    ("path", "train", "forest path", *PLASMA[:1], "plasma:Path", PLASMA[1], "Risto Saukonpää"),
    (
        "infinite_sea",
        "train",
        "night sky over the sea (composite)",
        *LOMIRI[:1],
        "lomiri:Infinite-Sea_by_Aury88.jpg",
        LOMIRI[1],
        "Aury88",
    ),
    (
        "motorcycle_left",
        "train",
        "indoor, object",
        SKIMAGE,
        "skimage:motorcycle_left.png",
        "Middlebury stereo data set (see scikit-image)",
        "Middlebury",
    ),
    (
        "motorcycle_right",
        "train",
        "indoor, object (stereo pair of motorcycle_left)",
        SKIMAGE,
        "skimage:motorcycle_right.png",
        "Middlebury stereo data set (see scikit-image)",
        "Middlebury",
    ),
    ("retina", "train", "medical (fundus)", SKIMAGE, "skimage:retina.jpg", "CC-BY-4.0", "Mikael Häggström"),
    ("ihc", "train", "microscopy", SKIMAGE, "skimage:ihc.png", "public domain", "Yang et al."),
    (
        "hubble_deep_field",
        "train",
        "space",
        SKIMAGE,
        "skimage:hubble_deep_field.jpg",
        "public domain (NASA)",
        "NASA",
    ),
    (
        "colour_wheel",
        "train",
        "synthetic colour wheel",
        SKIMAGE,
        "skimage:color.png",
        "BSD-3-Clause",
        "scikit-image",
    ),
    # train, from lomiri-wallpapers-16.04 (the seeded draw above)
    (
        "wine",
        "train",
        "indoor, still life",
        LOMIRI16,
        "lomiri:Wine_by_Jakkub_Mede.jpg",
        "CC-BY-4.0",
        "Jakub Mede",
    ),
    (
        "free",
        "train",
        "indoor, bird under lamps",
        LOMIRI16,
        "lomiri:free_by_Peter_Nerlich.jpg",
        "CC-BY-SA-4.0",
        "Peter Nerlich",
    ),
    (
        "picos_de_europa",
        "train",
        "mountain landscape, clouds",
        LOMIRI16,
        "lomiri:picosdeeuropa_by_Aitzol_Berasategi.jpg",
        "CC-BY-4.0",
        "Aitzol Berasategi",
    ),
    (
        "dragonfly",
        "train",
        "foliage against the sky",
        LOMIRI16,
        "lomiri:Dragonfly_by_Bolly.jpg",
        "CC-BY-SA-4.0",
        '"Bolly"',
    ),
    (
        "bridge",
        "train",
        "beach, sky, cables",
        LOMIRI16,
        "lomiri:Bridge_by_Sander_Klootwijk.jpg",
        "CC-BY-SA-4.0",
        "Sander Klootwijk",
    ),
    (
        "greentock",
        "train",
        "clock close-up",
        LOMIRI16,
        "lomiri:greentock_by_Peter_Nerlich.jpg",
        "CC-BY-SA-4.0",
        "Peter Nerlich",
    ),
    (
        "sunset",
        "train",
        "sun low over hills",
        LOMIRI16,
        "lomiri:sunset_by_Aitzol_Berasategi.jpg",
        "CC-BY-4.0",
        "Aitzol Berasategi",
    ),
    (
        "seeding",
        "train",
        "dandelions, shallow depth of field",
        LOMIRI16,
        "lomiri:seeding_by_Clements_Engelhardt.jpg",
        "CC0-1.0",
        "Clemens Engelhardt",
    ),
    # validation, from lxqt-themes, tuxpaint-data and palapeli-data (the seeded draw above)
    ("beam", "validation", "light rays over hills, dark", *LXQT[:1], "lxqt:beam.png", LXQT[1], "stefonarch"),
    (
        "cloud",
        "validation",
        "sky of small clouds",
        *LXQT[:1],
        "lxqt:cloud.png",
        LXQT[1],
        "not in the License file's credits",
    ),
    ("flowers", "validation", "wildflower meadow", *LXQT[:1], "lxqt:flowers.png", LXQT[1], "stefonarch"),
    (
        "lighthouse",
        "validation",
        "lighthouse, sky",
        TUXPAINT[0],
        "tuxpaint:lighthouse.jpg",
        TUXPAINT[1],
        TUXPAINT[2],
    ),
    (
        "ocean_splash",
        "validation",
        "ocean splash on rocks",
        TUXPAINT[0],
        "tuxpaint:ocean_splash.jpg",
        TUXPAINT[1],
        TUXPAINT[2],
    ),
    (
        "spiders_web",
        "validation",
        "spider web close-up",
        TUXPAINT[0],
        "tuxpaint:spiders_web.jpg",
        TUXPAINT[1],
        TUXPAINT[2],
    ),
    (
        "sun_behind_clouds",
        "validation",
        "sun behind clouds",
        TUXPAINT[0],
        "tuxpaint:sun_behind_clouds.jpg",
        TUXPAINT[1],
        TUXPAINT[2],
    ),
    (
        "trees_at_dusk",
        "validation",
        "trees at dusk, low light",
        TUXPAINT[0],
        "tuxpaint:trees_at_dusk.jpg",
        TUXPAINT[1],
        TUXPAINT[2],
    ),
    (
        "castle_maintenon",
        "validation",
        "castle, blue sky",
        PALAPELI,
        "palapeli:castle-maintenon.jpg",
        "GFDL",
        "Eric Pouhier",
    ),
    (
        "panther_chameleon",
        "validation",
        "chameleon on a branch",
        PALAPELI,
        "palapeli:panther-chameleon-female.jpg",
        "GNU-FDL",
        "B. Navez and others",
    ),
    # train, from lxqt-themes, tuxpaint-data and palapeli-data
    (
        "after_the_rain",
        "train",
        "sunset clouds over mountains",
        *LXQT[:1],
        "lxqt:after-the-rain.jpg",
        LXQT[1],
        "stefonarch",
    ),
    (
        "appleflower",
        "train",
        "blossom close-up, green bokeh",
        *LXQT[:1],
        "lxqt:appleflower.png",
        LXQT[1],
        "stefonarch",
    ),
    (
        "butterfly_kenneth_wimer",
        "train",
        "butterfly close-up, pale bokeh",
        *LXQT[:1],
        "lxqt:Butterfly-Kenneth-Wimer.jpg",
        LXQT[1],
        "Kenneth Wimer (file name; not in the License file's credits)",
    ),
    (
        "butterfly",
        "train",
        "butterfly close-up, dark background",
        *LXQT[:1],
        "lxqt:butterfly.png",
        LXQT[1],
        "stefonarch",
    ),
    ("drop", "train", "water drop on grass, macro", *LXQT[:1], "lxqt:drop.png", LXQT[1], "stefonarch"),
    ("fog", "train", "fog over a field", *LXQT[:1], "lxqt:fog.jpg", LXQT[1], "stefonarch"),
    (
        "this_is_not_windows",
        "train",
        "rolling hills, blue sky",
        *LXQT[:1],
        "lxqt:this-is-not-windows.jpg",
        LXQT[1],
        "stefonarch",
    ),
    (
        "valendas",
        "train",
        "mountain skyline under clouds",
        *LXQT[:1],
        "lxqt:Valendas.png",
        LXQT[1],
        "not in the License file's credits",
    ),
    (
        "burnt_bark",
        "train",
        "burnt bark texture",
        TUXPAINT[0],
        "tuxpaint:burnt_bark.jpg",
        TUXPAINT[1],
        TUXPAINT[2],
    ),
    ("cliff", "train", "cliff face", TUXPAINT[0], "tuxpaint:cliff.jpg", TUXPAINT[1], TUXPAINT[2]),
    (
        "corn_maze",
        "train",
        "corn maze from above",
        TUXPAINT[0],
        "tuxpaint:corn_maze.jpg",
        TUXPAINT[1],
        TUXPAINT[2],
    ),
    (
        "jellyfish",
        "train",
        "jellyfish in an aquarium, low light",
        TUXPAINT[0],
        "tuxpaint:jellyfish.jpg",
        TUXPAINT[1],
        TUXPAINT[2],
    ),
    (
        "mossy_bark",
        "train",
        "mossy bark texture",
        TUXPAINT[0],
        "tuxpaint:mossy_bark.jpg",
        TUXPAINT[1],
        TUXPAINT[2],
    ),
    ("mossy_log", "train", "mossy log", TUXPAINT[0], "tuxpaint:mossy_log.jpg", TUXPAINT[1], TUXPAINT[2]),
    ("mudstone", "train", "mudstone texture", TUXPAINT[0], "tuxpaint:mudstone.jpg", TUXPAINT[1], TUXPAINT[2]),
    (
        "ocean_waves",
        "train",
        "ocean waves",
        TUXPAINT[0],
        "tuxpaint:ocean_waves.jpg",
        TUXPAINT[1],
        TUXPAINT[2],
    ),
    (
        "redwoods_above",
        "train",
        "redwoods from below, sky",
        TUXPAINT[0],
        "tuxpaint:redwoods_above.jpg",
        TUXPAINT[1],
        TUXPAINT[2],
    ),
    ("rocks", "train", "river rocks", TUXPAINT[0], "tuxpaint:rocks.jpg", TUXPAINT[1], TUXPAINT[2]),
    ("sheep", "train", "sheep on a field", TUXPAINT[0], "tuxpaint:sheep.jpg", TUXPAINT[1], TUXPAINT[2]),
    (
        "sun_behind_leaves",
        "train",
        "sun behind leaves, backlit",
        TUXPAINT[0],
        "tuxpaint:sun_behind_leaves.jpg",
        TUXPAINT[1],
        TUXPAINT[2],
    ),
    (
        "trees_above",
        "train",
        "trees from below",
        TUXPAINT[0],
        "tuxpaint:trees_above.jpg",
        TUXPAINT[1],
        TUXPAINT[2],
    ),
    (
        "wool_mill_machine",
        "train",
        "wool mill gears, indoor",
        TUXPAINT[0],
        "tuxpaint:wool_mill_machine.jpg",
        TUXPAINT[1],
        TUXPAINT[2],
    ),
    (
        "cincinnati_bridge",
        "train",
        "bridge at night, city lights",
        PALAPELI,
        "palapeli:cincinnati-bridge.jpg",
        "public domain",
        "Derek Jensen",
    ),
    (
        "citrus_fruits",
        "train",
        "food close-up, backlit citrus slices",
        PALAPELI,
        "palapeli:citrus-fruits.jpg",
        "public domain",
        "US Department of Agriculture",
    ),
    (
        "honey_bee",
        "train",
        "bee on an aster, macro",
        PALAPELI,
        "palapeli:european-honey-bee.jpg",
        "public domain",
        "John Severns",
    ),
]


def _readme_stanzas(text: str) -> list[dict[str, str]]:
    """GCompris' resource README: blank-line separated stanzas of `Key: value` lines; `Files:` takes the
    rest of its line and the lines after it."""
    stanzas = []
    for block in text.strip().split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            head, sep, rest = line.partition(":")
            if sep and head in ("Copyright", "License", "Source", "Comments", "Files"):
                key = head
                fields[key] = rest.strip()
            elif key == "Files":
                fields[key] = f"{fields[key]} {line.strip()}".strip()
        stanzas.append(fields)
    return stanzas


def gcompris_rows() -> list[tuple[str, str, str, str, str, str, str]]:
    """PHOTOS rows for the photographs (.webp/.jpg) named in the READMEs of GCOMPRIS_FOLDERS, in order."""
    from pocketgan.data.photos import GCOMPRIS_RCC, gcompris_member
    from pocketgan.data.rcc import read_rcc

    rows = []
    for folder, (prefix, kind) in GCOMPRIS_FOLDERS.items():
        activity, _, sub = folder.partition("/")
        files = read_rcc(GCOMPRIS_RCC / f"{activity}.rcc")
        readme = files[gcompris_member(activity, f"{sub}README")].decode()
        for stanza in _readme_stanzas(readme):
            for member in stanza.get("Files", "").split():
                if not member.lower().endswith((".webp", ".jpg", ".jpeg")):
                    continue
                if gcompris_member(activity, f"{sub}{member}") not in files:
                    print(f"skipped {activity}/{sub}{member}: named in the README, not in the bundle")
                    continue
                stem = Path(member).stem
                licence = (
                    f"{stanza['License']} ({stanza['Source']})" if "Source" in stanza else stanza["License"]
                )
                file = f"gcompris:{activity}/{sub}{member}"
                rows.append((f"{prefix}_{stem}", "train", kind, GCOMPRIS, file, licence, stanza["Copyright"]))
    return rows


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ship(name: str, path: Path) -> Path:
    with Image.open(path) as image:
        if max(image.size) <= SHIP_LONG_SIDE:
            target = PHOTOS_DIR / f"{name}{path.suffix.lower()}"
            if target.resolve() != path.resolve():
                shutil.copyfile(path, target)
            return target
        scale = SHIP_LONG_SIDE / max(image.size)
        size = (round(image.width * scale), round(image.height * scale))
        target = PHOTOS_DIR / f"{name}.jpg"
        image.convert("RGB").resize(size, Image.Resampling.LANCZOS).save(target, quality=SHIP_QUALITY)
        return target


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def main() -> None:
    PHOTOS_DIR.mkdir(exist_ok=True)
    blocks = [
        "# The photo set of pocketgan.data: one entry per photo, its split (train / validation / test), its\n"
        "# source and licence. Written by `python -m pocketgan.data.build_photos`; validation and test photos\n"
        "# ship in photos/ (`shipped`, `shipped_sha256`), training photos are read from `file`.\n"
    ]
    rows = PHOTOS + gcompris_rows()
    names = [row[0] for row in rows]
    if len(set(names)) != len(names):
        raise SystemExit(f"duplicate photo names: {sorted({n for n in names if names.count(n) > 1})}")
    for name, split, kind, package, file, licence, author in rows:
        path = source_path(file)
        with Image.open(path) as image:
            width, height = image.size
        entry = {
            "name": name,
            "split": split,
            "kind": kind,
            "source": package,
            "file": file,
            "licence": licence,
            "author": author,
            "original_size": f"[{width}, {height}]",
            "sha256": _sha256(path),
        }
        if split != "train":
            shipped = _ship(name, path)
            entry["shipped"] = shipped.name
            entry["shipped_sha256"] = _sha256(shipped)
        lines = ["[[photo]]"]
        for key, value in entry.items():
            rendered = value if key == "original_size" else _toml_string(value)
            lines.append(f"{key} = {rendered}")
        blocks.append("\n".join(lines) + "\n")
    MANIFEST.write_text("\n".join(blocks))


if __name__ == "__main__":
    main()
