"""Scan I/O: the only module that knows file formats (PLY, PCD, camera and metadata JSON).

The format is described in docs/scan-format.md. Every reader either returns a fully validated
object or raises `ScanError` with a one-line message that says what is wrong and how to fix it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TISSUE_CLASSES = {0: "unknown", 1: "granulation", 2: "slough", 3: "necrotic", 4: "epithelialising"}
DEFAULT_MAX_POINTS = 5_000_000
# A wound scan covers centimetres; an extent above this means the file is in millimetres.
MAX_EXTENT_M = 3.0


class ScanError(ValueError):
    """A scan, camera or metadata file that cannot be used; the message says why."""


@dataclass
class Scan:
    """A point cloud in metres with optional per-point attributes."""

    points: np.ndarray  # (N, 3) float64, metres
    colors: np.ndarray | None = None  # (N, 3) uint8
    normals: np.ndarray | None = None  # (N, 3) float32
    label: np.ndarray | None = None  # (N,) uint8: 0 skin/background, 1 wound
    tissue: np.ndarray | None = None  # (N,) uint8: TISSUE_CLASSES
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.points)

    def subset(self, index: np.ndarray) -> Scan:
        """The scan restricted to `index` (boolean mask or integer indices)."""
        pick = {k: getattr(self, k) for k in ("colors", "normals", "label", "tissue")}
        return Scan(self.points[index], **{k: None if v is None else v[index] for k, v in pick.items()})


@dataclass(frozen=True)
class Camera:
    """Pinhole camera: pixel = (fx X/Z + cx, fy Y/Z + cy), (X, Y, Z) = world_to_camera @ (x, y, z, 1)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    world_to_camera: np.ndarray  # (4, 4), metres

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates (N, 2) and camera-frame depth Z (N,) of world points (N, 3)."""
        cam = points @ self.world_to_camera[:3, :3].T + self.world_to_camera[:3, 3]  # (N, 3)
        z = cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            pix = np.stack([self.fx * cam[:, 0] / z + self.cx, self.fy * cam[:, 1] / z + self.cy], axis=1)
        return pix, z

    def to_dict(self) -> dict:
        return {
            "width": self.width, "height": self.height, "fx": self.fx, "fy": self.fy,
            "cx": self.cx, "cy": self.cy, "world_to_camera": np.asarray(self.world_to_camera).tolist(),
        }


# ---------------------------------------------------------------------------------------------- reading


def read_scan(path: str | Path, max_points: int = DEFAULT_MAX_POINTS) -> Scan:
    """Read and validate a PLY or PCD scan."""
    path = Path(path)
    if not path.is_file():
        raise ScanError(f"{path}: no such file; give the path of a .ply or .pcd scan")
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic == b"ply\n" or magic[:3] == b"ply":
        scan = _read_ply(path)
    elif path.suffix.lower() == ".pcd" or magic[:1] == b"#" or magic == b"VERS":
        scan = _read_pcd(path)
    else:
        raise ScanError(f"{path}: not a PLY or PCD file (it does not start with a PLY or PCD header)")
    validate_scan(scan, str(path), max_points)
    return scan


def _read_ply(path: Path) -> Scan:
    from plyfile import PlyData

    try:
        data = PlyData.read(str(path))
        vertex = data["vertex"].data
    except KeyError as e:
        raise ScanError(f"{path}: PLY file has no 'vertex' element; export the point cloud as vertices") from e
    except Exception as e:  # plyfile raises several types for malformed input
        raise ScanError(f"{path}: unreadable PLY ({_first_line(e)}); the file may be truncated") from e
    fields = {name: np.asarray(vertex[name]) for name in vertex.dtype.names}
    lists = [name for name in "xyz" if name in fields and fields[name].dtype == object]
    if lists:  # a list property per vertex: plyfile gives object arrays that are not coordinates
        raise ScanError(f"{path}: PLY vertex property {', '.join(lists)} is a list; coordinates must be scalars")
    return _scan_from_fields(path, fields)


def _scan_from_fields(path: Path, fields: dict[str, np.ndarray]) -> Scan:
    missing = [c for c in "xyz" if c not in fields]
    if missing:
        raise ScanError(f"{path}: the points lack the coordinate(s) {', '.join(missing)}")
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite values are reported by validate_scan
        points = np.stack([fields[c].astype(np.float64) for c in "xyz"], axis=1)
    rgb = _first_present(fields, [("red", "green", "blue"), ("r", "g", "b")])
    colors = None if rgb is None else np.clip(np.stack(rgb, axis=1), 0, 255).astype(np.uint8)
    nrm = _first_present(fields, [("nx", "ny", "nz"), ("normal_x", "normal_y", "normal_z")])
    normals = None if nrm is None else np.stack(nrm, axis=1).astype(np.float32)
    label = _small_ints(path, fields.get("label"), "label", 1)
    tissue = _small_ints(path, fields.get("tissue"), "tissue", max(TISSUE_CLASSES))
    return Scan(points, colors, normals, label, tissue)


def _first_present(fields: dict, options: list[tuple[str, ...]]) -> list[np.ndarray] | None:
    for names in options:
        if all(n in fields for n in names):
            return [fields[n] for n in names]
    return None


def _small_ints(path: Path, values: np.ndarray | None, name: str, top: int) -> np.ndarray | None:
    if values is None:
        return None
    values = np.asarray(values)
    if values.size and (not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > top):
        raise ScanError(f"{path}: '{name}' values must be integers 0..{top}, found {values.min()}..{values.max()}")
    return values.astype(np.uint8)


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0][:160] if text else type(error).__name__


def validate_scan(scan: Scan, where: str, max_points: int = DEFAULT_MAX_POINTS) -> None:
    """Raise ScanError unless the scan is usable: points present, finite, in metres, within the limit."""
    n = len(scan.points)
    if n == 0:
        raise ScanError(f"{where}: the scan has no points")
    if n > max_points:
        raise ScanError(f"{where}: {n} points exceed the limit of {max_points}; downsample the scan first")
    if not np.all(np.isfinite(scan.points)):
        bad = int((~np.isfinite(scan.points).all(axis=1)).sum())
        raise ScanError(f"{where}: {bad} point(s) have NaN or infinite coordinates; remove them before measuring")
    extent = float(np.max(np.ptp(scan.points, axis=0)))
    if extent > MAX_EXTENT_M:
        raise ScanError(
            f"{where}: the scan spans {extent:.1f} units; coordinates must be metres "
            "(this looks like millimetres: divide by 1000)"
        )
    if scan.normals is not None and not np.all(np.isfinite(scan.normals)):
        raise ScanError(f"{where}: the normals contain NaN or infinite values; drop or recompute them")


# ---------------------------------------------------------------------------------------------- PCD


_PCD_TYPES = {("F", 4): "f4", ("F", 8): "f8", ("U", 1): "u1", ("U", 2): "u2", ("U", 4): "u4",
              ("I", 1): "i1", ("I", 2): "i2", ("I", 4): "i4", ("I", 8): "i8", ("U", 8): "u8"}


def _read_pcd(path: Path) -> Scan:
    raw = path.read_bytes()
    header, body = _split_pcd_header(path, raw)
    names = header["FIELDS"]
    sizes, types = _pcd_ints(path, header, "SIZE"), header["TYPE"]
    counts = _pcd_ints(path, header, "COUNT") if "COUNT" in header else [1] * len(names)
    if not len(names) == len(sizes) == len(types) == len(counts):
        raise ScanError(f"{path}: PCD header FIELDS, SIZE, TYPE and COUNT disagree in length")
    try:
        dtype = np.dtype([(n, "<" + _PCD_TYPES[(t, s)], (c,) if c > 1 else ())
                          for n, s, t, c in zip(names, sizes, types, counts, strict=True)])
    except KeyError as e:
        raise ScanError(f"{path}: unsupported PCD field type {e.args[0]}") from e
    n_points = _pcd_ints(path, header, "POINTS")[0] if "POINTS" in header else 0
    kind = header["DATA"][0].lower()
    if kind == "ascii":
        table = _pcd_ascii(path, body, dtype, n_points)
    elif kind == "binary":
        if len(body) < n_points * dtype.itemsize:
            raise ScanError(f"{path}: PCD body holds fewer bytes than its {n_points} points need (truncated)")
        table = np.frombuffer(body, dtype=dtype, count=n_points)
    else:
        raise ScanError(f"{path}: PCD DATA '{kind}' is not supported; save it as 'binary' or 'ascii'")
    fields = {n: table[n] for n in names if table[n].ndim == 1}
    if "rgb" in fields and "red" not in fields:
        fields.update(_unpack_pcd_rgb(table["rgb"]))
    return _scan_from_fields(path, fields)


def _pcd_ints(path: Path, header: dict[str, list[str]], key: str) -> list[int]:
    """A header line of non-negative integers (SIZE, COUNT, POINTS), or ScanError naming the line."""
    values = header[key]
    if not values or not all(v.isdigit() for v in values):
        raise ScanError(f"{path}: PCD header {key} must be non-negative whole numbers, got {' '.join(values)!r}")
    return [int(v) for v in values]


def _split_pcd_header(path: Path, raw: bytes) -> tuple[dict[str, list[str]], bytes]:
    header: dict[str, list[str]] = {}
    offset = 0
    while offset < len(raw):
        end = raw.find(b"\n", offset)
        end = len(raw) if end < 0 else end
        line = raw[offset:end].decode("ascii", errors="replace").strip()
        offset = end + 1
        if not line or line.startswith("#"):
            continue
        key, *values = line.split()
        header[key.upper()] = values
        if key.upper() == "DATA":
            break
    for key in ("FIELDS", "SIZE", "TYPE", "DATA"):
        if key not in header or not header[key]:
            raise ScanError(f"{path}: PCD header lacks {key}; the file is not a valid PCD")
    return header, raw[offset:]


def _pcd_ascii(path: Path, body: bytes, dtype: np.dtype, n_points: int) -> np.ndarray:
    try:
        flat = np.array(body.split(), dtype=np.float64)
    except ValueError as e:
        raise ScanError(f"{path}: PCD ascii body holds a value that is not a number") from e
    width = sum(int(np.prod(dtype[n].shape)) or 1 for n in dtype.names)
    if flat.size != n_points * width:
        raise ScanError(f"{path}: PCD ascii body holds {flat.size} values, {n_points} points need {n_points * width}")
    table = np.zeros(n_points, dtype=dtype)
    columns = flat.reshape(n_points, width)
    col = 0
    for name in dtype.names:
        k = int(np.prod(dtype[name].shape)) or 1
        table[name] = columns[:, col] if k == 1 else columns[:, col:col + k]
        col += k
    return table


def _unpack_pcd_rgb(packed: np.ndarray) -> dict[str, np.ndarray]:
    as_int = np.ascontiguousarray(packed).view(np.uint32) if packed.dtype.kind == "f" else packed.astype(np.uint32)
    return {"red": (as_int >> 16) & 255, "green": (as_int >> 8) & 255, "blue": as_int & 255}


# ---------------------------------------------------------------------------------------------- writing


def write_ply(path: str | Path, scan: Scan, binary: bool = True) -> None:
    """Write a scan as PLY (float32 metres, uchar colours, optional normals, label and tissue)."""
    from plyfile import PlyData, PlyElement

    columns: list[tuple[str, np.ndarray]] = [(c, scan.points[:, i].astype("<f4")) for i, c in enumerate("xyz")]
    if scan.colors is not None:
        columns += [(c, scan.colors[:, i].astype("u1")) for i, c in enumerate(("red", "green", "blue"))]
    if scan.normals is not None:
        columns += [(c, scan.normals[:, i].astype("<f4")) for i, c in enumerate(("nx", "ny", "nz"))]
    for name in ("label", "tissue"):
        if getattr(scan, name) is not None:
            columns.append((name, getattr(scan, name).astype("u1")))
    table = np.empty(len(scan.points), dtype=[(n, v.dtype) for n, v in columns])
    for name, values in columns:
        table[name] = values
    element = PlyElement.describe(table, "vertex")
    _atomic_write(Path(path), lambda fh: PlyData([element], text=not binary).write(fh))


def write_pcd(path: str | Path, scan: Scan) -> None:
    """Write a scan as binary PCD (x y z, packed rgb, label, tissue)."""
    names, parts = ["x", "y", "z"], [scan.points.astype("<f4")]
    sizes, types = ["4"] * 3, ["F"] * 3
    if scan.colors is not None:
        c = scan.colors.astype(np.uint32)
        packed = ((c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]).view("<f4")
        names, sizes, types = [*names, "rgb"], [*sizes, "4"], [*types, "F"]
        parts.append(packed[:, None])
    for name in ("label", "tissue"):
        if getattr(scan, name) is not None:
            names, sizes, types = [*names, name], [*sizes, "1"], [*types, "U"]
            parts.append(getattr(scan, name).astype("u1")[:, None])
    dtype = np.dtype([(n, "<" + _PCD_TYPES[(t, int(s))]) for n, s, t in zip(names, sizes, types, strict=True)])
    table = np.empty(len(scan.points), dtype=dtype)
    col = 0
    for part in parts:
        for j in range(part.shape[1]):
            table[names[col]] = part[:, j]
            col += 1
    n = len(table)
    header = (f"# .PCD v0.7\nVERSION 0.7\nFIELDS {' '.join(names)}\nSIZE {' '.join(sizes)}\n"
              f"TYPE {' '.join(types)}\nCOUNT {' '.join('1' * len(names))}\nWIDTH {n}\nHEIGHT 1\n"
              f"VIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA binary\n")
    _atomic_write(Path(path), lambda fh: (fh.write(header.encode()), fh.write(table.tobytes())))


def _atomic_write(path: Path, write) -> None:
    """Write through a temporary file and rename, so a crash never leaves half a file."""
    tmp = path.with_name(path.name + ".part")
    with tmp.open("wb") as fh:
        write(fh)
    tmp.replace(path)


def write_json(path: str | Path, payload: dict) -> None:
    """Write JSON atomically, with stable key order so regenerated data is byte-identical."""
    text = json.dumps(payload, indent=2, sort_keys=True) + "\n"
    _atomic_write(Path(path), lambda fh: fh.write(text.encode()))


# ---------------------------------------------------------------------------------------------- camera, meta


def read_camera(path: str | Path) -> Camera:
    """Read and validate a camera JSON file."""
    return camera_from_dict(_read_json_object(path, "camera"), str(path))


def camera_from_dict(payload: dict, where: str = "camera") -> Camera:
    """A validated Camera from its JSON object (the layout read_camera reads); `where` names it in errors."""
    if not isinstance(payload, dict):
        raise ScanError(f"{where}: camera JSON must be an object")
    missing = [k for k in ("width", "height", "fx", "fy", "cx", "cy", "world_to_camera") if k not in payload]
    if missing:
        raise ScanError(f"{where}: camera JSON lacks {', '.join(missing)}")
    try:
        matrix = np.asarray(payload["world_to_camera"], dtype=np.float64)
        numbers = [float(payload[k]) for k in ("fx", "fy", "cx", "cy")]
        width, height = int(payload["width"]), int(payload["height"])
    except (TypeError, ValueError, OverflowError) as e:  # OverflowError: int(inf), which JSON can carry
        raise ScanError(f"{where}: camera values must be numbers and world_to_camera a 4x4 matrix") from e
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)) or not np.all(np.isfinite(numbers)):
        raise ScanError(f"{where}: world_to_camera must be a finite 4x4 matrix in metres")
    if width <= 0 or height <= 0 or numbers[0] <= 0 or numbers[1] <= 0:
        raise ScanError(f"{where}: width, height, fx and fy must be positive")
    return Camera(width, height, *numbers, world_to_camera=matrix)


def write_camera(path: str | Path, camera: Camera) -> None:
    write_json(path, camera.to_dict())


def read_metadata(path: str | Path) -> dict:
    """Read optional scan metadata (patient/wound ids, body site, device, captured_at)."""
    return _read_json_object(path, "metadata")


def _read_json_object(path: str | Path, what: str) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError as e:
        raise ScanError(f"{path}: no such {what} file") from e
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ScanError(f"{path}: {what} file is not valid JSON ({_first_line(e)})") from e
    if not isinstance(data, dict):
        raise ScanError(f"{path}: {what} JSON must be an object")
    return data
