"""Which build of the pinned torch (2.13.0) fits this GPU node, for ``make setup-gpu``. Standard library only:
it runs with the system's python3 before any virtual environment exists.

    python3 scripts/select_torch_build.py select           # KEY=VALUE lines for the shell (stdout), a summary (stderr)
    python3 scripts/select_torch_build.py requirements --extras test,mmdet --exclude torch,torchvision,mmcv
    python3 scripts/select_torch_build.py check-nvcc --cuda 13.0
    .venv/bin/python scripts/select_torch_build.py verify --cuda 13.0 [--mmcv]

``select`` reads the driver version and every GPU's compute capability from ``nvidia-smi``
(``--query-gpu=driver_version`` / ``--query-gpu=compute_cap``, ``--format=csv,noheader``) and takes the first
build, in the order of ``BUILDS``, whose minimum driver the node has and whose compiled architectures run on
every GPU. It exits 1 with the reason per build where none fits. The facts behind ``BUILDS``:

- PyTorch 2.13's release matrix (RELEASE.md, "Release Compatibility Matrix" and "PyTorch CUDA Support Matrix"):
  stable builds for CUDA 12.6 and 13.0 (13.2 experimental); architectures of the Linux x86_64 builds:
  CUDA 12.6: 5.0, 6.0, 7.0, 7.5, 8.0, 8.6, 9.0; CUDA 13.0: 7.5, 8.0, 8.6, 9.0, 10.0, 12.0 (aarch64: 12.6: 8.0,
  9.0; 13.0: 8.0, 9.0, 10.0, 11.0, 12.0). The registry's torch 2.13.0 for x86_64 (what ``torch===2.13.0``
  installs) is the CUDA 13.0 build; its ``torch.cuda.get_arch_list()`` is sm_75, sm_80, sm_86, sm_90, sm_100,
  sm_120 (checked on the installed wheel). No build of torch 2.13 runs on compute capability below 5.0, and the
  CUDA 13 build none below 7.5 (CUDA 13.0 dropped Maxwell, Pascal and Volta).
- NVIDIA's minimum drivers for CUDA minor-version compatibility (docs.nvidia.com/deploy/cuda-compatibility,
  "Minor Version Compatibility", Table 1): CUDA 13.x needs >= 580, CUDA 12.x >= 525.
- A GPU runs code compiled for an architecture of the same major version and an equal or lower minor one
  (sm_86 code on 8.9, sm_100 on 10.3, sm_120 on 12.1). PTX (JIT) is not counted on: the installed cu130
  wheel lists none.

Each build's install arguments come from ``pyproject.toml``'s pins (``torch===2.13.0``, ``torchvision==0.28.0``).
"""

from __future__ import annotations

import argparse
import platform
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTORCH_INDEX = "https://download.pytorch.org/whl"


@dataclass(frozen=True)
class Build:
    tag: str  # cu130
    cuda: str  # 13.0
    min_driver: tuple[int, ...]
    archs: dict[str, tuple[tuple[int, int], ...]]  # machine -> compiled architectures
    registry_on: tuple[str, ...] = ()  # machines where the registry's torch is this build

    def runs_on(self, cap: tuple[int, int], machine: str) -> bool:
        return any(major == cap[0] and minor <= cap[1] for major, minor in self.archs.get(machine, ()))


BUILDS = (
    Build("cu130", "13.0", (580,), {
        "x86_64": ((7, 5), (8, 0), (8, 6), (9, 0), (10, 0), (12, 0)),
        "aarch64": ((8, 0), (9, 0), (10, 0), (11, 0), (12, 0)),
    }, registry_on=("x86_64",)),
    Build("cu126", "12.6", (525,), {
        "x86_64": ((5, 0), (6, 0), (7, 0), (7, 5), (8, 0), (8, 6), (9, 0)),
        "aarch64": ((8, 0), (9, 0)),
    }),
)


class NoBuild(Exception):
    """No build fits; the message says why, per build, and what to do."""


