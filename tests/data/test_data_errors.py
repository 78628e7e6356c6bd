"""Bad input to the loaders: truncated, empty and missing files give one `DataError` naming the file.

Every broken input is built in tmp_path from copies of a few real files; the cache tests build
their stale temporary folders and incomplete entries by hand, the way the cache names them.
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
import wfdb

from hypertiny_keras.data import DataError, cache, load_apnea_ecg, load_mitbih, load_ptbxl, load_speech_commands
from hypertiny_keras.data.physionet import check_annotation_file
from hypertiny_keras.data.speech_commands import read_wav
from hypertiny_keras.data.windows import Windows

MIT_RECORDS = ["100", "101", "103"]
APNEA_RECORDS = ["a01", "a02", "b01", "c01", "x01"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """A cache root per test, so "nothing was cached" can be checked."""
    root = tmp_path / "cache"
    monkeypatch.setenv("HYPERTINY_CACHE", str(root))
    return root


def cached_entries(root):
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


# ---------------------------------------------------------------- MIT-BIH


@pytest.fixture()
def mit_copy(data_root, tmp_path):
    """Three real MIT-BIH records copied to tmp_path/mitdb."""
    out = tmp_path / "mitdb"
    out.mkdir()
    for record in MIT_RECORDS:
        for ext in ("hea", "dat", "atr"):
            shutil.copy(data_root / "mitdb" / f"{record}.{ext}", out / f"{record}.{ext}")
    (out / "RECORDS").write_text("\n".join(MIT_RECORDS) + "\n")
    return out


def cut(path, n_bytes):
    path.write_bytes(path.read_bytes()[:n_bytes])


@pytest.mark.parametrize("keep", ["half_even", "half_odd"])
def test_truncated_atr_is_rejected_and_nothing_cached(mit_copy, private_cache, keep):
    size = (mit_copy / "100.atr").stat().st_size
    cut(mit_copy / "100.atr", size // 4 * 2 + (keep == "half_odd"))
    with pytest.raises(DataError, match=r"mitdb/100\.atr: truncated annotation file"):
        load_mitbih(mit_copy, split="paper", records=MIT_RECORDS)
    assert cached_entries(private_cache) == []


def test_zero_length_atr_names_the_file(mit_copy, private_cache):
    (mit_copy / "101.atr").write_bytes(b"")
    with pytest.raises(DataError, match=r"mitdb/101\.atr: annotation file is empty"):
        load_mitbih(mit_copy, split="paper", records=MIT_RECORDS)
    assert cached_entries(private_cache) == []


def test_every_real_annotation_file_is_complete(data_root):
    """The completeness check passes all 48 MIT-BIH .atr files and every Apnea-ECG .qrs / .apn."""
    mitdb, apnea = data_root / "mitdb", data_root / "apnea-ecg"
    atr = sorted(mitdb.glob("*.atr"))
    assert len(atr) == 48
    files = atr + sorted(apnea.glob("*.qrs")) + sorted(apnea.glob("*.apn"))
    files += sorted((apnea / "x-answers").glob("*.apn"))
    assert len(files) > 150
    for path in files:
        check_annotation_file(path)


def test_every_prefix_of_an_annotation_file_is_rejected(data_root, tmp_path):
    """Cut anywhere (also right after an annotation), a file fails; wfdb's extra fields parse."""
    n = 40
    sample = np.cumsum(np.tile([1, 5000, 2_000_000, 3, 1023, 1024, 70_000], 6))[:n]
    symbol = np.array((["N", "V", "+", "N", "~", "|", "A"] * 6)[:n])
    aux = ["(AFIB" if s == "+" else "x" * (i % 4) for i, s in enumerate(symbol)]  # odd/even lengths
    wfdb.wrann("rich", "atr", sample, symbol, aux_note=aux, chan=np.arange(n) % 3,
               num=np.arange(n) % 4, subtype=np.arange(n) % 2, write_dir=str(tmp_path))
    np.testing.assert_array_equal(wfdb.rdann(str(tmp_path / "rich"), "atr").sample, sample)
    for source in (tmp_path / "rich.atr", data_root / "mitdb" / "100.atr"):
        check_annotation_file(source)
        data = source.read_bytes()
        victim = tmp_path / "cut.atr"
        for n_bytes in range(0, len(data), 2):
            victim.write_bytes(data[:n_bytes])
            with pytest.raises(DataError, match=r"cut\.atr: (truncated|annotation file is empty)"):
                check_annotation_file(victim)


