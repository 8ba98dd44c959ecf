"""Procedural rendering of the demo videos: a tool on a textured table, a bowl, a handheld camera.

Why it looks like this: the six motion classes all move the *same* striped tool, which looks the
same in every class and is put down at a random place and angle in the pause before each action,
so one frame cannot tell `slide_left` from `slide_right`, `rotate`, `shake`, `stir_slow` or
`stir_fast`; only the change between frames can. The two appearance classes add something
visible (a red ingredient falling into the bowl, a yellow stream filling it). The camera jitters
by up to 1 px (a smooth random walk in half-pixel steps), the brightness flickers and every
pixel gets sensor noise, so frame differences are never zero and "anything changed" is not a
motion cue either. The tool wraps around the frame edges (the table is a torus), so slides can
last any time at constant speed.

All sizes and speeds are fractions of the frame width (per second), so the dataset looks the
same at any `--size` and frame rate. Edges are antialiased, so sub-pixel motion shows. The sizes
and speeds are chosen for the models that must see them (issue 9): the demo's backbones look at
32 px crops at 7.5 fps, where the tool is 14 px long and a slide moves it 2-3 px per frame, and
the motion features live on a 2x2 map (ResNet res5); a tool a fifth of the frame long moving a
pixel per frame left a random-init LCDC at chance after 500 steps.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from stages.data.synth_plan import VideoPlan

SUPERSAMPLE = 2
MARGIN = 2  # px of table rendered beyond each frame edge, room for the camera jitter
MAX_JITTER = 1.0  # px
NOISE_STD = 3.0  # grey levels of per-pixel sensor noise
MAX_FLICKER = 0.04  # relative brightness change
_NOISE_LEVELS = np.array(
    [NOISE_STD * NormalDist().inv_cdf((i + 0.5) / 256) for i in range(256)], dtype=np.float32
)

# Geometry, in frame widths.
TOOL_LENGTH = 0.45
TOOL_WIDTH = 0.14
# Band period in tool lengths (0.2 frame widths): longer than the fastest step between frames
# (stir_fast, <= 0.151 frame widths at 7.5 fps, the demo's decode rate), so the stripes do not
# alias into a false, backwards motion.
BAND_PERIOD = 0.45
TOOL_ROW = 0.36  # resting height of the tool, in frame heights
BOWL_RADIUS = 0.1
BOWL_ROW = 0.74  # in frame heights
ITEM_RADIUS = 0.045
STREAM_HALF_WIDTH = 0.015
FILL_MAX = 0.8  # largest liquid radius during a pour, in bowl radii

# Motion, per second; ranges are drawn per segment. Slow and fast stirring do not overlap.
SLIDE_SPEED = (0.5, 0.7)  # frame widths
ROTATE_SPEED = (0.6, 0.8)  # revolutions
SHAKE_FREQUENCY = (1.8, 2.2)  # Hz
SHAKE_AMPLITUDE = (0.08, 0.12)  # frame widths
STIR_RADIUS = 0.12  # frame widths
STIR_SLOW = (0.4, 0.6)  # revolutions
STIR_FAST = (1.2, 1.5)  # revolutions
# Appearance actions leave no trace: the ingredient falls for the first 60% of `add_ingredient`
# and then sinks into the bowl; `pour` streams for 70% and the liquid then soaks in. A lasting
# change would make every later motion segment of the video look different from the earlier
# ones, i.e. give single frames a (spurious) cue to the motion classes.
ITEM_FALL = 0.6
POUR_STREAM = 0.7

# Colours (RGB).
TOOL_BODY = np.array([40.0, 90.0, 200.0])
TOOL_BAND = np.array([235.0, 235.0, 240.0])
TOOL_HANDLE = np.array([120.0, 70.0, 30.0])
BOWL_RIM = np.array([70.0, 70.0, 75.0])
BOWL_INSIDE = np.array([205.0, 205.0, 200.0])
LIQUID = np.array([235.0, 175.0, 40.0])
ITEM = np.array([200.0, 30.0, 40.0])


def frame_height(width: int) -> int:
    """4:3 frames with an even height (yuv420p needs even sizes)."""
    return 2 * round(width * 3 / 8)


@dataclass(frozen=True)
class Tracks:
    """Per-frame scene state; positions in frame pixels, angles in radians."""

    tool: np.ndarray  # (T, 3): x, y, angle
    item: np.ndarray  # (T, 3): x, y, radius (radius 0: no ingredient)
    fill: np.ndarray  # (T,): radius of the liquid in the bowl (0: empty)
    stream: np.ndarray  # (T,) bool: the yellow stream is pouring
    camera: np.ndarray  # (T, 2): x, y offset, multiples of 1 / SUPERSAMPLE
    gain: np.ndarray  # (T,): brightness factor


def table_palettes(rng: np.random.Generator, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """A low-saturation (light, dark) table colour pair per video, of a random hue: every
    recording its own table, so a model trained on some videos has seen many colours and a
    held-out group's tables are no new domain."""
    palettes = []
    for _ in range(count):
        hue = rng.uniform(0.0, 1.0)
        sat = rng.uniform(0.15, 0.35)
        light = np.array(colorsys.hsv_to_rgb(hue, sat, rng.uniform(0.62, 0.78))) * 255
        dark = np.array(colorsys.hsv_to_rgb(hue, sat + 0.1, rng.uniform(0.35, 0.45))) * 255
        palettes.append((light, dark))
    return palettes


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], exponent: float) -> np.ndarray:
    """1/f^exponent noise scaled to [-1, 1]."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    freq = np.hypot(fy, fx)
    freq[0, 0] = 1.0
    spectrum = np.fft.rfft2(rng.standard_normal(shape)) / freq**exponent
    spectrum[0, 0] = 0.0
    noise = np.fft.irfft2(spectrum, s=shape)
    return noise / np.abs(noise).max()


def _coverage(outside: np.ndarray) -> np.ndarray:
    """Antialiased coverage of a pixel from its signed distance (px, > 0 outside) to a shape."""
    return np.clip(0.5 - outside, 0.0, 1.0)[..., None]


def _paint(img: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Blend `colour` over `img` with per-pixel opacity `alpha`."""
    return img + (colour - img) * alpha


