"""OME-NGFF ``multiscales`` metadata: the axes, each level's scale and translation, and reading them back.

The rules are those of the OME-NGFF specification, versions 0.4 (Zarr v2, the
``multiscales`` attribute) and 0.5 (Zarr v3, the same object under ``ome``):
2 to 5 axes, at most one of type ``time`` (first), at most one ``channel`` or
custom axis (next), then 2 or 3 of type ``space``; units from UDUNITS-2's
names; per level a ``scale`` then a ``translation`` transformation. A pooled
level's cell stands for the level-0 cells its window covers, so its position
is the centre of that window (the ``nearest`` method: the cell it picks).
Pure Python: nothing here imports Zarr.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AXIS_TYPES", "SPACE_UNITS", "TIME_UNITS", "Axis", "ngff_order", "check_ngff_axes", "level_transforms",
    "group_attributes", "find_multiscales", "OmeImage", "read_image",
]

VERSIONS = ("0.4", "0.5")
AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
# The specification's lists (UDUNITS-2 names); a unit outside them is refused, as validators do.
_PREFIXES = ("atto", "centi", "deci", "exa", "femto", "giga", "hecto", "kilo", "mega", "micro", "milli", "nano",
             "peta", "pico", "tera", "yocto", "yotta", "zepto", "zetta")
SPACE_UNITS = frozenset({"angstrom", "foot", "inch", "meter", "mile", "parsec", "yard"}
                        | {f"{prefix}meter" for prefix in _PREFIXES})
TIME_UNITS = frozenset({"day", "hour", "minute", "second"} | {f"{prefix}second" for prefix in _PREFIXES})


@dataclass(frozen=True)
class Axis:
    """One axis of an image: its name, OME-NGFF type (``space``, ``time``, ``channel`` or None) and unit."""

    name: str
    type: str | None
    unit: str | None = None

    def to_json(self) -> dict[str, str]:
        entry = {"name": self.name}
        if self.type is not None:
            entry["type"] = self.type
        if self.unit is not None:
            entry["unit"] = self.unit
        return entry


def _rank(axis: Axis) -> int:
    return {"time": 0, "space": 2}.get(axis.type or "", 1)


def ngff_order(axes: Sequence[Axis]) -> tuple[int, ...]:
    """The permutation that puts ``axes`` in OME-NGFF's order (time, then channel or custom, then space).

    Stable: the space axes keep their order among themselves.
    """
    return tuple(sorted(range(len(axes)), key=lambda index: _rank(axes[index])))


def check_ngff_axes(axes: Sequence[Axis], what: str) -> None:
    """Raise ValueError, naming ``what``, unless ``axes`` (in any order) can be written as OME-NGFF axes."""
    names = [axis.name for axis in axes]
    counts = [sum(_rank(axis) == rank for axis in axes) for rank in range(3)]
    problem = None
    if not 2 <= len(axes) <= 5:
        problem = f"OME-NGFF images have 2 to 5 axes, got {len(axes)}"
    elif len(set(names)) != len(names):
        problem = "an axis name is repeated"
    elif counts[2] not in (2, 3):
        problem = f"OME-NGFF images have 2 or 3 space axes, got {counts[2]}"
    elif counts[0] > 1 or counts[1] > 1:
        problem = "OME-NGFF images have at most one time axis and one channel (or other) axis"
    if problem:
        raise ValueError(f"{what} {''.join(names) if all(len(n) == 1 for n in names) else names}: {problem}")
    for axis in axes:
        known = {"space": SPACE_UNITS, "time": TIME_UNITS}.get(axis.type or "")
        if axis.unit is not None and (known is None or axis.unit not in known):
            raise ValueError(f"{what}: unit {axis.unit!r} of axis {axis.name!r} is not an OME-NGFF "
                             f"{axis.type or 'channel'} unit" + ("" if known is None else " (e.g. micrometer, second)"))


def level_transforms(
    scale: Sequence[float], translation: Sequence[float], pooled: Sequence[int], stride: Sequence[int],
    offset: Sequence[float], levels: int,
) -> list[tuple[list[float], list[float]]]:
    """Each level's ``(scale, translation)``, level 0's given; ``pooled`` axes are pooled by ``stride``.

    ``offset`` is, per pooled axis, where in its window (in the cells of the
    level before, from the first cell) a pooled cell lies: ``(kernel-1)/2 -
    padding`` for a window's centre. Level ``l`` then has
    ``scale_l = scale_(l-1) * stride`` and
    ``translation_l = translation_(l-1) + scale_(l-1) * offset``.
    """
    transforms = [(list(map(float, scale)), list(map(float, translation)))]
    for _ in range(levels):
        previous_scale, previous_translation = transforms[-1]
        scale_l, translation_l = list(previous_scale), list(previous_translation)
        for axis, step, shift in zip(pooled, stride, offset):
            translation_l[axis] = previous_translation[axis] + previous_scale[axis] * shift
            scale_l[axis] = previous_scale[axis] * step
        transforms.append((scale_l, translation_l))
    return transforms


def _shortest(values: Sequence[float]) -> list[float]:
    """``values`` to 15 significant digits: 0.3 * 1.5 is written 0.45, not 0.44999999999999996 (the float
    arithmetic's last bit, below any pixel size's precision; 15 digits read back as the same decimal)."""
    return [float(f"{value:.15g}") for value in values]


def group_attributes(
    version: str, axes: Sequence[Axis], transforms: Sequence[tuple[list[float], list[float]]], *, name: str,
    method: str, metadata: Mapping[str, Any],
) -> dict[str, Any]:
    """The attributes of the pyramid's Zarr group: OME-NGFF ``multiscales`` of arrays ``"0"``, ``"1"``, ...

    ``method`` is the multiscales ``type`` (how levels were made, e.g. ``max``);
    ``metadata`` what the specification suggests there (``description``,
    ``method``, ``version``, ``kwargs``). Version 0.5 nests it all under ``ome``.
    """
    datasets = [
        {"path": str(level), "coordinateTransformations": [
            {"type": "scale", "scale": _shortest(scale)},
            {"type": "translation", "translation": _shortest(translation)}]}
        for level, (scale, translation) in enumerate(transforms)
    ]
    multiscale = {"name": name, "axes": [axis.to_json() for axis in axes], "datasets": datasets,
                  "type": method, "metadata": dict(metadata)}
    if version == "0.4":
        return {"multiscales": [{"version": "0.4", **multiscale}]}
    return {"ome": {"version": version, "multiscales": [multiscale]}}


def find_multiscales(attributes: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    """``(version, first multiscales entry)`` of a Zarr group's attributes, or None if it has none."""
    ome = attributes.get("ome")
    if isinstance(ome, Mapping) and isinstance(ome.get("multiscales"), list) and ome["multiscales"]:
        return str(ome.get("version", "0.5")), ome["multiscales"][0]
    entries = attributes.get("multiscales")
    if isinstance(entries, list) and entries and isinstance(entries[0], Mapping):
        return str(entries[0].get("version", "0.4")), entries[0]
    return None


