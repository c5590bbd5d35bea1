"""The two distributions built from this repository (issue 18): the SDK
(`sdk/`, agentwatch-client) installs alone and brings nothing with it; the
server's (`agentwatch`, the root) holds every other module and depends on it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import httpx

from tests.conftest import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
SDK_SRC = ROOT / "sdk" / "src" / "agentwatch"
SERVER_SRC = ROOT / "src" / "agentwatch"


def run(*cmd: str | Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def distributions(python: Path) -> set[str]:
    out = run(python, "-m", "pip", "list", "--format=json", "--disable-pip-version-check")
    return {d["name"].lower() for d in json.loads(out)}


def test_the_sdk_installs_alone_and_sends(tmp_path: Path, server: ServerProcess) -> None:
    run(sys.executable, "-m", "venv", tmp_path / "venv")
    python = tmp_path / "venv" / "bin" / "python"
    before = distributions(python)
    run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", ROOT / "sdk")
    assert distributions(python) - before == {"agentwatch-client"}

    # The installed SDK, used as an app would, against a real server; what it
    # imports beyond the standard library is printed.
    script = textwrap.dedent(
        f"""
        import json, sys
        before = set(sys.modules)
        import agentwatch
        agentwatch.init(server_url={server.url!r}, agent="alone")
        agentwatch.log_event(task_name="t", model="gpt-4o-mini", input_tokens=3,
                             output_tokens=2, latency_ms=10.0)
        assert agentwatch.flush(10)
        agentwatch.shutdown()
        new = {{m.split(".")[0] for m in set(sys.modules) - before}}
        try:
            import agentwatch.server
            server = True
        except ImportError:
            server = False
        print(json.dumps({{"foreign": sorted(new - set(sys.stdlib_module_names) - {{"agentwatch"}}),
                          "server": server, "file": agentwatch.__file__}}))
        """
    )
    seen = json.loads(run(python, "-c", script, env={"PATH": "/usr/bin:/bin"}))
    assert seen["foreign"] == []
    assert seen["server"] is False  # the server's modules are not in this distribution
    assert seen["file"].startswith(str(tmp_path))  # the installed copy, not the checkout
    assert not (tmp_path / "venv" / "bin" / "agentwatch").exists()
    events = httpx.get(server.url + "/api/events", params={"agent_name": "alone"}).json()
    assert [(e["task_name"], e["input_tokens"]) for e in events["events"]] == [("t", 3)]


def wheel(project: Path, out: Path, env: dict[str, str] | None = None) -> zipfile.ZipFile:
    out.mkdir()
    run(
        sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check",
        "-w", out, project, env=env,
    )  # fmt: skip
    (built,) = out.glob("*.whl")
    return zipfile.ZipFile(built)


def metadata(whl: zipfile.ZipFile) -> str:
    (name,) = [n for n in whl.namelist() if n.endswith(".dist-info/METADATA")]
    return whl.read(name).decode()


def test_the_two_wheels_split_the_package(tmp_path: Path) -> None:
    import os

    sdk = wheel(ROOT / "sdk", tmp_path / "sdk")
    srv = wheel(ROOT, tmp_path / "server")
    sdk_files = {n for n in sdk.namelist() if n.startswith("agentwatch/")}
    srv_files = {n for n in srv.namelist() if n.startswith("agentwatch/")}

    assert not sdk_files & srv_files  # no file in both: one folder when installed
    assert "agentwatch/__init__.py" in sdk_files and "agentwatch/py.typed" in sdk_files
    assert {f.split("/")[1] for f in sdk_files} == {
        "__init__.py", "_version.py", "_ids.py", "py.typed", "sdk", "integrations",
    }  # fmt: skip
    # Every source module is in exactly the wheel of its folder.
    for src, files in ((SDK_SRC, sdk_files), (SERVER_SRC, srv_files)):
        for f in src.rglob("*.py"):
            assert f"agentwatch/{f.relative_to(src)}" in files, f
    # The dashboard ships with the server, its vendored Chart.js included.
    assert "agentwatch/server/static/index.html" in srv_files
    assert any(f.startswith("agentwatch/server/static/vendor/") for f in srv_files)

    assert "Requires-Dist" not in metadata(sdk)  # nothing third-party
    requires = [x for x in metadata(srv).splitlines() if x.startswith("Requires-Dist:")]
    assert f"Requires-Dist: agentwatch-client @ {(ROOT / 'sdk').as_uri()}" in requires
    assert (
        "agentwatch = agentwatch.cli:main"
        in srv.read(next(n for n in srv.namelist() if n.endswith("entry_points.txt"))).decode()
    )

    # A build for an index pins the SDK's version instead of this folder.
    version = run(sys.executable, "-c", "import agentwatch; print(agentwatch.__version__)").strip()
    env = {**os.environ, "AGENTWATCH_CLIENT_REQ": f"=={version}"}
    pinned = wheel(ROOT, tmp_path / "pinned", env=env)
    assert f"Requires-Dist: agentwatch-client=={version}" in metadata(pinned).splitlines()
