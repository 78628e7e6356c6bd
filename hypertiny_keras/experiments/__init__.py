"""Experiment machinery shared by the recipes: runs, result files, result READMEs."""
from hypertiny_keras.experiments.report import load_results, write_report
from hypertiny_keras.experiments.runner import BITS, ModelSpec, RunSettings, run_model, save_model_results

__all__ = ["BITS", "ModelSpec", "RunSettings", "load_results", "run_model", "save_model_results", "write_report"]
