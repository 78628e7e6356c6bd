"""Stage 3 of the export, rewrite: the model the file holds, and the graph its boot file must equal.

One truth per model: a boot file and a frozen file exported with the same
options compute the same outputs bit for bit in TFLM.

- boot: the converter's model gets an init subgraph that synthesises the
  generated kernels (`init_subgraph.add_init_subgraph`); its frozen
  equivalent (`equivalent.frozen_equivalent`: the same graph with the synthesised
  filters stored) is what `verify` holds it to.
- frozen, where every generated kernel is the converter's per-channel filter
  (`dense`, `factorized` with `per_channel`), or the model has no generated
  layer: the converter's model as it is (the boot file is verified equal to
  it, or refused).
- frozen otherwise (a kind whose device kernel is what the int8 arithmetic
  of its factors gives: `lowrank`, `kronecker`, `lowrank_shared`,
  `kronecker_shared`; or `per_channel=False`): the frozen equivalent of the
  boot rewrite, so that the frozen file stores the kernel the boot file
  computes rather than the converter's rounding of the float kernel.
"""
from __future__ import annotations

import dataclasses

from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from hypertiny_keras.export.analyze import ExportPlan
from hypertiny_keras.export.equivalent import frozen_equivalent
from hypertiny_keras.export.init_subgraph import GeneratedLayer, add_init_subgraph
from hypertiny_keras.tflite.flatbuffer import read_model


@dataclasses.dataclass
class Rewritten:
    """What the rewrite stage hands on.

    `model` is the flatbuffer the file will hold; `main_graph` the frozen
    equivalent a boot `model` must equal in TFLM (`None` for a frozen
    file); `layers` what the rewrite did per generated layer (boot only);
    `matches_converter` whether the file computes what the converter's own
    int8 model computes.
    """

    model: schema.ModelT
    main_graph: schema.ModelT | None
    layers: list[GeneratedLayer]
    matches_converter: bool


def frozen_stores_converter_filters(plan: ExportPlan) -> bool:
    """Whether the boot file of `plan` synthesises exactly the converter's filters (so frozen = converter's file)."""
    return plan.options.per_channel and all(layer.kernel_generator.solves_target for layer in plan.layers)


def rewrite(plan: ExportPlan, converted: bytes) -> Rewritten:
    """The model to write for `plan`, from the converter's `.tflite` bytes `converted` (see the module docstring).

    Raises:
        BootExportError: (boot) a model whose kernels the device cannot
            synthesise exactly; (both) no CONV_2D holds a generated kernel.
    """
    options = plan.options
    flat = read_model(converted)
    if options.synthesis == "frozen" and (not plan.layers or frozen_stores_converter_filters(plan)):
        return Rewritten(flat, None, [], True)
    boot = options.synthesis == "boot"
    done = add_init_subgraph(flat, plan.layers, options.per_channel, options.allow_inexact,
                             options.init_weight_bits, for_frozen=not boot)
    twin = frozen_equivalent(flat, done)
    if boot:
        return Rewritten(flat, twin, done.layers, done.matches_converter)
    return Rewritten(twin, None, [], done.matches_converter)
