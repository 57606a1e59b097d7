"""The recipes ``codespark migrate --recipe`` knows, by name."""

from __future__ import annotations

from codespark.migrate.py2to3 import Py2ToPy3Recipe
from codespark.migrate.recipe import Recipe
from codespark.migrate.unittest_pytest import UnittestToPytestRecipe

RECIPES: dict[str, Recipe] = {r.name: r for r in (Py2ToPy3Recipe(), UnittestToPytestRecipe())}
