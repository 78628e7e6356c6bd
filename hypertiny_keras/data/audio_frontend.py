"""Keyword-spotting frontend in TensorFlow: 1 s of 16 kHz audio -> 101 x 40 MFCC, and augmentation.

MFCC: 25 ms Hann window (400 samples), 10 ms hop (160 samples), FFT length 512, frames centred
(200 zero samples padded at each end, so 16000 samples give 1 + 16000 / 160 = 101 frames),
power spectrum -> 40 mel bands 20-7600 Hz -> log(mel + 1e-6) -> DCT-II scaled by 1/sqrt(2 * 40)
(`tf.signal.mfccs_from_log_mel_spectrograms`) -> all 40 coefficients.
Output ``(batch, 101, 40)``: frames (time, 10 ms apart) x coefficients.
"""
from __future__ import annotations

import tensorflow as tf

SAMPLE_RATE = 16000  # Hz
CLIP_SAMPLES = 16000  # 1 s
FRAME_LENGTH = 400  # samples = 25 ms
FRAME_STEP = 160  # samples = 10 ms
FFT_LENGTH = 512
N_MELS = 40
N_MFCC = 40
MEL_RANGE_HZ = (20.0, 7600.0)


def mfcc(audio: tf.Tensor) -> tf.Tensor:
    """MFCCs of ``(batch, 16000)`` float audio in [-1, 1]; returns float32 ``(batch, 101, 40)``."""
    audio = tf.convert_to_tensor(audio, tf.float32)
    padded = tf.pad(audio, [[0, 0], [FRAME_LENGTH // 2, FRAME_LENGTH // 2]])
    stft = tf.signal.stft(padded, FRAME_LENGTH, FRAME_STEP, FFT_LENGTH, window_fn=tf.signal.hann_window)
    power = tf.math.square(tf.abs(stft))
    mel_matrix = tf.signal.linear_to_mel_weight_matrix(
        N_MELS, FFT_LENGTH // 2 + 1, SAMPLE_RATE, *MEL_RANGE_HZ
    )
    log_mel = tf.math.log(tf.tensordot(power, mel_matrix, 1) + 1e-6)
    return tf.signal.mfccs_from_log_mel_spectrograms(log_mel)[..., :N_MFCC]


def augment(
    audio: tf.Tensor,
    noise: tf.Tensor,
    seed: tf.Tensor,
    max_shift: int = 1600,
    noise_probability: float = 0.8,
    max_noise_volume: float = 0.1,
) -> tf.Tensor:
    """Random time shift and background-noise mixing of a ``(batch, 16000)`` batch (stateless).

    Args:
        audio: float ``(batch, 16000)`` clips.
        noise: float ``(n_noise, n_samples)`` background-noise recordings (n_samples >= 16000).
        seed: int32 ``(2,)`` stateless seed; vary it per batch.
        max_shift: shift each clip by up to +-``max_shift`` samples (100 ms), zero-filled.
        noise_probability: chance that a clip gets noise.
        max_noise_volume: noise gain drawn uniformly in [0, max_noise_volume].

    Returns:
        float32 ``(batch, 16000)`` clipped to [-1, 1].
    """
    audio = tf.convert_to_tensor(audio, tf.float32)
    batch = tf.shape(audio)[0]
    seeds = tf.random.experimental.stateless_split(seed, 5)
    shift = tf.random.stateless_uniform([batch], seeds[0], -max_shift, max_shift + 1, tf.int32)
    padded = tf.pad(audio, [[0, 0], [max_shift, max_shift]])
    starts = max_shift - shift
    idx = starts[:, None] + tf.range(CLIP_SAMPLES)[None, :]
    shifted = tf.gather(padded, idx, batch_dims=1)
    which = tf.random.stateless_uniform([batch], seeds[1], 0, tf.shape(noise)[0], tf.int32)
    offset = tf.random.stateless_uniform(
        [batch], seeds[2], 0, tf.shape(noise)[1] - CLIP_SAMPLES + 1, tf.int32
    )
    noise_clips = tf.gather(
        tf.gather(noise, which), offset[:, None] + tf.range(CLIP_SAMPLES)[None, :], batch_dims=1
    )
    volume = tf.random.stateless_uniform([batch], seeds[3], 0.0, max_noise_volume)
    volume *= tf.cast(tf.random.stateless_uniform([batch], seeds[4]) < noise_probability, tf.float32)
    return tf.clip_by_value(shifted + volume[:, None] * noise_clips, -1.0, 1.0)
