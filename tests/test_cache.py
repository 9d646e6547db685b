"""The decoded-photo cache: hits, invalidation, corruption and concurrent writers."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import numpy as np

from mangograde.images import ImageCache, Resize, decode, load_images
from mangograde.images import loader as loader_module

from .helpers import write_photo


def count_decodes(monkeypatch) -> list[Path]:
    calls: list[Path] = []
    real = loader_module.decode

    def counting(path, geometry=None):
        calls.append(Path(path))
        return real(path, geometry)

    monkeypatch.setattr(loader_module, "decode", counting)
    return calls


def photos(folder: Path, n: int = 5) -> list[Path]:
    return [write_photo(folder / f"p{i}.jpg", seed=i) for i in range(n)]


def cache_files(cache: ImageCache) -> list[Path]:
    return sorted(cache.root.rglob("*.mgc"))


def pack_files(cache: ImageCache) -> list[Path]:
    return sorted(cache.root.rglob("*.mgp"))


def test_second_load_is_served_from_cache(tmp_path, monkeypatch):
    paths = photos(tmp_path / "p")
    cache = ImageCache(tmp_path / "cache")
    calls = count_decodes(monkeypatch)
    first = load_images(paths, Resize(16), cache)
    assert len(calls) == 5 and first.cache_hits == 0
    second = load_images(paths, Resize(16), cache)
    assert len(calls) == 5 and second.cache_hits == 5
    assert np.array_equal(first.arrays, second.arrays)
    assert len(cache_files(cache)) == 0 and len(pack_files(cache)) == 1  # each photo once
    subset = load_images(paths[1:4], Resize(16), cache)  # another list: rows of the pack
    assert len(calls) == 5 and subset.cache_hits == 3
    assert np.array_equal(subset.arrays, first.arrays[1:4])
    assert len(pack_files(cache)) == 1  # served from the pack, not packed again


def test_each_photo_is_stored_once(tmp_path, monkeypatch):
    paths = photos(tmp_path / "p", 6)
    cache = ImageCache(tmp_path / "cache")
    calls = count_decodes(monkeypatch)
    load_images(paths[:4], Resize(16), cache)
    grown = load_images(paths, Resize(16), cache)  # two more photos: a new pack
    assert len(calls) == 6 and grown.cache_hits == 4
    (pack,) = pack_files(cache)  # the old pack's photos are all in the new one
    assert cache_files(cache) == []
    assert pack.stat().st_size < 1.1 * 6 * 16 * 16 * 3 + 1024
    assert cache.usage()[2] == pack.stat().st_size
    again = load_images(paths[2:], Resize(16), cache)
    assert len(calls) == 6 and np.array_equal(again.arrays, grown.arrays[2:])


def test_a_warm_pack_can_be_modified_without_touching_the_cache(tmp_path):
    paths = photos(tmp_path / "p", 3)
    cache = ImageCache(tmp_path / "cache")
    first = load_images(paths, Resize(16), cache).arrays.copy()
    warm = load_images(paths, Resize(16), cache).arrays
    warm[:] = 0
    assert np.array_equal(load_images(paths, Resize(16), cache).arrays, first)


def test_default_location_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MANGOGRADE_CACHE_DIR", str(tmp_path / "elsewhere"))
    load_images(photos(tmp_path / "p", 1), Resize(8), ImageCache())
    assert len(list((tmp_path / "elsewhere").rglob("*.mgp"))) == 1


def test_changed_photo_or_geometry_misses(tmp_path, monkeypatch):
    paths = photos(tmp_path / "p", 2)
    cache = ImageCache(tmp_path / "cache")
    before = load_images(paths, Resize(16), cache).arrays
    write_photo(paths[0], seed=99)
    stat = paths[0].stat()
    os.utime(paths[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    calls = count_decodes(monkeypatch)
    after = load_images(paths, Resize(16), cache).arrays
    assert calls == [paths[0]]
    assert not np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])
    assert np.array_equal(after[0], decode(paths[0], Resize(16)))
    load_images(paths, Resize(12), cache)
    assert len(calls) == 3
    assert len(pack_files(cache)) == 2  # one per geometry; the changed photo's pack replaced


def test_corrupt_cache_file_is_rebuilt_not_trusted(tmp_path, monkeypatch):
    paths = photos(tmp_path / "p", 3)
    cache = ImageCache(tmp_path / "cache")
    good = np.stack([decode(p, Resize(16)) for p in paths])
    for path, pixels in zip(paths, good, strict=True):  # entries, as a load leaves them
        cache.put(cache.key(path, Resize(16).key), pixels)  # before it packs them
    files = cache_files(cache)
    files[0].write_bytes(files[0].read_bytes()[:-10])  # truncated
    damaged = bytearray(files[1].read_bytes())
    damaged[-1] ^= 0xFF  # one flipped pixel: only the checksum can tell
    files[1].write_bytes(bytes(damaged))
    files[2].write_bytes(b"garbage")
    calls = count_decodes(monkeypatch)
    again = load_images(paths, Resize(16), cache).arrays
    assert len(calls) == 3
    assert np.array_equal(good, again)
    assert load_images(paths[:2], Resize(16), cache).cache_hits == 2  # now from the pack


def test_a_corrupt_pack_row_is_decoded_again_and_the_pack_rewritten(tmp_path, monkeypatch):
    paths = photos(tmp_path / "p", 3)
    cache = ImageCache(tmp_path / "cache")
    good = load_images(paths, Resize(16), cache).arrays
    (pack,) = pack_files(cache)
    damaged = bytearray(pack.read_bytes())
    damaged[-5] ^= 0x01
    pack.write_bytes(bytes(damaged))
    calls = count_decodes(monkeypatch)
    again = load_images(paths, Resize(16), cache)  # the damaged row alone is decoded
    assert calls == [paths[2]] and again.cache_hits == 2 and np.array_equal(again.arrays, good)
    assert pack.read_bytes() != bytes(damaged)  # rebuilt
    pack.write_bytes(bytes(damaged[:100]))  # truncated
    assert np.array_equal(load_images(paths, Resize(16), cache).arrays, good)


def test_unwritable_cache_is_reported_not_fatal(tmp_path):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    loaded = load_images(photos(tmp_path / "p", 2), Resize(8), ImageCache(blocker))
    assert loaded.arrays.shape == (2, 8, 8, 3)
    assert "cannot write the image cache" in loaded.notices[0]


def _hammer(cache_root: str, photo: str, rounds: int) -> None:
    cache = ImageCache(cache_root)
    key = cache.key(Path(photo), "shared")
    pixels = decode(photo, Resize(32))
    for _ in range(rounds):
        cache.put(key, pixels)


def _load_all(cache_root: str, paths: list[str]) -> None:
    load_images(paths, Resize(24), ImageCache(cache_root), workers=2)


def test_concurrent_writers_never_leave_a_torn_entry(tmp_path):
    photo = str(write_photo(tmp_path / "one.jpg", size=(64, 64)))
    cache = ImageCache(tmp_path / "cache")
    key = cache.key(Path(photo), "shared")
    expected = decode(photo, Resize(32))
    ctx = multiprocessing.get_context("spawn")
    writers = [ctx.Process(target=_hammer, args=(str(cache.root), photo, 300)) for _ in range(3)]
    for w in writers:
        w.start()
    seen, sizes = 0, set()
    while any(w.is_alive() for w in writers):
        for entry in cache.root.rglob("*.mgc"):
            sizes.add(len(entry.read_bytes()))  # raw bytes: a torn write would show here
        got = cache.get(key, expected.shape)
        if got is not None:
            seen += 1
            assert np.array_equal(got, expected)
    for w in writers:
        w.join()
        assert w.exitcode == 0
    assert seen > 0
    assert np.array_equal(cache.get(key, expected.shape), expected)
    (entry,) = cache.root.rglob("*.mgc")
    assert sizes == {entry.stat().st_size}, "a reader saw a partly written entry"
    assert not list(cache.root.rglob(".tmp-*")), "temporary files left behind"


def test_two_runs_loading_the_same_photos_at_once(tmp_path):
    paths = [str(p) for p in photos(tmp_path / "p", 20)]
    root = str(tmp_path / "cache")
    ctx = multiprocessing.get_context("spawn")
    runs = [ctx.Process(target=_load_all, args=(root, paths)) for _ in range(2)]
    for r in runs:
        r.start()
    for r in runs:
        r.join()
        assert r.exitcode == 0
    loaded = load_images(paths, Resize(24), ImageCache(root))
    assert loaded.cache_hits == 20
    for i, path in enumerate(paths):
        assert np.array_equal(loaded.arrays[i], decode(path, Resize(24)))
