"""Speech Commands v0.02, 12 classes: 10 words + ``_unknown_`` + ``_silence_``, 1 s at 16 kHz.

Two layouts are recognised:

* the official test-set archive (``speech_commands_test_set_v0.02``): one folder per class,
  including ``_silence_`` and ``_unknown_``. Splits are speaker-disjoint, 80/10/10 by ``seed``
  over speakers (speaker id = file-name part before ``_nohash_``, without a leading
  ``<word>_`` in ``_unknown_``); each ``_silence_`` clip is its own group.
* the full dataset (``speech_commands_v0.02``): one folder per word plus ``validation_list.txt``
  and ``testing_list.txt`` (the official splits; every other clip is train). Words other than
  the 10 targets are ``_unknown_``, subsampled per split to ``unknown_percentage`` % of the
  target-word clips; ``_silence_`` clips (``silence_percentage`` % per split) are random 1 s crops
  of the background noise at a random gain in [0, 0.1] (both seeded).

Clips are read as int16 PCM, scaled to [-1, 1] and zero-padded / cropped to 16000 samples.
"""
from __future__ import annotations

import collections
import pathlib
import wave

import numpy as np
from tqdm.auto import tqdm

from hypertiny_keras.data.audio_frontend import CLIP_SAMPLES, SAMPLE_RATE
from hypertiny_keras.data.cache import cached_windows
from hypertiny_keras.data.errors import DataError
from hypertiny_keras.data.physionet import require_dir
from hypertiny_keras.data.splits import assign_groups
from hypertiny_keras.data.windows import Windows, finish_windows

WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
CLASS_NAMES = WORDS + ("_unknown_", "_silence_")
NOISE_DIR = "_background_noise_"
ARCHIVE_URL = "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"


def read_wav(path: pathlib.Path) -> np.ndarray:
    """Mono 16 kHz int16 WAV as float32 in [-1, 1] (any length > 0).

    Raises:
        DataError: naming ``path`` when it is not a parsable WAV file, not 16 kHz mono 16-bit
            PCM, holds no samples, or is truncated (fewer sample bytes than its data chunk
            declares).
    """
    if path.is_file() and path.stat().st_size == 0:
        raise DataError(f"{path}: WAV file is empty (0 bytes)")
    try:
        with wave.open(str(path), "rb") as f:
            if f.getframerate() != SAMPLE_RATE or f.getnchannels() != 1 or f.getsampwidth() != 2:
                raise DataError(f"{path}: expected 16 kHz mono 16-bit PCM, got {f.getframerate()} Hz, "
                                f"{f.getnchannels()} channel(s), {8 * f.getsampwidth()} bit")
            declared = f.getnframes()
            data = f.readframes(declared)
    except DataError:
        raise
    except Exception as err:  # wave raises wave.Error, EOFError, RuntimeError, struct.error...
        reason = str(err) if isinstance(err, wave.Error) else f"{type(err).__name__}: {err}".rstrip(": ")
        raise DataError(f"{path}: not a readable WAV file ({reason})") from err
    if len(data) != 2 * declared:
        raise DataError(f"{path}: truncated WAV file ({len(data)} bytes of samples, its data chunk "
                        f"declares {declared} samples = {2 * declared} bytes)")
    if declared == 0:
        raise DataError(f"{path}: WAV file holds no samples")
    return np.frombuffer(data, np.int16).astype(np.float32) / 32768.0


def fit_clip(audio: np.ndarray) -> np.ndarray:
    """Zero-pad at the end or crop to exactly 16000 samples (1 s)."""
    return np.pad(audio[:CLIP_SAMPLES], (0, max(0, CLIP_SAMPLES - audio.size)))


def speaker_of(path: pathlib.Path) -> str:
    """Speaker id from ``[<word>_]<speaker>_nohash_<n>.wav``; ``silence-<name>`` without one."""
    name = path.name.split(".")[0]
    if "_nohash_" not in name:
        return f"silence-{name}"
    return name.split("_nohash_")[0].split("_")[-1]


def load_background_noise(noise_dir: str | pathlib.Path) -> np.ndarray:
    """The background-noise recordings cropped to the shortest: float32 ``(n_files, n_samples)``."""
    files = sorted(require_dir(noise_dir, "background noise").glob("*.wav"))
    if not files:
        raise DataError(f"{noise_dir}: no .wav files")
    noise = [read_wav(f) for f in files]
    length = min(n.size for n in noise)
    return np.stack([n[:length] for n in noise])


