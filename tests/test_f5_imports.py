"""Cold-start shortcuts (lean imports, skipped random init): they defer what they say, and models stay bit-identical."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import REPO_ROOT
from f5_worker.runpod_import import proc_cpuinfo_brand
from f5_worker.tts.f5_imports import lazy_import, stand_ins


def _write_module(directory, name: str, body: str) -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(body))


@pytest.fixture
def scratch_modules(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    added = []
    yield tmp_path, added
    for name in added:
        sys.modules.pop(name, None)


def test_lazy_import_runs_the_module_on_first_attribute_use_only(scratch_modules):
    directory, added = scratch_modules
    marker = directory / "ran"
    _write_module(directory, "f5w_lazy_probe", f"""
        import pathlib
        pathlib.Path({str(marker)!r}).write_text("x")
        def double(x):
            return 2 * x
    """)
    added.append("f5w_lazy_probe")

    module = lazy_import("f5w_lazy_probe")
    assert sys.modules["f5w_lazy_probe"] is module
    assert module.__file__.endswith("f5w_lazy_probe.py")  # identity attributes do not load it (inspect reads them)
    assert not marker.exists()

    import f5w_lazy_probe

    assert not marker.exists()
    assert f5w_lazy_probe.double(21) == 42
    assert marker.exists()
    with pytest.raises(AttributeError):
        f5w_lazy_probe.missing  # noqa: B018


def test_stand_in_defers_a_from_import_and_leaves_the_real_module_afterwards(scratch_modules):
    directory, added = scratch_modules
    marker = directory / "ran"
    _write_module(directory, "f5w_heavy_probe", f"""
        import pathlib
        pathlib.Path({str(marker)!r}).write_text("x")
        import enum
        def mel(n, scale=1):
            return [scale * i for i in range(n)]
        class Style(enum.IntEnum):
            TONE3 = 8
    """)
    added.append("f5w_heavy_probe")

    with stand_ins({"f5w_heavy_probe": ("mel", "Style")}):
        from f5w_heavy_probe import Style, mel
    assert not marker.exists()
    assert "f5w_heavy_probe" not in sys.modules  # the stand-in is gone
    assert mel(3, scale=2) == [0, 2, 4]  # imports and calls the real function
    assert marker.exists()
    assert Style.TONE3 is sys.modules["f5w_heavy_probe"].Style.TONE3  # a class hands out its real members
    assert not getattr(sys.modules["f5w_heavy_probe"], "_f5_worker_stand_in", False)


def test_stand_ins_leave_imported_modules_alone():
    import json

    with stand_ins({"json": ("dumps",)}):
        from json import dumps
    assert dumps is json.dumps


PROBE = """
import sys
from pathlib import Path

import numpy as np
import torch

mode, tiny_dir, out = sys.argv[1:]
if mode == "lean":  # the worker's loader: lean imports, skipped random init, assigned weights
    from f5_worker.tts.loading import load_models
    from f5_worker.config import Settings

    models = load_models(Settings(default_model="tiny", tiny_model_dir=Path(tiny_dir), hf_offline=True,
                                  device="cpu", network_volume_path=Path(tiny_dir) / "no-volume"))
    cfm, vocoder = models.cfm, models.vocoder
else:  # upstream's own loader on the same files, with upstream's full imports
    from omegaconf import OmegaConf
    from f5_tts.infer.utils_infer import load_model, load_vocoder
    from f5_tts.model import DiT
    from f5_worker.tts.tiny_models import tiny_model_files

    paths = tiny_model_files(Path(tiny_dir))
    arch = OmegaConf.load(str(paths.config_path)).model.arch
    cfm = load_model(DiT, arch, str(paths.ckpt_path), "vocos", str(paths.vocab_path), "euler", True, "cpu")
    vocoder = load_vocoder("vocos", True, str(paths.vocoder_dir), "cpu")
cfm.eval()

torch.manual_seed(0)
cond = torch.randn(1, 24000) * 0.1
with torch.inference_mode():
    mel, _ = cfm.sample(cond=cond, text=["hello there, general kenobi."], duration=160, steps=4,
                        cfg_strength=2.0, sway_sampling_coef=-1.0, seed=1)
    wave = vocoder.decode(mel[:, 93:].permute(0, 2, 1).float())
from f5_tts.model.utils import convert_char_to_pinyin
english = convert_char_to_pinyin(["Some call me nature."])  # what every job runs: no pinyin tables needed
heavy = {name: name in sys.modules for name in ("einx._src", "sympy", "scipy.integrate", "scipy.signal",
                                                 "librosa.filters", "wandb", "datasets", "pypinyin")}
chinese = convert_char_to_pinyin(["你好，世界。Hello 重庆"])  # the deferred lazy_pinyin and Style.TONE3
modules = sys.modules["f5_tts.model.modules"]
filters = modules.librosa_mel_fn(sr=24000, n_fft=1024, n_mels=100, fmin=0, fmax=8000)
import einx
a, b = torch.arange(3.0), torch.arange(4.0)
rel = einx.subtract("i, j -> i j", a, b)
np.savez(out, mel=mel.numpy(), wave=wave.numpy(), filters=filters, rel=rel.numpy(),
         pinyin=np.array(english[0] + ["|"] + chinese[0]),
         heavy=np.array([heavy[k] for k in sorted(heavy)]), heavy_names=np.array(sorted(heavy)))
