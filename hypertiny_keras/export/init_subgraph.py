"""`add_init_subgraph`: give a converted int8 model an init subgraph that generates its kernels.

The TFLite converter folds every generator it sees into constants, so the
init subgraph is written into the flatbuffer after conversion:

    subgraph 0 (main)                        subgraph 1 (init, runs once)
    ... CALL_ONCE(init) --------------------> FULLY_CONNECTED(z_l, W_g, b_g) -> h_l
                                              [FULLY_CONNECTED(h_l, B) -> u_l]   factorized
    VAR_HANDLE(l) -> READ_VARIABLE -> filter  FULLY_CONNECTED(h_l | u_l, H_l) -> w_l (zp 0)
    CONV_2D(x, filter, bias)                  VAR_HANDLE(l) -> ASSIGN_VARIABLE(w_l)

A resource variable is bytes to TFLM, so w_l keeps the generator's shape.
Stock TFLM holds each kernel in its resource buffer and copies it into the
planned filter tensor at every inference; the device core (tflm_app/src)
points the filter and w_l at one buffer, the kernel's only copy in RAM.
CALL_ONCE sits before the first read where the main graph has the fewest
live bytes (`tflite.liveness`): TFLM plans the init subgraph there.

Generated filters are symmetric int8 (zero point 0) with their scales fixed
in the file. What each layer's init operators are is its kernel generator's
business (`kernel_generators`): it calls the `Emitter` (`emitter`), which
quantizes intermediate steps, emulates the device arithmetic bit-exactly
(`fixed_point`), and solves the last step's int8 weights (`solver`) so that
the synthesised kernel equals its target exactly: the converter's own
per-channel int8 filter (default, so boot and frozen files compute the same
thing), or the kernel rounded to one per-tensor scale. A layer whose target
cannot be reached exactly is refused, naming the layer, unless the caller
accepts the measured difference (`allow_inexact`). Kinds that store fewer
values than their kernel (`lowrank`, `kronecker` and their shared forms)
have no free value per kernel value: their device kernel is what the int8
FULLY_CONNECTED of their factors gives, and `Rewrite.filters` holds it.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from hypertiny_keras.export.conv_matching import match_convs, stored_filter
from hypertiny_keras.export.emitter import Emitter, as_float64, symmetric
from hypertiny_keras.export.errors import BootExportError
from hypertiny_keras.export.model_writer import INT8, INT32, OPS, quantization
from hypertiny_keras.tflite.flatbuffer import buffer_bytes, compact
from hypertiny_keras.tflite.liveness import quietest_step


@dataclasses.dataclass
class GeneratedLayer:
    """What the rewrite did to one generated layer.

    `exact_fraction` is the share of kernel values the device synthesises
    exactly equal to the target int8 filter; `max_error_lsb` the largest miss
    (filter steps); `kernel_error_lsb` the largest distance of the
    synthesised kernel from the float kernel (steps of its own scale).
    """

    name: str
    filters: int
    in_channels: int
    head_mode: str
    filter_scales: list[float]
    exact_fraction: float
    max_error_lsb: int
    kernel_error_lsb: float
    #: Bits of the layer's own init-subgraph weights (its head or right factor): the export's
    #: `init_weight_bits`, or 8 where int4 heads could not hit every target.
    weight_bits: int = 8


@dataclasses.dataclass
class Rewrite:
    """The result of `add_init_subgraph`: per-layer figures and the int8 filters the frozen equivalent stores.

    `filters` maps each rewritten CONV_2D filter (by layer name) to the int8
    values `(C_out, 1, 1, C_in)` the init subgraph synthesises (for a
    rewrite made for the frozen export: the values the frozen file stores),
    with their scales `(C_out,)` or `(1,)`; `frozen_equivalent` stores them
    as constants.
    """

    layers: list[GeneratedLayer]
    filters: dict[str, tuple[np.ndarray, np.ndarray]]
    #: Whether every layer synthesises the converter's own per-channel filter
    #: (then the boot file computes what the converter's frozen file computes).
    matches_converter: bool = True


def _requantize_bias(writer, model, conv, name: str, stored_scales: np.ndarray, filter_scales: np.ndarray) -> None:
    """Point the CONV_2D `conv`'s int32 bias (input scale x filter scale units) at a copy in the new filter scales."""
    main = model.subgraphs[0]
    cout = len(stored_scales)
    input_scale = float(main.tensors[conv.inputs[0]].quantization.scale[0])
    old_bias = np.frombuffer(buffer_bytes(model, main.tensors[conv.inputs[2]]), np.int32)
    bias_float = old_bias * input_scale * stored_scales
    new_scales = np.float32(input_scale) * np.broadcast_to(filter_scales, (cout,)).astype(np.float32)
    bias = np.clip(np.round(bias_float / new_scales.astype(np.float64)), -(2**31), 2**31 - 1)
    conv.inputs[2] = writer.tensor(
        main, f"{name}/bias", [cout], INT32, bias.astype(np.int32),
        quantization(new_scales if filter_scales.size > 1 else new_scales[:1]),
    )


