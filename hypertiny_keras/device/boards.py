"""Microcontroller boards' flash and RAM budgets, and a file's flash / RAM split against one."""
from __future__ import annotations

import dataclasses
import pathlib


@dataclasses.dataclass(frozen=True)
class Board:
    """A board's name, its MCU and its memories in bytes (flash for the model and program, SRAM)."""

    name: str
    mcu: str
    flash_bytes: int
    ram_bytes: int


#: Boards by the name `--board` takes (datasheet figures of the whole chip).
BOARDS = {
    board.name: board
    for board in (
        Board("nano33ble", "nRF52840 (Cortex-M4F, 64 MHz)", 1 << 20, 256 << 10),
        Board("nicla_sense_me", "nRF52832 (Cortex-M4F, 64 MHz)", 512 << 10, 64 << 10),
        Board("pico", "RP2040 (2x Cortex-M0+, 133 MHz)", 2 << 20, 264 << 10),
        Board("esp32s3", "ESP32-S3 (Xtensa LX7, 240 MHz)", 8 << 20, 512 << 10),
        Board("stm32f746g_disco", "STM32F746NG (Cortex-M7, 216 MHz)", 1 << 20, 320 << 10),
        Board("stm32l4r9", "STM32L4R9 (Cortex-M4F, 120 MHz)", 2 << 20, 640 << 10),
    )
}

#: Flash parts of a `.tflite` file: part -> the `inspect_tflite` roles it sums.
FLASH_PARTS = {
    "generator": ("generator",),
    "heads": ("heads",),
    "codes": ("codes",),
    "kept pointwise (PW1)": ("pointwise",),
    "backbone (conv, depthwise, biases, constants)": ("conv", "depthwise", "biases", "other"),
    "classifier": ("classifier",),
    "flatbuffer overhead": ("flatbuffer_overhead",),
}


def get_board(name: str) -> Board:
    """The board called `name`; raises ValueError naming the known boards."""
    if name not in BOARDS:
        raise ValueError(f"unknown board {name!r}; known: {', '.join(sorted(BOARDS))}")
    return BOARDS[name]


def flash_split(info: dict) -> dict[str, int]:
    """Bytes of each part of `FLASH_PARTS` in the file described by `inspect_tflite` output `info`."""
    roles = info["bytes_by_role"]
    return {part: sum(roles.get(role, 0) for role in members) for part, members in FLASH_PARTS.items()}


def ram_split(info: dict, arena_bytes: int | None) -> dict[str, int]:
    """RAM of the file in bytes: its generated kernels (resource variables, in the arena) and the rest of the arena.

    `arena_bytes` is the TFLM arena the file needs (`None`: unknown, only the
    generated kernels are listed; `{}` for a file with none).
    """
    generated = int(info.get("generated_weight_ram_bytes", 0))
    if arena_bytes is None:
        return {"generated kernels": generated} if generated else {}
    return {"generated kernels": generated, "activations and TFLM bookkeeping": int(arena_bytes) - generated}


