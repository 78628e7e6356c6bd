"""The device side: TFLM on this host, the emulated Cortex-M4, boards and the Arduino target.

`runtime` runs TFLM (in a worker subprocess, `tflm_worker`) and LiteRT;
`emulator` builds and runs the device core on an emulated Cortex-M4;
`boards` holds flash/RAM budgets; `arduino_libraries` the TFLM libraries a
sketch can build with; `arduino` writes sketches and the Arduino library;
`sources` locates the device core (`tflm_app`) shipped inside the package.
Modules are imported on use: none of them imports Keras or TensorFlow.
"""