def list_clips(data_dir: pathlib.Path, seed: int, unknown_percentage: float,
               silence_percentage: float) -> tuple[list[tuple[pathlib.Path | None, int, str, str]], str]:
    """``([(path or None for generated silence, label, speaker, split)], layout)``."""
    if (data_dir / "_silence_").is_dir() and (data_dir / "_unknown_").is_dir():
        clips = [(p, CLASS_NAMES.index(c), speaker_of(p)) for c in CLASS_NAMES
                 for p in sorted((data_dir / c).glob("*.wav"))]
        if not clips:
            raise DataError(f"{data_dir}: no .wav clips in its class folders")
        by_speaker = assign_groups([s for _, _, s in clips], (0.8, 0.1, 0.1), seed)
        return [(p, y, s, by_speaker[s]) for p, y, s in clips], "test_set_speaker_split"
    lists = {name: data_dir / f"{name}_list.txt" for name in ("validation", "testing")}
    for path in lists.values():
        if not path.is_file():
            raise DataError(f"{path}: missing (expected the full dataset with split lists, or the "
                            f"test-set folder with _silence_ and _unknown_)")
    split_of = {line: "val" for line in lists["validation"].read_text().split()}
    split_of.update({line: "test" for line in lists["testing"].read_text().split()})
    rng = np.random.default_rng(seed)
    out = []
    for split in ("train", "val", "test"):
        words, unknown = [], []
        for folder in sorted(p for p in data_dir.iterdir() if p.is_dir() and p.name != NOISE_DIR):
            for path in sorted(folder.glob("*.wav")):
                if split_of.get(f"{folder.name}/{path.name}", "train") != split:
                    continue
                target = folder.name in WORDS
                (words if target else unknown).append(
                    (path, CLASS_NAMES.index(folder.name) if target else 10, speaker_of(path), split))
        n_unknown = min(len(unknown), int(round(len(words) * unknown_percentage / 100)))
        chosen = rng.choice(len(unknown), n_unknown, replace=False) if unknown else []
        n_silence = int(round(len(words) * silence_percentage / 100))
        silence = [(None, 11, f"silence-{split}-{i}", split) for i in range(n_silence)]
        out += words + [unknown[i] for i in sorted(chosen)] + silence
    return out, "official_lists"


def first_per_class(clips: list[tuple], n: int) -> list[tuple]:
    """The first ``n`` clips of each label (label = second field), in the given order."""
    counts: collections.Counter = collections.Counter()
    kept = []
    for item in clips:
        if counts[item[1]] < n:
            counts[item[1]] += 1
            kept.append(item)
    return kept


