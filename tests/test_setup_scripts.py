"""The setup scripts: apt source detection (scripts/apt_sources.sh) on scratch etc folders, one per machine layout,
and failures that name their step (scripts/on_error.sh). setup_arm64.sh runs in a sandbox: PATH holds only the
few real tools it needs plus fake apt-get, qemu-aarch64 and id, and EGEUNET_APT_ETC points at a scratch etc, so
nothing here reads the real apt state, changes /etc or installs anything.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
BASH = shutil.which("bash")

# /etc/apt/sources.list.d as found on this project's machine (no sources.list): deb822 Debian and security,
# and two sources switched off by renaming them, which apt ignores.
THIS_MACHINE = {
    "apt/sources.list.d/debian.sources": """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
# http://snapshot.debian.org/archive/debian-security/20250520T000000Z
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
""",
    "apt/sources.list.d/google-cloud-sdk.list.disabled-by-farm":
        "deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n",
    "apt/sources.list.d/nodesource.sources.disabled-by-farm":
        "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\nComponents: main\n",
}
OS_RELEASE = {"os-release": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n'}

# layout -> (files under etc, debian_mirror's answer, has_backports etc bookworm)
LAYOUTS = {
    "this-machine": (THIS_MACHINE, "http://deb.debian.org/debian", False),
    "one-line-sources.list": ({
        "apt/sources.list": "deb http://deb.debian.org/debian bookworm main\n"
                            "deb http://security.debian.org/debian-security bookworm-security main\n",
    }, "http://deb.debian.org/debian", False),
    "deb822-only-trailing-slash": ({
        "apt/sources.list.d/debian.sources":
            "Types: deb\nURIs: http://ftp.de.debian.org/debian/\nSuites: bookworm\nComponents: main\n",
    }, "http://ftp.de.debian.org/debian", False),
    "no-sources": ({}, "", False),
    "empty-sources.list.d": ({"apt/sources.list.d/.keep": ""}, "", False),
    "backports-in-a-list": ({
        "apt/sources.list": "deb http://deb.debian.org/debian bookworm main\n",
        "apt/sources.list.d/backports.list": "deb http://deb.debian.org/debian/ bookworm-backports main\n",
    }, "http://deb.debian.org/debian", True),
    "backports-in-a-suites-line": ({
        "apt/sources.list.d/debian.sources": "Types: deb deb-src\nURIs: https://mirror.example.org/debian\n"
                                             "Suites: bookworm bookworm-updates\n  bookworm-backports\n"
                                             "Components: main contrib\n",
    }, "https://mirror.example.org/debian", True),
    "commented-lines": ({
        "apt/sources.list": "# deb http://old.example.org/debian bookworm-backports main\n"
                            "#deb http://old.example.org/debian bookworm main\n"
                            "deb http://deb.debian.org/debian bookworm main # the main archive\n",
        "apt/sources.list.d/x.sources": "# Types: deb\n#URIs: http://old.example.org/debian\n"
                                        "# Suites: bookworm-backports\n",
    }, "http://deb.debian.org/debian", False),
    "options-in-brackets": ({
        "apt/sources.list": "deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
                            "https://mirror.example.com/debian/ bookworm main\n",
    }, "https://mirror.example.com/debian", False),
    "backports-only-disabled-or-source": ({
        "apt/sources.list": "deb-src http://deb.debian.org/debian bookworm-backports main\n",
        "apt/sources.list.d/a.sources": "Types: deb\nURIs: http://deb.debian.org/debian\n"
                                        "Suites: bookworm-backports\nEnabled: no\n\n"
                                        "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n",
        "apt/sources.list.d/backports.list.save": "deb http://deb.debian.org/debian bookworm-backports main\n",
        "apt/sources.list.d/b.sources.disabled": "Types: deb\nURIs: http://x.org/debian\nSuites: bookworm-backports\n",
    }, "http://deb.debian.org/debian", False),
    "other-archives-first-and-another-codename": ({
        "apt/sources.list.d/a-nodesource.sources": "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\n"
                                                   "Suites: nodistro\nComponents: main\n",
        "apt/sources.list.d/b-debian.list": "deb http://deb.debian.org/debian-security bookworm-security main\n"
                                            "deb http://deb.debian.org/debian bullseye-backports main\n",
    }, "http://deb.debian.org/debian", False),
}


def make_etc(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def apt(function: str, *args: str) -> subprocess.CompletedProcess:
    """Call one scripts/apt_sources.sh function in bash under set -euo pipefail."""
    return subprocess.run([BASH, "-c", 'set -euo pipefail; source "$0"; "$@"', SCRIPTS / "apt_sources.sh",
                           function, *args], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_mirror_and_backports_detection(tmp_path, layout):
    files, mirror, backports = LAYOUTS[layout]
    etc = str(make_etc(tmp_path, files))
    found = apt("debian_mirror", etc)
    assert (found.returncode, found.stdout, found.stderr) == (0, mirror + "\n" if mirror else "", "")
    assert apt("has_backports", etc, "bookworm").returncode == (0 if backports else 1)


def test_detection_on_a_copy_of_this_machines_etc_apt(tmp_path):
    """Whatever this machine's apt holds now (setup_arm64.sh may have added backports): answers, never fails."""
    if not Path("/etc/apt/sources.list.d").is_dir():
        pytest.skip("no /etc/apt/sources.list.d here")
    (tmp_path / "apt" / "sources.list.d").mkdir(parents=True)
    for f in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").iterdir()]:
        if f.is_file():
            shutil.copy(f, tmp_path / f.relative_to("/etc"))
    found = apt("debian_mirror", str(tmp_path))
    assert found.returncode == 0 and found.stderr == ""
    assert re.fullmatch(r"(https?://\S+/debian\n)?", found.stdout)
    assert apt("has_backports", str(tmp_path), "bookworm").returncode in (0, 1)


