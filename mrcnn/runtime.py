"""The machine a model runs on: CPU threads and the compute precision.

Two choices decide most of a CPU's speed, and both are made here, once:

* Threads. TensorFlow sizes its thread pools from the CPUs the process may
  be scheduled on, which in a container can be many more than its CPU
  quota allows; every op then splits its work over threads that wait for
  each other (system time grows, wall time with it). ``configure_threads``
  sizes the pools from the cores really available: the affinity mask
  (``os.sched_getaffinity``) cut by the cgroup CPU quota, or an explicit
  count from ``Config.CPU_THREADS`` or ``$MRCNN_CPU_THREADS``.
* Memory. glibc's malloc hands large freed blocks back to the kernel
  (``munmap``, heap trimming), so every training step faults its
  activations in again: 40,000 page faults a step for the shapes demo,
  a quarter of its CPU time in the kernel. ``configure_allocator`` keeps
  freed memory in the process for reuse (the peak of a step is reached
  every step anyway); ``$MRCNN_MALLOC_TUNING=0`` leaves malloc as it is.
* Kernels. TensorFlow runs its oneDNN kernels by default only on CPUs
  with AVX512_VNNI or newer; on an AVX2 CPU it runs Eigen's. Measured on a
  2-core AVX2 host, oneDNN with ``mrcnn.network.conv`` runs detect() at 1024 px
  in 3.8 s against Eigen's 5.9 s, and the ResNet50 training step of
  benchmarks/compare_torchvision.py in 5.9 s against 8.9 s, with a
  twentieth of the page faults. ``prefer_onednn`` (run when ``mrcnn`` is
  imported) sets ``TF_ENABLE_ONEDNN_OPTS=1`` unless it is set already or
  TensorFlow was imported first (it reads the variable once, on import).
* GPU memory. TensorFlow takes almost all of a GPU's memory when it
  first sets the GPU up, so a second process (a notebook beside a
  training run) finds none left. ``configure_gpu_memory`` turns on memory
  growth (allocate as needed) when ``Config.GPU_MEMORY_GROWTH`` or
  ``$MRCNN_GPU_MEMORY_GROWTH=1`` asks for it. It must run before
  TensorFlow sets the GPUs up (its first op, or the first listing of
  logical devices): ``MaskRCNN`` calls it first thing, and no mrcnn
  module sets the devices up when imported or while a model is built
  before it.
* Precision. bfloat16 pays only where the hardware computes it: CPUs with
  AVX512_BF16 or AMX-BF16, GPUs of compute capability 8.0 (Ampere) and
  later. On an AVX2-only CPU TensorFlow runs bfloat16 ops in emulation,
  several times slower than float32. ``resolve_precision("auto")`` picks
  bfloat16 only where it is native, float32 elsewhere, and says which.
"""

import contextlib
import ctypes
import functools
import logging
import math
import os
import platform
import sys

logger = logging.getLogger(__name__)

THREADS_ENV = "MRCNN_CPU_THREADS"
ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"
ONEDNN_ISA_ENV = "ONEDNN_MAX_CPU_ISA"
MALLOC_ENV = "MRCNN_MALLOC_TUNING"
GPU_MEMORY_GROWTH_ENV = "MRCNN_GPU_MEMORY_GROWTH"
# The distributions that install the `tensorflow` import package: two of
# them in one environment overwrite each other's files.
TENSORFLOW_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-gpu",
                            "tensorflow-intel", "tensorflow-macos",
                            "tensorflow-aarch64", "intel-tensorflow",
                            "tf-nightly", "tf-nightly-cpu")
PRECISIONS = (None, "auto", "mixed_float16", "mixed_bfloat16")
# /proc/cpuinfo flags that decide which kernels oneDNN and TensorFlow run.
REPORTED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16",
                  "amx_bf16", "amx_tile")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# oneDNN ISA caps ($ONEDNN_MAX_CPU_ISA) under which oneDNN computes bfloat16
# with native instructions; a lower cap (e.g. AVX2, to reproduce an older
# CPU on a newer one) emulates it.
BF16_ISA_CAPS = ("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX",
                 "AVX512_CORE_AMX_FP16", "AVX10_1_512", "AVX10_1_512_AMX",
                 "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2",
                 "ALL", "DEFAULT")


############################################################
#  CPU
############################################################

@functools.lru_cache(maxsize=None)
def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """The CPU's feature flags (a frozenset of strings; empty if
    unreadable). Read once a path: mrcnn.network.conv asks for each layer it
    builds."""
    try:
        with open(cpuinfo) as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_summary(flags=None):
    """{flag: bool} for the flags in REPORTED_FLAGS (benchmarks, the demo)."""
    flags = cpu_flags() if flags is None else flags
    return {name: name in flags for name in REPORTED_FLAGS}