def load_speech_commands(
    data_dir: str | pathlib.Path,
    features: str = "mfcc",
    noise_dir: str | pathlib.Path | None = None,
    max_clips_per_class: int | None = None,
    unknown_percentage: float = 10.0,
    silence_percentage: float = 10.0,
    seed: int = 0,
    zscore: bool = False,
    clip: float | None = None,
    use_cache: bool = True,
    download: bool = False,
) -> Windows:
    """Speech Commands clips as MFCCs or waveforms with speaker-disjoint or official splits.

    Args:
        data_dir: the test-set folder (``_silence_``, ``_unknown_``, ``yes``, ...) or the full
            dataset folder (word folders, ``validation_list.txt``, ``testing_list.txt``).
        features: ``"mfcc"`` -> ``x`` ``(N, 101, 40)`` (see `audio_frontend.mfcc`);
            ``"waveform"`` -> ``x`` ``(N, 16000)`` at 16 kHz (for `augment` + `mfcc` in tf.data).
        noise_dir: background-noise folder (default ``data_dir/_background_noise_``, then its
            parent's); needed only to generate silence for the full dataset.
        max_clips_per_class: keep the first N clips (sorted by path) of each class.
        unknown_percentage, silence_percentage: full dataset only (see module doc).
        seed: split / sampling seed.
        zscore, clip: per-window normalisation (off by default).
        use_cache: read / write the disk cache.
        download: first fetch and unpack the full dataset archive into ``data_dir`` (needs network).

    Returns:
        `Windows`; ``record`` is the clip path relative to ``data_dir``, ``patient`` the speaker.
    """
    if features not in ("mfcc", "waveform"):
        raise ValueError(f"features must be 'mfcc' or 'waveform', got {features!r}")
    data_dir = pathlib.Path(data_dir).expanduser()
    if download:
        download_archive(ARCHIVE_URL, data_dir)
    require_dir(data_dir, "Speech Commands")
    clips, layout = list_clips(data_dir, seed, unknown_percentage, silence_percentage)
    if max_clips_per_class is not None:
        clips = first_per_class(clips, max_clips_per_class)
    if not clips:
        raise DataError(f"{data_dir}: no clips to load (no .wav files in its word folders"
                        f"{'' if max_clips_per_class is None else f', or max_clips_per_class={max_clips_per_class}'})")
    needs_noise = any(p is None for p, *_ in clips)
    noise_path = pathlib.Path(noise_dir) if noise_dir else next(
        (d / NOISE_DIR for d in (data_dir, data_dir.parent) if (d / NOISE_DIR).is_dir()), data_dir / NOISE_DIR)
    inputs = [p for p, *_ in clips if p is not None]
    inputs += sorted(noise_path.glob("*.wav")) if needs_noise else []
    params = dict(layout=layout, features=features, clips=[(str(p), y, s) for p, y, s, _ in clips],
                  seed=seed, zscore=zscore, clip=clip)

    def build() -> Windows:
        noise = load_background_noise(noise_path) if needs_noise else None
        rng = np.random.default_rng(seed)
        audio = np.empty((len(clips), CLIP_SAMPLES), np.float32)
        for i, (path, *_rest) in enumerate(tqdm(clips, desc="Speech Commands clips", unit="clip")):
            if path is None:
                start = rng.integers(0, noise.shape[1] - CLIP_SAMPLES + 1)
                audio[i] = noise[rng.integers(len(noise)), start: start + CLIP_SAMPLES] * rng.uniform(0, 0.1)
            else:
                audio[i] = fit_clip(read_wav(path))
        x = audio if features == "waveform" else mfcc_in_batches(audio)
        return finish_windows(
            x=x,
            y=np.array([y for _, y, _, _ in clips]),
            record=np.array([str(p.relative_to(data_dir)) if p else s for p, _, s, _ in clips]),
            patient=np.array([s for _, _, s, _ in clips]),
            split=np.array([sp for *_, sp in clips]),
            order=np.zeros(len(clips), np.int64),
            class_names=CLASS_NAMES,
            fs=SAMPLE_RATE if features == "waveform" else 100.0,
            meta=dict(source=str(data_dir), dataset="speech_commands", layout=layout, features=features),
            zscore=zscore,
            clip=clip,
        )

    return cached_windows("speech_commands", params, inputs, build, use_cache)


def mfcc_in_batches(audio: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """`audio_frontend.mfcc` of ``(N, 16000)`` audio in batches; float32 ``(N, 101, 40)``."""
    from hypertiny_keras.data.audio_frontend import mfcc

    return np.concatenate([mfcc(audio[i: i + batch_size]).numpy() for i in range(0, len(audio), batch_size)])


def training_map(noise: np.ndarray, seed: int = 0):
    """A ``map_fn`` for `Windows.as_tf_dataset` on waveform windows: augment, then MFCC.

    Each batch gets a fresh stateless seed from a generator seeded with ``seed`` (reproducible
    for a sequential pipeline; parallel map calls may draw the seeds in a different order).
    """
    import tensorflow as tf

    from hypertiny_keras.data.audio_frontend import augment, mfcc

    generator = tf.random.Generator.from_seed(seed)
    noise = tf.constant(noise, tf.float32)

    def apply(x, y):
        return mfcc(augment(x, noise, generator.make_seeds(1)[:, 0])), y

    return apply


def download_archive(url: str, data_dir: pathlib.Path) -> None:
    """Download and unpack a Speech Commands ``.tar.gz`` into ``data_dir`` (needs network)."""
    import tarfile
    import urllib.request

    data_dir.mkdir(parents=True, exist_ok=True)
    archive, _ = urllib.request.urlretrieve(url)
    with tarfile.open(archive) as tar:
        tar.extractall(data_dir, filter="data")
