"""mrcnn.runtime: cores, threads, allocator and precision choices."""
import json
import logging
import os
import subprocess
import sys

import pytest

from mrcnn import runtime
from mrcnn.config import Config

AFFINITY = len(os.sched_getaffinity(0))


def write_cgroup_v2(root, text):
    (root / "cpu.max").write_text(text)
    return str(root)


def test_available_cores_follows_affinity_without_quota(tmp_path):
    assert runtime.available_cores(write_cgroup_v2(tmp_path, "max 100000\n")) \
        == AFFINITY
    assert runtime.available_cores(str(tmp_path / "missing")) == AFFINITY


def test_available_cores_is_cut_by_the_cgroup_v2_quota(tmp_path):
    # 0.5 CPU rounds up to one core; a quota above the affinity does not
    # add cores.
    assert runtime.available_cores(
        write_cgroup_v2(tmp_path, "50000 100000\n")) == 1
    assert runtime.available_cores(
        write_cgroup_v2(tmp_path, "6400000 100000\n")) == AFFINITY


def test_available_cores_reads_cgroup_v1(tmp_path):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert runtime.available_cores(str(tmp_path)) == 1
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert runtime.available_cores(str(tmp_path)) == AFFINITY


def test_thread_count_precedence(monkeypatch):
    monkeypatch.delenv(runtime.THREADS_ENV, raising=False)
    assert runtime.thread_count() == runtime.available_cores()
    monkeypatch.setenv(runtime.THREADS_ENV, "3")
    assert runtime.thread_count() == 3
    assert runtime.thread_count(5) == 5  # the Config value wins
    monkeypatch.setenv(runtime.THREADS_ENV, "many")
    with pytest.raises(ValueError, match=runtime.THREADS_ENV):
        runtime.thread_count()


def test_config_validates_cpu_threads_and_precision():
    for bad in (0, -2, 1.5, "2", True):
        with pytest.raises(ValueError, match="CPU_THREADS"):
            type("C", (Config,), {"CPU_THREADS": bad})()
    with pytest.raises(ValueError, match="'auto'"):
        type("C", (Config,), {"MIXED_PRECISION": "bfloat16"})()
    assert type("C", (Config,), {"MIXED_PRECISION": "auto",
                                 "CPU_THREADS": 2})().CPU_THREADS == 2


def test_cpu_flags_parse_proc_cpuinfo_format(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nflags\t\t: fpu avx2 fma avx512_bf16\n"
                    "bogomips\t: 1\n")
    flags = runtime.cpu_flags(str(path))
    assert flags == {"fpu", "avx2", "fma", "avx512_bf16"}
    summary = runtime.cpu_summary(flags)
    assert summary["avx2"] and summary["avx512_bf16"]
    assert not summary["avx512f"] and not summary["amx_bf16"]
    assert runtime.cpu_flags(str(tmp_path / "none")) == set()


