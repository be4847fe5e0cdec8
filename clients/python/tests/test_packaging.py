"""The package installs with pip, ships py.typed, and needs no framework or
third-party package unless an integration is imported."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _need import need_module

PROJECT = Path(__file__).resolve().parents[1]


def test_installs_with_pip(tmp_path: Path) -> None:
    need_module("setuptools")
    import setuptools

    if int(setuptools.__version__.split(".")[0]) < 64:
        pytest.skip(f"setuptools {setuptools.__version__} is too old to build without isolation; want >= 64")
    # Build from a copy, so setuptools leaves nothing in the working tree.
    project = tmp_path / "project"
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("tests", "build", "*.egg-info", "__pycache__"))
    target = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--no-cache-dir", "--target", str(target), str(project)],
        capture_output=True, text=True, timeout=300,
    )
    if result.returncode != 0:
        pytest.fail(f"pip install failed:\n{result.stdout}\n{result.stderr}")
    for name in ("__init__.py", "django.py", "flask.py", "fastapi.py", "asgi.py", "wsgi.py", "py.typed"):
        if not (target / "twilioguard" / name).is_file():
            pytest.fail(f"installed package lacks {name}")
    probe = (
        "import importlib.metadata as m, twilioguard, sys;"
        "assert twilioguard.__file__.startswith(sys.argv[1]), twilioguard.__file__;"
        "print(m.version('twilioguard'), twilioguard.__version__, m.requires('twilioguard'))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-B", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {probe}", str(target)],
        capture_output=True, text=True, timeout=60,
    )
    if out.returncode != 0:
        pytest.fail(f"installed package does not import:\n{out.stderr}")
    dist_version, version, requires = out.stdout.split(maxsplit=2)
    if dist_version != version:
        pytest.fail(f"distribution version {dist_version} != twilioguard.__version__ {version}")
    if requires.strip() not in ("None", "[]") and "extra ==" not in requires:
        pytest.fail(f"package has runtime dependencies: {requires}")


def test_imports_without_frameworks() -> None:
    src = PROJECT / "src"
    code = (
        "import sys\n"
        "for name in ('django', 'asgiref', 'flask', 'werkzeug', 'fastapi', 'starlette', 'aiohttp'):\n"
        "    sys.modules[name] = None\n"
        f"sys.path.insert(0, {str(src)!r})\n"
        "import twilioguard, twilioguard.wsgi, twilioguard.asgi\n"
        "assert twilioguard.sign('t', 'https://x/', {'a': '1'})\n"
        "try:\n"
        "    twilioguard.AsyncClient('http://x')\n"
        "except ImportError as exc:\n"
        "    print('aiohttp-needed' if 'twilioguard[fastapi]' in str(exc) else exc)\n"
        "for name in ('django', 'flask', 'fastapi'):\n"
        "    try:\n"
        "        __import__('twilioguard.' + name)\n"
        "    except ImportError:\n"
        "        print(name + '-needed')\n"
    )
    out = subprocess.run([sys.executable, "-I", "-B", "-c", code], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        pytest.fail(f"twilioguard needs a framework to import:\n{out.stderr}")
    want = ["aiohttp-needed", "django-needed", "flask-needed", "fastapi-needed"]
    if out.stdout.split() != want:
        pytest.fail(f"output {out.stdout.split()}, want {want}")


def test_standard_library_only() -> None:
    # Every import in the core modules names the standard library or the package.
    names = getattr(sys, "stdlib_module_names", None)
    if names is None:
        pytest.skip("needs Python 3.10+ (sys.stdlib_module_names)")
    stdlib = set(names)
    for path in (PROJECT / "src" / "twilioguard").glob("*.py"):
        if path.name in ("django.py", "flask.py", "fastapi.py"):
            continue
        for line in path.read_text().splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] in ("import", "from") and not line.startswith(" "):
                top = words[1].split(".")[0]
                if top and top not in stdlib and top not in ("twilioguard", "__future__") and not top.startswith("."):
                    pytest.fail(f"{path.name} imports {words[1]}, which is not in the standard library")
