"""Speech Commands loader and MFCC frontend on the real test-set clips."""
import shutil

import numpy as np
import pytest
import scipy.fft
import tensorflow as tf

from hypertiny_keras.data import (
    DataError,
    augment,
    load_background_noise,
    load_speech_commands,
    mfcc,
    speech_commands,
    training_map,
)


@pytest.fixture(scope="module")
def sc_root(data_root):
    return data_root / "speech_commands"


@pytest.fixture(scope="module")
def clips(sc_root):
    return load_speech_commands(sc_root / "test_v0.02", max_clips_per_class=20)


def test_240_clips_shapes_and_labels(clips):
    assert clips.x.shape == (240, 101, 40)
    assert np.bincount(clips.y, minlength=12).tolist() == [20] * 12
    for rec, y in zip(clips.record, clips.y):
        assert rec.split("/")[0] == clips.class_names[y]


def test_splits_share_no_speaker(clips):
    per = {s: set(clips.patient[clips.split == s]) for s in ("train", "val", "test")}
    assert all(per.values())
    assert not (per["train"] & per["val"] or per["train"] & per["test"] or per["val"] & per["test"])
    assert speech_commands.speaker_of(speech_commands.pathlib.Path("backward_0c540988_nohash_0.wav.wav")) == "0c540988"


def test_mfcc_matches_a_numpy_computation(sc_root):
    audio = speech_commands.fit_clip(speech_commands.read_wav(sc_root / "test_v0.02" / "yes" / "022cd682_nohash_0.wav"))
    padded = np.pad(audio, 200)
    frames = np.stack([padded[i * 160: i * 160 + 400] for i in range(101)])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)  # periodic Hann
    power = np.abs(np.fft.rfft(frames * window, 512)) ** 2
    mel = tf.signal.linear_to_mel_weight_matrix(40, 257, 16000, 20.0, 7600.0).numpy()
    # tf.signal.mfccs_from_log_mel_spectrograms: unnormalised DCT-II times 1 / sqrt(2 * 40)
    expected = scipy.fft.dct(np.log(power @ mel + 1e-6), type=2, axis=-1) / np.sqrt(80)
    got = mfcc(audio[None])[0].numpy()
    assert got.shape == (101, 40)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=2e-3)


def test_augment_shift_only_moves_the_clip():
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, (4, 16000)).astype(np.float32)
    noise = np.zeros((1, 20000), np.float32)
    out = augment(audio, noise, tf.constant([1, 2]), max_shift=100).numpy()
    for a, o in zip(audio, out):
        shifts = [s for s in range(-100, 101)
                  if np.allclose(o, np.pad(a, 100)[100 - s: 100 - s + 16000])]
        assert len(shifts) == 1
    np.testing.assert_array_equal(out, augment(audio, noise, tf.constant([1, 2]), max_shift=100).numpy())


def test_augment_mixes_noise(sc_root):
    noise = load_background_noise(sc_root / "_background_noise_")
    assert noise.shape[0] == 6
    silent = np.zeros((8, 16000), np.float32)
    out = augment(silent, noise, tf.constant([3, 4]), max_shift=0, noise_probability=1.0).numpy()
    assert np.all(np.abs(out).max(axis=1) > 0) and np.abs(out).max() <= 0.1 + 1e-6


def test_training_pipeline_on_waveforms(sc_root):
    w = load_speech_commands(sc_root / "test_v0.02", features="waveform", max_clips_per_class=3)
    assert w.x.shape == (36, 16000)
    noise = load_background_noise(sc_root / "_background_noise_")
    x, y = next(iter(w.as_tf_dataset(batch_size=8, seed=0, map_fn=training_map(noise, seed=0))))
    assert x.shape == (8, 101, 40) and y.shape == (8,)


def test_full_dataset_layout_uses_the_official_lists(sc_root, tmp_path):
    src = sc_root / "test_v0.02"
    for word in ("yes", "no"):
        (tmp_path / word).mkdir()
        for f in sorted((src / word).glob("*.wav"))[:10]:
            shutil.copy(f, tmp_path / word / f.name)
    (tmp_path / "backward").mkdir()
    for f in sorted((src / "_unknown_").glob("backward_*.wav"))[:6]:
        shutil.copy(f, tmp_path / "backward" / f.name.split("_", 1)[1].removesuffix(".wav"))
    (tmp_path / "_background_noise_").mkdir()
    shutil.copy(sc_root / "_background_noise_" / "white_noise.wav", tmp_path / "_background_noise_")
    yes = sorted(p.name for p in (tmp_path / "yes").iterdir())
    no = sorted(p.name for p in (tmp_path / "no").iterdir())
    (tmp_path / "validation_list.txt").write_text(f"yes/{yes[0]}\nno/{no[0]}\n")
    (tmp_path / "testing_list.txt").write_text(f"yes/{yes[1]}\nno/{no[1]}\n")
    w = load_speech_commands(tmp_path, unknown_percentage=25.0, silence_percentage=50.0)
    assert set(w.record[w.split == "val"]) >= {f"yes/{yes[0]}", f"no/{no[0]}"}
    assert set(w.record[w.split == "test"]) >= {f"yes/{yes[1]}", f"no/{no[1]}"}
    train = w.y[w.split == "train"]
    assert np.sum(train < 10) == 16 and np.sum(train == 10) == 4 and np.sum(train == 11) == 8


def test_corrupt_wav_names_the_file(sc_root, tmp_path):
    shutil.copytree(sc_root / "test_v0.02", tmp_path / "t", ignore=lambda d, names: [
        n for n in names if n.endswith(".wav") and n not in sorted(names)[:2]])
    victim = sorted((tmp_path / "t" / "go").glob("*.wav"))[0]
    victim.write_bytes(b"RIFF\x00\x00garbage")
    with pytest.raises(DataError, match=victim.name):
        load_speech_commands(tmp_path / "t")
