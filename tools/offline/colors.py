"""Pixel colour naming: the dominant colour of an object, robust to the background around it.

Every pixel gets one of twelve names by simple HSV rules (achromatic first: black, white, gray;
then hue bands, with brown = dark or greyish orange/red and pink = pale red/magenta). A region's
colour distribution is a weighted histogram of those names:

- with a mask, only the mask's pixels count;
- with a box, pixels are weighted by a centred Gaussian (objects fill the middle of their box,
  background creeps in at the corners), and colours that are commoner in a ring *around* the box
  than inside it are discounted (the red wall behind a white truck, the street behind a bus);
- salience: saturated colours count more than black and gray (shadows, hair, asphalt); for
  vehicles (``object_name`` "bus", "car", ...) black counts much less still, because windows,
  tyres and the shadow underneath are dark on every vehicle, whatever its paint.
"""

from __future__ import annotations

import cv2
import numpy as np

from vpagent.tools.offline._image import as_rgb, int_box
from vpagent.tools.offline.coco_names import singular
from vpagent.tools.types import Box

PALETTE: tuple[str, ...] = (
    "black", "white", "gray", "red", "orange", "yellow", "green", "blue", "purple", "pink",
    "brown",
)  # fmt: skip
# Other colour words and the palette colours they cover.
ALIASES: dict[str, tuple[str, ...]] = {
    "grey": ("gray",), "silver": ("gray", "white"), "golden": ("yellow", "orange"),
    "gold": ("yellow", "orange"), "blond": ("yellow", "orange"), "blonde": ("yellow", "orange"),
    "tan": ("brown", "orange"), "beige": ("brown", "white"), "cream": ("white", "brown"),
    "violet": ("purple",), "lavender": ("purple",), "navy": ("blue", "black"), "cyan": ("blue",),
    "turquoise": ("blue", "green"), "teal": ("green", "blue"), "maroon": ("red", "brown"),
    "crimson": ("red",), "scarlet": ("red",), "magenta": ("pink", "purple"),
}  # fmt: skip
COLOR_WORDS = frozenset(PALETTE) | frozenset(ALIASES)

MASK_SIDE = 120  # object_mask: GrabCut works on the crop scaled to this longest side
MASK_MIN_SIDE = 12  # ... not on crops smaller than this
MASK_RIM = 0.08  # ... the crop's rim of this width seeds the background model
MASK_ITERATIONS = 3
MASK_SEEDS = 3  # ... cuts with OpenCV's RNG seeded 0, 1, 2; a pixel is kept by majority: one
# cut of a blue-and-white bus kept 95% of the crop (blue) and another all of it (white)
MASK_MIN_SHARE = 0.15  # ... a cut keeping less of the crop than this is not trusted
MASK_MAX_SHARE = 0.98  # ... nor one keeping more: it separated nothing (centre-weight instead)
EXPOSURE_TARGET = 230.0  # a region's 95th-percentile value is brightened towards this ...
EXPOSURE_GAIN = 1.5  # ... by at most this factor
SHADE_VALUE = 0.5  # pixels at least this bright vote fully ...
SHADE_FLOOR = 0.3  # ... black ones with this weight
MAIN_SHARE = 0.2  # is_main_color: a main colour has at least this share ...
MAIN_RELATIVE = 0.5  # ... and at least this fraction of the dominant colour's share
MAX_PIXELS = 160_000  # regions are downsampled to about this many pixels
CENTER_SIGMA = 0.35  # Gaussian width as a fraction of the box size
RING = 0.25  # background ring width around the box, as a fraction of its size
BACKGROUND_POWER = 1.0  # colours commoner in the ring than inside are scaled by the ratio^this
# Salience: how much a pixel of each colour counts when naming the object. A saturated colour is
# what people name an object by even when it covers a minority of it; shadows and hair are dark.
_SATURATED = ("red", "orange", "yellow", "green", "blue", "purple", "pink")
SALIENCE = {"black": 0.6, "gray": 0.8, "white": 1.0, "brown": 1.0, **dict.fromkeys(_SATURATED, 1.5)}
# Vehicles: windows, tyres and the shadow underneath are dark whatever the paint (a blue bus is
# half black pixels), so black counts much less. Tuned on truck.jpg, bus.jpg and groceries.jpg.
VEHICLE_SALIENCE = {**SALIENCE, "black": 0.3, "gray": 0.7}
VEHICLE_WORDS = frozenset({
    "bus", "car", "truck", "van", "vehicle", "train", "tram", "boat", "ship", "airplane", "plane",
    "motorcycle", "bicycle", "bike", "taxi", "suv", "pickup", "jeep", "lorry", "minibus", "coach",
})  # fmt: skip


