"""`ExportReport`: what an export produced and measured, saved as JSON beside the model."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class ExportReport:
    """What an export produced and measured. Saved as JSON beside the model.

    Byte figures are bytes of the written file; `diet_bytes` what each kind
    of the flatbuffer diet (`export.diet`) removed (empty when it was
    turned off); `arena_bytes` is the smallest
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