class Version(tuple):
    """A version as a tuple of ints (compares numerically) that prints as nvidia-smi wrote it (580.65.06)."""

    text: str

    def __new__(cls, text: str) -> Version:
        text = text.strip()
        if not re.fullmatch(r"\d+(\.\d+)*", text):
            raise NoBuild(f"cannot read a driver version from nvidia-smi's {text!r}")
        version = super().__new__(cls, (int(p) for p in text.split(".")))
        version.text = text
        return version


def parse_smi(driver_output: str, cap_output: str) -> tuple[tuple[int, ...], list[tuple[int, int]]]:
    """(driver version, compute capability of each GPU) from the two ``nvidia-smi --query-gpu`` outputs."""
    drivers = [line.strip() for line in driver_output.splitlines() if line.strip()]
    caps_text = [line.strip() for line in cap_output.splitlines() if line.strip()]
    if not drivers or not caps_text:
        raise NoBuild("nvidia-smi lists no GPU")
    caps = []
    for text in caps_text:
        match = re.fullmatch(r"(\d+)\.(\d+)", text)
        if not match:
            raise NoBuild(f"nvidia-smi cannot report the compute capability ({text!r}); a driver that old fits no torch 2.13 "
                          "build: upgrade it (>= 580 for CUDA 13.0, >= 525 for CUDA 12.6)")
        caps.append((int(match.group(1)), int(match.group(2))))
    return Version(drivers[0]), caps


def dotted(version: tuple[int, ...]) -> str:
    return getattr(version, "text", None) or ".".join(str(v) for v in version)


def choose(driver: tuple[int, ...], caps: list[tuple[int, int]], machine: str = "x86_64") -> Build:
    """The first build of ``BUILDS`` that fits (module docstring), else ``NoBuild`` with every reason."""
    reasons = []
    for build in BUILDS:
        if machine not in build.archs:
            reasons.append(f"{build.tag}: no build for {machine}")
            continue
        misfits = sorted({cap for cap in caps if not build.runs_on(cap, machine)})
        if driver < build.min_driver:
            reasons.append(f"{build.tag}: driver {dotted(driver)} is older than CUDA {build.cuda.split('.')[0]}.x's minimum {dotted(build.min_driver)}")
        elif misfits:
            archs = ", ".join(dotted(a) for a in build.archs[machine])
            reasons.append(f"{build.tag}: compute capability {', '.join(dotted(c) for c in misfits)} is not covered by its "
                           f"architectures ({archs})")
        else:
            return build
    hint = "no torch 2.13.0 build fits this node"
    if any(cap < (5, 0) for cap in caps):
        hint += "; GPUs below compute capability 5.0 are not supported by any torch 2.13 build"
    elif driver < (580,):
        hint += "; a driver >= 580 (CUDA 13.0 build) would cover compute capability 7.5 to 12.x"
    raise NoBuild(hint + ":\n  " + "\n  ".join(reasons))


def pins(pyproject: Path = REPO / "pyproject.toml") -> dict[str, str]:
    """{"torch": "===2.13.0", "torchvision": "==0.28.0"}: the specifiers pyproject.toml pins them with."""
    found = {}
    for requirement in project_table(pyproject)["dependencies"]:
        match = re.fullmatch(r"(torch|torchvision)\s*(===?)\s*([\w.]+)", requirement.strip())
        if match:
            found[match.group(1)] = match.group(2) + match.group(3)
    if set(found) != {"torch", "torchvision"}:
        raise NoBuild(f"{pyproject} pins no exact torch and torchvision version")
    return found


def pip_args(build: Build, machine: str, pinned: dict[str, str]) -> list[str]:
    """pip install arguments for ``build``: the registry's torch where it is that build, else PyTorch's index."""
    if machine in build.registry_on:
        return [f"torch{pinned['torch']}", f"torchvision{pinned['torchvision']}"]
    # torch==2.13.0 matches the index's local version 2.13.0+cu126 (torch===2.13.0 would not)
    return [f"torch=={pinned['torch'].lstrip('=')}", f"torchvision=={pinned['torchvision'].lstrip('=')}",
            "--index-url", f"{PYTORCH_INDEX}/{build.tag}"]


