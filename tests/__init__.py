"""LIFT-GS's tests: a package, so that its helpers import as ``tests.support`` under any import mode."""
