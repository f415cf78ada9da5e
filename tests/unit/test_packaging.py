"""pyproject.toml ships every package of the code: a wheel (`pip install .`, not the
editable install the lab uses) built from a list that misses one cannot import the engine."""
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_with_an_init_is_listed_in_pyproject():
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(conf["tool"]["setuptools"]["packages"])
    found = {str(p.parent.relative_to(ROOT)).replace("/", ".")
             for top in ("bridge", "rules", "conf") for p in (ROOT / top).rglob("__init__.py")}
    assert found == listed


def test_every_c_source_is_an_extension_module():
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())
    built = {src for ext in conf["tool"]["setuptools"]["ext-modules"] for src in ext["sources"]}
    sources = {str(p.relative_to(ROOT)) for top in ("bridge", "rules") for p in (ROOT / top).rglob("*.c")}
    assert sources == built