def arch_list(caps: list[tuple[int, int]]) -> str:
    """TORCH_CUDA_ARCH_LIST for the node's GPUs: "8.0;9.0"."""
    return ";".join(dotted(c) for c in sorted(set(caps)))


def query_smi(field: str, smi: str) -> str:
    try:
        done = subprocess.run([smi, f"--query-gpu={field}", "--format=csv,noheader"], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise NoBuild("nvidia-smi not found: this is not a GPU node, or its NVIDIA driver is not installed") from None
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        raise NoBuild(f"`nvidia-smi --query-gpu={field}` failed: {message[0] if message else f'exit {done.returncode}'}"
                      + (" (a driver that old fits no torch 2.13 build)" if field == "compute_cap" else ""))
    return done.stdout


def select(smi: str = "nvidia-smi", machine: str | None = None) -> dict[str, str]:
    machine = machine or platform.machine()
    driver, caps = parse_smi(query_smi("driver_version", smi), query_smi("compute_cap", smi))
    build = choose(driver, caps, machine)
    print(f"select_torch_build: driver {dotted(driver)}, {len(caps)} GPU(s) of compute capability {', '.join(sorted({dotted(c) for c in caps}))} "
          f"({machine}) -> torch 2.13.0 {build.tag} (CUDA {build.cuda})", file=sys.stderr)
    return {"TORCH_BUILD": build.tag, "TORCH_CUDA": build.cuda, "TORCH_PIP_ARGS": " ".join(pip_args(build, machine, pins())),
            "TORCH_CUDA_ARCH_LIST": arch_list(caps)}


def project_table(pyproject: Path = REPO / "pyproject.toml") -> dict:
    import tomllib

    with open(pyproject, "rb") as handle:
        return tomllib.load(handle)["project"]


def requirement_name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def requirements(extras: list[str], exclude: list[str], pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    """The project's requirements and those of ``extras``, without the ``exclude``d names (installed apart)."""
    project = project_table(pyproject)
    optional = project.get("optional-dependencies", {})
    unknown = [e for e in extras if e not in optional]
    if unknown:
        raise NoBuild(f"pyproject.toml has no extra {unknown[0]!r} (it has {', '.join(optional)})")
    listed = list(project["dependencies"]) + [r for e in extras for r in optional[e]]
    skip = {n.lower() for n in exclude}
    return [r for r in dict.fromkeys(listed) if requirement_name(r) not in skip]


def nvcc_release(text: str) -> str:
    """"13.0" from ``nvcc --version``'s "Cuda compilation tools, release 13.0, V13.0.88"."""
    match = re.search(r"release (\d+\.\d+)", text)
    if not match:
        raise NoBuild(f"cannot read a CUDA release from `nvcc --version`: {text.strip()[:200]!r}")
    return match.group(1)


def find_nvcc() -> str | None:
    """nvcc as torch's extension builder finds it: $CUDA_HOME/bin, then PATH, then /usr/local/cuda/bin."""
    import os

    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    for candidate in ([str(Path(home) / "bin" / "nvcc")] if home else []) + [shutil.which("nvcc") or "", "/usr/local/cuda/bin/nvcc"]:
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def check_nvcc(cuda: str, nvcc: str | None = None, version_text: str | None = None) -> str:
    """mmcv's CUDA ops are built by nvcc, whose major version must be the torch build's (``cuda``)."""
    if version_text is None:
        nvcc = nvcc or find_nvcc()
        if nvcc is None:
            raise NoBuild(f"no nvcc (CUDA toolkit) found to build mmcv's CUDA ops; load a CUDA {cuda.split('.')[0]}.x toolkit "
                          f"(e.g. `module load cuda/{cuda}`) or set CUDA_HOME")
        version_text = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60).stdout
    release = nvcc_release(version_text)
    if release.split(".")[0] != cuda.split(".")[0]:
        raise NoBuild(f"nvcc {nvcc or ''} is CUDA {release}, but torch was built for CUDA {cuda}: load a CUDA "
                      f"{cuda.split('.')[0]}.x toolkit (e.g. `module load cuda/{cuda}`) or set CUDA_HOME")
    return release


def sm_arch(name: str) -> tuple[int, int] | None:
    """(12, 0) from torch's "sm_120" (also "sm_90a"); None for "compute_XX" (PTX)."""
    match = re.fullmatch(r"sm_(\d+)(\d)[a-z]?", name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def verify(cuda: str, with_mmcv: bool) -> list[str]:
    """After the install: torch is the CUDA ``cuda`` build, sees every GPU and has code for it; mmcv's CUDA ops."""
    import torch

    problems, lines = [], [f"torch {torch.__version__}, CUDA {torch.version.cuda}, architectures {' '.join(torch.cuda.get_arch_list())}"]
    if (torch.version.cuda or "").split(".")[:2] != cuda.split("."):
        problems.append(f"torch is built for CUDA {torch.version.cuda}, expected {cuda}")
    elif not torch.cuda.is_available():
        problems.append("torch.cuda.is_available() is False")
    else:
        archs = [arch for arch in map(sm_arch, torch.cuda.get_arch_list()) if arch is not None]
        for i in range(torch.cuda.device_count()):
            cap = torch.cuda.get_device_capability(i)
            name = torch.cuda.get_device_name(i)
            lines.append(f"GPU {i}: {name}, compute capability {cap[0]}.{cap[1]}")
            if not any(major == cap[0] and minor <= cap[1] for major, minor in archs):
                problems.append(f"GPU {i} ({name}, {cap[0]}.{cap[1]}) has no code in this torch build")
    if with_mmcv:
        from mmcv.ops import get_compiling_cuda_version

        compiled = get_compiling_cuda_version()
        lines.append(f"mmcv ops compiled with CUDA {compiled}")
        if compiled == "not available":
            problems.append("mmcv was built without its CUDA ops (a cached CPU-ops wheel?)")
    if problems:
        raise NoBuild("; ".join(problems))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    p_select = sub.add_parser("select", help="KEY=VALUE lines for the torch build of this node")
    p_select.add_argument("--nvidia-smi", default="nvidia-smi", help="the nvidia-smi to ask (default: from PATH)")
    p_req = sub.add_parser("requirements", help="pyproject.toml's requirements, one a line")
    p_req.add_argument("--extras", default="", help="comma-separated extras (test,mmdet)")
    p_req.add_argument("--exclude", default="", help="comma-separated names to leave out (torch,torchvision,mmcv)")
    p_nvcc = sub.add_parser("check-nvcc", help="nvcc's CUDA major version is the torch build's")
    p_nvcc.add_argument("--cuda", required=True)
    p_verify = sub.add_parser("verify", help="the installed torch (and mmcv) fit this node")
    p_verify.add_argument("--cuda", required=True)
    p_verify.add_argument("--mmcv", action="store_true", help="also check that mmcv's ops were compiled with CUDA")
    args = parser.parse_args(argv)
    try:
        if args.command in (None, "select"):
            for key, value in select(getattr(args, "nvidia_smi", "nvidia-smi")).items():
                print(f"{key}={shlex.quote(value)}")
        elif args.command == "requirements":
            split = lambda text: [t.strip() for t in text.split(",") if t.strip()]  # noqa: E731
            print("\n".join(requirements(split(args.extras), split(args.exclude))))
        elif args.command == "check-nvcc":
            print(f"select_torch_build: nvcc is CUDA {check_nvcc(args.cuda)}", file=sys.stderr)
        else:
            for line in verify(args.cuda, args.mmcv):
                print(f"select_torch_build: {line}", file=sys.stderr)
    except NoBuild as exc:
        print(f"select_torch_build: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