@dataclass(frozen=True)
class OmeImage:
    """Level 0 of an OME-Zarr image: its array's path in the group, axes, scale and translation."""

    path: str
    axes: tuple[Axis, ...]
    scale: tuple[float, ...]
    translation: tuple[float, ...]
    name: str | None


def _transforms(entries: Any, ndim: int, what: str) -> tuple[list[float], list[float]]:
    """The ``scale`` and ``translation`` of a list of coordinate transformations (identity where absent)."""
    scale, translation = [1.0] * ndim, [0.0] * ndim
    for entry in entries or []:
        kind = entry.get("type") if isinstance(entry, Mapping) else None
        values = entry.get(kind) if kind in ("scale", "translation") else None
        if kind == "identity":
            continue
        if not (isinstance(values, list) and len(values) == ndim
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)):
            raise ValueError(f"{what}: a coordinate transformation {entry!r} is not a scale or translation "
                             f"of {ndim} numbers")
        if kind == "scale":
            scale = [float(v) for v in values]
        else:
            translation = [float(v) for v in values]
    return scale, translation


def read_image(attributes: Mapping[str, Any], what: str) -> OmeImage | None:
    """Level 0 of the OME-Zarr image whose group has ``attributes``, or None if it has no multiscales.

    A multiscales-wide transformation is applied after level 0's own, as the
    specification says. Raises ValueError naming ``what`` for metadata that
    does not follow it.
    """
    found = find_multiscales(attributes)
    if found is None:
        return None
    version, multiscale = found
    try:
        axes = tuple(Axis(str(a["name"]), a.get("type"), a.get("unit")) for a in multiscale["axes"])
        path = str(multiscale["datasets"][0]["path"])
        level0 = multiscale["datasets"][0].get("coordinateTransformations")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise ValueError(f"{what}: its OME-NGFF {version} multiscales metadata lacks axes or datasets") from None
    scale, translation = _transforms(level0, len(axes), what)
    outer_scale, outer_translation = _transforms(multiscale.get("coordinateTransformations"), len(axes), what)
    return OmeImage(
        path=path, axes=axes,
        scale=tuple(s * o for s, o in zip(scale, outer_scale)),
        translation=tuple(t * o + u for t, o, u in zip(translation, outer_scale, outer_translation)),
        name=multiscale.get("name") if isinstance(multiscale.get("name"), str) else None,
    )
