"""Intact-skin height fields w = h(u, v) in a local frame: u, v tangent, w out of the body (metres)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

SHAPES = ("flat", "limb", "heel")
# Fraction of the limb radius (or of the heel's ellipse) kept: beyond it the surface turns away too steeply.
VALID_FRACTION = 0.85
UNBOUNDED = 1.0  # metres: stands for "no edge yet" until the domain is fitted around the wound


@dataclass(frozen=True)
class Waves:
    """A sum of plane waves amp sin(ku u + kv v + phase): a smooth random field with an exact gradient."""

    amp: np.ndarray
    ku: np.ndarray
    kv: np.ndarray
    phase: np.ndarray

    def value(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """The field at (u, v)."""
        return np.sin(self._arg(u, v)) @ self.amp

    def gradient(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Partial derivatives of the field along u and v."""
        c = np.cos(self._arg(u, v))
        return c @ (self.amp * self.ku), c @ (self.amp * self.kv)

    def _arg(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return np.multiply.outer(u, self.ku) + np.multiply.outer(v, self.kv) + self.phase


def random_waves(rng: np.random.Generator, count: int, amplitude: float,
                 wavelength: tuple[float, float]) -> Waves:
    """Waves whose amplitudes add up to `amplitude`, wavelengths in the given range, random directions."""
    amp = amplitude * rng.dirichlet(np.ones(count))
    k = 2 * np.pi / rng.uniform(*wavelength, size=count)
    angle = rng.uniform(0, 2 * np.pi, size=count)
    return Waves(amp, k * np.cos(angle), k * np.sin(angle), rng.uniform(0, 2 * np.pi, size=count))


def no_waves() -> Waves:
    """A field that is zero everywhere."""
    zero = np.zeros(1)
    return Waves(zero, zero, zero, zero)


@dataclass(frozen=True)
class Surface:
    """Intact skin S(u, v) = (u, v, h(u, v)) over a domain; radii and extents in metres."""

    shape: str
    radii: tuple[float, ...] = ()  # limb: (r,), heel: (a, b, c), flat: ()
    taper: float = 0.0  # limb: dr/dv
    undulation: Waves = field(default_factory=no_waves)
    half_u: float = UNBOUNDED
    half_v: float = UNBOUNDED

    def height(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """h and its partial derivatives h_u, h_v."""
        h, hu, hv = _base_height(self, np.asarray(u, float), np.asarray(v, float))
        gu, gv = self.undulation.gradient(u, v)
        return h + self.undulation.value(u, v), hu + gu, hv + gv

    def points(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """S(u, v), shape (..., 3)."""
        return np.stack([u, v, self.height(u, v)[0]], axis=-1)

    def frame(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """S(u, v), the outward unit normal N and the area element J = |S_u x S_v|."""
        h, hu, hv = self.height(u, v)
        jac = np.sqrt(1.0 + hu**2 + hv**2)
        normal = np.stack([-hu, -hv, np.ones_like(hu)], axis=-1) / jac[..., None]
        return np.stack([u, v, h], axis=-1), normal, jac

    def margin(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """A lower bound on the (u, v) distance to the domain's edge; negative outside."""
        if self.shape == "heel":
            a, b = self.radii[:2]
            return (VALID_FRACTION - np.sqrt((u / a) ** 2 + (v / b) ** 2)) * min(a, b)
        along_v = self.half_v - np.abs(v)
        if self.shape == "limb":
            return np.minimum(VALID_FRACTION * (self.radii[0] + self.taper * v) - np.abs(u), along_v)
        return np.minimum(self.half_u - np.abs(u), along_v)

    def bounds(self) -> tuple[float, float, float, float]:
        """(u_min, u_max, v_min, v_max) of a box holding the domain."""
        if self.shape == "heel":
            a, b = self.radii[:2]
            return -VALID_FRACTION * a, VALID_FRACTION * a, -VALID_FRACTION * b, VALID_FRACTION * b
        if self.shape == "limb":
            half_u = VALID_FRACTION * (self.radii[0] + abs(self.taper) * self.half_v)
            return -half_u, half_u, -self.half_v, self.half_v
        return -self.half_u, self.half_u, -self.half_v, self.half_v

    def skin_grid(self, spacing: float) -> tuple[np.ndarray, np.ndarray]:
        """Sample (u, v) over the domain spaced at most about `spacing` apart on the surface."""
        u0, u1, v0, v1 = self.bounds()
        if self.shape == "flat":
            u = np.arange(u0, u1 + spacing / 2, spacing)
            v = np.arange(v0, v1 + spacing / 2, spacing)
        else:  # uniform in angle, so that steep sides are not sampled sparsely
            if self.shape == "limb":
                u = _arc_axis(u0, u1, self.radii[0] + abs(self.taper) * self.half_v, spacing)
                v = np.arange(v0, v1 + spacing / 2, spacing)
            else:
                u = _arc_axis(u0, u1, max(self.radii[::2]), spacing)
                v = _arc_axis(v0, v1, max(self.radii[1:]), spacing)
        uu, vv = np.meshgrid(u, v)
        keep = self.margin(uu, vv) >= 0
        return uu[keep], vv[keep]

    def with_extent(self, half_u: float, half_v: float) -> Surface:
        """The same skin cut to the given domain half extents."""
        return replace(self, half_u=half_u, half_v=half_v)


def _arc_axis(lo: float, hi: float, radius: float, spacing: float) -> np.ndarray:
    phi = np.arange(np.arcsin(lo / radius), np.arcsin(hi / radius) + spacing / radius / 2, spacing / radius)
    return radius * np.sin(phi)


def _base_height(surface: Surface, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, ...]:
    if surface.shape == "flat":
        zero = np.zeros(np.broadcast_shapes(u.shape, v.shape))
        return zero, zero, zero
    if surface.shape == "limb":
        r0 = surface.radii[0]
        rho = r0 + surface.taper * v
        q = np.sqrt(np.maximum(rho**2 - u**2, (0.05 * r0) ** 2))  # clamp: only evaluated off-domain
        return q - r0, -u / q, rho * surface.taper / q
    a, b, c = surface.radii
    q = np.sqrt(np.maximum(1.0 - (u / a) ** 2 - (v / b) ** 2, 0.05**2))
    return c * (q - 1.0), -c * u / (a * a * q), -c * v / (b * b * q)


def draw_surface(rng: np.random.Generator, shape: str) -> Surface:
    """A random skin of the given shape with a gentle undulation, so that no shape is an exact primitive."""
    if shape == "flat":
        return Surface("flat", undulation=random_waves(rng, 3, rng.uniform(0.2e-3, 1.0e-3), (0.03, 0.09)))
    if shape == "limb":
        waves = random_waves(rng, 3, rng.uniform(0.1e-3, 0.6e-3), (0.03, 0.08))
        return Surface("limb", (rng.uniform(0.03, 0.07),), rng.uniform(-0.08, 0.08), waves)
    if shape == "heel":
        waves = random_waves(rng, 3, rng.uniform(0.1e-3, 0.5e-3), (0.03, 0.08))
        return Surface("heel", tuple(rng.uniform(0.03, 0.06, size=3)), 0.0, waves)
    raise ValueError(f"unknown skin shape {shape!r}; choose one of {', '.join(SHAPES)}")


def draw_centre(rng: np.random.Generator, surface: Surface) -> tuple[float, float]:
    """Where the wound sits: on a limb or heel sometimes off the crest, where the skin curves more."""
    if surface.shape == "limb":
        return rng.uniform(-0.2, 0.2) * surface.radii[0], 0.0
    if surface.shape == "heel":
        return rng.uniform(-0.1, 0.1) * surface.radii[0], rng.uniform(-0.1, 0.1) * surface.radii[1]
    return 0.0, 0.0