def _draw_disc(
    img: np.ndarray, x: np.ndarray, y: np.ndarray, disc: np.ndarray | tuple, colour: np.ndarray
) -> None:
    """Paint an antialiased disc (cx, cy, radius) in place, touching only its bounding box."""
    cx, cy, radius = disc
    rows = np.flatnonzero(np.abs(y - cy) < radius + 1)
    cols = np.flatnonzero(np.abs(x - cx) < radius + 1)
    box = np.ix_(rows, cols)
    edge = np.hypot(x[cols][None, :] - cx, y[rows][:, None] - cy) - radius
    img[box] = _paint(img[box], colour, _coverage(edge))


class Scene:
    """The static table and bowl of one video, plus the shapes drawn over them every frame.

    The table is rendered once at 2x with a margin for the camera and averaged down for each
    (half-pixel) camera offset; moving shapes are drawn at frame resolution with antialiased
    edges computed from their signed distance, within their bounding box only.
    """

    def __init__(
        self,
        width: int,
        height: int,
        palette: tuple[np.ndarray, np.ndarray],
        rng: np.random.Generator,
    ) -> None:
        self.width, self.height = width, height
        s = SUPERSAMPLE
        ext_h, ext_w = (height + 2 * MARGIN) * s, (width + 2 * MARGIN) * s
        # Hi-res pixel centres of the extended canvas, in frame pixels.
        ext_y = (np.arange(ext_h)[:, None] + 0.5) / s - MARGIN
        ext_x = (np.arange(ext_w)[None, :] + 0.5) / s - MARGIN

        light, dark = palette
        wobble = _smooth_noise(rng, (ext_h, ext_w), 2.0)
        period = rng.uniform(0.05, 0.09) * height * s
        grain = 0.5 + 0.5 * np.sin(2 * np.pi * (np.arange(ext_h)[:, None] / period + 1.5 * wobble))
        speckle = _smooth_noise(rng, (ext_h, ext_w), 0.8)
        mix = np.clip(0.6 * grain + 0.4 * (speckle + 1) / 2, 0, 1)[..., None]
        table = dark + (light - dark) * mix

        self.bowl_center = (rng.uniform(0.25, 0.75) * width, BOWL_ROW * height)
        self.bowl_radius = BOWL_RADIUS * width
        bowl = np.hypot(ext_x - self.bowl_center[0], ext_y - self.bowl_center[1])
        table[bowl < self.bowl_radius] = BOWL_INSIDE
        table[(bowl < self.bowl_radius) & (bowl > 0.85 * self.bowl_radius)] = BOWL_RIM
        self._table = table
        self._views: dict[tuple[int, int], np.ndarray] = {}

    def _view(self, ox: float, oy: float) -> np.ndarray:
        """The static layer as the camera sees it at offset (ox, oy), at frame resolution."""
        s = SUPERSAMPLE
        key = (round((MARGIN + oy) * s), round((MARGIN + ox) * s))
        if key not in self._views:
            r0, c0 = key
            crop = self._table[r0 : r0 + self.height * s, c0 : c0 + self.width * s]
            self._views[key] = crop.reshape(self.height, s, self.width, s, 3).mean(axis=(1, 3))
        return self._views[key]

    def render(self, tracks: Tracks, t: int, noise: np.ndarray) -> np.ndarray:
        """Frame t as uint8 (height, width, 3)."""
        ox, oy = tracks.camera[t]
        x = np.arange(self.width) + 0.5 + ox  # pixel centres in table coordinates
        y = np.arange(self.height) + 0.5 + oy
        img = self._view(ox, oy).copy()
        bx, by = self.bowl_center
        if tracks.fill[t] > 0:
            _draw_disc(img, x, y, (bx, by, tracks.fill[t]), LIQUID)
        if tracks.stream[t]:
            half = STREAM_HALF_WIDTH * self.width
            rows, cols = np.flatnonzero(y < by + 1), np.flatnonzero(np.abs(x - bx) < half + 1)
            sides = np.abs(x[cols] - bx)[None, :] - half
            outside = np.maximum(sides, (y[rows] - by)[:, None])
            box = np.ix_(rows, cols)
            img[box] = _paint(img[box], LIQUID, _coverage(outside))
        self._draw_tool(img, x, y, tracks.tool[t])
        if tracks.item[t, 2] > 0:
            _draw_disc(img, x, y, tracks.item[t], ITEM)
        return np.clip(np.rint(img * tracks.gain[t] + noise), 0, 255).astype(np.uint8)

    def _draw_tool(self, img: np.ndarray, x: np.ndarray, y: np.ndarray, pose: np.ndarray) -> None:
        """A blue blade with 2 light bands and a brown handle; it wraps around the frame edges."""
        tx, ty, angle = pose
        w, h = self.width, self.height
        length, half_width = TOOL_LENGTH * w, TOOL_WIDTH * w / 2
        dx = (x - tx + w / 2) % w - w / 2
        dy = (y - ty + h / 2) % h - h / 2
        reach = length / 2 + 1
        rows, cols = np.flatnonzero(np.abs(dy) < reach), np.flatnonzero(np.abs(dx) < reach)
        box = np.ix_(rows, cols)
        dx, dy = dx[cols][None, :], dy[rows][:, None]
        cos, sin = np.cos(angle), np.sin(angle)
        u = cos * dx + sin * dy  # along the blade, handle at +u
        v = cos * dy - sin * dx
        outline = np.maximum(np.abs(u) - length / 2, np.abs(v) - half_width)
        # Bands: the first 35% of each period; signed distance to the nearest band edge.
        period = length * BAND_PERIOD
        phase = ((u + length / 2) / period) % 1
        band = np.where(
            phase < 0.35, -np.minimum(phase, 0.35 - phase), np.minimum(phase - 0.35, 1 - phase)
        )
        colour = _paint(
            np.broadcast_to(TOOL_BODY, (*u.shape, 3)), TOOL_BAND, _coverage(band * period)
        )
        colour = _paint(colour, TOOL_HANDLE, _coverage(0.2 * length - u))
        img[box] = _paint(img[box], colour, _coverage(outline))