def _cgroup_cpu_limit(root="/sys/fs/cgroup"):
    """CPUs allowed by the cgroup quota (a float), or None when unlimited."""
    try:  # cgroup v2: "<quota> <period>" or "max <period>"
        with open(os.path.join(root, "cpu.max")) as handle:
            quota, period = handle.read().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:  # cgroup v1
        with open(os.path.join(root, "cpu", "cpu.cfs_quota_us")) as handle:
            quota = int(handle.read())
        with open(os.path.join(root, "cpu", "cpu.cfs_period_us")) as handle:
            period = int(handle.read())
        return quota / period if quota > 0 else None
    except (OSError, ValueError):
        return None


def available_cores(cgroup_root="/sys/fs/cgroup"):
    """Cores this process can really use: the affinity mask, cut by the
    cgroup CPU quota (rounded up), at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    limit = _cgroup_cpu_limit(cgroup_root)
    if limit is not None:
        cores = min(cores, max(1, math.ceil(limit)))
    return max(1, cores)


def thread_count(config_threads=None):
    """The thread count to use: Config.CPU_THREADS, else $MRCNN_CPU_THREADS,
    else available_cores()."""
    if config_threads:
        return int(config_threads)
    value = os.environ.get(THREADS_ENV)
    if value:
        try:
            count = int(value)
        except ValueError:
            count = 0
        if count < 1:
            raise ValueError("{} must be a positive integer, got {!r}".format(
                THREADS_ENV, value))
        return count
    return available_cores()


def configure_threads(threads=None):
    """Sizes TensorFlow's thread pools: `threads` (or thread_count()) for
    the work inside an op, and as many for running independent ops side
    by side. Pools the program already sized with tf.config.threading
    are kept unless `threads` is given. Returns the intra-op count in
    effect.

    TensorFlow fixes its pools when it first runs something; after that
    the existing pools stay (a warning says so when they differ).
    """
    import tensorflow as tf

    threading = tf.config.threading
    current = threading.get_intra_op_parallelism_threads()
    if current and not threads:
        return current
    count = thread_count(threads)
    try:
        threading.set_intra_op_parallelism_threads(count)
        threading.set_inter_op_parallelism_threads(count)
    except RuntimeError:
        if current not in (0, count):
            logger.warning(
                "TensorFlow already runs with %d intra-op threads; %d were "
                "asked for. Set Config.CPU_THREADS or $%s before the first "
                "TensorFlow op to change it.", current, count, THREADS_ENV)
        return current or count
    return count


def prefer_onednn(environ=None, modules=None):
    """Sets $TF_ENABLE_ONEDNN_OPTS to 1 before TensorFlow is imported,
    unless the user chose a value. Returns True when it set it. On CPUs
    where TensorFlow turns oneDNN on by itself this changes nothing."""
    environ = os.environ if environ is None else environ
    modules = sys.modules if modules is None else modules
    if ONEDNN_ENV in environ:
        return False
    if "tensorflow" in modules:
        # Too late to change: TensorFlow reads it once, when imported.
        return False
    environ[ONEDNN_ENV] = "1"
    return True


############################################################
#  Memory
############################################################

# mallopt() parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4
# Grow the heap in steps of this much: fewer, larger system calls.
_TOP_PAD_BYTES = 64 * 1024 * 1024
_allocator_configured = False


def configure_allocator():
    """Keeps freed memory in the process instead of returning it to the
    kernel after every step (glibc only; elsewhere, or with
    $MRCNN_MALLOC_TUNING=0, nothing changes). Returns whether it applied.

    Large blocks are served from the heap instead of fresh mappings
    (M_MMAP_MAX 0) and the heap is never trimmed (M_TRIM_THRESHOLD at its
    maximum): a step's tensors reuse the pages of the step before. Idle
    memory stays resident until the process ends, at most the peak the
    model needed.
    """
    global _allocator_configured
    if _allocator_configured:
        return True
    if os.environ.get(MALLOC_ENV, "1") == "0":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    applied = (libc.mallopt(_M_MMAP_MAX, 0)
               and libc.mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1)
               and libc.mallopt(_M_TOP_PAD, _TOP_PAD_BYTES))
    _allocator_configured = bool(applied)
    if not applied:
        logger.warning("mallopt refused the allocator settings; malloc "
                       "keeps its defaults")
    return _allocator_configured


def configure(threads=None):
    """configure_threads(threads) and configure_allocator(); returns the
    thread count in effect."""
    configure_allocator()
    return configure_threads(threads)


def gpu_memory_growth(config_value=None):
    """Whether to turn on GPU memory growth: Config.GPU_MEMORY_GROWTH if
    True or False, else $MRCNN_GPU_MEMORY_GROWTH ("1"/"true" on, ""/"0"/
    "false" or unset off)."""
    if config_value is not None:
        return bool(config_value)
    value = os.environ.get(GPU_MEMORY_GROWTH_ENV, "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise ValueError("{} must be 1 or 0, got {!r}".format(
        GPU_MEMORY_GROWTH_ENV, os.environ[GPU_MEMORY_GROWTH_ENV]))


def installed_tensorflows():
    """The TENSORFLOW_DISTRIBUTIONS installed here (package metadata only:
    nothing is imported)."""
    from importlib import metadata

    found = []
    for name in TENSORFLOW_DISTRIBUTIONS:
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found.append(name)
    return found


def warn_if_tensorflows_collide(found=None):
    """Warns, and returns True, when more than one distribution writes the
    `tensorflow` package (e.g. tensorflow-cpu left beside tensorflow[and-
    cuda]: whichever was installed last runs, perhaps without CUDA)."""
    found = installed_tensorflows() if found is None else found
    if len(found) < 2:
        return False
    logger.warning(
        "%s are installed together and write the same tensorflow/ "
        "package; the one installed last runs. Keep one: pip uninstall -y "
        "%s, then pip install \"tensorflow==2.21.*\" (add [and-cuda] for "
        "a GPU).",
        " and ".join(found), " ".join(found))
    return True


def configure_gpu_memory(growth=None):
    """Turns on memory growth for every GPU when gpu_memory_growth(growth)
    says so; returns the number of GPUs it applies to.

    Physical devices are listed (that sets nothing up); if TensorFlow has
    already set a GPU up without growth, a warning says what to do, and
    the GPU keeps its memory.
    """
    if not gpu_memory_growth(growth):
        return 0
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            if not tf.config.experimental.get_memory_growth(gpu):
                logger.warning(
                    "TensorFlow already set up %s without memory growth; "
                    "set Config.GPU_MEMORY_GROWTH or $%s before the first "
                    "TensorFlow op (or $TF_FORCE_GPU_ALLOW_GROWTH=true "
                    "before the process starts).", gpu.name,
                    GPU_MEMORY_GROWTH_ENV)
    return len(gpus)


############################################################
#  Precision
############################################################

def _gpus_support_bf16():
    """None without GPUs, else whether every visible GPU computes bf16."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    for gpu in gpus:
        details = tf.config.experimental.get_device_details(gpu)
        if tuple(details.get("compute_capability", (0, 0))) < (8, 0):
            return False
    return True


