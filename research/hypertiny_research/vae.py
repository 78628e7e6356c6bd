"""TinyVAEHead: a depthwise/pointwise encoder, a Gaussian latent (VAE) and a linear classifier."""
from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from hypertiny_keras.models.separable import stored_pw_twin

#: log-variances are clipped to this range (nats) before `exp`, so sampling never overflows.
LOG_VAR_RANGE = (-10.0, 10.0)


@keras.saving.register_keras_serializable(package="hypertiny")
class GaussianLatent(keras.layers.Layer):
    """Reparameterised Gaussian latent with its KL term.

    Inputs `[mean, log_var]`, each `(batch, d)`; output `(batch, d)`.
    Training: `mean + exp(log_var / 2) * eps`, `eps ~ N(0, I)`, and the layer adds
    `kl_weight * mean_batch(KL(N(mean, exp(log_var)) || N(0, I)))` (nats) with `add_loss`.
    Inference: `mean`, deterministic, no loss (so the exported file computes only the mean path).

    Args:
        kl_weight: weight of the KL term in the training loss.
        seed: seed of the sampling noise.
    """

    def __init__(self, kl_weight: float = 1e-3, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.kl_weight = float(kl_weight)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        mean, log_var = inputs
        if not training:
            return mean
        log_var = ops.clip(log_var, *LOG_VAR_RANGE)
        kl = -0.5 * ops.mean(ops.sum(1.0 + log_var - ops.square(mean) - ops.exp(log_var), axis=-1))
        self.add_loss(self.kl_weight * kl)
        noise = keras.random.normal(ops.shape(mean), seed=self.seed_generator)
        return mean + ops.exp(0.5 * log_var) * noise

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "kl_weight": self.kl_weight, "seed": self.seed}


def tiny_vae_head(
    input_shape: Sequence[int],
    num_classes: int,
    widths: Sequence[int] = (32, 48, 64),
    latent_dim: int = 24,
    stem_filters: int = 16,
    stem_kernel: int = 7,
    dw_kernel: int = 5,
    downsample_blocks: int = 3,
    norm: str = "batch",
    kl_weight: float = 1e-3,
    seed: int | None = None,
    name: str = "tiny_vae_head",
) -> keras.Model:
    """TinyVAEHead (about 10 kB int8 by default).

    The `stored_pw_twin` encoder (stem, DW/PW blocks, global average pooling `"pool"`) ->
    Dense(`latent_dim`) `"latent_mean"` and Dense(`latent_dim`) `"latent_log_var"` ->
    `GaussianLatent` named `"features"` -> Dense(`num_classes`) `"classifier"`.
    The KL term enters `model.losses` in training; inference and the exported int8 file use the
    latent mean only (the converter drops the unused log-variance layer, whose bytes
    `byte_table` still counts).
    """
    encoder = stored_pw_twin(
        input_shape, num_classes, widths, stem_filters, stem_kernel, dw_kernel, downsample_blocks, norm, name
    )
    pooled = encoder.get_layer("pool").output
    mean = keras.layers.Dense(latent_dim, name="latent_mean")(pooled)
    log_var = keras.layers.Dense(latent_dim, name="latent_log_var")(pooled)
    latent = GaussianLatent(kl_weight, seed, name="features")([mean, log_var])
    outputs = keras.layers.Dense(num_classes, name="classifier")(latent)
    return keras.Model(encoder.input, outputs, name=name)