def add_init_subgraph(
    model: schema.ModelT,
    layers,
    per_channel: bool = True,
    allow_inexact: bool = False,
    weight_bits: int = 8,
    for_frozen: bool = False,
) -> Rewrite:
    """Rewrite `model` (converted from the frozen Keras model) in place for boot-time synthesis.

    Args:
        model: the converter's full-integer model of the frozen Keras model.
        layers: the model's `HyperPointwise` layers (`layers.generated_layers`), in model order.
        per_channel: synthesise exactly the converter's per-channel int8
            filter (one scale per output channel; the convolution is then
            identical to the frozen file's). `False`: one scale per filter.
        allow_inexact: write the file even where the device cannot
            synthesise a layer's target exactly (the misses are reported).
        weight_bits: bits of the init subgraph's FULLY_CONNECTED weights
            (generator, basis, heads, right factors): 8, or 4 (packed int4,
            half the bytes). Heads are still solved for the exact int8
            target; factor kernels are what the int4 arithmetic gives.
        for_frozen: the rewrite only serves the frozen export (its
            `frozen_equivalent`; `model` itself is not written): a solved
            layer stores its target (what its boot file computes, or the
            boot file is refused) and nothing is refused as inexact; a factor
            kernel whose channels a folded BatchNormalization flips or zeroes
            keeps those signs in its stored values (a boot file cannot: its
            device kernel has one sign).

    Raises:
        BootExportError: no CONV_2D holds a generated kernel, a factor kernel
            whose channel a folded BatchNormalization flips or zeroes (unless
            `for_frozen`), or (unless `allow_inexact` or `for_frozen`) a
            layer's kernel that is not synthesised exactly.
    """
    if not layers:
        raise BootExportError("the model has no HyperPointwise layer")
    kernels = {layer.name: as_float64(layer.generated_kernel()) for layer in layers}
    matches = match_convs(model, kernels)
    emitter = Emitter(model, layers, weight_bits)
    writer, init, main = emitter.writer, emitter.init, model.subgraphs[0]
    model.subgraphs.append(init)

    report, filters, reads, inexact = [], {}, {}, []
    for layer in layers:
        name = layer.name
        conv, factor = matches[name]
        cout, cin = kernels[name].shape
        stored, stored_scales = stored_filter(model, main, conv)
        target_kernel = kernels[name] * factor[:, None]
        kind = layer.kernel_generator
        if kind.solves_target:
            if per_channel:
                filter_scales, target = stored_scales, stored.astype(np.int64)
            else:
                target, scale = symmetric(target_kernel)
                filter_scales, target = np.full(1, scale), target.astype(np.int64)
            row_scales = np.broadcast_to(filter_scales, (cout,))
            value_scales = np.repeat(factor / row_scales, cin)  # float kernel value -> target steps
            t_w, synthesised, _ = kind.emit(emitter, layer, target.reshape(-1), value_scales)
            synthesised = np.asarray(synthesised, np.int64).reshape(cout, cin)
            target = target.reshape(cout, cin)
            values = target if for_frozen else synthesised
        else:
            if np.any(factor <= 0) and not for_frozen:
                raise BootExportError(
                    f"{name}: the converter's filter flips or zeroes {int(np.sum(factor <= 0))} output channel(s) "
                    "(a following BatchNormalization with gamma <= 0, or a kernel row that rounds to zero); a "
                    f"{kind.name!r} kernel is one product of factors and cannot absorb it; export with "
                    "synthesis='frozen'"
                )
            t_w, synthesised, scale = kind.emit(emitter, layer, None, None)
            synthesised = target = np.asarray(synthesised, np.int64).reshape(cout, cin)
            # One scale for the device kernel; a folded BatchNormalization goes into the per-channel scales.
            # Scales stay positive: a channel it flips (frozen only) keeps its sign in the stored values.
            filter_scales = np.asarray(np.float32(scale) * np.where(factor != 0, np.abs(factor), 1.0)
                                       .astype(np.float32), np.float64)
            row_scales = filter_scales
            values = synthesised * np.sign(factor).astype(np.int64)[:, None]

        # The generator's output goes to the variable as it is: TFLM's resource variables are bytes (ASSIGN and
        # READ check only the byte count), so no RESHAPE to the filter's [cout, 1, 1, cin] (a node, a tensor and
        # its options that TFLM would keep for the interpreter's life); the filter scales sit on the reader.
        handle, t_resource = writer.var_handle(init, name)
        assign = writer.op(OPS.ASSIGN_VARIABLE, [t_resource, t_w], [], schema.BuiltinOptions.AssignVariableOptions,
                           schema.AssignVariableOptionsT())
        init.operators += [handle, assign]

        # Main graph: read the cached kernel right before its convolution.
        handle, t_resource = writer.var_handle(main, name)
        t_filter = writer.tensor(main, f"{name}/filter", [cout, 1, 1, cin], INT8, None, quantization(filter_scales))
        read = writer.op(OPS.READ_VARIABLE, [t_resource], [t_filter], schema.BuiltinOptions.ReadVariableOptions,
                         schema.ReadVariableOptionsT())
        reads[id(conv)] = [handle, read]
        conv.inputs[1] = t_filter
        if not np.array_equal(filter_scales, stored_scales) and len(conv.inputs) > 2 and conv.inputs[2] >= 0:
            _requantize_bias(writer, model, conv, name, stored_scales, filter_scales)
        miss = np.abs(synthesised - target)
        if miss.max() > 0:
            inexact.append(f"{name} ({100 * np.mean(miss > 0):.1f}% of its {miss.size} values missed, "
                           f"by up to {int(miss.max())} steps)")
        filters[name] = (values.astype(np.int8).reshape(cout, 1, 1, cin), np.asarray(filter_scales, np.float32))
        report.append(
            GeneratedLayer(
                name=name,
                filters=cout,
                in_channels=cin,
                head_mode=layer.head_mode,
                filter_scales=[float(s) for s in filter_scales],
                exact_fraction=float(np.mean(miss == 0)),
                max_error_lsb=int(miss.max()),
                kernel_error_lsb=float(
                    (np.abs(values * row_scales[:, None] - target_kernel) / row_scales[:, None]).max()
                ),
                weight_bits=8 if name in emitter.int8_fallbacks else weight_bits,
            )
        )
    if inexact and not (allow_inexact or for_frozen):
        raise BootExportError(
            "the device cannot synthesise these kernels exactly, so the boot file would not compute what the "
            f"frozen file computes: {'; '.join(inexact)}; export with synthesis='frozen', or accept the "
            "difference with allow_inexact=True"
        )

    once = schema.CallOnceOptionsT()
    once.initSubgraphIndex = len(model.subgraphs) - 1
    # CALL_ONCE where the main graph has the fewest live bytes before the first read: TFLM plans the init
    # subgraph inside the CALL_ONCE step, beside the main graph's tensors alive there.
    operators = []
    for op in main.operators:
        operators += reads.get(id(op), []) + [op]
    main.operators = operators
    first_read = min((operators.index(ops[0]) for ops in reads.values()), default=0)
    operators.insert(quietest_step(model, 0, first_read),
                     writer.op(OPS.CALL_ONCE, [], [], schema.BuiltinOptions.CallOnceOptions, once))
    compact(model)
    return Rewrite(report, filters, per_channel and all(layer.kernel_generator.solves_target for layer in layers))