@pytest.mark.parametrize("flags, gpus, expected", [
    ({"avx2", "fma"}, None, None),                       # AVX2 host
    ({"avx2", "avx512f"}, None, None),                   # AVX-512, no BF16
    ({"avx2", "avx512f", "avx512_bf16"}, None, "mixed_bfloat16"),
    ({"avx2", "amx_bf16"}, None, "mixed_bfloat16"),
    ({"avx2"}, True, "mixed_bfloat16"),                  # Ampere or later
    ({"avx512_bf16"}, False, None),                      # older GPU decides
])
def test_auto_precision_picks_bfloat16_only_where_native(flags, gpus,
                                                         expected, caplog,
                                                         monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    with caplog.at_level(logging.INFO, logger="mrcnn.runtime"):
        assert runtime.resolve_precision("auto", flags, gpus) == expected
    assert (expected or "float32") in caplog.text


@pytest.mark.parametrize("cap, native", [
    ("AVX2", False), ("avx512_core", False), ("AVX512_CORE_BF16", True),
    ("AVX512_CORE_AMX", True), ("", True)])
def test_onednn_isa_cap_decides_native_bfloat16(monkeypatch, cap, native):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert runtime.native_bf16({"avx512_bf16", "amx_bf16"}, None) is native


def test_explicit_bfloat16_under_an_avx2_cap_is_refused(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    with pytest.raises(ValueError, match="ONEDNN_MAX_CPU_ISA=AVX2"):
        runtime.resolve_precision("mixed_bfloat16", {"avx512f"}, None)
    # A real AVX2 CPU emulates bfloat16 in Eigen: slow, but it runs.
    assert runtime.resolve_precision(
        "mixed_bfloat16", {"avx2"}, None) == "mixed_bfloat16"
    assert runtime.resolve_precision("auto", {"avx512f"}, None) is None


def test_explicit_bfloat16_warns_where_emulated(caplog, monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    with caplog.at_level(logging.WARNING, logger="mrcnn.runtime"):
        assert runtime.resolve_precision(
            "mixed_bfloat16", {"avx2"}, None) == "mixed_bfloat16"
    assert "emulated" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mrcnn.runtime"):
        runtime.resolve_precision("mixed_bfloat16", {"amx_bf16"}, None)
        assert runtime.resolve_precision(None, {"avx2"}, None) is None
    assert caplog.text == ""
    with pytest.raises(ValueError, match="MIXED_PRECISION"):
        runtime.resolve_precision("float16")


def run_python(code, **env):
    environment = dict(os.environ, **env)
    result = subprocess.run([sys.executable, "-c", code], env=environment,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


# Allocates, touches and frees 64 MB with malloc ten times and counts the
# page faults of the last nine rounds.
FAULTS = """
import ctypes, json, resource
from mrcnn import runtime
applied = runtime.configure_allocator()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
size = 64 * 1024 * 1024
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
rounds = []
for _ in range(10):
    before = faults()
    block = libc.malloc(size)
    libc.memset(block, 1, size)
    libc.free(block)
    rounds.append(faults() - before)
print(json.dumps({"applied": applied, "faults": sum(rounds[1:])}))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="glibc malloc only")
def test_allocator_reuses_freed_memory_instead_of_faulting_it_in():
    tuned = run_python(FAULTS)
    default = run_python(FAULTS, **{runtime.MALLOC_ENV: "0"})
    assert tuned["applied"] and not default["applied"]
    # By default a block this large is mapped afresh each round: at least
    # a fault per 2 MB page (transparent huge pages), 4 kB pages without
    # them. Tuned, the pages of the first round are reused.
    huge_pages = 64 // 2
    assert default["faults"] >= 9 * huge_pages
    assert tuned["faults"] < huge_pages


def test_configure_threads_sets_tensorflow_pools():
    code = ("import json, tensorflow as tf\n"
            "from mrcnn import runtime\n"
            "count = runtime.configure_threads()\n"
            "threading = tf.config.threading\n"
            "print(json.dumps([count,"
            " threading.get_intra_op_parallelism_threads(),"
            " threading.get_inter_op_parallelism_threads()]))\n")
    assert run_python(code, **{runtime.THREADS_ENV: "1"}) == [1, 1, 1]


def test_configure_threads_keeps_pools_the_program_sized():
    code = ("import json, tensorflow as tf\n"
            "from mrcnn import runtime\n"
            "tf.config.threading.set_intra_op_parallelism_threads(3)\n"
            "tf.config.threading.set_inter_op_parallelism_threads(1)\n"
            "kept = runtime.configure_threads()\n"
            "asked = runtime.configure_threads(2)\n"
            "threading = tf.config.threading\n"
            "print(json.dumps([kept, asked,"
            " threading.get_intra_op_parallelism_threads()]))\n")
    assert run_python(code) == [3, 2, 2]



def test_prefer_onednn_sets_the_variable_only_before_tensorflow():
    environ = {}
    assert runtime.prefer_onednn(environ, modules={}) is True
    assert environ == {runtime.ONEDNN_ENV: "1"}
    chosen = {runtime.ONEDNN_ENV: "0"}
    assert runtime.prefer_onednn(chosen, modules={}) is False
    assert chosen == {runtime.ONEDNN_ENV: "0"}  # the user's choice stays
    late = {}
    assert runtime.prefer_onednn(late, modules={"tensorflow": object()}) \
        is False
    assert late == {}


def test_importing_mrcnn_turns_onednn_on_in_a_fresh_process():
    code = ("import os; os.environ.pop('TF_ENABLE_ONEDNN_OPTS', None); "
            "import mrcnn; print(os.environ['TF_ENABLE_ONEDNN_OPTS'])")
    out = subprocess.run([sys.executable, "-c", code], check=True,
                         capture_output=True, text=True).stdout
    assert out.strip() == "1"
