"""Newer tower families from Python: a decoder text tower (the Qwen2 parity fixture with a
word-level tokenizer over the dataset's words) encodes with each pooling to the bytes the
command line writes, and a pooling the family does not have is refused."""

import json
import shutil

import pytest

import iisan
from conftest import REPO, cli

FIXTURE = REPO / "tests" / "fixtures" / "families" / "qwen2"


@pytest.fixture(scope="module")
def decoder(work, dataset):
    d = work / "qwen2"
    d.mkdir(exist_ok=True)
    for f in ["config.json", "model.safetensors"]:
        shutil.copy(FIXTURE / f, d / f)
    words = sorted({w for line in (dataset / "items.tsv").read_text().splitlines()
                    for w in line.split("\t", 1)[1].split()})
    vocab = {"[UNK]": 0, **{w: i + 1 for i, w in enumerate(words[:500])}}
    tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
           "normalizer": None, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": None,
           "decoder": None, "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}}
    (d / "tokenizer.json").write_text(json.dumps(tok))
    return d


@pytest.mark.parametrize("pooling", ["mean", "last", "mean_unmasked"])
def test_a_decoder_encodes_the_bytes_the_cli_writes(work, dataset, decoder, pooling):
    py_out, cli_out = work / f"dec-py-{pooling}", work / f"dec-cli-{pooling}"
    (r,) = iisan.encode(dataset, py_out, text_model=decoder, pooling=pooling, progress=False)
    assert r["modality"] == "text" and r["encoded"] == 200
    cli("encode", "--quiet", "--dataset", dataset, "--out", cli_out, "--text-model", decoder,
        "--pooling", pooling)
    a, b = (py_out / "text.hsc").read_bytes(), (cli_out / "text.hsc").read_bytes()
    # 201 rows (padding row 0) x 3 states x 64 wide, f32
    assert len(a) > 201 * 3 * 64 * 4 and a == b


def test_mean_and_last_pool_differently(work):
    mean = (work / "dec-py-mean" / "text.hsc").read_bytes()
    last = (work / "dec-py-last" / "text.hsc").read_bytes()
    assert mean != last


def test_a_decoder_has_no_cls(work, dataset, decoder):
    with pytest.raises(iisan.ConfigError, match="no \\[CLS\\] token"):
        iisan.encode(dataset, work / "dec-cls", text_model=decoder, pooling="cls", progress=False)
    assert not (work / "dec-cls" / "text.hsc").exists()
    with pytest.raises(iisan.InputError, match="pooling"):
        iisan.encode(dataset, work / "dec-max", text_model=decoder, pooling="max", progress=False)