def test_data_after_the_end_marker_is_rejected(mit_copy):
    path = mit_copy / "100.atr"
    path.write_bytes(path.read_bytes() + b"\x01\x04\x00\x00")
    with pytest.raises(DataError, match=r"100\.atr: corrupt annotation file \(4 bytes after"):
        check_annotation_file(path)


def test_truncated_dat_names_the_file(mit_copy, private_cache):
    cut(mit_copy / "103.dat", 1_000_001)
    with pytest.raises(DataError, match=r"mitdb/103\.dat: truncated signal file \(1000001 bytes; .* "
                                         r"650000 samples x 2 signal\(s\) in format 212 need 1950000\)"):
        load_mitbih(mit_copy, split="paper", records=MIT_RECORDS)
    assert cached_entries(private_cache) == []


def test_mitbih_no_records(mit_copy):
    with pytest.raises(DataError, match=r"mitdb: no records given"):
        load_mitbih(mit_copy, split="paper", records=[])
    with pytest.raises(DataError, match=r"mitdb: records \['102'\] under split='dechazal', paced "
                                         r"records left out: 0 groups cannot fill"):
        load_mitbih(mit_copy, records=["102"])
    (mit_copy / "RECORDS").write_text("\n")
    with pytest.raises(DataError, match=r"mitdb/RECORDS: lists no records"):
        load_mitbih(mit_copy)


# ---------------------------------------------------------------- Apnea-ECG


@pytest.fixture()
def apnea_copy(data_root, tmp_path):
    """Five real Apnea-ECG records (.hea, .qrs, labels) copied to tmp_path/apnea-ecg."""
    src, out = data_root / "apnea-ecg", tmp_path / "apnea-ecg"
    (out / "x-answers").mkdir(parents=True)
    for record in APNEA_RECORDS:
        for ext in ("hea", "qrs"):
            shutil.copy(src / f"{record}.{ext}", out / f"{record}.{ext}")
        label = f"x-answers/{record}.apn" if record.startswith("x") else f"{record}.apn"
        shutil.copy(src / label, out / label)
    (out / "RECORDS").write_text("\n".join(APNEA_RECORDS) + "\n")
    return out