def plot_budget(info: dict, path: str | pathlib.Path, board: str = "nano33ble", arena_bytes: int | None = None,
                title: str = "") -> pathlib.Path:
    """A PNG of two stacked bars, flash and RAM, each split into its parts, as % of `board`'s memories.

    Drawn on its own `Figure` with the Agg canvas: pyplot's backend and
    figures (a notebook's) are left alone.
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    spec = get_board(board)
    bars = [("flash", flash_split(info), spec.flash_bytes), ("RAM", ram_split(info, arena_bytes), spec.ram_bytes)]
    fig = Figure(figsize=(8, 3.8))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    colors = matplotlib.colormaps["tab10"].colors
    names = list(FLASH_PARTS) + ["generated kernels", "activations and TFLM bookkeeping"]
    for row, (label, parts, budget) in enumerate(bars):
        left = 0.0
        for part, size in parts.items():
            if size <= 0:
                continue
            share = 100 * size / budget
            ax.barh(row, share, left=left, color=colors[names.index(part) % len(colors)], label=part, edgecolor="white")
            left += share
        ax.text(left, row, f" {sum(parts.values()):,} B ({left:.1f}%)", va="center", fontsize=8)
    ax.set_yticks([0, 1], [f"flash\n({spec.flash_bytes >> 10} kB)", f"RAM\n({spec.ram_bytes >> 10} kB)"])
    ax.set_xlabel(f"% of {spec.name} ({spec.mcu})")
    ax.set_xlim(0, max(1.0, ax.get_xlim()[1] * 1.3))
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=3)
    ax.set_title(title or f"{info['file_bytes']:,}-byte model on {spec.name}", fontsize=9)
    fig.tight_layout()
    path = pathlib.Path(path)
    fig.savefig(path, dpi=120)
    return path


def format_inspection(info: dict, board: str | None = None, arena_bytes: int | None = None) -> str:
    """Human-readable text of `inspect_tflite` output: subgraphs, a per-operator table, flash and RAM splits.

    Args:
        info: `inspect_tflite` output.
        board: a name of `boards.BOARDS` (e.g. `"nano33ble"`): each split also gives its % of the
            board's flash / RAM.
        arena_bytes: the TFLM arena the file needs (measured elsewhere, e.g. `ExportReport.arena_bytes`);
            without it the RAM split lists only the generated kernels.
    """
    spec = get_board(board) if board is not None else None
    lines = [f"file: {info['file_bytes']:,} bytes; init subgraph: {'yes' if info['has_init_subgraph'] else 'no'}"]
    for sg in info["subgraphs"]:
        tensors = f", {sg['tensors']} tensors" if "tensors" in sg else ""
        lines.append(f"subgraph {sg['index']} ({sg['role']}{tensors}): {' '.join(sg['operators'])}")
    if info.get("layers"):
        roles = {sg["index"]: sg["role"] for sg in info["subgraphs"]}
        lines.append(f"{'#':>3} {'graph':<5} {'operator':<22} {'output':<16} {'params':>8} {'bytes':>8} {'MACs':>10}")
        for i, row in enumerate(info["layers"]):
            shape = "x".join(map(str, row["output"]))
            lines.append(f"{i:>3} {roles.get(row['subgraph'], '?'):<5} {row['operator']:<22} {shape:<16} "
                         f"{row['parameters']:>8,} {row['bytes']:>8,} {row['macs']:>10,}")
        lines.append(f"MACs: {info['macs']['steady']:,} per inference, {info['macs']['synthesis']:,} once at synthesis")

    def table(title, parts, budget):
        total = sum(parts.values())
        head = f"{title}: {total:,} bytes" + (f" ({100 * total / budget:.2f}% of {spec.name})" if spec else "")
        out = [head]
        width = max(map(len, parts)) if parts else 0
        for part, size in parts.items():
            if size:
                share = f"  {100 * size / budget:6.2f}% of board" if spec else ""
                out.append(f"  {part:<{width}} {size:>9,}  {100 * size / total:5.1f}%{share}")
        return out

    lines += table("flash", flash_split(info), spec.flash_bytes if spec else 1)
    ram = ram_split(info, arena_bytes)
    if ram:
        lines += table("RAM", ram, spec.ram_bytes if spec else 1)
    lines.append("bytes by role:")
    width = max(map(len, info["bytes_by_role"]))
    for role, size in info["bytes_by_role"].items():
        if size:
            lines.append(f"  {role:<{width}} {size:>9,}  {100 * size / info['file_bytes']:5.1f}%")
    if info["resource_variables"]:
        lines.append(
            f"generated kernels: {info['resource_variables']} resource variables, "
            f"{info['generated_weight_ram_bytes']:,} bytes in RAM"
        )
    return "\n".join(lines)
