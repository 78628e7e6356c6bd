"""The byte roles of a HyperTinyPW model, one vocabulary for `.tflite` files and Keras models."""

#: Roles of stored tensors: `inspect_tflite` splits a file's bytes by them, `byte_table` a Keras model's.
ROLES = (
    "codes",  # z_l of every generated layer
    "generator",  # shared micro-MLP g (kernel, bias) and the shared basis B
    "heads",  # H_l (dense), A_l (factorized), or the per-layer factors (lowrank, kronecker)
    "pointwise",  # stored 1x1 kernels (PW1, or every PW layer of a stored model)
    "conv",  # other convolution kernels (stem)
    "depthwise",  # depthwise kernels
    "classifier",  # dense layers
    "biases",  # int32 biases of conv, depthwise, pointwise and dense layers
    "other",  # anything else (normalization parameters; shape constants in a file)
)