"""


def _probe(mode: str, tiny_model_dir, tmp_path):
    out = tmp_path / f"{mode}.npz"
    proc = subprocess.run([sys.executable, "-c", PROBE, mode, str(tiny_model_dir), str(out)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return np.load(out)


@pytest.mark.slow
def test_worker_loader_gives_bit_identical_models_to_upstream_loader(tiny_model_dir, tmp_path):
    lean = _probe("lean", tiny_model_dir, tmp_path)
    upstream = _probe("upstream", tiny_model_dir, tmp_path)

    lean_heavy = dict(zip(lean["heavy_names"], lean["heavy"]))
    upstream_heavy = dict(zip(upstream["heavy_names"], upstream["heavy"]))
    assert not any(lean_heavy.values()), lean_heavy  # nothing heavy loaded up to the first synthesis
    assert upstream_heavy["einx._src"] and upstream_heavy["librosa.filters"]  # the reference really is upstream's
    assert upstream_heavy["pypinyin"]

    assert np.isfinite(lean["mel"]).all() and lean["mel"].std() > 0
    np.testing.assert_array_equal(lean["mel"], upstream["mel"])
    assert np.isfinite(lean["wave"]).all() and lean["wave"].std() > 0
    np.testing.assert_array_equal(lean["wave"], upstream["wave"])
    np.testing.assert_array_equal(lean["filters"], upstream["filters"])  # deferred librosa mel = real one
    assert "shi4" in list(lean["pinyin"]) and "chong2" in list(lean["pinyin"])  # 重庆: the phrase reading
    assert list(lean["pinyin"]) == list(upstream["pinyin"])  # deferred pypinyin = real one
    np.testing.assert_array_equal(lean["rel"], np.arange(3.0)[:, None] - np.arange(4.0)[None, :])  # lazy einx works


def test_skipped_weight_init_only_skips_inside_the_block():
    import torch

    from f5_worker.tts.weight_init import skipped_weight_init

    t = torch.zeros(3)
    with skipped_weight_init():
        torch.nn.init.constant_(t, 5.0)
        torch.nn.init.normal_(t)
        assert torch.equal(t, torch.zeros(3))
        layer = torch.nn.Linear(4, 2)
    torch.nn.init.constant_(t, 5.0)
    assert torch.equal(t, torch.full((3,), 5.0))
    # the skipped layer is only usable with a strict load, which refuses a partial checkpoint
    with pytest.raises(RuntimeError, match="Missing key"):
        layer.load_state_dict({"weight": torch.ones(2, 4)})


RUNPOD_PROBE = """
import json, os, sys
started = []
def spy(event, args):  # every process started, as the command it runs (a fork runs this interpreter)
    if event == "subprocess.Popen":
        started.append(" ".join(map(str, args[1])))
    elif event in ("os.fork", "os.posix_spawn"):
        started.append(sys.executable)
sys.addaudithook(spy)
from f5_worker.runpod_import import quick_cpuinfo
with quick_cpuinfo():
    import runpod
from runpod.serverless.utils import rp_debugger
import cpuinfo
shim_left = cpuinfo.get_cpu_info.__module__.startswith("f5_worker")
during_import = list(started)
real = cpuinfo.get_cpu_info()["brand_raw"]  # py-cpuinfo's own answer, in its own subprocess
print(json.dumps({"processor": rp_debugger.PROCESSOR, "real": real, "during_import": during_import,
                  "after": started[len(during_import):], "shim_left": shim_left}))
"""


def test_runpod_imports_without_spawning_and_reports_the_same_processor():
    """py-cpuinfo's subprocess (~1 s of cold start) is skipped; runpod's PROCESSOR is what it would have been."""
    proc = subprocess.run([sys.executable, "-c", RUNPOD_PROBE], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120, check=False, env={**os.environ, "F5_WORKER_LEAN_IMPORTS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    interpreters = [cmd for cmd in seen["during_import"] if cmd.startswith(sys.executable) or "cpuinfo" in cmd]
    assert interpreters == []  # py-cpuinfo's own `file -b` and `uname -p` at its import are fine (milliseconds)
    assert any("cpuinfo" in cmd for cmd in seen["after"]), "the spy missed py-cpuinfo's subprocess: it proves nothing"
    assert not seen["shim_left"]
    if seen["real"]:
        assert seen["processor"] == seen["real"]


def test_proc_cpuinfo_brand_reads_model_name_or_gives_none(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9654 96-Core Processor\n\n"
                   "processor\t: 1\nmodel name\t: AMD EPYC 9654 96-Core Processor\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\n")
    assert proc_cpuinfo_brand(str(x86)) == "AMD EPYC 9654 96-Core Processor"
    assert proc_cpuinfo_brand(str(arm)) is None
    assert proc_cpuinfo_brand(str(tmp_path / "missing")) is None
