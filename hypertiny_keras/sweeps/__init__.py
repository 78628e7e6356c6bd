"""Sweeps: many models trained, exported and scored on your windows.

`runner.run_model` trains one model spec over seeds, exports its int8 file
and scores it in TFLM; `pareto_front.pareto` runs a grid of variants and
widths through it and returns the accuracy/bytes front.
"""
