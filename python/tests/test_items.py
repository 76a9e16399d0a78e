"""New items from Python: the same embeddings as ``iisan items add``, ranked at once."""

import shutil

import numpy as np

import iisan
from conftest import cli


def png(rgb):
    """An RGB uint8 array as a PNG file's bytes (no filter, one zlib stream): the tests need
    no imaging package."""
    import struct
    import zlib

    h, w, _ = rgb.shape
    chunk = lambda kind, body: (
        struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    )
    rows = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def test_added_items_equal_the_clis_and_are_ranked(tmp_path, dataset, cli_run):
    cli_copy, py_copy = tmp_path / "cli", tmp_path / "py"
    shutil.copytree(cli_run, cli_copy)
    shutil.copytree(cli_run, py_copy)
    src = [dataset / "images" / f"S000{i}.png" for i in (1, 2)]
    pixels = np.random.default_rng(3).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    src.append(tmp_path / "drawn.png")
    src[2].write_bytes(png(pixels))
    titles = ["a red lamp for the desk", "blue running shoes", "a green tea kettle"]
    ids = ["NEW1", "NEW2", "NEW3"]
    # the command line reads an items file and an images folder
    (tmp_path / "imgs").mkdir()
    for k, p in zip(ids, src):
        shutil.copy(p, tmp_path / "imgs" / f"{k}.png")
    (tmp_path / "new.tsv").write_text("".join(f"{k}\t{t}\n" for k, t in zip(ids, titles)))
    cli("items", "add", cli_copy, "--items", tmp_path / "new.tsv", "--images", tmp_path / "imgs")
    # Python gives the images as a path, bytes and a decoded uint8 array
    images = [str(src[0]), src[1].read_bytes(), pixels]
    run = iisan.Run.open(py_copy)
    assert run.add_items(ids, titles, images) == 203
    # the catalogue's files: the base untouched, the new items in the segment, the same bytes
    for f in ["items.safetensors", "item_ids.txt", "items.seg-200.f32", "item_ids.seg-200.txt"]:
        assert (cli_copy / f).read_bytes() == (py_copy / f).read_bytes(), f
    a = iisan.Run.open(cli_copy).item_embeddings()
    b = iisan.Run.open(py_copy).item_embeddings()
    assert a.shape == b.shape == (203, 64)
    assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
    # the same Run ranks them at once, and so does a fresh one
    assert run.item_ids[-3:] == ids
    emb = run.item_embeddings()
    assert np.array_equal(emb[-3:].view(np.uint32), b[-3:].view(np.uint32))
    for r in [run, iisan.Run.open(py_copy)]:
        user = r.user_embeddings([["NEW1"]])[0]
        k = int((emb @ user > emb[-3] @ user).sum()) + 1
        got, _ = r.recommend([["NEW1"]], k=max(k, 1) + 2)
        assert "NEW1" in list(got[0])