def palette_names(word: str) -> tuple[str, ...]:
    """The palette colours a colour word covers ('grey' -> gray, 'golden' -> yellow, orange)."""
    word = word.strip().lower()
    if word in PALETTE:
        return (word,)
    return ALIASES.get(word, ())


def canonical(word: str) -> str | None:
    """The main palette name of a colour word ('grey' -> 'gray'), or None."""
    names = palette_names(word)
    return names[0] if names else None


def salience_for(object_name: str | None) -> dict[str, float]:
    """The salience table for an object: the vehicle table for vehicle names."""
    if object_name:
        words = object_name.lower().replace("-", " ").split()
        if VEHICLE_WORDS.intersection(words) or VEHICLE_WORDS.intersection(map(singular, words)):
            return VEHICLE_SALIENCE
    return SALIENCE


def pixel_names(rgb: np.ndarray) -> np.ndarray:
    """Palette index per pixel, shape (H, W), for an RGB uint8 image."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV_FULL)  # H in 0..255 for the full circle
    hue = hsv[..., 0].astype(np.float32) * (360.0 / 256.0)
    sat = hsv[..., 1].astype(np.float32) / 255.0
    val = hsv[..., 2].astype(np.float32) / 255.0
    names = np.full(hue.shape, PALETTE.index("gray"), dtype=np.int8)

    # Dark pixels are shadows, tyres and windows unless strongly saturated; light pixels with a
    # faint tint are white under coloured light (bluish in the shade, creamy indoors).
    black = (val < 0.25) | ((val < 0.45) & (sat < 0.5))
    achromatic = (sat < 0.18) | (sat * val < 0.08) | ((val >= 0.65) & (sat < 0.25))
    white = achromatic & (val >= 0.65) & ~black
    gray = achromatic & ~white & ~black

    def band(lo: float, hi: float) -> np.ndarray:
        return (hue >= lo) & (hue < hi)

    chromatic = ~achromatic & ~black
    red = band(0, 15) | band(340, 360.1)
    orange = band(15, 42)
    yellow = band(42, 70)
    green = band(70, 170)
    blue = band(170, 255)
    purple = band(255, 290)
    magenta = band(290, 340)
    brownish = (red | orange) & ((val < 0.6) | ((sat < 0.5) & (val < 0.8)))
    pinkish = (red | magenta) & (sat < 0.45) & (val > 0.6)

    for name, where in (
        ("red", red),
        ("orange", orange),
        ("yellow", yellow),
        ("green", green),
        ("blue", blue),
        ("purple", purple),
        ("pink", magenta),
        ("brown", brownish),
        ("pink", pinkish & ~brownish),
    ):
        names[chromatic & where] = PALETTE.index(name)
    names[gray] = PALETTE.index("gray")
    names[white] = PALETTE.index("white")
    names[black] = PALETTE.index("black")
    return names


def _downsample(rgb: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    height, width = rgb.shape[:2]
    scale = min(1.0, float(np.sqrt(MAX_PIXELS / max(height * width, 1))))
    if scale >= 1.0:
        return rgb, mask
    size = (max(1, int(width * scale)), max(1, int(height * scale)))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    if mask is not None:
        mask = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    return small, mask


def _histogram(names: np.ndarray, weights: np.ndarray) -> np.ndarray:
    hist = np.bincount(names.ravel(), weights=weights.ravel(), minlength=len(PALETTE))
    total = hist.sum()
    return hist / total if total > 0 else hist


def _exposed(region: np.ndarray, photo: np.ndarray) -> np.ndarray:
    """The region brightened (at most EXPOSURE_GAIN times) so that the photo's brightest pixels
    (95th percentile of the value) would reach EXPOSURE_TARGET: in a dim photo an object is
    not black; in a well-lit one a black object stays black."""
    step = max(1, int(np.sqrt(photo.shape[0] * photo.shape[1] / MAX_PIXELS)))
    bright = float(np.percentile(photo[::step, ::step].max(axis=2), 95))
    gain = min(EXPOSURE_GAIN, EXPOSURE_TARGET / max(bright, 1.0))
    if gain <= 1.0:
        return region
    return np.clip(region.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def _light_weights(rgb: np.ndarray) -> np.ndarray:
    """Per-pixel vote: a pixel in shade says little about the paint or fur under it, so votes
    fall from 1 at value >= SHADE_VALUE to SHADE_FLOOR at value 0 (HSV value, 0..1)."""
    value = rgb.max(axis=2).astype(np.float32) / 255.0
    return SHADE_FLOOR + (1.0 - SHADE_FLOOR) * np.clip(value / SHADE_VALUE, 0.0, 1.0)


def _center_weights(height: int, width: int) -> np.ndarray:
    ys = (np.arange(height) + 0.5) / height - 0.5
    xs = (np.arange(width) + 0.5) / width - 0.5
    gy = np.exp(-0.5 * (ys / CENTER_SIGMA) ** 2)
    gx = np.exp(-0.5 * (xs / CENTER_SIGMA) ** 2)
    return (gy[:, None] * gx[None, :]).astype(np.float32)


def color_distribution(
    image: np.ndarray,
    box: Box | None = None,
    mask: np.ndarray | None = None,
    object_name: str | None = None,
) -> dict[str, float]:
    """Salience-weighted share of each palette colour in the region, summing to 1.

    ``mask`` (bool, image-sized) restricts the pixels; otherwise ``box`` (or the whole image)
    is centre-weighted and compared with the ring of pixels around it. ``object_name`` picks the
    salience table (vehicles discount dark pixels more).
    """
    rgb = as_rgb(image)
    height, width = rgb.shape[:2]
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (height, width):
            raise ValueError(f"mask shape {mask.shape} != image shape {(height, width)}")
        if box is None:
            ys, xs = np.nonzero(mask)
            if len(xs) == 0:
                return dict.fromkeys(PALETTE, 0.0)
            box = Box(x0=xs.min(), y0=ys.min(), x1=xs.max() + 1, y1=ys.max() + 1)
    x0, y0, x1, y1 = int_box(box, width, height)
    region = rgb[y0:y1, x0:x1]
    region_mask = mask[y0:y1, x0:x1] if mask is not None else None
    small, small_mask = _downsample(region, region_mask)
    if (x1 - x0) * (y1 - y0) < height * width:  # a box in a photo: expose by the whole photo
        small = _exposed(small, rgb)
    names = pixel_names(small)
    light = _light_weights(small)
    if small_mask is not None:
        inside = _histogram(names, small_mask.astype(np.float32) * light)
    else:
        inside = _histogram(names, _center_weights(*names.shape) * light)
        background = _ring_histogram(rgb, (x0, y0, x1, y1))
        if background is not None:
            # A colour more common around the box than inside it is mostly background: scale it
            # by inside/around. Colours the object shares with its surroundings keep their share.
            ratio = np.divide(inside, background, out=np.ones_like(inside), where=background > 0)
            inside = inside * np.clip(ratio, 0.0, 1.0) ** BACKGROUND_POWER
    salience = salience_for(object_name)
    inside = inside * np.array([salience[name] for name in PALETTE])
    total = inside.sum()
    shares = inside / total if total > 0 else inside
    return {name: float(shares[i]) for i, name in enumerate(PALETTE)}


def _ring_histogram(rgb: np.ndarray, bounds: tuple[int, int, int, int]) -> np.ndarray | None:
    """Colour shares in a ring around the box (None when the box fills the image)."""
    height, width = rgb.shape[:2]
    x0, y0, x1, y1 = bounds
    pad_x, pad_y = int((x1 - x0) * RING) + 1, int((y1 - y0) * RING) + 1
    ox0, oy0 = max(0, x0 - pad_x), max(0, y0 - pad_y)
    ox1, oy1 = min(width, x1 + pad_x), min(height, y1 + pad_y)
    outer = rgb[oy0:oy1, ox0:ox1]
    ring = np.ones(outer.shape[:2], dtype=bool)
    ring[y0 - oy0 : y1 - oy0, x0 - ox0 : x1 - ox0] = False
    if ring.sum() < 0.1 * (x1 - x0) * (y1 - y0):
        return None
    small, small_ring = _downsample(outer, ring)
    assert small_ring is not None
    return _histogram(pixel_names(small), small_ring.astype(np.float32))


def object_mask(crop: np.ndarray) -> np.ndarray | None:
    """The object's own pixels in a crop of its box: GrabCut seeded with the box's rim as
    probable background and the inside as probable object, a pixel kept when most of
    MASK_SEEDS cuts keep it. None when that keeps under MASK_MIN_SHARE of the crop (a thin or
    camouflaged object) or over MASK_MAX_SHARE (nothing was cut away): use the whole box."""
    rgb = as_rgb(crop)
    height, width = rgb.shape[:2]
    if min(height, width) < MASK_MIN_SIDE:
        return None
    scale = min(1.0, MASK_SIDE / max(height, width))
    small = cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))))
    bgr = np.ascontiguousarray(small[..., ::-1])
    votes = sum(_grabcut(bgr, seed) for seed in range(MASK_SEEDS))
    mask = votes * 2 > MASK_SEEDS
    if not MASK_MIN_SHARE <= mask.mean() <= MASK_MAX_SHARE:
        return None
    full = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
    return full > 0


def _grabcut(bgr: np.ndarray, seed: int) -> np.ndarray:
    """One GrabCut of a crop (rim: probable background), as 0/1 per pixel. Its k-means draws
    from OpenCV's RNG, reseeded here: unseeded, every earlier call changed the result."""
    sh, sw = bgr.shape[:2]
    rim_y, rim_x = max(1, int(MASK_RIM * sh)), max(1, int(MASK_RIM * sw))
    labels = np.full((sh, sw), cv2.GC_PR_FGD, dtype=np.uint8)
    labels[:rim_y, :] = labels[-rim_y:, :] = cv2.GC_PR_BGD
    labels[:, :rim_x] = labels[:, -rim_x:] = cv2.GC_PR_BGD
    background, foreground = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.setRNGSeed(seed)
    cv2.grabCut(bgr, labels, None, background, foreground, MASK_ITERATIONS, cv2.GC_INIT_WITH_MASK)
    return ((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)).astype(np.uint8)