def test_codename(tmp_path):
    assert apt("debian_codename", str(make_etc(tmp_path, OS_RELEASE))).stdout == "bookworm\n"
    missing = apt("debian_codename", str(tmp_path / "nothing"))
    assert (missing.returncode, missing.stdout) == (0, "")


# --- setup_arm64.sh in a sandbox --------------------------------------------------------------------------
REAL_TOOLS = ["bash", "dirname", "mkdir", "mktemp", "rm", "grep", "tail", "sed", "head", "awk", "cat", "tee"]
FAKES = {
    # apt-get: update works, install finds nothing (the reason the script must quote)
    "apt-get": '#!/bin/sh\necho "apt-get $*" >> "$APT_LOG"\n[ "$1" = update ] && exit 0\n'
               'for p; do :; done\necho "E: Unable to locate package $p" >&2\nexit 100\n',
    "qemu-aarch64": '#!/bin/sh\necho "qemu-aarch64 version 7.2.0 (Debian 1:7.2+dfsg-7)"\n',  # too old: reinstall
    "id": '#!/bin/sh\necho "$FAKE_UID"\n',
    "python": "#!/bin/sh\necho 1.4.0\n",  # PYTHON: ai-edge-litert's version
}


@pytest.fixture()
def sandbox(tmp_path):
    """PATH with the real tools setup_arm64.sh needs up to its apt step plus the fakes; the run's environment."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in REAL_TOOLS:
        (bin_dir / tool).symlink_to(shutil.which(tool))
    for name, text in FAKES.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return {"PATH": str(bin_dir), "HOME": str(tmp_path), "APT_LOG": str(tmp_path / "apt.log"), "FAKE_UID": "0",
            "PYTHON": str(bin_dir / "python"), "EGEUNET_ARM64_KIT": str(tmp_path / "kit"),
            "EGEUNET_APT_ETC": str(tmp_path / "etc")}


def setup_arm64(env: dict, files: dict[str, str]) -> subprocess.CompletedProcess:
    make_etc(Path(env["EGEUNET_APT_ETC"]), {**OS_RELEASE, **files})
    return subprocess.run([BASH, SCRIPTS / "setup_arm64.sh"], env=env, capture_output=True, text=True, timeout=60)


def apt_calls(env: dict) -> list[str]:
    log = Path(env["APT_LOG"])
    return log.read_text().splitlines() if log.exists() else []


def last_line(text: str) -> str:
    return text.rstrip("\n").rsplit("\n", 1)[-1]


def test_this_machines_layout_gets_backports_on_its_mirror(sandbox):
    proc = setup_arm64(sandbox, THIS_MACHINE)
    assert "adding bookworm-backports (http://deb.debian.org/debian) for qemu-user 10" in proc.stdout
    added = Path(sandbox["EGEUNET_APT_ETC"], "apt/sources.list.d/egeunet-backports.sources").read_text()
    assert "URIs: http://deb.debian.org/debian\nSuites: bookworm-backports\n" in added
    assert any(c.endswith("-t bookworm-backports qemu-user") for c in apt_calls(sandbox))
    assert "qemu-user from bookworm-backports not installable: E: Unable to locate package qemu-user" in proc.stdout
    assert proc.returncode == 1
    assert last_line(proc.stderr) == (
        "[setup_arm64.sh] FAILED: cannot apt-get install qemu-user-static: E: Unable to locate package qemu-user-static")


def test_one_line_sources_list_without_sources_list_d_gets_backports(sandbox):
    setup_arm64(sandbox, LAYOUTS["one-line-sources.list"][0])
    added = Path(sandbox["EGEUNET_APT_ETC"], "apt/sources.list.d/egeunet-backports.sources").read_text()
    assert "URIs: http://deb.debian.org/debian\nSuites: bookworm-backports\n" in added


def test_backports_already_configured_is_used_not_added_again(sandbox):
    proc = setup_arm64(sandbox, LAYOUTS["backports-in-a-suites-line"][0])
    assert "adding" not in proc.stdout
    assert not Path(sandbox["EGEUNET_APT_ETC"], "apt/sources.list.d/egeunet-backports.sources").exists()
    assert any(c.endswith("-t bookworm-backports qemu-user") for c in apt_calls(sandbox))


def test_no_sources_says_so_and_falls_back_to_qemu_user_static(sandbox):
    proc = setup_arm64(sandbox, {})
    assert "no Debian mirror in" in proc.stdout and "cannot add bookworm-backports" in proc.stdout
    assert not any("-t bookworm-backports" in c for c in apt_calls(sandbox))
    assert apt_calls(sandbox)[-1].endswith(" qemu-user-static")
    assert last_line(proc.stderr).startswith("[setup_arm64.sh] FAILED: cannot apt-get install qemu-user-static: E: ")


def test_without_root_names_the_packages_and_runs_no_apt(sandbox):
    proc = setup_arm64({**sandbox, "FAKE_UID": "1000"}, THIS_MACHINE)
    assert proc.returncode == 1 and apt_calls(sandbox) == []
    assert re.fullmatch(r"\[setup_arm64\.sh\] FAILED: root is needed to apt-get install qemu-user( \S+)* "
                        r"\(run this as root, or install them first\)\n", proc.stderr)


def broken_awk(env: dict) -> dict:
    """Mirror detection deliberately broken: awk fails."""
    awk = Path(env["PATH"], "awk")
    awk.unlink()
    awk.write_text('#!/bin/sh\necho "awk: broken on purpose" >&2\nexit 2\n')
    awk.chmod(0o755)
    return env


def test_broken_mirror_detection_stops_with_the_step(sandbox):
    proc = setup_arm64(broken_awk(sandbox), THIS_MACHINE)
    script = (SCRIPTS / "setup_arm64.sh").read_text().splitlines()
    line = next(n for n, text in enumerate(script, 1) if 'mirror="$(debian_mirror "$etc")"' in text)
    assert proc.returncode != 0 and apt_calls(sandbox) == []
    assert last_line(proc.stderr) == f'[setup_arm64.sh] FAILED at line {line}: mirror="$(debian_mirror "$etc")"'


def test_test_sh_relays_the_failing_step_and_goes_on(sandbox):
    """test.sh runs setup_arm64.sh through keep_going: its failure line comes back as test.sh's last word on it."""
    assert 'keep_going "$root/scripts/setup_arm64.sh"' in (SCRIPTS / "test.sh").read_text()
    env = broken_awk(sandbox)
    make_etc(Path(env["EGEUNET_APT_ETC"]), {**OS_RELEASE, **THIS_MACHINE})
    proc = subprocess.run([BASH, "-c", 'source "$1"; keep_going "$2" "tests/test_arm64.py will fail"; echo next',
                           "test.sh", SCRIPTS / "on_error.sh", SCRIPTS / "setup_arm64.sh"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.endswith("next\n")
    assert re.fullmatch(r'\[test\.sh\] going on without setup_arm64\.sh \(tests/test_arm64\.py will fail\): '
                        r'\[setup_arm64\.sh\] FAILED at line \d+: mirror="\$\(debian_mirror "\$etc"\)"',
                        last_line(proc.stderr))


def test_keep_going_names_a_step_that_exits_without_a_message(tmp_path):
    silent = tmp_path / "silent.sh"
    silent.write_text("exit 3\n")
    proc = subprocess.run([BASH, "-c", 'source "$1"; keep_going "$2" "x will fail"', "test.sh",
                           SCRIPTS / "on_error.sh", silent], capture_output=True, text=True, timeout=30)
    assert proc.stderr == "[test.sh] going on without silent.sh (x will fail): it exited 3 without a message\n"


def test_venv_sh_names_a_failing_pip_install(tmp_path):
    """venv.sh in a scratch repository whose .venv python fails the egeunet install."""
    (tmp_path / "scripts").mkdir()
    for name in ("on_error.sh", "venv.sh"):
        shutil.copy(SCRIPTS / name, tmp_path / "scripts" / name)
    (tmp_path / "setup.cfg").write_text("[metadata]\n")
    (tmp_path / "constraints.txt").write_text("")
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text('#!/bin/sh\ncase "$*" in *" -e "*) echo "ERROR: No matching distribution found" >&2; exit 1;; esac\n')
    python.chmod(0o755)
    proc = subprocess.run([BASH, "-c", 'source "$0"; echo unreachable', tmp_path / "scripts" / "venv.sh"],
                          capture_output=True, text=True, timeout=30)
    step = '"$venv/bin/python" -m pip install --quiet -c "$root/constraints.txt" -e "$root[all]"'
    line = (SCRIPTS / "venv.sh").read_text().splitlines().index("  " + step) + 1
    assert proc.returncode == 1 and "unreachable" not in proc.stdout
    assert proc.stderr.splitlines()[-2:] == ["ERROR: No matching distribution found",
                                             f"[venv.sh] FAILED at line {line}: {step}"]
