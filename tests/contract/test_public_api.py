"""The public surface: a short top-level list, every public name documented and reporting its public path."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import imgclf

TOP_LEVEL = {"fit", "load", "Classifier", "Prediction", "FitResult", "Evaluation", "CalibrationResult",
             "ExplainReport", "ExportResult", "RobustnessResult", "RunConfig", "ImgclfError",
             "__version__"}  # fmt: skip


def _packages() -> list[str]:
    return sorted(f"imgclf.{m.name}" for m in pkgutil.iter_modules(imgclf.__path__)
                  if not m.name.startswith("_") and m.name not in ("cli",))  # fmt: skip


def test_top_level_is_the_short_documented_list() -> None:
    assert set(imgclf.__all__) == TOP_LEVEL and len(imgclf.__all__) <= 15
    for name in TOP_LEVEL - {"__version__"}:
        obj = getattr(imgclf, name)
        assert inspect.getdoc(obj), f"imgclf.{name} has no docstring"
        module = obj.__module__
        assert not any(part.startswith("_") for part in module.split(".")), f"imgclf.{name} reports {module}"
        assert getattr(importlib.import_module(module), name) is obj


def test_every_public_name_of_every_package_reports_its_public_path() -> None:
    wrong = []
    for package in _packages():
        mod = importlib.import_module(package)
        assert hasattr(mod, "__all__"), f"{package} has no __all__"
        for name in mod.__all__:
            obj = getattr(mod, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            if not obj.__module__.startswith("imgclf"):
                continue  # re-exported from a dependency
            if any(part.startswith("_") for part in obj.__module__.split(".")):
                wrong.append(f"{package}.{name} reports {obj.__module__}")
            elif getattr(importlib.import_module(obj.__module__), name, None) is not obj:
                wrong.append(f"{package}.{name} reports {obj.__module__}, which does not export it")
    assert not wrong, "\n".join(wrong)


def test_public_functions_and_classes_have_docstrings() -> None:
    missing = []
    for package in _packages():
        mod = importlib.import_module(package)
        for name in mod.__all__:
            obj = getattr(mod, name)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and not inspect.getdoc(obj):
                missing.append(f"{package}.{name}")
    assert not missing, "undocumented public names: " + ", ".join(missing)