def object_distribution(crop: np.ndarray, object_name: str | None = None) -> dict[str, float]:
    """Colour shares of the object in a crop of its box, from its own pixels (object_mask)
    where the cut succeeds, else from the centre-weighted box."""
    rgb = as_rgb(crop)
    return color_distribution(rgb, mask=object_mask(rgb), object_name=object_name)


def name_color(
    image: np.ndarray,
    box: Box | None = None,
    mask: np.ndarray | None = None,
    object_name: str | None = None,
) -> str:
    """The dominant colour name of the region (see :func:`color_distribution`)."""
    shares = color_distribution(image, box, mask, object_name)
    return max(shares, key=shares.__getitem__)


def ranked_colors(
    image: np.ndarray,
    box: Box | None = None,
    mask: np.ndarray | None = None,
    object_name: str | None = None,
    k: int = 3,
) -> list[tuple[str, float]]:
    """The ``k`` main colours with their shares, best first."""
    shares = color_distribution(image, box, mask, object_name)
    return sorted(shares.items(), key=lambda item: -item[1])[:k]


def color_share(shares: dict[str, float], color: str) -> float:
    """The share a colour word gets from a distribution (aliases sum their palette colours)."""
    names = palette_names(color)
    if not names:
        raise ValueError(f"'{color}' is not a colour word this namer knows: {sorted(COLOR_WORDS)}")
    return float(sum(shares[name] for name in names))


def has_color(
    image: np.ndarray,
    color: str,
    box: Box | None = None,
    mask: np.ndarray | None = None,
    object_name: str | None = None,
) -> bool:
    """Whether ``color`` is a main colour of the region (see :func:`is_main_color`)."""
    return is_main_color(color_distribution(image, box, mask, object_name), color)


def is_main_color(shares: dict[str, float], color: str) -> bool:
    """At least MAIN_SHARE of the distribution and at least MAIN_RELATIVE times the share of
    the dominant colour (a blue-and-white bus is both)."""
    share = color_share(shares, color)
    return share >= MAIN_SHARE and share >= MAIN_RELATIVE * max(shares.values())
