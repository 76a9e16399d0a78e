"""Mixed-precision training from Python: ``train.precision`` is the command line's (refused with
the CPU kernels, naming the key, nothing written; in f16 on the graph engine the run records
its precision and the steps its loss scale skipped, and equals ``iisan train``'s)."""

import pytest

import iisan
from conftest import as_sets, cli, iisan_config


def test_half_precision_with_the_cpu_kernels_is_a_config_error(work, dataset, cache):
    cfg = iisan_config(work, dataset, cache, "bf16-kernels")
    cfg["train"]["precision"] = "bf16"
    with pytest.raises(iisan.ConfigError, match=r"train\.precision = \"bf16\" is mixed-precision training for a GPU"):
        iisan.train(cfg, progress=False)
    assert not (work / "runs" / "bf16-kernels").exists()
    assert not (work / "runs" / ".bf16-kernels.partial").exists()


def test_an_f16_run_records_its_precision_and_equals_the_cli(work, dataset, cache):
    def config(name):
        cfg = iisan_config(work, dataset, cache, name)
        cfg["train"].update({"precision": "f16", "kernels": "autograd", "epochs": 2})
        return cfg

    run = iisan.train(config("f16-py"), progress=False)
    cli("train", "--quiet", *as_sets(config("f16-cli")), cwd=work)
    s = run.summary
    assert s["efficiency"]["precision"] == "f16"
    assert isinstance(s["efficiency"]["skipped_steps"], int)
    assert s["test"]["history"]["HR@10"] > 0
    cli_dir = work / "runs" / "f16-cli"
    for f in ["best.safetensors", "items.safetensors"]:
        assert (run.path / f).read_bytes() == (cli_dir / f).read_bytes(), f