def test_truncated_qrs_is_rejected(apnea_copy, private_cache):
    path = apnea_copy / "b01.qrs"
    cut(path, path.stat().st_size // 4 * 2)
    with pytest.raises(DataError, match=r"apnea-ecg/b01\.qrs: truncated annotation file"):
        load_apnea_ecg(apnea_copy, records=APNEA_RECORDS)
    assert cached_entries(private_cache) == []


def test_empty_label_file_is_rejected(apnea_copy):
    (apnea_copy / "x-answers" / "x01.apn").write_bytes(b"")
    with pytest.raises(DataError, match=r"x-answers/x01\.apn: annotation file is empty"):
        load_apnea_ecg(apnea_copy, records=APNEA_RECORDS)


def test_apnea_no_records(apnea_copy):
    with pytest.raises(DataError, match=r"apnea-ecg: no records given"):
        load_apnea_ecg(apnea_copy, records=[])
    with pytest.raises(DataError, match=r"apnea-ecg: records \['x01'\] under split='official': 0 groups"):
        load_apnea_ecg(apnea_copy, records=["x01"])
    (apnea_copy / "RECORDS").write_text("a01r\na01er\n")
    with pytest.raises(DataError, match=r"apnea-ecg/RECORDS: lists no ECG records"):
        load_apnea_ecg(apnea_copy)


def test_record_listed_without_its_files(apnea_copy):
    (apnea_copy / "c01.qrs").unlink()
    with pytest.raises(DataError, match=r"apnea-ecg/c01\.qrs: missing"):
        load_apnea_ecg(apnea_copy)


def test_mitbih_files_are_checked_against_sha256sums(data_root, mit_copy, private_cache):
    """Where the database ships SHA256SUMS.txt a changed record is refused; where not, the windows say so."""
    plain = load_mitbih(mit_copy, split="paper", records=MIT_RECORDS, use_cache=False)
    assert plain.meta["checksums"].startswith("not verified")
    shutil.copy(data_root / "mitdb" / "SHA256SUMS.txt", mit_copy / "SHA256SUMS.txt")
    checked = load_mitbih(mit_copy, split="paper", records=MIT_RECORDS)
    assert checked.meta["checksums"].startswith("9 files verified") and np.array_equal(checked.x, plain.x)
    dat = mit_copy / "100.dat"
    dat.write_bytes(np.random.default_rng(0).bytes(dat.stat().st_size))  # same size, other bytes
    with pytest.raises(DataError, match=r"mitdb/100\.dat: SHA-256 differs"):
        load_mitbih(mit_copy, split="paper", records=MIT_RECORDS)


# ---------------------------------------------------------------- PTB-XL


@pytest.fixture()
def ptbxl_copy(data_root, tmp_path):
    """PTB-XL's two CSV files and records 1..12 copied to tmp_path/ptbxl."""
    src, out = data_root / "ptbxl", tmp_path / "ptbxl"
    (out / "records100" / "00000").mkdir(parents=True)
    for name in ("ptbxl_database.csv", "scp_statements.csv"):
        shutil.copy(src / name, out / name)
    for ecg_id in range(1, 13):
        for ext in ("hea", "dat"):
            name = f"records100/00000/{ecg_id:05d}_lr.{ext}"
            shutil.copy(src / name, out / name)
    return out


def test_header_only_csv_lists_no_records(ptbxl_copy, private_cache):
    path = ptbxl_copy / "ptbxl_database.csv"
    path.write_text(path.read_text().splitlines(True)[0])
    with pytest.raises(DataError, match=r"ptbxl/ptbxl_database\.csv: lists no records$"):
        load_ptbxl(ptbxl_copy)
    path.write_text("")
    with pytest.raises(DataError, match=r"ptbxl/ptbxl_database\.csv: file is empty"):
        load_ptbxl(ptbxl_copy)
    assert cached_entries(private_cache) == []


def test_csv_cut_inside_a_row(ptbxl_copy):
    path = ptbxl_copy / "ptbxl_database.csv"
    lines = path.read_text().splitlines(True)
    path.write_text("".join(lines[:6]) + lines[6][:25])
    with pytest.raises(DataError, match=r"ptbxl_database\.csv:7: row has \d+ of 28 fields"):
        load_ptbxl(ptbxl_copy, max_records=5)


def test_csv_with_a_byte_order_mark_loads(ptbxl_copy):
    from hypertiny_keras.data.ptbxl import read_labels

    plain = read_labels(ptbxl_copy)
    for name in ("ptbxl_database.csv", "scp_statements.csv"):
        path = ptbxl_copy / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert read_labels(ptbxl_copy) == plain and len(plain[0]) > 100


def _edit_first_row(path, column, value):
    import csv

    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    rows[1][rows[0].index(column)] = value
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)


@pytest.mark.parametrize("value", ["123", "'abc'", "['NORM']"])
def test_scp_codes_that_are_not_a_dict_name_file_and_row(ptbxl_copy, value):
    _edit_first_row(ptbxl_copy / "ptbxl_database.csv", "scp_codes", value)
    with pytest.raises(DataError, match=r"ptbxl_database\.csv:2: .*is not a dict"):
        load_ptbxl(ptbxl_copy, max_records=5, use_cache=False)