def _ar1(rng: np.random.Generator, n: int, keep: float, step: float, bound: float) -> np.ndarray:
    """A smooth, zero-mean random walk clipped to +-bound."""
    out = np.empty(n)
    value = 0.0
    for i, shock in enumerate(rng.normal(0.0, step, n)):
        value = float(np.clip(keep * value + shock, -bound, bound))
        out[i] = value
    return out


def motion_tracks(plan: VideoPlan, scene: Scene, fps: int, rng: np.random.Generator) -> Tracks:
    """Walk the plan's segments and move the scene; background frames hold the last state."""
    n, w, h = plan.num_frames, scene.width, scene.height
    tool = np.empty((n, 3))
    item = np.zeros((n, 3))
    fill = np.zeros(n)
    stream = np.zeros(n, dtype=bool)
    row = TOOL_ROW * h
    radius = STIR_RADIUS * w
    bx, by = scene.bowl_center
    done = 0
    for seg in plan.actions:
        # Put down somewhere new in every pause: an action's start pose says nothing of the
        # previous action, so no class can be read from where the tool rests.
        x, y, angle = rng.uniform(0, w), row, rng.uniform(0, 2 * np.pi)
        tool[done : seg.start] = (x, y, angle)
        k = np.arange(1, seg.end - seg.start + 1)
        seconds = k / fps
        xs, ys, angles = np.full(k.size, x), np.full(k.size, y), np.full(k.size, angle)
        direction = rng.choice([-1.0, 1.0])
        if seg.label in ("slide_left", "slide_right"):
            sign = -1.0 if seg.label == "slide_left" else 1.0
            xs = x + sign * rng.uniform(*SLIDE_SPEED) * w * seconds
        elif seg.label == "rotate":
            angles = angle + direction * 2 * np.pi * rng.uniform(*ROTATE_SPEED) * seconds
        elif seg.label == "shake":
            amplitude = rng.uniform(*SHAKE_AMPLITUDE) * w
            xs = x + amplitude * np.sin(2 * np.pi * rng.uniform(*SHAKE_FREQUENCY) * seconds)
        elif seg.label in ("stir_slow", "stir_fast"):
            speed = rng.uniform(*(STIR_SLOW if seg.label == "stir_slow" else STIR_FAST))
            # Start on a circle centred on the resting row, so y never drifts away from it.
            phase0 = np.arcsin(np.clip((y - row) / radius, -1.0, 1.0))
            cx = x - radius * np.cos(phase0)
            phase = phase0 + direction * 2 * np.pi * speed * seconds
            xs, ys = cx + radius * np.cos(phase), row + radius * np.sin(phase)
        elif seg.label == "add_ingredient":
            progress = k / k.size
            fall = np.minimum(progress / ITEM_FALL, 1.0) ** 2
            sink = np.clip((progress - ITEM_FALL) / (1 - ITEM_FALL), 0.0, 1.0)
            top = -ITEM_RADIUS * w
            item[seg.start : seg.end] = np.stack(
                [np.full(k.size, bx), top + (by - top) * fall, ITEM_RADIUS * w * (1 - sink)], 1
            )
        elif seg.label == "pour":
            progress = k / k.size
            stream[seg.start : seg.end] = progress <= POUR_STREAM
            rise = np.minimum(progress / POUR_STREAM, 1.0)
            soak = np.clip((progress - POUR_STREAM) / (1 - POUR_STREAM), 0.0, 1.0)
            fill[seg.start : seg.end] = FILL_MAX * scene.bowl_radius * rise * (1 - soak)
        else:
            raise ValueError(f"no renderer for action {seg.label!r}")
        x, y, angle = float(xs[-1] % w), float(ys[-1]), float(angles[-1] % (2 * np.pi))
        tool[seg.start : seg.end] = np.stack([xs % w, ys, angles], 1)
        done = seg.end
    tool[done:] = (x, y, angle)

    camera = np.stack([_ar1(rng, n, 0.9, 0.15, MAX_JITTER) for _ in range(2)], 1)
    camera = np.round(camera * SUPERSAMPLE) / SUPERSAMPLE
    gain = 1.0 + _ar1(rng, n, 0.9, 0.01, MAX_FLICKER)
    return Tracks(tool, item, fill, stream, camera, gain)


def render_video(
    plan: VideoPlan,
    width: int,
    fps: int,
    palette: tuple[np.ndarray, np.ndarray],
    rng: np.random.Generator,
) -> np.ndarray:
    """All frames of one planned video, uint8 (T, height, width, 3)."""
    height = frame_height(width)
    scene = Scene(width, height, palette, rng)
    tracks = motion_tracks(plan, scene, fps, rng)
    # Gaussian sensor noise, quantised to 256 levels: a table lookup of random bytes costs a
    # third of drawing normals, and noise is a large share of the generation time.
    noise = _NOISE_LEVELS[rng.integers(0, 256, (plan.num_frames, height, width, 3), np.uint8)]
    return np.stack([scene.render(tracks, t, noise[t]) for t in range(plan.num_frames)])
