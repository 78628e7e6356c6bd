"""`ExportReport`: what an export produced and measured, saved as JSON beside the model."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import pathlib

#: Keys every export report holds (what tells a report of this package from a user's `.json`).
REPORT_KEYS = frozenset({"path", "synthesis", "file_bytes", "arena_bytes", "verification"})
#: Largest report read, in bytes (a report is a few kB).
MAX_REPORT_BYTES = 1 << 22
#: Largest arena a report may give, in bytes (no board this package targets has more RAM).
MAX_ARENA_BYTES = 1 << 31


@dataclasses.dataclass
class ExportReport:
    """What an export produced and measured. Saved as JSON beside the model.

    Byte figures are bytes of the written file; `diet_bytes` what each kind
    of the flatbuffer diet (`export.diet`) removed (empty when it was
    turned off); `sha256` the hex SHA-256 of the written file (a report is
    used only for the file it describes: `report_for`); `arena_bytes` is the smallest
    TFLM arena that ran the model on this host (64-bit build of the
    `tflite-micro` wheel: a 32-bit MCU needs less). Times are microseconds on
    this host; the first TFLM/LiteRT invoke includes the init subgraph
    (weight synthesis) when there is one.
    """

    path: str
    synthesis: str
    io_dtype: str
    per_channel: bool
    file_bytes: int
    stripped_bytes: int
    diet_bytes: dict
    bytes_by_role: dict
    operators: list
    arena_bytes: int
    arena_note: str
    generated_weight_ram_bytes: int
    generated_layers: list
    verification: dict
    timing_us: dict
    packed_bytes: dict
    layers: list = dataclasses.field(default_factory=list)
    macs: dict = dataclasses.field(default_factory=dict)
    dense_per_tensor: bool = True
    init_weight_bits: int = 8
    sha256: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def inspection(self) -> dict:
        """The `inspect_tflite` fields this report holds (the input of `format_inspection` and `boards`)."""
        return {"file_bytes": self.file_bytes, "has_init_subgraph": len(self.operators) > 1,
                "subgraphs": [{"index": i, "role": "main" if i == 0 else "init", "operators": ops}
                              for i, ops in enumerate(self.operators)],
                "layers": self.layers, "macs": self.macs, "bytes_by_role": self.bytes_by_role,
                "resource_variables": len(self.generated_layers),
                "generated_weight_ram_bytes": self.generated_weight_ram_bytes}

    def format(self, board: str | None = None) -> str:
        """The report with the per-operator table and the flash/RAM splits (as % of `board`, e.g. `"nano33ble"`)."""
        from hypertiny_keras.device.boards import format_inspection

        return str(self) + "\n" + format_inspection(self.inspection(), board, self.arena_bytes)

    def plot(self, path, board: str = "nano33ble"):
        """A PNG of the flash and RAM bars of this file on `board` (`boards.plot_budget`)."""
        from hypertiny_keras.device.boards import plot_budget

        return plot_budget(self.inspection(), path, board, self.arena_bytes)

    def __str__(self) -> str:
        from hypertiny_keras.device.boards import flash_split

        v, t = self.verification, self.timing_us
        lines = [
            f"{self.path}: {self.file_bytes:,} bytes ({self.synthesis}, {self.io_dtype} I/O); "
            f"{self.stripped_bytes:,} bytes of names/metadata/unused buffers removed",
            "  flatbuffer diet: "
            + (
                f"{sum(self.diet_bytes.values()):,} bytes removed ("
                + ", ".join(f"{k} {v:,}" for k, v in self.diet_bytes.items()) + ")"
                if self.diet_bytes
                else "off"
            ),
            "  bytes by role: "
            + ", ".join(f"{k} {v:,}" for k, v in self.bytes_by_role.items() if v),
            "  flash: " + ", ".join(f"{k} {v:,}" for k, v in flash_split(self.inspection()).items() if v),
            f"  MACs: {self.macs.get('steady', 0):,} per inference, {self.macs.get('synthesis', 0):,} once at synthesis"
            f" ({len(self.layers)} operators; `format(board=...)` for the per-operator table and % of a board)",
            f"  TFLM arena {self.arena_bytes:,} B ({self.arena_note}), the file's RAM; "
            f"of which generated kernels {self.generated_weight_ram_bytes:,} B",
            f"  verified on {v['samples']} samples: main graph TFLM vs LiteRT max {v['tflm_vs_litert_max_steps']:.0f} "
            f"step(s), exact {100 * v['tflm_vs_litert_exact_rate']:.2f}%; "
            + (
                ""
                if v["boot_vs_frozen_identical"] is None
                else "boot vs frozen in TFLM "
                + ("identical" if v["boot_vs_frozen_identical"] else f"max {v['boot_vs_frozen_max_steps']:.0f} steps")
                + "; "
            )
            + "int8 vs Keras float max "
            f"{v['tflm_vs_float_max_steps']:.2f} steps (p99 {v['tflm_vs_float_p99_steps']:.2f})"
            + (
                f", top-1 agreement {100 * v['tflm_vs_float_top1']:.1f}%"
                if v["tflm_vs_float_top1"] is not None
                else ""
            ),
            *(
                [f"  init-subgraph weights: int4 in {sum(g['weight_bits'] == 4 for g in self.generated_layers)} of "
                 f"{len(self.generated_layers)} layers (int8 where int4 heads cannot hit every target)"]
                if self.init_weight_bits == 4 else []
            ),
            f"  invoke: TFLM first {t['tflm_first']:.0f} us, median {t['tflm_median']:.0f} us; "
            f"LiteRT first {t['litert_first']:.0f} us, median {t['litert_median']:.0f} us "
            "(this host; not device figures: hypertiny emulate counts a Cortex-M4's instructions)",
        ]
        return "\n".join(lines)


def file_sha256(data: bytes) -> str:
    """The hex SHA-256 of `data` (what a report's `sha256` holds)."""
    return hashlib.sha256(data).hexdigest()


def report_file(model_path: str | os.PathLike) -> pathlib.Path:
    """Where the report of `model_path` goes: beside it, as `.json`."""
    return pathlib.Path(model_path).with_suffix(".json")


def _load(path: pathlib.Path):
    """The JSON of `path`, or `None` when it is not a small, readable JSON file."""
    try:
        if path.stat().st_size > MAX_REPORT_BYTES:
            return None
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None


def is_report(path: str | os.PathLike) -> bool:
    """Whether the file `path` is an export report of this package (a `.json` it may replace)."""
    found = _load(pathlib.Path(path))
    return isinstance(found, dict) and REPORT_KEYS <= set(found)


def report_for(model_path: str | os.PathLike, data: bytes) -> tuple[dict | None, str]:
    """The export report beside `model_path` if it describes `data`, with why not otherwise.

    The report is used only when its `file_bytes` and `sha256` are those of
    `data` and its `arena_bytes` is a whole number in (0, `MAX_ARENA_BYTES`].

    Returns:
        `(report, "")`, or `(None, reason)`: reason is `""` when there is no
        report, else one sentence naming the report and what is wrong with it.
    """
    path = report_file(model_path)
    if not path.exists():
        return None, ""
    found = _load(path)
    if not isinstance(found, dict) or not REPORT_KEYS <= set(found):
        return None, f"{path.name} is not an export report: not used"
    if not found.get("sha256"):
        return None, f"{path.name} holds no SHA-256 of the file (an earlier version's report): not used"
    if found["sha256"] != file_sha256(data) or found.get("file_bytes") != len(data):
        return None, (f"{path.name} does not describe {pathlib.Path(model_path).name} (size or SHA-256 differ: "
                      "the file changed after the export): not used")
    arena = found["arena_bytes"]
    if isinstance(arena, bool) or not isinstance(arena, (int, float)) or not math.isfinite(arena) \
            or arena != int(arena) or not 0 < arena <= MAX_ARENA_BYTES:
        return None, f"{path.name}: arena_bytes {arena!r} is not a number of bytes in 1..{MAX_ARENA_BYTES}: not used"
    found["arena_bytes"] = int(arena)
    return found, ""