def native_bf16(flags=None, gpus="probe"):
    """Whether bfloat16 runs in hardware here: on the GPUs if there are
    any, else on the CPU (its flags, and oneDNN's ISA cap if one is set).
    `flags` (CPU flags) and `gpus` (None: no GPU, True/False: GPUs
    with/without bf16) replace the probes."""
    if gpus == "probe":
        gpus = _gpus_support_bf16()
    if gpus is not None:
        return bool(gpus)
    flags = cpu_flags() if flags is None else flags
    cap = os.environ.get(ONEDNN_ISA_ENV, "").strip().upper()
    if cap and cap not in BF16_ISA_CAPS:
        return False
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


def bf16_aborts_under_isa_cap(flags=None, gpus="probe"):
    """Whether an oneDNN ISA cap below bfloat16 meets a CPU on which
    TensorFlow routes bfloat16 to oneDNN (AVX-512F), with no GPU."""
    cap = os.environ.get(ONEDNN_ISA_ENV, "").strip().upper()
    if not cap or cap in BF16_ISA_CAPS:
        return False
    if (_gpus_support_bf16() if gpus == "probe" else gpus) is not None:
        return False
    flags = cpu_flags() if flags is None else flags
    return "avx512f" in flags


def resolve_precision(name, flags=None, gpus="probe"):
    """The Keras dtype policy for Config.MIXED_PRECISION `name`.

    "auto": "mixed_bfloat16" where bfloat16 is native, else None (float32),
    logged. "mixed_bfloat16" where it is emulated: kept, with a warning.
    Other values are returned unchanged.
    """
    if name not in PRECISIONS:
        raise ValueError("MIXED_PRECISION must be one of {}, got {!r}".format(
            PRECISIONS, name))
    if name == "auto":
        chosen = "mixed_bfloat16" if native_bf16(flags, gpus) else None
        logger.info("MIXED_PRECISION 'auto': %s", chosen or
                    "float32 (no native bfloat16 on this machine)")
        return chosen
    if name == "mixed_bfloat16" and bf16_aborts_under_isa_cap(flags, gpus):
        raise ValueError(
            "MIXED_PRECISION 'mixed_bfloat16' with ONEDNN_MAX_CPU_ISA={}: "
            "TensorFlow sees AVX-512 and hands bfloat16 convolutions to "
            "oneDNN, which the cap keeps from building them (the process "
            "would abort). Use 'auto' or None, or unset the cap.".format(
                os.environ.get(ONEDNN_ISA_ENV)))
    if name == "mixed_bfloat16" and not native_bf16(flags, gpus):
        logger.warning(
            "MIXED_PRECISION 'mixed_bfloat16' on a machine without native "
            "bfloat16 (no AVX512_BF16/AMX-BF16 CPU, no GPU of compute "
            "capability >= 8.0): bfloat16 is emulated and slower than "
            "float32. Use 'auto' or None.")
    return name


@contextlib.contextmanager
def precision_policy(name):
    """Builds layers under a Keras dtype policy, then restores the old one.

    name: None (float32), "mixed_float16" or "mixed_bfloat16". Layers keep
    the policy they were built with; box math, NMS and losses run in
    float32 inside their layers.
    """
    if not name:
        yield
        return
    import keras  # here: importing runtime must not start TensorFlow
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)