def test_duplicate_ecg_id_is_refused(ptbxl_copy):
    path = ptbxl_copy / "ptbxl_database.csv"
    lines = path.read_text().splitlines(True)
    path.write_text("".join(lines[:3] + lines[2:]))
    with pytest.raises(DataError, match=r"ptbxl_database\.csv:4: ecg_id 2 repeats the row of line 3"):
        load_ptbxl(ptbxl_copy, max_records=5, use_cache=False)


def test_database_csv_without_a_needed_column(ptbxl_copy):
    path = ptbxl_copy / "ptbxl_database.csv"
    path.write_text(path.read_text().replace("ecg_id", "id", 1))
    with pytest.raises(DataError, match=r"ptbxl_database\.csv: the header has no column ecg_id"):
        load_ptbxl(ptbxl_copy, max_records=5, use_cache=False)


def test_scp_statements_without_diagnostic_rows(ptbxl_copy):
    path = ptbxl_copy / "scp_statements.csv"
    path.write_text(path.read_text().splitlines(True)[0])
    with pytest.raises(DataError, match=r"ptbxl/scp_statements\.csv: lists no diagnostic statements"):
        load_ptbxl(ptbxl_copy, max_records=5)


def test_max_records_zero(ptbxl_copy):
    with pytest.raises(DataError, match=r"ptbxl_database\.csv: max_records=0 keeps no records"):
        load_ptbxl(ptbxl_copy, max_records=0)


@pytest.mark.parametrize("n_bytes", [0, 12_000])
def test_truncated_ptbxl_dat(ptbxl_copy, n_bytes):
    cut(ptbxl_copy / "records100/00000/00003_lr.dat", n_bytes)
    with pytest.raises(DataError, match=rf"00003_lr\.dat: truncated signal file \({n_bytes} bytes"):
        load_ptbxl(ptbxl_copy, max_records=5)


# ---------------------------------------------------------------- Speech Commands

RIFF_GARBAGE = {
    "riff_garbage": b"RIFF\x00\x00garbage",
    "riff_chunk_garbage": b"RIFF\x64\x00\x00\x00WAVEjunk\xff\xff\x00\x00garbage" + b"\x07" * 40,
    "riff_huge_size": b"RIFF\xff\xff\xff\x7fWAVE" + bytes(range(100)),
}


@pytest.fixture()
def sc_copy(data_root, tmp_path):
    """The Speech Commands test-set layout with the first two clips of each class."""
    src, out = data_root / "speech_commands" / "test_v0.02", tmp_path / "sc"
    for folder in sorted(p for p in src.iterdir() if p.is_dir()):
        (out / folder.name).mkdir(parents=True)
        for clip in sorted(folder.glob("*.wav"))[:2]:
            shutil.copy(clip, out / folder.name / clip.name)
    return out


