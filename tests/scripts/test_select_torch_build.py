"""scripts/select_torch_build.py (``make setup-gpu``): the torch build for a node's driver and GPUs, from fake
``nvidia-smi`` outputs; the requirement list it installs around torch; the nvcc check of the mmcv build."""

from __future__ import annotations

import importlib.util
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "select_torch_build.py"


@pytest.fixture(scope="module")
def sel():
    spec = importlib.util.spec_from_file_location("select_torch_build", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def pick(sel, driver: str, caps: str, machine: str = "x86_64") -> str:
    return sel.choose(*sel.parse_smi(driver, caps), machine).tag


@pytest.mark.parametrize(("driver", "caps", "build"), [
    ("580.65.06\n", "9.0\n9.0\n", "cu130"),                 # H100/H200 on the CUDA 13.0 driver
    ("590.44.01\n", "8.0\n", "cu130"),                      # A100, newer driver
    ("580.82.07\n", "8.9\n", "cu130"),                      # L40S / RTX 4090: sm_86 code runs on 8.9
    ("580.95.05\n", "10.0\n", "cu130"),                     # B200
    ("580.95.05\n", "12.0\n", "cu130"),                     # RTX 5090 / RTX PRO 6000 Blackwell
    ("580.95.05\n", "7.5\n", "cu130"),                      # T4: the lowest architecture of the CUDA 13 build
    ("580.65.06\n", "7.0\n", "cu126"),                      # V100: CUDA 13 dropped Volta, CUDA 12.6 has sm_70
    ("580.65.06\n", "6.1\n", "cu126"),                      # P40/GTX 1080: sm_60 code runs on 6.1
    ("570.172.08\n", "9.0\n", "cu126"),                     # H100 on a 570 driver: CUDA 12.x minor-version compatibility
    ("535.247.01\n", "8.0\n8.0\n8.0\n8.0\n", "cu126"),      # A100 node on the 535 LTS branch
    ("525.60.13\n", "7.5\n", "cu126"),                      # a 525 driver
])
def test_the_first_fitting_build_is_chosen(sel, driver, caps, build) -> None:
    assert pick(sel, driver, caps) == build


@pytest.mark.parametrize(("driver", "caps", "message"), [
    ("570.86.10\n", "10.0\n", "compute capability 10.0 is not covered"),  # Blackwell needs CUDA 13 here, hence driver >= 580
    ("570.86.10\n", "12.0\n", "driver >= 580"),
    ("520.61.05\n", "8.0\n", "older than CUDA 12.x's minimum 525"),
    ("470.256.02\n", "7.0\n", "older than CUDA 13.x's minimum 580"),
    ("580.65.06\n", "3.7\n", "below compute capability 5.0"),              # K80
    ("580.65.06\n", "9.0\n3.5\n", "3.5 is not covered"),                    # one unsupported GPU spoils the node
])
def test_no_fitting_build_is_a_clear_error(sel, driver, caps, message) -> None:
    with pytest.raises(sel.NoBuild, match="no torch 2.13.0 build fits") as error:
        pick(sel, driver, caps)
    assert message in str(error.value)
    assert "cu130:" in str(error.value) and "cu126:" in str(error.value)


def test_aarch64_builds_have_their_own_architectures(sel) -> None:
    assert pick(sel, "580.65.06\n", "9.0\n", "aarch64") == "cu130"
    assert pick(sel, "575.57.08\n", "9.0\n", "aarch64") == "cu126"
    assert pick(sel, "575.57.08\n", "8.7\n", "aarch64") == "cu126"  # sm_80 code runs on 8.7 (Jetson Orin)
    with pytest.raises(sel.NoBuild, match="7.5 is not covered"):
        pick(sel, "575.57.08\n", "7.5\n", "aarch64")  # the aarch64 CUDA 12.6 build has 8.0 and 9.0 only


def test_unreadable_nvidia_smi_output_is_an_error(sel) -> None:
    with pytest.raises(sel.NoBuild, match="no GPU"):
        sel.parse_smi("", "")
    with pytest.raises(sel.NoBuild, match="cannot report the compute capability"):
        sel.parse_smi("470.57.02\n", "[Field Not Supported]\n")


def test_pip_arguments_follow_pyprojects_pins(sel) -> None:
    pins = sel.pins()
    assert pins == {"torch": "===2.13.0", "torchvision": "==0.28.0"}
    cu130, cu126 = sel.BUILDS
    assert sel.pip_args(cu130, "x86_64", pins) == ["torch===2.13.0", "torchvision==0.28.0"]  # the registry's build
    assert sel.pip_args(cu126, "x86_64", pins) == ["torch==2.13.0", "torchvision==0.28.0", "--index-url",
                                                   "https://download.pytorch.org/whl/cu126"]
    assert sel.pip_args(cu130, "aarch64", pins)[-1] == "https://download.pytorch.org/whl/cu130"
    assert sel.arch_list([(9, 0), (8, 0), (9, 0)]) == "8.0;9.0"


def test_requirements_leave_out_what_is_installed_apart(sel) -> None:
    listed = sel.requirements(["test", "mmdet"], ["torch", "torchvision", "mmcv"])
    names = [sel.requirement_name(r) for r in listed]
    assert "torch" not in names and "torchvision" not in names and "mmcv" not in names
    assert {"lightning-fabric", "pytest", "mmdet", "mmengine", "pycocotools"} <= set(names)
    with pytest.raises(sel.NoBuild, match="no extra"):
        sel.requirements(["gpu"], [])


def test_nvcc_must_match_the_torch_builds_cuda_major(sel) -> None:
    text = "nvcc: NVIDIA (R) Cuda compiler driver\nCuda compilation tools, release 13.0, V13.0.88\n"
    assert sel.check_nvcc("13.0", version_text=text) == "13.0"
    with pytest.raises(sel.NoBuild, match="CUDA 13.0, but torch was built for CUDA 12.6"):
        sel.check_nvcc("12.6", version_text=text)
    assert sel.sm_arch("sm_120") == (12, 0) and sel.sm_arch("sm_75") == (7, 5) and sel.sm_arch("compute_120") is None


def fake_smi(folder: Path, driver: str, caps: str) -> Path:
    """An ``nvidia-smi`` that answers the two queries the script asks."""
    smi = folder / "nvidia-smi"
    smi.write_text("#!/bin/sh\ncase \"$1\" in\n"
                   f"  --query-gpu=driver_version) printf {shlex.quote(driver)} ;;\n"
                   f"  --query-gpu=compute_cap) printf {shlex.quote(caps)} ;;\n"
                   "  *) exit 2 ;;\nesac\n")
    smi.chmod(0o755)
    return smi


def test_select_prints_shell_lines_for_the_makefile(tmp_path) -> None:
    fake_smi(tmp_path, "580.65.06\n580.65.06\n", "9.0\n8.0\n")
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run([sys.executable, str(SCRIPT), "select"], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    if os.uname().machine == "x86_64":
        assert done.stdout.splitlines() == ["TORCH_BUILD=cu130", "TORCH_CUDA=13.0", "TORCH_PIP_ARGS='torch===2.13.0 torchvision==0.28.0'",
                                            "TORCH_CUDA_ARCH_LIST='8.0;9.0'"]
    assert "driver 580.65.06" in done.stderr
    sourced = subprocess.run(["sh", "-c", f"{done.stdout}\nprintf %s \"$TORCH_CUDA_ARCH_LIST\""], capture_output=True, text=True)
    assert sourced.stdout == "8.0;9.0"


def test_select_fails_with_the_reason(tmp_path) -> None:
    fake_smi(tmp_path, "470.256.02\n", "3.7\n")
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run([sys.executable, str(SCRIPT), "select"], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert "no torch 2.13.0 build fits" in done.stderr and "compute capability 5.0" in done.stderr
    missing = subprocess.run([sys.executable, str(SCRIPT), "select", "--nvidia-smi", str(tmp_path / "absent")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "nvidia-smi not found" in missing.stderr