@pytest.mark.parametrize("damage", ["odd_length", "header_only", "empty", *RIFF_GARBAGE])
def test_damaged_wav_names_the_file(sc_copy, private_cache, damage):
    victim = sorted((sc_copy / "left").glob("*.wav"))[1]
    data = victim.read_bytes()
    broken = {"odd_length": data[: len(data) // 2 | 1], "header_only": data[:44], "empty": b"",
              **RIFF_GARBAGE}[damage]
    victim.write_bytes(broken)
    with pytest.raises(DataError, match=rf"sc/left/{victim.name}: "
                                        r"(truncated WAV|WAV file is empty|not a readable WAV file \(\w)"):
        load_speech_commands(sc_copy)
    assert cached_entries(private_cache) == []


def test_truncated_wav_reports_its_sizes(sc_copy):
    victim = sorted((sc_copy / "yes").glob("*.wav"))[0]
    cut(victim, 44 + 1000)
    with pytest.raises(DataError, match=r"truncated WAV file \(1000 bytes of samples, its data chunk "
                                        r"declares 16000 samples = 32000 bytes\)$"):
        read_wav(victim)


def test_no_clips(sc_copy):
    for wav in sc_copy.rglob("*.wav"):
        wav.unlink()
    with pytest.raises(DataError, match=r"sc: no \.wav clips"):
        load_speech_commands(sc_copy)


# ---------------------------------------------------------------- cache


def tiny_windows(n=6):
    return Windows(x=np.arange(n * 4, dtype=np.float32).reshape(n, 4, 1), y=np.arange(n) % 2,
                   record=np.array([f"r{i}" for i in range(n)]), patient=np.array([f"p{i}" for i in range(n)]),
                   split=np.array(["train", "val", "test"] * (n // 3)), order=np.arange(n),
                   class_names=("a", "b"), fs=1.0, meta={"source": "tiny"})


def counting_build():
    calls = []

    def build():
        calls.append(1)
        return tiny_windows()

    return build, calls


def dead_pid():
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_writer_temp_folder_name_carries_host_and_pid(private_cache, monkeypatch):
    seen, save = [], np.save

    def spy(path, *args, **kwargs):
        seen.append(path.parent.name)
        save(path, *args, **kwargs)

    monkeypatch.setattr(np, "save", spy)
    cache.cached_windows("tiny", {"a": 1}, [], tiny_windows)
    match = cache._TEMP_NAME.match(seen[0])
    assert match and match["host"] == cache.HOST and match["pid"] == str(os.getpid())
    assert seen[0].startswith("." + cached_entries(private_cache)[0] + ".")


def test_stale_temp_folders_are_swept(private_cache):
    private_cache.mkdir()
    key = "mitbih-" + "0" * 20
    killed = pathlib.Path(tempfile.mkdtemp(prefix=f".{key}.{cache.HOST}.{dead_pid()}.", dir=private_cache))
    np.save(killed / "x.npy", np.zeros(1000, np.float32))  # what a SIGKILLed writer leaves
    live = pathlib.Path(tempfile.mkdtemp(prefix=f".{key}.{cache.HOST}.{os.getppid()}.", dir=private_cache))
    mine = pathlib.Path(tempfile.mkdtemp(prefix=f".{key}.{cache.HOST}.{os.getpid()}.", dir=private_cache))
    other_host = pathlib.Path(tempfile.mkdtemp(prefix=f".{key}.elsewhere.{dead_pid()}.", dir=private_cache))
    old_other_host = pathlib.Path(tempfile.mkdtemp(prefix=f".{key}.elsewhere.1.", dir=private_cache))
    legacy_old = pathlib.Path(tempfile.mkdtemp(prefix=f".{key}.", dir=private_cache))  # no pid
    legacy_new = pathlib.Path(tempfile.mkdtemp(prefix=f".{key}.", dir=private_cache))
    unrelated = private_cache / ".not-ours"
    unrelated.mkdir()
    day_ago = time.time() - 24 * 3600
    for path in (old_other_host, legacy_old, unrelated):
        os.utime(path, (day_ago, day_ago))
    build, calls = counting_build()
    cache.cached_windows("tiny", {"a": 1}, [], build)  # a write sweeps
    assert not killed.exists() and not old_other_host.exists() and not legacy_old.exists()
    assert live.exists() and mine.exists() and other_host.exists() and legacy_new.exists()
    assert unrelated.exists()
    stale = pathlib.Path(tempfile.mkdtemp(prefix=f".{key}.{cache.HOST}.{dead_pid()}.", dir=private_cache))
    cache.cached_windows("tiny", {"a": 1}, [], build)  # so does a read
    assert calls == [1] and not stale.exists()


@pytest.mark.parametrize("damage", ["x_missing", "x_truncated", "meta_missing", "meta_garbage",
                                    "y_shorter"])
def test_incomplete_entry_is_rebuilt(private_cache, damage):
    build, calls = counting_build()
    first = cache.cached_windows("tiny", {"a": 1}, [], build)
    (entry,) = private_cache.iterdir()
    if damage == "x_missing":
        (entry / "x.npy").unlink()
    elif damage == "x_truncated":
        cut(entry / "x.npy", (entry / "x.npy").stat().st_size - 8)
    elif damage == "meta_missing":
        (entry / "meta.json").unlink()
    elif damage == "meta_garbage":
        (entry / "meta.json").write_text('{"class_names": ')
    else:
        np.save(entry / "y.npy", np.zeros(2, np.int64))
    again = cache.cached_windows("tiny", {"a": 1}, [], build)
    assert calls == [1, 1]
    np.testing.assert_array_equal(again.x, first.x)
    assert sorted(p.name for p in entry.iterdir()) == sorted(
        [f"{f}.npy" for f in ("x", "y", "record", "patient", "split", "order")] + ["meta.json"])
    assert json.loads((entry / "meta.json").read_text())["class_names"] == ["a", "b"]
    cache.cached_windows("tiny", {"a": 1}, [], build)
    assert calls == [1, 1] and cached_entries(private_cache) == [entry.name]


def test_incomplete_mitbih_entry_is_rebuilt(data_root, private_cache):
    kwargs = dict(split="paper", records=MIT_RECORDS, window_seconds=1.0, fs=180.0)
    first = load_mitbih(data_root / "mitdb", **kwargs)
    (entry,) = private_cache.iterdir()
    (entry / "x.npy").unlink()
    again = load_mitbih(data_root / "mitdb", **kwargs)
    np.testing.assert_array_equal(again.x, first.x)
    assert (entry / "x.npy").is_file()


def test_empty_cache_variable_means_the_default_root(monkeypatch):
    monkeypatch.setenv("HYPERTINY_CACHE", "")
    assert cache.cache_root() == pathlib.Path.home() / ".cache" / "hypertiny"


@pytest.mark.parametrize("kind", ["file", "unwritable"])
def test_unusable_cache_root_loads_without_the_cache_and_warns_once(private_cache, monkeypatch, capsys, kind):
    """A root that is a file or not writable is found before the load: one warning line, then no cache."""
    if kind == "file":
        private_cache.write_text("not a folder")
    else:
        if os.geteuid() == 0:
            pytest.skip("root may write into any folder")
        private_cache.mkdir(mode=0o500)
    monkeypatch.setattr(cache, "_WARNED", set())
    build, calls = counting_build()
    first = cache.cached_windows("tiny", {"a": 1}, [], build)
    second = cache.cached_windows("tiny", {"a": 1}, [], build)
    assert len(calls) == 2 and len(first) == len(second) == 6
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(private_cache) in lines[0] and "without it" in lines[0]
    assert private_cache.is_file() if kind == "file" else cached_entries(private_cache) == []


@pytest.mark.parametrize("change", ["window_length", "nan", "dtype"])
def test_changed_cache_arrays_are_rebuilt(private_cache, change):
    """Each array's shape, dtype and SHA-256 are stored with the entry and checked when it is read."""
    build, calls = counting_build()
    cache.cached_windows("tiny", {"a": 1}, [], build)
    x_file = private_cache / cached_entries(private_cache)[0] / "x.npy"
    x = np.load(x_file)
    replaced = {"window_length": np.zeros((len(x), 10, 1), np.float32), "nan": np.full_like(x, np.nan),
                "dtype": x.astype(np.float64)}[change]
    np.save(x_file, replaced)
    again = cache.cached_windows("tiny", {"a": 1}, [], build)
    assert len(calls) == 2 and np.array_equal(again.x, tiny_windows().x)


def test_describe_cache_says_where_and_how_much(private_cache):
    cache.cached_windows("tiny", {"a": 1}, [], tiny_windows)
    entry = private_cache / cached_entries(private_cache)[0]
    size = sum(f.stat().st_size for f in entry.iterdir())
    line = cache.describe_cache()
    assert str(private_cache) in line and f"{size / 1e6:,.1f} MB in 1 entries" in line and "--no-cache" in line
